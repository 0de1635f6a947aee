"""configuration backups

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-27 06:00:00
"""
from alembic import op
import sqlalchemy as sa
import app.db


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('config_backups',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('endpoint_id', sa.Integer(), nullable=True),
    sa.Column('bridge_id', sa.Integer(), nullable=True),
    sa.Column('job_id', sa.Integer(), nullable=True),
    sa.Column('fetched_at', app.db.UTCDateTime(), nullable=False),
    sa.Column('content', sa.Text(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.CheckConstraint('(endpoint_id IS NULL) <> (bridge_id IS NULL)', name=op.f('ck_config_backups_one_device')),
    sa.ForeignKeyConstraint(['bridge_id'], ['bridges.id'], name=op.f('fk_config_backups_bridge_id_bridges'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['endpoint_id'], ['endpoints.id'], name=op.f('fk_config_backups_endpoint_id_endpoints'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], name=op.f('fk_config_backups_job_id_jobs'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_config_backups'))
    )
    with op.batch_alter_table('config_backups', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_config_backups_bridge_id'), ['bridge_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_config_backups_endpoint_id'), ['endpoint_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_config_backups_job_id'), ['job_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('config_backups', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_config_backups_job_id'))
        batch_op.drop_index(batch_op.f('ix_config_backups_endpoint_id'))
        batch_op.drop_index(batch_op.f('ix_config_backups_bridge_id'))
    op.drop_table('config_backups')
