"""The operations endpoints, on the bot's aiohttp server in both modes (bot/runners.py):

- `GET /healthz`: liveness. The process and its event loop answer; nothing else is checked.
- `GET /readyz`: readiness. The database answers and its schema is at the migrations' head,
  Redis answers (when REDIS_URL is set), and the process is not shutting down; else 503 with
  a JSON body naming each problem. A problem names the exception's type, never its text (a
  driver's message may carry a host, a user or a URL).
- `GET /metrics`: Prometheus text format (bot/metrics.py); the outbox gauges are read from
  the database on each scrape, one indexed query.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import DateTime, column, func, select, table, text
from sqlalchemy.ext.asyncio import AsyncEngine

from bot import metrics

log = logging.getLogger(__name__)

CHECK_TIMEOUT = 3.0  # seconds per check: a hung database is "not ready", not a hung probe
OUTBOX = table("outbox", column("status"), column("created_at", DateTime(timezone=True)))


@dataclass
class OpsState:
    """What the endpoints check. `shutting_down` is set by the runner as shutdown begins."""

    engine: AsyncEngine
    heads: frozenset[str]  # the migrations' head revision(s)
    redis_ping: Callable[[], Awaitable[Any]] | None = None
    redis_close: Callable[[], Awaitable[Any]] | None = None
    shutting_down: bool = False
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))

    async def close(self) -> None:
        """After the endpoints stopped: the Redis connection goes."""
        if self.redis_close is not None:
            await self.redis_close()

    async def _database(self) -> str | None:
        async with self.engine.connect() as connection:
            rows = await connection.execute(text("SELECT version_num FROM alembic_version"))
            found = frozenset(str(row[0]) for row in rows)
        if found != self.heads:
            at = ", ".join(sorted(found)) or "none"
            return f"schema at {at}, head is {', '.join(sorted(self.heads))}"
        return None

    async def problems(self) -> dict[str, str]:
        """Each failing check and why; empty when ready."""
        found: dict[str, str] = {}
        if self.shutting_down:
            found["shutdown"] = "shutting down"
        checks: list[tuple[str, Awaitable[Any]]] = [("database", self._database())]
        if self.redis_ping is not None:
            checks.append(("redis", self.redis_ping()))
        results = await asyncio.gather(
            *(asyncio.wait_for(check, CHECK_TIMEOUT) for _name, check in checks),
            return_exceptions=True,
        )
        for (name, _check), result in zip(checks, results, strict=True):
            if isinstance(result, TimeoutError):
                found[name] = f"no answer within {CHECK_TIMEOUT:g} s"
            elif isinstance(result, BaseException):
                found[name] = f"unreachable ({type(result).__name__})"
            elif name == "database" and result:
                found["migrations"] = str(result)
        return found

    async def outbox(self) -> tuple[int, float]:
        """Rows waiting to be sent and the age in seconds of the oldest (0 when none)."""
        query = select(func.count(), func.min(OUTBOX.c.created_at)).where(
            OUTBOX.c.status == "pending"
        )
        async with self.engine.connect() as connection:
            pending, oldest = (await connection.execute(query)).one()
        if oldest is None:
            return int(pending), 0.0
        if oldest.tzinfo is None:  # SQLite keeps UTC without the zone
            oldest = oldest.replace(tzinfo=UTC)
        return int(pending), max(0.0, (self.clock() - oldest).total_seconds())


def use_redis(state: OpsState, url: str) -> None:
    """/readyz pings Redis at `url` on a connection of its own, without the client's retries
    (with them a refused connection took longer than the check may wait)."""
    from redis.asyncio import Redis
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    client = Redis.from_url(
        url, socket_connect_timeout=2, socket_timeout=2, retry=Retry(NoBackoff(), 0)
    )
    state.redis_ping, state.redis_close = client.ping, client.aclose


STATE_KEY = web.AppKey("ops_state", OpsState)


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    problems = await request.app[STATE_KEY].problems()
    if problems:
        return web.json_response({"status": "not ready", "problems": problems}, status=503)
    return web.json_response({"status": "ready"})


async def metrics_endpoint(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    try:
        pending, age = await asyncio.wait_for(state.outbox(), CHECK_TIMEOUT)
    except Exception as exc:
        metrics.SCRAPE_ERRORS.inc()
        log.warning("/metrics: the outbox query failed (%s)", type(exc).__name__)
    else:
        metrics.OUTBOX_PENDING.set(pending)
        metrics.OUTBOX_OLDEST_AGE.set(age)
    body = generate_latest(metrics.REGISTRY)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


ROUTES: Iterable[tuple[str, Callable[[web.Request], Awaitable[web.StreamResponse]]]] = (
    ("/healthz", healthz),
    ("/readyz", readyz),
    ("/metrics", metrics_endpoint),
)


def add_ops_routes(app: web.Application, state: OpsState) -> None:
    app[STATE_KEY] = state
    for path, handler in ROUTES:
        app.router.add_get(path, handler, allow_head=True)


def create_ops_app(state: OpsState) -> web.Application:
    app = web.Application()
    add_ops_routes(app, state)
    return app
