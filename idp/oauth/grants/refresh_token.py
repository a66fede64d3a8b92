"""The refresh_token grant (RFC 6749 §6) with rotation and reuse detection (RFC 9700 §4.14.2).

Every use replaces the family's current token with its successor in one conditional UPDATE of
the family's row, where the refresh rule holds (idp.db.refresh_rule); when it matched nothing,
``judge`` says why, from the same rule. A token of the family presented after it was replaced
revokes the whole family, and every access token issued from it is deny-listed, unless it is the
one just replaced and comes back from the same client within IDP_REFRESH_REUSE_GRACE: then the
very same answer is returned again (a retry after a network error must not log the user out).
That answer is kept AES-GCM sealed only for the grace window. A reuse is audited
(``refresh.reuse_detected``) in the transaction that revokes the family, the grant's own when
there is a grace; a retry changes nothing and is not audited. Only a genuine earlier token
counts: the previous one is known by its digest, the others by their derived secret
(idp.oauth.refresh_format); a token forged from the family's handle is refused and changes
nothing.
"""

from __future__ import annotations

import enum
import functools
import json
import secrets
from datetime import datetime, timedelta
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from idp.audit_trail import AuditTrail, audited
from idp.db import refresh_rule, refresh_tokens
from idp.db.authorization_codes import PASSWORD_ONLY
from idp.db.clients import Client
from idp.db.pool import Connection
from idp.db.refresh_rule import Condition
from idp.keys.crypto import purpose_key
from idp.oauth import refresh_format
from idp.oauth.context import TokenContext
from idp.oauth.errors import InvalidGrantError, InvalidScopeError, OAuthError
from idp.oauth.issuance import Issued, UserGrant, user_tokens
from idp.oauth.params import Params, parse_scope
from idp.oauth.refresh_format import Presented

GRANT_TYPE = "refresh_token"


async def exchange(params: Params, client: Client, context: TokenContext) -> dict[str, Any]:
    presented = refresh_format.parse(params.require("refresh_token"))
    if presented is None:
        raise InvalidGrantError("the refresh token is invalid")  # not one idp issues
    requested = parse_scope(params.get("scope"))
    async with context.pool.acquire() as connection:
        if context.settings.refresh_reuse_grace:
            # The sealed answer must commit with the rotation: a retry waiting on the row lock
            # then finds it. A reuse's revocation and its audit event are in this transaction
            # too, announced once it commits.
            async with audited(connection) as trail:
                outcome = await _rotate(connection, trail, presented, requested, client, context)
        else:
            # The rotation is one statement (its own transaction): one round trip, no lock held
            # across round trips. A reuse opens a transaction for its revocation.
            outcome = await _rotate(connection, None, presented, requested, client, context)
    if isinstance(outcome, OAuthError):
        raise outcome
    if isinstance(outcome, Issued):
        return outcome.sign(context)  # after the commit: the connection is back
    return outcome


