"""Clients, as operators manage them (``idp clients ...`` and ``/admin/v1/clients``).

Every change is checked by the rules of registration (``idp.oauth.registration.validate``),
stored with a new ``updated_at``, announced on ``idp_clients`` (every process's ClientRegistry
drops the client at commit) and audited with the actor.

Clients that registered themselves (RFC 7591) or are known by a metadata document
(``registration != 'operator'``) may be read, changed, disabled and deleted here, but never made
first-party or admin: nobody vouched for who runs them.

Deleting a client deletes what it holds in one transaction, as Keycloak and Auth0 do: its
consents, codes, pending requests and refresh families go, and the access tokens issued from
them are deny-listed. A client that must stop at once but may come back is disabled instead.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

from idp.admin import cursors, time_cursors
from idp.admin.problems import (
    ConflictProblem,
    NotFoundProblem,
    UnprocessableProblem,
)
from idp.audit_trail import audited
from idp.clock import Clock
from idp.db import clients
from idp.db.clients import Client, Deleted
from idp.db.pool import Connection, Executor
from idp.oauth.access_token import ADMIN_SCOPES
from idp.oauth.client_auth import new_secret
from idp.oauth.registration import RegistrationError, register, validate, with_admin_rights
from idp.settings import Settings

CLIENT_ID_MAX = 255
# What an update may change (RFC 7591 §2 names most of them); grant types and the secret's
# presence stay as registered: a public client becoming confidential is a new client.
CHANGEABLE = (
    "name", "redirect_uris", "post_logout_redirect_uris", "scopes", "audiences",
    "introspect_audiences", "first_party", "require_mfa", "access_token_ttl", "refresh_token_ttl",
)  # fmt: skip

# A check of the current row before a change (the API's If-Match): raises to refuse it.
Precondition = Callable[[Client], None]


@dataclass(frozen=True)
class ClientPage:
    clients: list[Client]
    next_cursor: str | None


@dataclass(frozen=True)
class NewClient:
    client: Client
    secret: str | None  # shown once; None for a public client


def _unknown(client_id: str) -> NotFoundProblem:
    return NotFoundProblem(f"no client has the client_id {client_id!r}")


def _names_no_client(client_id: str) -> bool:
    return not client_id or len(client_id) > CLIENT_ID_MAX or "\x00" in client_id


async def get(db: Executor, client_id: str) -> Client:
    found = None if _names_no_client(client_id) else await clients.by_id(db, client_id)
    if found is None:
        raise _unknown(client_id)
    return found


async def page(db: Executor, *, limit: int, cursor: str | None) -> ClientPage:
    """Clients in the order they were created, ``limit`` at a time, after ``cursor``."""
    after = time_cursors.decode(cursor)
    found = await clients.page(db, after=after, limit=limit + 1)
    return ClientPage(
        *cursors.shown(
            found, limit, lambda last: time_cursors.encode(last.created_at, last.client_id)
        )
    )


async def create(
    connection: Connection,
    *,
    clock: Clock,
    settings: Settings,
    actor: str,
    name: str,
    grant_types: list[str],
    redirect_uris: list[str],
    post_logout_redirect_uris: list[str],
    scopes: list[str],
    audiences: list[str],
    introspect_audiences: list[str],
    public: bool,
    first_party: bool,
    require_mfa: bool,
    admin: bool,
    access_token_ttl: timedelta | None,
    refresh_token_ttl: timedelta | None,
) -> NewClient:
    """A client registered by an operator; its secret is shown once, only its digest stored.
    Audited as ``client.created``."""
    now = clock.now()
    try:
        client, secret = register(
            name=name,
            redirect_uris=redirect_uris,
            grant_types=grant_types,
            scopes=scopes,
            audiences=audiences,
            post_logout_redirect_uris=post_logout_redirect_uris,
            public=public,
            first_party=first_party,
            access_token_ttl=access_token_ttl,
            refresh_token_ttl=refresh_token_ttl,
            settings=settings,
            now=now,
            introspect_audiences=introspect_audiences,
            admin=admin,
        )
    except RegistrationError as error:
        raise UnprocessableProblem(str(error)) from None
    client = replace(client, require_mfa=require_mfa)
    async with audited(connection) as trail:
        client = await clients.insert(connection, client)
        await trail.record(now=now, actor=actor, action="client.created", subject=client.client_id)
    return NewClient(client, secret)


def _changed(client: Client, changes: dict[str, Any], settings: Settings) -> Client:
    """``client`` with ``changes`` applied, checked as a registration is (RFC 7591 §2)."""
    unknown = set(changes) - set(CHANGEABLE)
    if unknown:
        raise UnprocessableProblem(f"{sorted(unknown)[0]} cannot be changed")
    if changes.get("first_party") and client.unverified:
        raise UnprocessableProblem(
            "a client that registered itself cannot be made first-party: nobody vouched for it"
        )
    ours = {*ADMIN_SCOPES, settings.admin_audience} if client.admin else set()
    merged = {
        key: changes.get(key, getattr(client, key))
        for key in CHANGEABLE
        if key not in ("scopes", "audiences")
    }
    try:
        scopes, audiences = with_admin_rights(
            changes.get("scopes", [s for s in client.scopes if s not in ours]),
            changes.get("audiences", [a for a in client.audiences if a not in ours]),
            merged["introspect_audiences"],
            admin=client.admin,
            public=client.public,
            settings=settings,
        )
        for key in ("redirect_uris", "post_logout_redirect_uris", "introspect_audiences"):
            merged[key] = tuple(dict.fromkeys(merged[key]))
        updated = replace(
            client,
            **merged,
            scopes=tuple(dict.fromkeys(scopes)),
            audiences=tuple(dict.fromkeys(audiences)),
        )
        validate(updated, settings)
    except RegistrationError as error:
        raise UnprocessableProblem(str(error)) from None
    return updated


async def _locked(
    connection: Connection, client_id: str, precondition: Precondition | None
) -> Client:
    found = (
        None
        if _names_no_client(client_id)
        else await clients.by_id_for_update(connection, client_id)
    )
    if found is None:
        raise _unknown(client_id)
    if precondition is not None:
        precondition(found)
    return found


async def update(
    connection: Connection,
    *,
    clock: Clock,
    settings: Settings,
    actor: str,
    client_id: str,
    changes: dict[str, Any],
    precondition: Precondition | None = None,
) -> Client:
    """Change the fields named in ``changes`` (among ``CHANGEABLE``); ``precondition`` sees the
    row as it is, locked, before anything changes. Audited as ``client.updated``."""
    now = clock.now()
    async with audited(connection) as trail:
        current = await _locked(connection, client_id, precondition)
        updated = await clients.update(connection, _changed(current, changes, settings), now)
        assert updated is not None  # locked above
        await trail.record(
            now=now,
            actor=actor,
            action="client.updated",
            subject=client_id,
            details={"changed": sorted(changes)},
        )
    return updated


async def rotate_secret(
    connection: Connection,
    *,
    clock: Clock,
    actor: str,
    client_id: str,
    precondition: Precondition | None = None,
) -> NewClient:
    """A new secret, shown once; the old one stops working at commit (no overlap: a leaked
    secret is the usual reason). Audited as ``client.secret_rotated``."""
    now = clock.now()
    secret, digest = new_secret()
    async with audited(connection) as trail:
        current = await _locked(connection, client_id, precondition)
        if current.public:
            raise ConflictProblem(f"client {client_id!r} is public: it has no secret to rotate")
        rotated = await clients.set_secret(connection, client_id, digest, now)
        assert rotated is not None
        await trail.record(now=now, actor=actor, action="client.secret_rotated", subject=client_id)
    return NewClient(rotated, secret)


async def set_disabled(
    connection: Connection, *, clock: Clock, actor: str, client_id: str, disabled: bool
) -> Client:
    """Disable (every request of the client is refused from commit on, in every process) or
    enable it again. Audited as ``client.disabled`` / ``client.enabled``; doing it twice changes
    nothing and records nothing."""
    now = clock.now()
    async with audited(connection) as trail:
        current = await _locked(connection, client_id, None)
        if current.disabled == disabled:
            return current
        changed = await clients.set_disabled(connection, client_id, disabled, now)
        assert changed is not None
        action = "client.disabled" if disabled else "client.enabled"
        await trail.record(now=now, actor=actor, action=action, subject=client_id)
    return changed


async def delete(
    connection: Connection,
    *,
    clock: Clock,
    settings: Settings,
    actor: str,
    client_id: str,
    precondition: Precondition | None = None,
) -> Deleted:
    """Delete the client and what it holds, all or nothing. Audited as ``client.deleted`` with
    how many refresh families, consents and access tokens went with it."""
    now = clock.now()
    async with audited(connection) as trail:
        await _locked(connection, client_id, precondition)  # new codes and families wait
        deleted = await clients.delete(connection, client_id, now, settings.deny_until(now))
        assert deleted is not None  # locked above
        await trail.record(
            now=now,
            actor=actor,
            action="client.deleted",
            subject=client_id,
            details={
                "refresh_families": deleted.refresh_families,
                "consents": deleted.consents,
                "access_tokens": deleted.access_tokens,
            },
        )
    return deleted
