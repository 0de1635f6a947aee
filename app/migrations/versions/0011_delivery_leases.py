"""outbox leases, deliveries handed to the server

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 14:30:00.000000
"""
from alembic import op
import sqlalchemy as sa
import app.db


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.add_column(sa.Column('claimed_until', app.db.UTCDateTime(), nullable=True))
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.add_column(sa.Column('handed_at', app.db.UTCDateTime(), nullable=True))
        # Rows written before this revision had no note: empty, as a send-out without one.
        batch_op.add_column(sa.Column('note', sa.Text(), nullable=False, server_default=''))


def downgrade() -> None:
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.drop_column('note')
        batch_op.drop_column('handed_at')
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_column('claimed_until')
