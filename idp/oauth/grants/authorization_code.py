"""The authorization_code grant (RFC 6749 §4.1.3, RFC 7636 §4.5, OIDC Core §3.1.3).

The code is consumed by one conditional UPDATE, so of concurrent exchanges exactly one wins. A
code presented again by its client is a replay: what its first exchange issued is revoked
(RFC 6749 §4.1.2, RFC 9700 §4.5): the access token, and the refresh family the exchange started
with every access token issued from it since. The whole exchange is one transaction.
"""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Any

from idp.audit_trail import AuditTrail, audited
from idp.db import authorization_codes, refresh_tokens, users
from idp.db.clients import Client
from idp.db.pool import Connection
from idp.hashing import digest
from idp.oauth.context import TokenContext
from idp.oauth.errors import InvalidGrantError
from idp.oauth.issuance import (
    REFRESH_GRANT,
    Issued,
    UserGrant,
    first_access_jti,
    new_family,
    start_refresh_family,
    user_tokens,
)
from idp.oauth.params import Params
from idp.oauth.pkce import verify_pkce

GRANT_TYPE = "authorization_code"


async def exchange(params: Params, client: Client, context: TokenContext) -> dict[str, Any]:
    code = params.require("code")
    redirect_uri = params.require("redirect_uri")
    verifier = params.require("code_verifier")
    async with context.pool.acquire() as connection, audited(connection) as trail:
        # Failures are returned, not raised, so that the transaction still commits: a code
        # is spent by any attempt (no guessing the verifier), and a replay's revocation stays.
        outcome = await _redeem(
            connection, trail, digest(code), redirect_uri, verifier, client, context
        )
    if isinstance(outcome, InvalidGrantError):
        raise outcome
    return outcome.sign(context)  # after the commit: the connection is back


async def _redeem(
    connection: Connection,
    trail: AuditTrail,
    code_hash: bytes,
    redirect_uri: str,
    verifier: str,
    client: Client,
    context: TokenContext,
) -> Issued | InvalidGrantError:
    now = context.clock.now()
    grant = await authorization_codes.consume(connection, code_hash, client.client_id, now)
    if grant is None:
        if await _revoke_replayed(connection, trail, code_hash, client, context, now):
            return InvalidGrantError("the code was used already; its tokens are revoked")
        return InvalidGrantError("the code is invalid or expired")
    if grant.redirect_uri != redirect_uri:
        return InvalidGrantError("redirect_uri does not match the authorization request")
    if not verify_pkce(verifier, grant.code_challenge):
        return InvalidGrantError("code_verifier does not match the code_challenge")
    user = await users.by_id(connection, grant.user_id)
    if user is None or user.disabled:
        return InvalidGrantError("the user can no longer sign in")
    authorized = UserGrant(
        user=user,
        sid=grant.sid,
        scopes=grant.scopes,
        audience=grant.audience,
        auth_time=grant.auth_time,
        nonce=grant.nonce,
        amr=grant.amr,
        requested_acr=grant.acr,
    )
    family: refresh_tokens.Family | None = None
    if REFRESH_GRANT in client.grant_types:
        family = new_family(client, authorized, context, now)
        issued = user_tokens(client, authorized, context, now, jti=first_access_jti(family))
        await start_refresh_family(connection, family, issued, context, now)
    else:
        issued = user_tokens(client, authorized, context, now)
    await authorization_codes.record_issued(
        connection, code_hash, [issued.access_jti], None if family is None else family.id
    )
    return issued


async def _revoke_replayed(
    connection: Connection,
    trail: AuditTrail,
    code_hash: bytes,
    client: Client,
    context: TokenContext,
    now: datetime,
) -> bool:
    """If this client consumed the code already, revoke what its exchange issued (RFC 6749
    §4.1.2): its access token, and its refresh family with every access token issued from that
    family that may be alive. False if the code was never consumed (unknown, expired, or
    another client's)."""
    until = context.settings.deny_until(now)
    replayed = await authorization_codes.revoke_replayed(
        connection, code_hash, client.client_id, until
    )
    if replayed is None:
        return False
    denied, family_id = replayed.denied, replayed.refresh_family_id
    if family_id is not None:
        denied = denied + await refresh_tokens.revoke_family(
            connection, family_id, "authorization code replayed", now, until
        )
    trail.after_commit(functools.partial(context.deny_list.add, denied))
    await trail.record(
        now=now,
        actor=f"client:{client.client_id}",
        action="authorization_code.replayed",
        subject=None if family_id is None else str(family_id),
        reason="a consumed authorization code was presented again; what it issued is revoked",
        details={"user_id": str(replayed.user_id), "access_tokens_denied": len(denied)},
    )
    return True
