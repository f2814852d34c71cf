"""web session epoch

A web session (issue 17) names the epoch of its account it began in; logging out and setting a
new password move the epoch on, so every session given out before ends at once.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03 09:00:00.000000
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0011'
down_revision: str | None = '0010'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A plain ADD COLUMN (no batch copy of the table): the accounts table keeps its triggers.
    op.add_column(
        'accounts',
        sa.Column('web_session_epoch', sa.Integer(), server_default='0', nullable=False),
    )


def downgrade() -> None:
    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.drop_column('web_session_epoch')
