"""orders page index and released ip

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 19:50:00.000000
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.add_column(sa.Column('released_ip', sa.String(length=45), nullable=True))
        batch_op.create_index(
            'ix_orders_account_created', ['account_id', 'created_at', 'id'], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.drop_index('ix_orders_account_created')
        batch_op.drop_column('released_ip')
