"""The real process SIGKILLed at the worst moments of a Stars payment: a payment Telegram has
charged is credited exactly once and the customer gets the receipt, whatever the crash cut.

Polling: killed while the receipt is in flight (money committed, update acknowledged, customer
not answered), and killed the instant getUpdates acknowledges the update (before the handler
could commit) — the restarted process replays the kept update. Webhook: killed mid-request, so
the POST fails and Telegram redelivers the same update to the restarted process.

A receipt may reach the customer twice: the update is marked answered only after the receipt
was sent, so a process killed between the two sends it again after the restart (at least once,
never lost). Where a receipt is held in flight here it is released as never performed (the
connection died before Telegram got it), so the customer gets it exactly once.

Every process is a real `python -m bot`, restarted on the same database and stand-in.
"""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest
from sqlalchemy import func, select, update
from sqlalchemy.engine import make_url

from bot.factory import create_gateway
from services.contracts.payments import Invoice
from services.embedded import models as m
from services.embedded.billing import EmbeddedGateway
from tests.conftest import POSTGRES_ADMIN_URL, _admin_execute, make_settings
from tests.e2e.conftest import LiveBot, _env, _start, _stop, webhook_env
from tests.e2e.test_payments_e2e import PROFILE
from tests.harness.server import TelegramServer
from tests.harness.telegram import Call, FakeTelegram, User

T = TypeVar("T")

STARS, CREDIT = 500, 1000  # a €10.00 top-up paid with 500 Stars
RECEIPT = "✅ <b>Payment received</b>"
RECEIPT_END = "Credited: €10.00\nBalance: <b>€10.00</b>"
SECRET = "s3cret-Token_1"


class Processes:
    """The real `python -m bot` processes of one test, each with its own log; all killed at
    the end."""

    def __init__(self, tmp_path: Path, server: TelegramServer, env: dict[str, str]) -> None:
        self.tmp_path, self.fake, self.env = tmp_path, server.fake, env
        self.ready = "setWebhook" if "WEBHOOK_URL" in env else "getUpdates"
        self.started: list[tuple[asyncio.subprocess.Process, Path]] = []

    async def start(self) -> LiveBot:
        log_name = f"bot-{len(self.started) + 1}.log"
        try:
            process, log = await _start(self.tmp_path, self.env, self.fake, self.ready, log_name)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.logs()}") from None
        self.started.append((process, log))
        return LiveBot(self.fake, process, log, webhook_secret=SECRET)

    def logs(self) -> str:
        parts = []
        for process, log in self.started:
            text = log.read_text(errors="replace") if log.exists() else ""
            parts.append(f"--- {log.name} (exit {process.returncode}) ---\n{text[-4000:]}")
        return "\n".join(parts)

    async def killed(self, bot: LiveBot, timeout: float = 15.0) -> None:
        """Wait until `bot`'s process has died of SIGKILL."""
        await self.within(bot.process.wait(), timeout, "the process to die")
        assert bot.process.returncode == -signal.SIGKILL, self.logs()

    async def within(self, awaitable: Awaitable[T], timeout: float, what: str) -> T:
        try:
            return await asyncio.wait_for(awaitable, timeout)
        except TimeoutError:
            raise AssertionError(f"timed out waiting for {what}\n{self.logs()}") from None

    async def kill_all(self) -> None:
        for process, _ in self.started:
            if process.returncode is None:
                process.kill()
                await asyncio.wait_for(process.wait(), 15)


