"""The services behind /oauth2/register (RFC 7591) and /oauth2/register/{client_id} (RFC 7592).

Each is one transaction: a refused request writes nothing (an initial token's use is given back
with the rollback). The rules are ``idp.oauth.dynamic_registration``'s; the SQL
``idp.db.registrations``'.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from idp.accounts.rate_limit import allowed
from idp.audit_trail import audited
from idp.db import clients, registrations
from idp.db.clients import Client
from idp.hashing import digest
from idp.oauth.client_auth import hash_secret
from idp.oauth.dynamic_registration import (
    OPEN_LIMIT,
    Policy,
    TooManyRegistrationsError,
    check_update_identity,
    new_client,
    parse_request,
    registration_body,
    token_matches,
    updated_client,
)
from idp.oauth.errors import InvalidTokenError
from idp.settings import Settings

CLIENT_ID_MAX = 255


@dataclass(frozen=True)
class Registrar:
    pool: asyncpg.Pool
    settings: Settings

    @property
    def issuer(self) -> str:
        return self.settings.issuer

    def deny_until(self, now: datetime) -> datetime:
        return self.settings.deny_until(now)


async def register_client(
    registrar: Registrar,
    body: Any,
    *,
    policy: Policy,
    bearer: str | None,
    ip: str,
    now: datetime,
) -> dict[str, Any]:
    """RFC 7591 §3: register a client; the 201 body (§3.2.1).

    ``token``: the request must carry a live initial access token (§3), whose use is taken in
    the same transaction. ``open``: counted per client IP first, so refused requests count too.
    """
    if policy == "open" and not await allowed(registrar.pool, now, (OPEN_LIMIT, ip)):
        raise TooManyRegistrationsError("too many registrations from this address: retry later")
    async with registrar.pool.acquire() as connection, audited(connection) as trail:
        if policy == "token":
            live = bearer is not None and await registrations.use_initial_token(
                connection, digest(bearer), now
            )
            if not live:
                raise InvalidTokenError("the initial access token is unknown, expired or used up")
        requested = parse_request(body, policy)
        client, secret, token = new_client(requested, registrar.settings, now)
        client = await clients.insert(connection, client)
        await trail.record(
            now=now,
            actor="dcr:initial-token" if policy == "token" else f"dcr:{ip}",
            action="client.registered",
            subject=client.client_id,
            details={"registration": "dynamic", "public": client.public, "ip": ip},
        )
    return registration_body(client, issuer=registrar.issuer, secret=secret, token=token)


async def _registered(registrar: Registrar, client_id: str, bearer: str | None) -> Client:
    """RFC 7592 §3: the dynamic client ``bearer`` is the registration access token of. Every
    failure is the same 401, so that no one learns whether a client exists."""
    found = None
    if client_id.isprintable() and len(client_id) <= CLIENT_ID_MAX:
        found = await clients.by_id(registrar.pool, client_id)
    live = found is not None and found.registration == "dynamic" and not found.disabled
    stored = found.registration_token_hash if found is not None and live else None
    if not token_matches(bearer, stored) or found is None:
        raise InvalidTokenError("the registration access token is not valid for this client")
    return found


async def read_client(registrar: Registrar, client_id: str, bearer: str | None) -> dict[str, Any]:
    """RFC 7592 §2.1."""
    client = await _registered(registrar, client_id, bearer)
    return registration_body(client, issuer=registrar.issuer)


async def update_client(
    registrar: Registrar, client_id: str, bearer: str | None, body: Any, now: datetime
) -> dict[str, Any]:
    """RFC 7592 §2.2: the metadata replaced under the policy registration runs under now (a
    client registered with an initial token keeps being allowed what ``token`` allows)."""
    client = await _registered(registrar, client_id, bearer)
    sent_secret = body.get("client_secret") if isinstance(body, dict) else None
    secret_matches = None
    if sent_secret is not None:
        secret_matches = (
            isinstance(sent_secret, str)
            and client.secret_hash is not None
            and hmac.compare_digest(hash_secret(sent_secret), client.secret_hash)
        )
    check_update_identity(body, client, secret_matches)
    policy: Policy = "open" if registrar.settings.dcr == "open" and client.public else "token"
    changed = updated_client(client, parse_request(body, policy), registrar.settings)
    async with registrar.pool.acquire() as connection, audited(connection) as trail:
        stored = await registrations.update_dynamic(connection, changed, now)
        if stored is None:  # deleted meanwhile
            raise InvalidTokenError("the registration access token is not valid for this client")
        await trail.record(
            now=now, actor=f"client:{client_id}", action="client.updated", subject=client_id
        )
    return registration_body(stored, issuer=registrar.issuer)


async def delete_client(
    registrar: Registrar, client_id: str, bearer: str | None, now: datetime
) -> None:
    """RFC 7592 §2.3: the client is disabled and its grants revoked; its id is never reused."""
    await _registered(registrar, client_id, bearer)
    async with registrar.pool.acquire() as connection, audited(connection) as trail:
        deleted = await registrations.delete_dynamic(
            connection, client_id, now, registrar.deny_until(now)
        )
        if deleted is None:
            raise InvalidTokenError("the registration access token is not valid for this client")
        await trail.record(
            now=now,
            actor=f"client:{client_id}",
            action="client.deleted",
            subject=client_id,
            details={
                "refresh_families": deleted.refresh_families,
                "access_tokens": deleted.access_tokens,
            },
        )
