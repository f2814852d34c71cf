"""Accounts, the ledger and the catalogue of the embedded billing."""

from __future__ import annotations

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.exc import IntegrityError

from services.contracts import common as dto
from services.contracts.accounts import LinkCodeLetter
from services.contracts.profile import CodeCheck
from services.embedded import models as m
from services.embedded.base import EmbeddedBase, insert_ignore
from services.errors import InsufficientFunds, InvalidState, NotFound, ValidationFailed

# The account of a Telegram user, as the DTO needs it: looked up on every update, so the
# statement is built once and reads only the DTO's columns, without the ORM's identity map.
_ACCOUNT_COLUMNS = (
    m.Account.id,
    m.Account.telegram_id,
    m.Account.chat_id,
    m.Account.login,
    m.Account.language,
    m.Account.currency,
    m.Account.balance_minor,
    m.Account.created_at,
    m.Account.telegram_name,
    m.Account.unreachable,
    m.Account.timezone,
)
_ACCOUNT_BY_TELEGRAM = select(*_ACCOUNT_COLUMNS).where(
    m.Account.telegram_id == bindparam("telegram_id")
)


def account_dto(row: m.Account, base_currency: str) -> dto.Account:
    fields = {column.key: getattr(row, column.key) for column in _ACCOUNT_COLUMNS}
    return dto.Account(**fields, base_currency=base_currency)


def ledger_dto(row: m.LedgerEntry) -> dto.LedgerLine:
    return dto.LedgerLine(
        id=row.id,
        amount_minor=row.amount_minor,
        currency=row.currency,
        balance_after_minor=row.balance_after_minor,
        kind=row.kind,
        description=row.description,
        reference=row.reference,
        created_at=row.created_at,
        actor=row.actor,
    )


def tariff_dto(row: m.Tariff) -> dto.Tariff:
    return dto.Tariff(
        id=row.id,
        code=row.code,
        product_type=row.product_type,
        name=row.name,
        specs=row.specs,
        prices=[dto.TariffPrice(months=p.months, price_minor=p.price_minor) for p in row.prices],
    )


class AccountsMixin(EmbeddedBase):
    async def get_or_create_account(
        self,
        telegram_id: int,
        chat_id: int,
        *,
        name: str = "",
        username: str | None = None,
        language: str | None = None,
    ) -> tuple[dto.Account, bool]:
        # One statement for a new customer (the common case when this is called): the
        # insert that finds the id taken inserts nothing, and the account is read instead.
        new = await self.session.scalar(
            insert_ignore(self.session, m.Account)
            .values(
                telegram_id=telegram_id,
                chat_id=chat_id,
                login=f"tg{telegram_id}",
                telegram_name=name,
                telegram_username=username,
                language=language,
                currency=self.base_currency,
                balance_minor=0,
            )
            .on_conflict_do_nothing(index_elements=[m.Account.telegram_id])
            .returning(m.Account),
            execution_options={"populate_existing": True},
        )
        if new is not None:
            return account_dto(new, self.base_currency), True
        row = await self.session.scalar(
            select(m.Account).where(m.Account.telegram_id == telegram_id)
        )
        assert row is not None  # the insert did nothing only because this row exists
        stale = row.chat_id != chat_id or row.unreachable or row.telegram_name != name
        if stale or (row.language is None and language is not None):
            row.chat_id, row.unreachable, row.telegram_name = chat_id, False, name
            row.telegram_username = username
            row.language = row.language or language
            await self.session.flush()
        return account_dto(row, self.base_currency), False

    async def find_account_by_telegram(self, telegram_id: int) -> dto.Account | None:
        result = await self.session.execute(_ACCOUNT_BY_TELEGRAM, {"telegram_id": telegram_id})
        row = result.first()
        return dto.Account(**row._mapping, base_currency=self.base_currency) if row else None

    async def find_account_by_login(self, login: str) -> dto.Account | None:
        key = login.strip().lower()
        if not key or len(key) > 64:
            return None
        statement = select(*_ACCOUNT_COLUMNS).where(func.lower(m.Account.login) == key)
        row = (await self.session.execute(statement)).first()
        return dto.Account(**row._mapping, base_currency=self.base_currency) if row else None

    async def get_account(self, account_id: int) -> dto.Account:
        return account_dto(await self._account_row(account_id), self.base_currency)

    async def set_language(self, account_id: int, language: str) -> dto.Account:
        row = await self._account_row(account_id)
        row.language = language
        await self.session.flush()
        return account_dto(row, self.base_currency)

    async def set_chat_reachable(self, chat_id: int, reachable: bool) -> None:
        await self.session.execute(
            update(m.Account).where(m.Account.chat_id == chat_id).values(unreachable=not reachable)
        )

    # ---- linking: the embedded billing's accounts are its clients ---------------------------
    # Every account is "linked" (it is the client); the linking methods have nothing to link
    # and refuse with InvalidState("no_linking"). The handlers never offer linking here.
    async def is_linked(self, account_id: int) -> bool:
        return True

    async def start_linking(
        self, account_id: int, email: str, *, letter: LinkCodeLetter | None = None
    ) -> None:
        raise InvalidState("no_linking")

    async def confirm_linking(self, account_id: int, code: str) -> CodeCheck:
        raise InvalidState("no_linking")

    async def link_with_token(self, account_id: int, token: str) -> bool:
        raise InvalidState("no_linking")

    async def unlink(self, account_id: int) -> None:
        raise InvalidState("no_linking")