async def _rotate(
    connection: Connection,
    trail: AuditTrail | None,
    presented: Presented,
    requested: list[str] | None,
    client: Client,
    context: TokenContext,
) -> Issued | dict[str, Any] | OAuthError:
    """invalid_grant is returned, not raised: a revocation it follows stands. ``trail``: the
    grant's transaction, None when there is none (each statement is its own)."""
    settings, now = context.settings, context.clock.now()
    successor = refresh_format.successor(presented, refresh_format.secret_key(settings))
    rotated = await refresh_tokens.rotate(
        connection,
        presented.handle_hash,
        presented.token_hash,
        now,
        successor.token_hash,
        client.client_id,
        settings.refresh_idle_ttl,
        requested,
    )
    if rotated is None:
        return await _not_rotated(connection, trail, presented, requested, client, context, now)
    if now - rotated.jti_window_at > settings.deny_list_horizon:
        await refresh_tokens.roll_jti_window(connection, rotated, now)
    # The user as of now, from the cache every change to a user invalidates (idp.oauth.user_cache):
    # new roles and email appear in the new tokens. Read on this connection if not cached: a
    # second one, under load, could wait for a pool that tasks like this one hold.
    user = await context.users.find(rotated.user_id, connection)
    if user is None or user.disabled:  # disabling revokes the family: changed just now
        return InvalidGrantError("the user can no longer sign in")
    grant = UserGrant(
        user=user,
        sid=rotated.sid,
        scopes=rotated.scopes if requested is None else requested,
        audience=rotated.audience,
        auth_time=rotated.auth_time,
        amr=rotated.amr or list(PASSWORD_ONLY),  # the sign-in's, however long ago
        requested_acr=rotated.acr,
    )
    issued = user_tokens(client, grant, context, now, jti=rotated.access_jti)
    issued.extra["refresh_token"] = successor.token
    if settings.refresh_reuse_grace:
        # A retry must get the very same answer: sign now and keep it, sealed, for the grace.
        response = issued.sign(context)
        await refresh_tokens.seal_successor(
            connection, rotated.family_id, _seal(context, presented.token_hash, response)
        )
        return response
    return issued


class Verdict(enum.Enum):
    """What becomes of a presented refresh token (``judge``)."""

    ROTATE = enum.auto()  # the refresh rule holds: the rotation statement matches
    RETRY = enum.auto()  # the token just replaced, within IDP_REFRESH_REUSE_GRACE: same answer
    REUSE = enum.auto()  # a genuine earlier token (RFC 9700 §4.14.2): the family is revoked
    UNKNOWN = enum.auto()  # no family has its handle
    OTHER_CLIENT = enum.auto()  # another client's family: told nothing more than for UNKNOWN
    FORGED = enum.auto()  # not a token the family had: forged from its handle, or mangled
    NOT_ISSUED = enum.auto()  # a generation the family has not reached
    WIDER_SCOPE = enum.auto()  # RFC 6749 §6: the scope may be narrowed, never widened
    REVOKED = enum.auto()
    EXPIRED = enum.auto()  # the family's absolute lifetime is over
    IDLE_EXPIRED = enum.auto()  # unused for longer than IDP_REFRESH_IDLE_TTL


_INVALID = "the refresh token is invalid"
_REFUSED = {
    # The rule held when the family was read, not when the rotation ran: a concurrent change.
    Verdict.ROTATE: _INVALID,
    Verdict.UNKNOWN: _INVALID,
    Verdict.OTHER_CLIENT: _INVALID,
    Verdict.FORGED: _INVALID,
    Verdict.NOT_ISSUED: _INVALID,
    Verdict.REVOKED: "the refresh token was revoked",
    Verdict.EXPIRED: "the refresh token expired",
    Verdict.IDLE_EXPIRED: "the refresh token expired",
}


def judge(
    family: refresh_tokens.Stored | None,
    presented: Presented,
    client_id: str,
    requested: list[str] | None,
    now: datetime,
    *,
    grace: timedelta,
    key: bytes,
) -> Verdict:
    """What the refresh rule (idp.db.refresh_rule) and reuse detection make of ``presented``,
    presented by ``client_id`` asking for ``requested``, given its family's row: ROTATE exactly
    when the rotation statement matches the row. Only a token the family had may revoke it
    (RFC 9700 §4.14.2): the previous one is known by its digest, earlier ones by their derived
    secret (idp.oauth.refresh_format, with K = ``key``)."""
    if family is None:
        return Verdict.UNKNOWN
    failed = refresh_rule.failed(family, presented.token_hash, client_id, now, requested)
    if not failed:
        return Verdict.ROTATE
    if Condition.OWN_CLIENT in failed:
        return Verdict.OTHER_CLIENT
    if Condition.CURRENT not in failed:  # the current token stays usable
        if Condition.WITHIN_SCOPE in failed:
            return Verdict.WIDER_SCOPE
        if Condition.NOT_REVOKED in failed:
            return Verdict.REVOKED
        if Condition.BEFORE_EXPIRY in failed:
            return Verdict.EXPIRED
        return Verdict.IDLE_EXPIRED
    previous = family.is_previous(presented.token_hash)
    if not (previous or refresh_format.genuine(presented, key)):
        return Verdict.FORGED
    if Condition.NOT_REVOKED in failed:
        return Verdict.REVOKED
    if previous and now - family.token_issued_at <= grace and family.successor_response is not None:
        return Verdict.RETRY
    if presented.generation >= family.generation:  # the current one is known by its digest
        return Verdict.NOT_ISSUED
    return Verdict.REUSE


