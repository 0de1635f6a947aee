"""users' scopes

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02 16:40:00.000000
"""
from alembic import op
import sqlalchemy as sa


revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('scope_site_id', sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f('ix_users_scope_site_id'), ['scope_site_id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_users_scope_site_id_sites'), 'sites', ['scope_site_id'], ['id'])
    with op.batch_alter_table('sites', schema=None) as batch_op:
        # Existing provinces keep their staff inside their scope until an admin allows otherwise.
        batch_op.add_column(sa.Column('invites_outside_scope', sa.Boolean(), nullable=False,
                                      server_default=sa.false()))
    # Jobs launched before this revision have no sites: only users without a scope see them.
    op.create_table('job_sites',
    sa.Column('job_id', sa.Integer(), nullable=False),
    sa.Column('site_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], name=op.f('fk_job_sites_job_id_jobs'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['site_id'], ['sites.id'], name=op.f('fk_job_sites_site_id_sites'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('job_id', 'site_id', name=op.f('pk_job_sites'))
    )
    with op.batch_alter_table('job_sites', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_job_sites_site_id'), ['site_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('job_sites', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_job_sites_site_id'))
    op.drop_table('job_sites')
    with op.batch_alter_table('sites', schema=None) as batch_op:
        batch_op.drop_column('invites_outside_scope')
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_users_scope_site_id_sites'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_users_scope_site_id'))
        batch_op.drop_column('scope_site_id')
