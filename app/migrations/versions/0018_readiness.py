"""readiness checks of each site before a meeting

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-02 17:20:00.000000
"""
from alembic import op  # noqa: F401
import sqlalchemy as sa  # noqa: F401
import app.db  # noqa: F401


revision = '0018'
down_revision = '0017'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('readiness_checks',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('occurrence_id', sa.Integer(), nullable=False),
    sa.Column('site_id', sa.Integer(), nullable=False),
    sa.Column('endpoint_id', sa.Integer(), nullable=True),
    sa.Column('round', sa.Enum('setup', 't15', name='readiness_round', native_enum=False, create_constraint=True, length=20), nullable=False),
    sa.Column('status', sa.Enum('ready', 'not_ready', 'unknown', name='readiness_status', native_enum=False, create_constraint=True, length=20), nullable=False),
    sa.Column('checks', sa.JSON(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('action', sa.Text(), nullable=False),
    sa.Column('checked_at', app.db.UTCDateTime(), nullable=False),
    sa.Column('mailed_at', app.db.UTCDateTime(), nullable=True),
    sa.Column('mailed_digest', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['endpoint_id'], ['endpoints.id'], name=op.f('fk_readiness_checks_endpoint_id_endpoints'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['occurrence_id'], ['occurrences.id'], name=op.f('fk_readiness_checks_occurrence_id_occurrences'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['site_id'], ['sites.id'], name=op.f('fk_readiness_checks_site_id_sites'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_readiness_checks')),
    sa.UniqueConstraint('occurrence_id', 'site_id', 'round', name='uq_readiness_checks_round')
    )
    op.create_index(op.f('ix_readiness_checks_occurrence_id'), 'readiness_checks', ['occurrence_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_readiness_checks_occurrence_id'), table_name='readiness_checks')
    op.drop_table('readiness_checks')
