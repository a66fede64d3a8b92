"""`idp clients initial-token`: RFC 7591 §3 initial access tokens, which let a program register
a client when ``IDP_DCR=token`` (``idp.oauth.dynamic_clients``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg

from idp.admin.problems import InvalidRequestProblem
from idp.audit_trail import audited
from idp.db import registrations
from idp.oauth.dynamic_registration import new_registration_token

DEFAULT_TTL = timedelta(days=1)
MAX_TTL = timedelta(days=365)


@dataclass(frozen=True)
class InitialToken:
    token: str  # shown once; only its digest is stored
    expires_at: datetime
    uses: int | None  # None: any number until it expires


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
        await registrations.insert_initial_token(
            connection, token_hash, now=now, expires_at=expires_at, uses=uses, created_by=actor
        )
        await trail.record(
            now=now,
            actor=actor,
            action="initial_token.issued",
            details={"expires_at": expires_at.isoformat(), "uses": uses},
        )
    return InitialToken(token, expires_at, uses)
