"""reports kept for download, travel settings of sites

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-02 16:40:00.000000
"""
from alembic import op
import sqlalchemy as sa
import app.db


revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('site_travel',
    sa.Column('site_id', sa.Integer(), nullable=False),
    sa.Column('distance_km', sa.Double(), nullable=True),
    sa.Column('travel_minutes', sa.Integer(), nullable=True),
    sa.CheckConstraint('distance_km IS NULL OR distance_km >= 0', name=op.f('ck_site_travel_distance_not_negative')),
    sa.CheckConstraint('travel_minutes IS NULL OR travel_minutes >= 0', name=op.f('ck_site_travel_minutes_not_negative')),
    sa.ForeignKeyConstraint(['site_id'], ['sites.id'], name=op.f('fk_site_travel_site_id_sites'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('site_id', name=op.f('pk_site_travel'))
    )
    op.create_table('meeting_headcounts',
    sa.Column('meeting_id', sa.Integer(), nullable=False),
    sa.Column('people_per_site', sa.Integer(), nullable=False),
    sa.CheckConstraint('people_per_site >= 0 AND people_per_site <= 1000', name=op.f('ck_meeting_headcounts_people_range')),
    sa.ForeignKeyConstraint(['meeting_id'], ['meetings.id'], name=op.f('fk_meeting_headcounts_meeting_id_meetings'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('meeting_id', name=op.f('pk_meeting_headcounts'))
    )
    op.create_table('stored_reports',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.Enum('monthly', 'on_demand', name='report_kind', native_enum=False, create_constraint=True, length=20), nullable=False),
    sa.Column('status', sa.Enum('queued', 'ready', 'failed', name='report_status', native_enum=False, create_constraint=True, length=20), nullable=False),
    sa.Column('period_start', app.db.UTCDateTime(), nullable=False),
    sa.Column('period_end', app.db.UTCDateTime(), nullable=False),
    sa.Column('site_id', sa.Integer(), nullable=True),
    sa.Column('title', sa.String(length=300), nullable=False),
    sa.Column('folder', sa.String(length=64), nullable=False),
    sa.Column('files', sa.JSON(), nullable=False),
    sa.Column('error', sa.Text(), nullable=False),
    sa.Column('mailed_to', sa.JSON(), nullable=False),
    sa.Column('mail_reply', sa.Text(), nullable=False),
    sa.Column('mail_attempts', sa.Integer(), nullable=False),
    sa.Column('requested_by_id', sa.Integer(), nullable=True),
    sa.Column('created_at', app.db.UTCDateTime(), nullable=False),
    sa.Column('finished_at', app.db.UTCDateTime(), nullable=True),
    sa.CheckConstraint('period_end > period_start', name=op.f('ck_stored_reports_period_positive')),
    sa.ForeignKeyConstraint(['requested_by_id'], ['users.id'], name=op.f('fk_stored_reports_requested_by_id_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['site_id'], ['sites.id'], name=op.f('fk_stored_reports_site_id_sites'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_stored_reports')),
    sa.UniqueConstraint('key', name=op.f('uq_stored_reports_key'))
    )
    op.create_index('ix_stored_reports_created', 'stored_reports', ['created_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_stored_reports_created', table_name='stored_reports')
    op.drop_table('stored_reports')
    op.drop_table('meeting_headcounts')
    op.drop_table('site_travel')
