"""firmware store

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-27 06:10:00
"""
from alembic import op
import sqlalchemy as sa
import app.db


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('firmware_images',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('vendor', sa.String(length=40), nullable=False),
    sa.Column('model', sa.String(length=80), nullable=False),
    sa.Column('version', sa.String(length=80), nullable=False),
    sa.Column('filename', sa.String(length=255), nullable=False),
    sa.Column('storage_name', sa.String(length=80), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('uploaded_by_id', sa.Integer(), nullable=True),
    sa.Column('uploaded_at', app.db.UTCDateTime(), nullable=False),
    sa.CheckConstraint('size > 0', name=op.f('ck_firmware_images_firmware_size_positive')),
    sa.ForeignKeyConstraint(['uploaded_by_id'], ['users.id'], name=op.f('fk_firmware_images_uploaded_by_id_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_firmware_images')),
    sa.UniqueConstraint('storage_name', name=op.f('uq_firmware_images_storage_name')),
    sa.UniqueConstraint('vendor', 'model', 'version', name=op.f('uq_firmware_images_vendor'))
    )
    with op.batch_alter_table('firmware_images', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_firmware_images_sha256'), ['sha256'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('firmware_images', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_firmware_images_sha256'))

    op.drop_table('firmware_images')
