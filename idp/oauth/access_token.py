"""idp's JWT access tokens (RFC 9068): their audience (the rule of DESIGN.md), scope, lifetime and
claims when issued, and their verification, as /userinfo does: locally, against the keyring's
published keys, with an explicit list of algorithms, then every claim checked (§4)."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from idp.db.clients import Client
from idp.oauth.errors import InvalidScopeError, InvalidTargetError, InvalidTokenError
from idp.settings import SIGNING_ALGS

# Scopes that only make sense with a signed-in user.
USER_SCOPES = frozenset({"openid", "profile", "email", "offline_access", "roles"})
# The management API's scopes, which only admin clients (--admin) may have: idp:admin reads
# and writes, idp:admin.read reads (idp.admin.caller).
SCOPE_ADMIN = "idp:admin"
SCOPE_ADMIN_READ = "idp:admin.read"
ADMIN_SCOPES = (SCOPE_ADMIN, SCOPE_ADMIN_READ)
ACCESS_TOKEN_TYPE = "at+jwt"  # noqa: S105 - RFC 9068 §2.1 typ, not a secret


def resolve_audience(
    client: Client,
    requested: Sequence[str],
    *,
    issuer: str,
    scopes: Sequence[str],
    resources: frozenset[str] = frozenset(),
) -> list[str]:
    """``aud`` of an access token.

    A requested ``resource`` (RFC 8707 §2) or ``audience`` must be registered for the client,
    else ``invalid_target``; a client registered by a program (not an operator) may also name
    any of ``resources``, the operator's allow-list (``idp.oauth.resource_registry``), which
    operator clients never reach. With neither, the client's first registered audience, or the
    issuer when it registered none. With ``openid`` the issuer is added, so that the token
    works at /userinfo, which accepts only tokens whose ``aud`` includes the issuer.
    """
    allowed = client.audiences
    if client.unverified:
        allowed = (*allowed, *resources)
    for target in requested:
        if target not in allowed:
            raise InvalidTargetError(f"{target} is not an audience registered for this client")
    audience = list(dict.fromkeys(requested))
    if not audience:
        audience = [client.audiences[0] if client.audiences else issuer]
    if "openid" in scopes and issuer not in audience:
        audience.append(issuer)
    return audience


def grant_scope(
    requested: list[str] | None, client: Client, *, default: Sequence[str]
) -> list[str]:
    """RFC 6749 §3.3: the requested scopes if the client may have them all, else invalid_scope."""
    if requested is None:
        return list(default)
    refused = [scope for scope in requested if scope not in client.scopes]
    if refused:
        raise InvalidScopeError(f"not allowed for this client: {' '.join(refused)}")
    return requested


def access_token_ttl(client: Client, default: timedelta) -> timedelta:
    return client.access_token_ttl or default


def new_jti() -> str:
    return secrets.token_urlsafe(16)


def access_token_claims(
    *,
    issuer: str,
    subject: str,
    client_id: str,
    audience: list[str],
    scopes: Sequence[str],
    now: datetime,
    ttl: timedelta,
    extra: dict[str, Any] | None = None,
    jti: str | None = None,
) -> dict[str, Any]:
    """RFC 9068 §2.2: iss, exp, aud, sub, client_id, iat, jti, and scope (§2.2.3)."""
    issued = int(now.timestamp())
    claims: dict[str, Any] = {
        "iss": issuer,
        "sub": subject,
        "aud": audience[0] if len(audience) == 1 else audience,
        "client_id": client_id,
        "iat": issued,
        "exp": issued + int(ttl.total_seconds()),
        "jti": jti or new_jti(),
    }
    if scopes:
        claims["scope"] = " ".join(scopes)
    if extra:
        claims.update(extra)
    return claims


# What a verifier accepts as typ (RFC 9068 §4: the media type, with or without "application/").
ACCESS_TOKEN_TYPES = (ACCESS_TOKEN_TYPE, "application/at+jwt")


def verify_access_token(
    token: str,
    keys: KeySet,
    *,
    issuer: str,
    now: datetime,
    skew: timedelta,
    audience: str | None,
) -> dict[str, Any]:
    """The claims of one of idp's own live access tokens. ``audience`` must be among its
    ``aud`` when given (/userinfo names itself, the issuer); None accepts any audience, for
    /introspect and /revoke, which answer about tokens meant for other servers (RFC 7662 §1,
    RFC 7009 §2)."""
    try:
        decoded = jwt.decode(token, keys, algorithms=list(SIGNING_ALGS))
    except (JoseError, ValueError, TypeError, KeyError):
        raise InvalidTokenError(
            "the access token is malformed or its signature is invalid"
        ) from None
    # RFC 9068 §4: typ must say access token, so an ID token cannot be used as one.
    if decoded.header.get("typ") not in ACCESS_TOKEN_TYPES:
        raise InvalidTokenError("not an access token")
    claims = decoded.claims
    leeway = skew.total_seconds()
    moment = now.timestamp()
    exp, iat = claims.get("exp"), claims.get("iat")
    if claims.get("iss") != issuer:
        raise InvalidTokenError("the token was issued by another issuer")
    if not isinstance(exp, int) or exp + leeway < moment:
        raise InvalidTokenError("the access token expired")
    if not isinstance(iat, int) or iat - leeway > moment:
        raise InvalidTokenError("the access token is not valid yet")
    aud = claims.get("aud")
    audiences = aud if isinstance(aud, list) else [aud]
    if not audiences or not all(isinstance(item, str) for item in audiences):
        raise InvalidTokenError("the access token has no audience")
    if audience is not None and audience not in audiences:
        raise InvalidTokenError("the access token is not meant for this server")
    if not isinstance(claims.get("sub"), str) or not isinstance(claims.get("jti"), str):
        raise InvalidTokenError("the access token lacks sub or jti")
    return claims
