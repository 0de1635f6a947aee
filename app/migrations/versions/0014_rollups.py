"""probe rollups (hourly and daily), monthly reports

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-02 16:40:00.000000
"""
from alembic import op
import sqlalchemy as sa
import app.db


revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None

# (table, target column, the table the target's id refers to); the histogram has 24 buckets
# (app.monitoring.models.RTT_BUCKETS at the time of this migration).
TABLES = [('link_rollups_hourly', 'link_id', 'links'), ('link_rollups_daily', 'link_id', 'links'),
          ('endpoint_rollups_hourly', 'endpoint_id', 'endpoints'),
          ('endpoint_rollups_daily', 'endpoint_id', 'endpoints')]
RTT_BUCKETS = 24


def upgrade() -> None:
    for table, key, target in TABLES:
        op.create_table(table,
        sa.Column('bucket_start', app.db.UTCDateTime(), nullable=False),
        sa.Column('steps_up', sa.Integer(), nullable=False),
        sa.Column('steps_down', sa.Integer(), nullable=False),
        sa.Column('sent', sa.Integer(), nullable=False),
        sa.Column('lost', sa.Integer(), nullable=False),
        sa.Column('rtt_sum', sa.Double(), nullable=False),
        sa.Column('rtt_count', sa.Integer(), nullable=False),
        sa.Column('jitter_sum', sa.Double(), nullable=False),
        sa.Column('jitter_count', sa.Integer(), nullable=False),
        *[sa.Column(f'rtt_b{i:02d}', sa.Integer(), nullable=False) for i in range(RTT_BUCKETS)],
        sa.Column(key, sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint([key], [f'{target}.id'], name=op.f(f'fk_{table}_{key}_{target}'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint(key, 'bucket_start', name=op.f(f'pk_{table}'))
        )
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.create_index(f'ix_{table}_bucket', ['bucket_start'], unique=False)


def downgrade() -> None:
    for table, _key, _target in reversed(TABLES):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_index(f'ix_{table}_bucket')
        op.drop_table(table)
