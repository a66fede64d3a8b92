"""Who calls the management API, and what they may do.

An access token of idp's own (RFC 9068), for the audience ``{issuer}/admin``, with the scope
``idp:admin`` (read and write) or ``idp:admin.read`` (read only). A client's own token
(client_credentials) speaks for a client created with ``--admin``; a user's token needs the
user to hold the ``admin`` role now (read from the user, not the token: a role taken away
counts at once).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from idp.admin.problems import ForbiddenProblem, UnauthorizedProblem
from idp.oauth.access_token import SCOPE_ADMIN, SCOPE_ADMIN_READ, verify_access_token
from idp.oauth.client_registry import ClientRegistry
from idp.oauth.context import TokenContext
from idp.oauth.errors import InvalidTokenError
from idp.oauth.presented_token import subject_user_id

SCOPE_WRITE = SCOPE_ADMIN
SCOPE_READ = SCOPE_ADMIN_READ
ADMIN_ROLE = "admin"


@dataclass(frozen=True)
class Caller:
    """``actor`` is what the audit log records: ``client:<id>`` or ``user:<id>``."""

    actor: str
    can_write: bool


async def authenticate(token: str | None, context: TokenContext, clients: ClientRegistry) -> Caller:
    """The caller a Bearer token (RFC 6750 §2.1) names; UnauthorizedProblem when it names none
    (RFC 6750 §3.1 invalid_token), ForbiddenProblem without any admin scope."""
    if token is None:
        raise UnauthorizedProblem("send an access token for the management API (Bearer)")
    settings = context.settings
    try:
        claims = verify_access_token(
            token,
            context.verification_keys(),
            issuer=settings.issuer,
            now=context.clock.now(),
            skew=settings.clock_skew,
            audience=settings.admin_audience,
        )
    except InvalidTokenError as error:
        raise UnauthorizedProblem(error.description or "invalid access token") from None
    if await context.deny_list.revoked(str(claims["jti"])):
        raise UnauthorizedProblem("the access token was revoked")
    scopes = set(str(claims.get("scope", "")).split())
    if not scopes & {SCOPE_WRITE, SCOPE_READ}:
        raise ForbiddenProblem(f"the token has neither {SCOPE_WRITE} nor {SCOPE_READ}")
    client = await clients.find(str(claims.get("client_id", "")))
    if client is None or client.disabled:
        raise UnauthorizedProblem("the token's client is disabled")
    if not client.admin:  # it could not have got this audience: it lost --admin since
        raise ForbiddenProblem("the token's client is not an admin client")
    return Caller(actor=await _actor(claims, context), can_write=SCOPE_WRITE in scopes)


async def _actor(claims: dict[str, Any], context: TokenContext) -> str:
    user_id = subject_user_id(claims)
    if user_id is None:  # client_credentials: the client itself
        return f"client:{claims['client_id']}"
    user = await context.users.find(user_id)
    if user is None or user.disabled:
        raise UnauthorizedProblem("the token's user can no longer sign in")
    if ADMIN_ROLE not in user.roles:
        raise ForbiddenProblem(f"the user does not hold the {ADMIN_ROLE} role")
    return f"user:{user_id}"


def require_write(caller: Caller) -> None:
    if not caller.can_write:
        raise ForbiddenProblem(f"this operation changes data: it needs the {SCOPE_WRITE} scope")
