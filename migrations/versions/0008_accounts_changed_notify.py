"""accounts changed notify (PostgreSQL)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 23:00:00.000000

A statement-level trigger sends NOTIFY accounts_changed when a transaction that changed the
accounts table commits, so every instance drops the accounts it keeps in memory
(services/embedded/account_cache.py). NOTIFY is delivered at commit and only then, to every
listening connection; SQLite needs nothing (PRAGMA data_version tells the same).
"""
from collections.abc import Sequence

from alembic import op

revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name != 'postgresql':
        return
    op.execute(
        """
        CREATE FUNCTION notify_accounts_changed() RETURNS trigger AS $$
        BEGIN
            PERFORM pg_notify('accounts_changed', '');
            RETURN NULL;
        END;
        $$ LANGUAGE plpgsql
        """
    )
    op.execute(
        """
        CREATE TRIGGER accounts_changed
        AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON accounts
        FOR EACH STATEMENT EXECUTE FUNCTION notify_accounts_changed()
        """
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != 'postgresql':
        return
    op.execute('DROP TRIGGER accounts_changed ON accounts')
    op.execute('DROP FUNCTION notify_accounts_changed()')