@pytest.fixture(params=["sqlite", "postgresql"])
async def bot_database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """The bot's own database: a SQLite file, or a PostgreSQL database created for the test
    (the bot migrates it on start) and dropped afterwards."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'bot.sqlite3'}"
        return
    name = f"cabinet_crash_{uuid.uuid4().hex[:10]}"
    await _admin_execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        await _admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def _customer(
    bot: LiveBot, gateway: EmbeddedGateway, user_id: int
) -> tuple[User, int, Invoice]:
    """A customer who started the bot, with a filled profile and a €10.00 top-up invoice
    (both written straight in the bot's database)."""
    user = bot.user(user_id)
    start = await bot.send(user, "/start")
    await bot.reply(lambda c: c.method == "sendMessage" and "Personal cabinet" in c.text, start)
    async with gateway.transaction() as billing:
        account = await billing.find_account_by_telegram(user_id)
        assert account is not None
        await billing.session.execute(
            update(m.Account).where(m.Account.id == account.id).values(**PROFILE)
        )
        invoice = await billing.create_invoice(account.id, CREDIT, "EUR")
    assert (invoice.stars_amount, invoice.credit_minor) == (STARS, CREDIT)
    return user, account.id, invoice


def _is_receipt(chat_id: int) -> Callable[[dict[str, Any]], bool]:
    def match(params: dict[str, Any]) -> bool:
        return params.get("chat_id") == chat_id and RECEIPT in str(params.get("text"))

    return match


def _receipts(fake: FakeTelegram, chat_id: int, start: int = 0) -> list[Call]:
    """Receipts Telegram delivered to the customer (not a call that never reached it)."""
    match = _is_receipt(chat_id)
    return [
        c
        for c in fake.calls[start:]
        if c.method == "sendMessage" and c.error is None and match(c.params)
    ]


def _check_receipt(call: Call, invoice: Invoice) -> None:
    assert call.text is not None
    assert call.text.startswith(f"{RECEIPT}\n\nInvoice No. {invoice.number}: "), call.text
    assert call.text.endswith(RECEIPT_END), call.text


async def _state(gateway: EmbeddedGateway, account_id: int, charge_id: str) -> dict[str, Any]:
    """What the bot's database says about the payment."""
    async with gateway.transaction() as billing:
        session = billing.session
        payments = await session.scalar(
            select(func.count()).select_from(m.Payment).where(m.Payment.charge_id == charge_id)
        )
        keyed = await session.scalar(
            select(func.count())
            .select_from(m.LedgerEntry)
            .where(m.LedgerEntry.idempotency_key == f"tg:{charge_id}")
        )
        lines = (
            await session.execute(
                select(m.LedgerEntry.amount_minor, m.LedgerEntry.idempotency_key)
                .where(m.LedgerEntry.account_id == account_id)
                .order_by(m.LedgerEntry.id)
            )
        ).all()
        kept = (
            await session.execute(
                select(m.PaymentUpdate.answered_at).where(m.PaymentUpdate.charge_id == charge_id)
            )
        ).all()
        return {
            "payments": payments,
            "ledger lines keyed tg:<charge>": keyed,
            "ledger lines": [tuple(line) for line in lines],
            "balance": (await billing.get_account(account_id)).balance_minor,
            "ledger sum": await billing.ledger_sum(account_id),
            "kept update": None if not kept else ("answered" if kept[0][0] else "unanswered"),
        }


async def _assert_credited_once(
    gateway: EmbeddedGateway, account_id: int, charge_id: str, processes: Processes
) -> None:
    state = await _state(gateway, account_id, charge_id)
    assert state == {
        "payments": 1,
        "ledger lines keyed tg:<charge>": 1,
        "ledger lines": [(CREDIT, f"tg:{charge_id}")],
        "balance": CREDIT,
        "ledger sum": CREDIT,
        "kept update": "answered",
    }, f"{state}\n{processes.logs()}"


def _acknowledgement(fake: FakeTelegram, update_id: int) -> asyncio.Event:
    """Set when a getUpdates asks for an offset past the update (Telegram forgets it then)."""
    seen = asyncio.Event()
    fake.on_next(
        "getUpdates",
        lambda params: seen.set(),
        match=lambda p: int(p.get("offset") or 0) > update_id,
    )
    return seen


async def test_polling_killed_while_the_receipt_is_in_flight(
    tmp_path: Path, telegram_server: TelegramServer, bot_database: str
) -> None:
    fake = telegram_server.fake
    processes = Processes(tmp_path, telegram_server, _env(tmp_path, telegram_server))
    processes.env["DATABASE_URL"] = bot_database
    gateway = create_gateway(make_settings(bot_database))
    try:
        bot = await processes.start()
        user, account_id, invoice = await _customer(bot, gateway, 801)

        held = fake.hold("sendMessage", match=_is_receipt(801))
        payment = fake.successful_payment(user, "XTR", STARS, invoice.payload, "ch-kill-1")
        acknowledged = _acknowledgement(fake, payment["update_id"])
        fake.enqueue_update(payment)
        await processes.within(held.arrived(), 15, "the receipt")
        await processes.within(acknowledged.wait(), 10, "getUpdates to acknowledge the payment")
        bot.process.kill()
        await processes.killed(bot)
        held.release(performed=False)  # the receipt never reached Telegram

        killed_at = await _state(gateway, account_id, "ch-kill-1")
        assert killed_at["payments"] == 1, f"{killed_at}\n{processes.logs()}"
        assert killed_at["kept update"] == "unanswered", f"{killed_at}\n{processes.logs()}"

        restart = len(fake.calls)
        bot = await processes.start()  # replays the kept update before it polls
        receipt = await bot.reply(lambda c: _is_receipt(801)(c.params), restart)
        _check_receipt(receipt, invoice)
        replaying = f"Replaying payment update {payment['update_id']}"
        assert replaying in bot.log.read_text(), processes.logs()
        await _stop(bot.process, bot.log)

        await _assert_credited_once(gateway, account_id, "ch-kill-1", processes)
        assert _receipts(fake, 801) == [receipt], processes.logs()
        redelivered = [
            c
            for c in fake.calls_of("getUpdates")
            if payment["update_id"] in [u["update_id"] for u in c.result or []]
        ]
        assert len(redelivered) == 1, "getUpdates delivered the acknowledged update again"
    finally:
        fake.release_holds()
        await processes.kill_all()
        await gateway.close()


async def test_polling_killed_as_getupdates_acknowledges_the_payment(
    tmp_path: Path, telegram_server: TelegramServer
) -> None:
    """The stand-in kills the process from inside the getUpdates that acknowledges the payment
    update: the handler, running concurrently, may or may not have recorded it by then."""
    fake = telegram_server.fake
    processes = Processes(tmp_path, telegram_server, _env(tmp_path, telegram_server))
    url = processes.env["DATABASE_URL"]
    gateway = create_gateway(make_settings(url))
    outcomes: list[str] = []
    try:
        bot = await processes.start()
        for attempt, user_id in enumerate((811, 812, 813), start=1):
            charge_id = f"ch-ack-{attempt}"
            user, account_id, invoice = await _customer(bot, gateway, user_id)
            payment = fake.successful_payment(user, "XTR", STARS, invoice.payload, charge_id)
            process = bot.process

            def kill(params: dict[str, Any], process: asyncio.subprocess.Process = process) -> None:
                if process.returncode is None:
                    os.kill(process.pid, signal.SIGKILL)

            fake.on_next(
                "getUpdates",
                kill,
                match=lambda p, after=payment["update_id"]: int(p.get("offset") or 0) > after,
            )
            fake.enqueue_update(payment)
            await processes.killed(bot)

            killed_at = await _state(gateway, account_id, charge_id)
            assert killed_at["kept update"] is not None, f"{killed_at}\n{processes.logs()}"

            restart = len(fake.calls)
            bot = await processes.start()  # the replay (if any) is done when it polls
            replayed = f"Replaying payment update {payment['update_id']}" in bot.log.read_text()
            assert replayed == (killed_at["kept update"] == "unanswered"), processes.logs()
            await _assert_credited_once(gateway, account_id, charge_id, processes)
            # At least once; twice when the killed process had sent the receipt but not marked
            # the update answered (its last request may even land after the kill).
            receipts = _receipts(fake, user_id)
            assert len(receipts) in ((1, 2) if replayed else (1,)), processes.logs()
            for receipt in receipts:
                _check_receipt(receipt, invoice)
            outcomes.append(
                f"{charge_id}: at the kill {killed_at['payments']} payment(s), update "
                f"{killed_at['kept update']}; replayed={replayed}; receipts: {len(receipts)} "
                f"({len(_receipts(fake, user_id, restart))} since the restart)"
            )
        await _stop(bot.process, bot.log)
        print("\n".join(outcomes))
    finally:
        await processes.kill_all()
        await gateway.close()


async def test_webhook_killed_mid_payment(tmp_path: Path, telegram_server: TelegramServer) -> None:
    fake = telegram_server.fake
    env = webhook_env(tmp_path, telegram_server, SECRET)
    processes = Processes(tmp_path, telegram_server, env)
    gateway = create_gateway(make_settings(env["DATABASE_URL"]))
    post: asyncio.Task[None] | None = None
    try:
        bot = await processes.start()
        user, account_id, invoice = await _customer(bot, gateway, 821)

        held = fake.hold("sendMessage", match=_is_receipt(821))
        payment = fake.successful_payment(user, "XTR", STARS, invoice.payload, "ch-kill-3")
        post = asyncio.create_task(bot.deliver(payment))
        await processes.within(held.arrived(), 15, "the receipt")
        bot.process.kill()
        await processes.killed(bot)
        held.release(performed=False)
        with pytest.raises(aiohttp.ClientConnectionError):  # Telegram will deliver it again
            await processes.within(post, 10, "the webhook POST to fail")

        killed_at = await _state(gateway, account_id, "ch-kill-3")
        assert killed_at["payments"] == 1, f"{killed_at}\n{processes.logs()}"
        assert killed_at["kept update"] == "unanswered", f"{killed_at}\n{processes.logs()}"

        restart = len(fake.calls)
        bot = await processes.start()
        # A fresh kept update is left to Telegram's redelivery (another instance may have it).
        assert "Replaying" not in bot.log.read_text(), processes.logs()
        assert _receipts(fake, 821, restart) == [], processes.logs()
        await processes.within(bot.deliver(payment), 15, "the redelivered update")
        receipt = await bot.reply(lambda c: _is_receipt(821)(c.params), restart)
        _check_receipt(receipt, invoice)
        await _stop(bot.process, bot.log)

        await _assert_credited_once(gateway, account_id, "ch-kill-3", processes)
        assert _receipts(fake, 821) == [receipt], processes.logs()
    finally:
        fake.release_holds()
        if post is not None and not post.done():
            post.cancel()
        await processes.kill_all()
        await gateway.close()
