"""web login

The web side's login (issue 17): the attempts the limits per login and per client address
count, and the time of an account's last login beside its last IP.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 08:00:00.000000
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import services.embedded.models

revision: str = '0010'
down_revision: str | None = '0009'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('web_login_attempts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('login', sa.String(length=64), nullable=False),
    sa.Column('ip', sa.String(length=45), nullable=False),
    sa.Column('attempted_at', services.embedded.models.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_web_login_attempts'))
    )
    with op.batch_alter_table('web_login_attempts', schema=None) as batch_op:
        batch_op.create_index('ix_web_login_attempts_ip', ['ip', 'attempted_at'], unique=False)
        batch_op.create_index('ix_web_login_attempts_login', ['login', 'attempted_at'], unique=False)
    # A plain ADD COLUMN (no batch copy of the table): the accounts table keeps its triggers.
    op.add_column('accounts', sa.Column('last_login_at', services.embedded.models.UTCDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.drop_column('last_login_at')
    with op.batch_alter_table('web_login_attempts', schema=None) as batch_op:
        batch_op.drop_index('ix_web_login_attempts_login')
        batch_op.drop_index('ix_web_login_attempts_ip')
    op.drop_table('web_login_attempts')
