"""conferences on the bridges for booked meetings

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-02 17:20:00.000000
"""
from alembic import op  # noqa: F401
import sqlalchemy as sa  # noqa: F401
import app.db  # noqa: F401


revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('conferences',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('meeting_id', sa.Integer(), nullable=False),
    sa.Column('number', sa.String(length=20), nullable=False),
    sa.Column('bridge_id', sa.Integer(), nullable=True),
    sa.Column('bridge_conference_id', sa.String(length=100), nullable=False),
    sa.Column('desired', sa.Enum('present', 'absent', name='conference_desired', native_enum=False, create_constraint=True, length=20), nullable=False),
    sa.Column('state', sa.Enum('pending', 'ready', 'failed', 'deleted', name='conference_state', native_enum=False, create_constraint=True, length=20), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('failures', sa.Integer(), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=False),
    sa.Column('next_attempt_at', app.db.UTCDateTime(), nullable=True),
    sa.Column('claimed_until', app.db.UTCDateTime(), nullable=True),
    sa.Column('ready_at', app.db.UTCDateTime(), nullable=True),
    sa.Column('created_at', app.db.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['bridge_id'], ['bridges.id'], name=op.f('fk_conferences_bridge_id_bridges')),
    sa.ForeignKeyConstraint(['meeting_id'], ['meetings.id'], name=op.f('fk_conferences_meeting_id_meetings'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_conferences')),
    sa.UniqueConstraint('number', name=op.f('uq_conferences_number'))
    )
    with op.batch_alter_table('conferences', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_conferences_bridge_id'), ['bridge_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_conferences_meeting_id'), ['meeting_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_conferences_next_attempt_at'), ['next_attempt_at'], unique=False)

    op.create_table('conference_attempts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('conference_id', sa.Integer(), nullable=False),
    sa.Column('at', app.db.UTCDateTime(), nullable=False),
    sa.Column('bridge_id', sa.Integer(), nullable=True),
    sa.Column('action', sa.String(length=20), nullable=False),
    sa.Column('ok', sa.Boolean(), nullable=False),
    sa.Column('error', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['bridge_id'], ['bridges.id'], name=op.f('fk_conference_attempts_bridge_id_bridges')),
    sa.ForeignKeyConstraint(['conference_id'], ['conferences.id'], name=op.f('fk_conference_attempts_conference_id_conferences'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_conference_attempts'))
    )
    with op.batch_alter_table('conference_attempts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_conference_attempts_conference_id'), ['conference_id'], unique=False)

    op.create_table('unknown_conferences',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('bridge_id', sa.Integer(), nullable=False),
    sa.Column('bridge_conference_id', sa.String(length=100), nullable=False),
    sa.Column('name', sa.String(length=300), nullable=False),
    sa.Column('number', sa.String(length=100), nullable=False),
    sa.Column('first_seen_at', app.db.UTCDateTime(), nullable=False),
    sa.Column('last_seen_at', app.db.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['bridge_id'], ['bridges.id'], name=op.f('fk_unknown_conferences_bridge_id_bridges'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_unknown_conferences')),
    sa.UniqueConstraint('bridge_id', 'bridge_conference_id', name='uq_unknown_conferences_bridge_conference')
    )


def downgrade() -> None:
    op.drop_table('unknown_conferences')
    with op.batch_alter_table('conference_attempts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_conference_attempts_conference_id'))

    op.drop_table('conference_attempts')
    with op.batch_alter_table('conferences', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_conferences_next_attempt_at'))
        batch_op.drop_index(batch_op.f('ix_conferences_meeting_id'))
        batch_op.drop_index(batch_op.f('ix_conferences_bridge_id'))

    op.drop_table('conferences')