async def _not_rotated(
    connection: Connection,
    trail: AuditTrail | None,
    presented: Presented,
    requested: list[str] | None,
    client: Client,
    context: TokenContext,
    now: datetime,
) -> OAuthError | dict[str, Any]:
    """Why the rotation changed nothing (``judge``), and what follows: a retry gets its answer
    again, a reuse revokes the family."""
    settings = context.settings
    family = await refresh_tokens.find(connection, presented.handle_hash)
    verdict = judge(
        family,
        presented,
        client.client_id,
        requested,
        now,
        grace=settings.refresh_reuse_grace,
        key=refresh_format.secret_key(settings),
    )
    if verdict is Verdict.WIDER_SCOPE:
        return InvalidScopeError("a refresh cannot widen the scope")
    if verdict not in (Verdict.RETRY, Verdict.REUSE):
        return InvalidGrantError(_REFUSED[verdict])
    assert family is not None
    reason = "a consumed refresh token was presented again; the family is revoked"
    if verdict is Verdict.RETRY:
        assert family.successor_response is not None
        retried = _unseal(context, presented.token_hash, family.successor_response)
        if retried is not None:
            return retried  # nothing written, nothing audited: the same answer, not a rotation
        # Sealed under another key-encryption key: no answer to give again, so a reuse.
        reason = (
            "the token just replaced was presented again within the grace, but its answer was "
            "sealed under another key-encryption key; the family is revoked"
        )
    if trail is None:
        async with audited(connection) as own:
            await _revoke_reused(connection, own, family, client, context, now, reason)
    else:
        await _revoke_reused(connection, trail, family, client, context, now, reason)
    return InvalidGrantError("the refresh token was used already; the grant is revoked")


async def _revoke_reused(
    connection: Connection,
    trail: AuditTrail,
    family: refresh_tokens.Stored,
    client: Client,
    context: TokenContext,
    now: datetime,
    reason: str,
) -> None:
    """RFC 9700 §4.14.2: revoke the family, deny-list its access tokens that may be alive (in
    this process's memory once ``trail``'s transaction commits), and audit it in that
    transaction."""
    deny_until = context.settings.deny_until(now)
    denied = await refresh_tokens.revoke_family(
        connection, family.id, "refresh token reuse", now, deny_until
    )
    trail.after_commit(functools.partial(context.deny_list.add, denied))
    await trail.record(
        now=now,
        actor=f"client:{client.client_id}",
        action="refresh.reuse_detected",
        subject=str(family.id),
        reason=reason,
        details={"user_id": str(family.user_id)},
    )


def _key(context: TokenContext) -> bytes:
    assert context.settings.key_encryption_key is not None
    return purpose_key(context.settings.key_encryption_key, b"idp refresh grace")


def _seal(context: TokenContext, token_hash: bytes, response: dict[str, Any]) -> bytes:
    nonce = secrets.token_bytes(12)
    plain = json.dumps(response).encode()
    return nonce + AESGCM(_key(context)).encrypt(nonce, plain, token_hash)


def _unseal(context: TokenContext, token_hash: bytes, sealed: bytes) -> dict[str, Any] | None:
    try:
        plain = AESGCM(_key(context)).decrypt(sealed[:12], sealed[12:], token_hash)
    except InvalidTag:
        return None
    response: dict[str, Any] = json.loads(plain)
    return response
