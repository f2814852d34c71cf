"""Engine creation and schema migration for the embedded billing."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

from services.embedded.loop_sqlite import loop_connector

if TYPE_CHECKING:
    from alembic.config import Config

ROOT = Path(__file__).resolve().parents[2]
# Connections a pool may open; it keeps every one it opened, and a burst beyond them waits for
# one to be returned. (A pool that opened more and closed them as they came back reconnected
# for every call of the next burst: on PostgreSQL a server process, a TLS attempt and the
# statements prepared again each time.) On PostgreSQL an instance has both pools: two
# instances (80) stay below the server's default max_connections of 100.
READERS = 25
WRITERS = 15
BUSY_SECONDS = 30.0  # how long a SQLite connection waits for a lock another one holds
# A reader on the event loop would block the whole bot while it waited: in WAL mode a reader
# meets a lock only in rare moments (another connection recovering the WAL), so it waits
# briefly and the read fails rather than stalling every update.
LOOP_BUSY_SECONDS = 0.5


def create_engine(
    database_url: str, *, read_only: bool = False, on_loop: bool = False, **kwargs: object
) -> AsyncEngine:
    """`read_only`: an engine for transactions that only read — see read_only_engine;
    `on_loop` (with `read_only`, a SQLite file): its statements run on the event loop."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        on_file = url.database not in (None, "", ":memory:")
        if on_file:
            Path(str(url.database)).parent.mkdir(parents=True, exist_ok=True)
        busy = BUSY_SECONDS
        if read_only and on_loop and on_file:
            busy = LOOP_BUSY_SECONDS
            connector = loop_connector(str(url.database), uri=sqlite_uri(url), timeout=busy)
            kwargs.setdefault("async_creator", connector)
        if read_only:
            # Nothing is ever left open on a reader (no BEGIN, writes refused), so the pool's
            # rollback on return is skipped: one thread hop less per call. Readers run side by
            # side: enough of them stay open that a burst does not open (and close) new ones.
            kwargs.setdefault("pool_reset_on_return", None)
            kwargs.setdefault("pool_size", READERS)
            kwargs.setdefault("max_overflow", 0)
        engine = create_async_engine(
            url, connect_args={"timeout": busy}, **kwargs, hide_parameters=True, echo=False
        )
        _configure_sqlite(engine, read_only, busy)
        return engine
    # Every call is a short transaction of its own, so a burst of updates checks connections
    # in and out quickly: a pool that keeps enough of them open never pays for a connect.
    if read_only:
        # A read is one or a few statements in autocommit: no BEGIN and COMMIT round trips
        # around it. The session is read-only on the server, so a write fails loudly.
        kwargs.setdefault("isolation_level", "AUTOCOMMIT")
        kwargs.setdefault(
            "connect_args", {"server_settings": {"default_transaction_read_only": "on"}}
        )
    kwargs.setdefault("pool_size", READERS if read_only else WRITERS)
    kwargs.setdefault("max_overflow", 0)
    # No ping before every checkout (a round trip per call, a quarter of a short read's CPU):
    # a connection found dead invalidates the pool, and a read that met it is run again
    # (EmbeddedGateway.is_retryable); idle connections are renewed before a server or a
    # firewall drops them.
    kwargs.setdefault("pool_recycle", 1800)
    return create_async_engine(url, **kwargs, hide_parameters=True, echo=False)


def sqlite_uri(url: URL) -> bool:
    """The URL names its file as a `file:` URI (`?uri=true`), as sqlite3.connect must know."""
    return str(url.query.get("uri", "")).lower() in ("true", "1")


def _no_commit(dbapi_connection: object) -> None:
    return None


def _configure_sqlite(engine: AsyncEngine, read_only: bool, busy_seconds: float) -> None:
    """SQLite: WAL with synchronous=NORMAL (a commit is not fsynced; the WAL is, at each
    checkpoint: a killed process loses nothing, a power loss may lose the last commits — see
    README), and foreign keys. Writers BEGIN IMMEDIATE, so that concurrent read-then-write
    transactions queue on the write lock instead of failing with 'database is locked'.
    Readers run each statement in autocommit on WAL snapshots, with query_only set: they never
    take or wait for the write lock."""

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: object) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_seconds * 1000)}")
        if read_only:
            cursor.execute("PRAGMA query_only=ON")
        cursor.close()

    if read_only:
        # A reader never begins a transaction (autocommit, writes refused), so the COMMIT at
        # the end of a read has nothing to do; skipping it saves a hop to aiosqlite's thread.
        engine.sync_engine.dialect.do_commit = _no_commit  # type: ignore[method-assign]
    else:

        @event.listens_for(engine.sync_engine, "begin")
        def _on_begin(connection: Connection) -> None:
            connection.exec_driver_sql("BEGIN IMMEDIATE")


def read_only_engine(engine: AsyncEngine) -> AsyncEngine:
    """For transactions that only read: a second engine with its own pool of connections that
    refuse writes and run each statement in autocommit (see create_engine)."""
    if engine.dialect.name == "sqlite" and engine.url.database in (None, "", ":memory:"):
        return engine  # a second engine would open another, empty, in-memory database
    return create_engine(engine.url.render_as_string(hide_password=False), read_only=True)


def short_read_engine(engine: AsyncEngine, read_engine: AsyncEngine) -> AsyncEngine:
    """For short reads (every read but a scan): on a SQLite file, a read-only engine whose
    statements run on the event loop (services/embedded/loop_sqlite.py); elsewhere
    `read_engine` itself (asyncpg already runs on the loop)."""
    if engine.dialect.name != "sqlite" or read_engine is engine:
        return read_engine
    url = engine.url.render_as_string(hide_password=False)
    return create_engine(url, read_only=True, on_loop=True)


def session_factory(engine: AsyncEngine) -> async_sessionmaker:
    return async_sessionmaker(engine, expire_on_commit=False)


def alembic_config(database_url: str) -> Config:
    from alembic.config import Config

    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(ROOT / "migrations"))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def _upgrade(database_url: str, revision: str) -> None:
    from alembic import command

    command.upgrade(alembic_config(database_url), revision)


async def migrate(database_url: str, revision: str = "head") -> None:
    """Apply Alembic migrations (run in a thread: Alembic's env drives its own event loop)."""
    await asyncio.to_thread(_upgrade, database_url, revision)
