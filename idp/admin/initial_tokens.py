"""RFC 7591 §3 initial access tokens, which let a program register a client when
``IDP_DCR=token`` (``idp.oauth.dynamic_clients``): ``idp clients initial-token`` and
``/admin/v1/initial-tokens`` call these functions. A token is shown once, when issued; only its
digest is stored, and it is named by its id afterwards."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

import asyncpg

from idp.admin import cursors, time_cursors
from idp.admin.problems import InvalidRequestProblem, NotFoundProblem, path_id
from idp.audit_trail import audited
from idp.db import registrations
from idp.db.pool import Executor
from idp.db.registrations import InitialTokenRecord
from idp.oauth.dynamic_registration import new_registration_token

DEFAULT_TTL = timedelta(days=1)
MAX_TTL = timedelta(days=365)


@dataclass(frozen=True)
class InitialToken:
    token: str  # shown once; only its digest is stored
    record: InitialTokenRecord

    @property
    def expires_at(self) -> datetime:
        return self.record.expires_at

    @property
    def uses(self) -> int | None:  # None: any number until it expires
        return self.record.uses_left


async def issue(
    pool: asyncpg.Pool, *, now: datetime, ttl: timedelta, uses: int | None, actor: str
) -> InitialToken:
    """A new initial access token, good for ``uses`` registrations (any number when None)
    until ``now + ttl``."""
    if not timedelta(0) < ttl <= MAX_TTL:
        raise InvalidRequestProblem("the token must expire within a year, after a positive time")
    if uses is not None and uses < 1:
        raise InvalidRequestProblem("uses must be at least 1")
    token, token_hash = new_registration_token()
    expires_at = now + ttl
    async with pool.acquire() as connection, audited(connection) as trail:
        record = await registrations.insert_initial_token(
            connection, token_hash, now=now, expires_at=expires_at, uses=uses, created_by=actor
        )
        await trail.record(
            now=now,
            actor=actor,
            action="initial_token.issued",
            subject=str(record.id),
            details={"expires_at": expires_at.isoformat(), "uses": uses},
        )
    return InitialToken(token, record)


def parse_id(text: str) -> UUID:
    return path_id(text, "initial access token")


async def get(db: Executor, token_id: UUID) -> InitialTokenRecord:
    found = await registrations.find_initial_token(db, token_id)
    if found is None:
        raise NotFoundProblem(f"no initial access token {token_id}")
    return found


async def revoke(pool: asyncpg.Pool, token_id: UUID, *, now: datetime, actor: str) -> None:
    """The token registers nothing from now on: its row goes (the audit log keeps its story)."""
    async with pool.acquire() as connection, audited(connection) as trail:
        if await registrations.delete_initial_token(connection, token_id) is None:
            raise NotFoundProblem(f"no initial access token {token_id}")
        await trail.record(
            now=now, actor=actor, action="initial_token.revoked", subject=str(token_id)
        )


@dataclass(frozen=True)
class InitialTokenPage:
    tokens: list[InitialTokenRecord]
    next_cursor: str | None


async def page(db: Executor, *, limit: int, cursor: str | None = None) -> InitialTokenPage:
    """Newest first, ``limit`` at a time, after ``cursor``. Expired and used-up tokens stay
    listed until the janitor deletes them."""
    after = time_cursors.decode(cursor)
    key = None
    if after is not None:
        try:
            key = (after[0], UUID(after[1]))
        except ValueError:
            raise InvalidRequestProblem("cursor is not one this API gave") from None
    found = await registrations.initial_tokens_page(db, after=key, limit=limit + 1)
    return InitialTokenPage(
        *cursors.shown(
            found, limit, lambda last: time_cursors.encode(last.created_at, str(last.id))
        )
    )