class LedgerMixin(EmbeddedBase):
    async def credit(
        self,
        account_id: int,
        amount_minor: int,
        *,
        kind: str,
        description: str = "",
        reference: str | None = None,
        idempotency_key: str | None = None,
        actor: str | None = None,
    ) -> dto.LedgerLine | None:
        if amount_minor <= 0:
            raise ValidationFailed("not_positive")
        return await self._post(
            account_id, amount_minor, kind, description, reference, idempotency_key, actor
        )

    async def debit(
        self,
        account_id: int,
        amount_minor: int,
        *,
        kind: str,
        description: str = "",
        reference: str | None = None,
        idempotency_key: str | None = None,
        actor: str | None = None,
    ) -> dto.LedgerLine | None:
        if amount_minor <= 0:
            raise ValidationFailed("not_positive")
        return await self._post(
            account_id, -amount_minor, kind, description, reference, idempotency_key, actor
        )

    async def _post(
        self,
        account_id: int,
        delta: int,
        kind: str,
        description: str,
        reference: str | None,
        idempotency_key: str | None,
        actor: str | None,
    ) -> dto.LedgerLine | None:
        """One ledger line and the balance change, atomically. The conditional UPDATE is what
        keeps concurrent debits from overdrawing: the database applies them one at a time."""
        if idempotency_key and await self._key_used(idempotency_key):
            return None
        try:
            async with self.session.begin_nested():
                new_balance = await self.session.scalar(
                    update(m.Account)
                    .where(m.Account.id == account_id, m.Account.balance_minor + delta >= 0)
                    .values(balance_minor=m.Account.balance_minor + delta)
                    .returning(m.Account.balance_minor)
                )
                if new_balance is None:
                    await self._raise_insufficient(account_id, -delta)
                entry = m.LedgerEntry(
                    account_id=account_id,
                    amount_minor=delta,
                    currency=self.base_currency,
                    balance_after_minor=new_balance,
                    kind=kind,
                    description=description[:300],
                    reference=reference,
                    idempotency_key=idempotency_key,
                    actor=actor,
                )
                self.session.add(entry)
                await self.session.flush()
        except IntegrityError:
            if idempotency_key and await self._key_used(idempotency_key):
                return None  # the same key was posted concurrently: this one is the repeat
            raise
        return ledger_dto(entry)

    async def _key_used(self, key: str) -> bool:
        found = await self.session.scalar(
            select(m.LedgerEntry.id).where(m.LedgerEntry.idempotency_key == key)
        )
        return found is not None

    async def _raise_insufficient(self, account_id: int, needed: int) -> None:
        balance = await self.session.scalar(
            select(m.Account.balance_minor).where(m.Account.id == account_id)
        )
        if balance is None:
            raise NotFound("account")
        raise InsufficientFunds(needed - balance, self.base_currency)

    async def list_ledger(
        self, account_id: int, offset: int = 0, limit: int = 10
    ) -> dto.Page[dto.LedgerLine]:
        where = m.LedgerEntry.account_id == account_id
        total = await self.session.scalar(select(func.count()).where(where)) or 0
        rows = await self.session.scalars(
            select(m.LedgerEntry)
            .where(where)
            .order_by(m.LedgerEntry.created_at.desc(), m.LedgerEntry.id.desc())
            .offset(offset)
            .limit(limit)
        )
        return dto.Page([ledger_dto(r) for r in rows], total, offset, limit)

    async def ledger_sum(self, account_id: int) -> int:
        total = await self.session.scalar(
            select(func.coalesce(func.sum(m.LedgerEntry.amount_minor), 0)).where(
                m.LedgerEntry.account_id == account_id
            )
        )
        return int(total or 0)


class CatalogueMixin(EmbeddedBase):
    async def list_product_types(self, *, account_id: int | None = None) -> list[str]:
        rows = await self.session.execute(
            select(m.Tariff.product_type, func.min(m.Tariff.sort))
            .where(m.Tariff.active)
            .group_by(m.Tariff.product_type)
            .order_by(func.min(m.Tariff.sort))
        )
        return [row[0] for row in rows]

    async def list_tariffs(
        self, product_type: str | None = None, *, account_id: int | None = None
    ) -> list[dto.Tariff]:
        query = select(m.Tariff).where(m.Tariff.active).order_by(m.Tariff.sort, m.Tariff.id)
        if product_type:
            query = query.where(m.Tariff.product_type == product_type)
        return [tariff_dto(row) for row in await self.session.scalars(query)]

    async def get_tariff(self, tariff_id: int, *, account_id: int | None = None) -> dto.Tariff:
        row = await self.session.get(m.Tariff, tariff_id)
        if row is None or not row.active:
            raise NotFound("tariff")
        return tariff_dto(row)
