"""Verifying idp's own access tokens (RFC 9068 §4), as /userinfo does: locally, against the
keyring's published keys, with an explicit list of algorithms, then every claim checked."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from idp.settings import SIGNING_ALGS

ACCESS_TOKEN_TYPES = ("at+jwt", "application/at+jwt")


class InvalidTokenError(Exception):
    """RFC 6750 §3.1 invalid_token; the message is safe to show."""


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
