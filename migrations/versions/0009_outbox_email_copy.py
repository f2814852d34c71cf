"""outbox e-mail copy

An alert's outbox row carries the account it is for and its e-mail copy (subject and plain-text
body): when the customer blocked the bot, the row becomes `email_pending` and goes to the
account's confirmed e-mail instead (services/outbox_email.py).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 01:00:00.000000
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0009'
down_revision: str | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.add_column(sa.Column('account_id', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('email_subject', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('email_body', sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_column('email_body')
        batch_op.drop_column('email_subject')
        batch_op.drop_column('account_id')
