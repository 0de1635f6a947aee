"""bridge certificates pinned, bridge API

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-02 16:40:00.000000
"""
from alembic import op  # noqa: F401
import sqlalchemy as sa  # noqa: F401
import app.db  # noqa: F401


revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('bridge_certificates',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('address', sa.String(length=255), nullable=False),
    sa.Column('port', sa.Integer(), nullable=False),
    sa.Column('fingerprint', sa.String(length=100), nullable=False),
    sa.Column('subject', sa.String(length=500), nullable=False),
    sa.Column('not_before', app.db.UTCDateTime(), nullable=True),
    sa.Column('not_after', app.db.UTCDateTime(), nullable=True),
    sa.Column('state', sa.Enum('pending', 'accepted', name='bridge_certificate_state', native_enum=False, create_constraint=True, length=20), nullable=False),
    sa.Column('first_seen_at', app.db.UTCDateTime(), nullable=False),
    sa.Column('last_seen_at', app.db.UTCDateTime(), nullable=False),
    sa.Column('accepted_by_id', sa.Integer(), nullable=True),
    sa.Column('accepted_at', app.db.UTCDateTime(), nullable=True),
    sa.CheckConstraint('port > 0 AND port < 65536', name=op.f('ck_bridge_certificates_port_range')),
    sa.ForeignKeyConstraint(['accepted_by_id'], ['users.id'], name=op.f('fk_bridge_certificates_accepted_by_id_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_bridge_certificates')),
    sa.UniqueConstraint('address', 'port', 'fingerprint', name='uq_bridge_certificates_address_port_fingerprint')
    )
    with op.batch_alter_table('bridge_certificates', schema=None) as batch_op:
        batch_op.create_index('ix_bridge_certificates_address_port', ['address', 'port'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('bridge_certificates', schema=None) as batch_op:
        batch_op.drop_index('ix_bridge_certificates_address_port')

    op.drop_table('bridge_certificates')
