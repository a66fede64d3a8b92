"""The tokens a signed-in user's grant yields: a JWT access token (RFC 9068), an ID token with
``openid`` (OIDC Core §3.1.3.3, §12.2), and a refresh token where the client may have one."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from idp.db import refresh_tokens
from idp.db.authorization_codes import PASSWORD_ONLY
from idp.db.clients import Client
from idp.db.pool import Connection
from idp.db.users import User
from idp.oauth import refresh_format
from idp.oauth.access_token import ACCESS_TOKEN_TYPE, access_token_claims, access_token_ttl
from idp.oauth.acr import acr_of
from idp.oauth.context import TokenContext
from idp.oauth.id_token import id_token_claims

REFRESH_GRANT = "refresh_token"


@dataclass(frozen=True)
class UserGrant:
    """What a user authorized a client for, as a code or a refresh family carries it."""

    user: User
    sid: str
    scopes: list[str]
    audience: list[str]
    auth_time: datetime
    nonce: str | None = None
    amr: list[str] = field(default_factory=lambda: list(PASSWORD_ONLY))  # RFC 8176
    requested_acr: str | None = None  # the class asked for and met (idp.oauth.acr.reported)

    @property
    def acr(self) -> str:
        return self.requested_acr or acr_of(self.amr)


@dataclass
class Issued:
    """Tokens decided (their jti known, their rows written) but not signed yet: signing, the
    costly part, waits until the transaction has committed and given its connection back to
    the pool. It runs on the event loop: a thread pool costs more in hand-offs than it frees."""

    client: Client
    grant: UserGrant
    now: datetime
    access_claims: dict[str, Any]
    expires_in: int
    extra: dict[str, str] = field(default_factory=dict)  # e.g. the refresh token

    @property
    def access_jti(self) -> str:
        jti: str = self.access_claims["jti"]
        return jti

    def sign(self, context: TokenContext) -> dict[str, Any]:
        grant, settings = self.grant, context.settings
        access_token = context.sign(self.access_claims, typ=ACCESS_TOKEN_TYPE)
        response: dict[str, Any] = {
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": self.expires_in,
            "scope": " ".join(grant.scopes),
        }
        if "openid" in grant.scopes:
            response["id_token"] = context.sign(
                id_token_claims(
                    issuer=settings.issuer,
                    user=grant.user,
                    client_id=self.client.client_id,
                    scopes=grant.scopes,
                    nonce=grant.nonce,
                    auth_time=grant.auth_time,
                    sid=grant.sid,
                    amr=grant.amr,
                    acr=grant.acr,
                    access_token=access_token,
                    now=self.now,
                    ttl=settings.access_token_ttl,
                ),
                typ="JWT",
            )
        response.update(self.extra)
        return response


def user_tokens(
    client: Client,
    grant: UserGrant,
    context: TokenContext,
    now: datetime,
    *,
    jti: str | None = None,
) -> Issued:
    settings = context.settings
    ttl = access_token_ttl(client, settings.access_token_ttl)
    claims = access_token_claims(
        issuer=settings.issuer,
        subject=str(grant.user.id),
        client_id=client.client_id,
        audience=grant.audience,
        scopes=grant.scopes,
        now=now,
        ttl=ttl,
        extra={
            "auth_time": int(grant.auth_time.timestamp()),
            "acr": grant.acr,  # RFC 9068 §2.2.1: with auth_time, so APIs can check the sign-in
            "sid": grant.sid,
            "roles": list(grant.user.roles),  # RFC 9068 §2.2.3.1
        },
        jti=jti,
    )
    return Issued(client, grant, now, claims, int(ttl.total_seconds()))


def new_family(
    client: Client, grant: UserGrant, context: TokenContext, now: datetime
) -> refresh_tokens.Family:
    """The family a code exchange starts: its access token has ``first_access_jti``, and
    ``start_refresh_family`` stores it."""
    return refresh_tokens.Family(
        id=uuid.uuid4(),
        client_id=client.client_id,
        user_id=grant.user.id,
        sid=grant.sid,
        scopes=grant.scopes,
        audience=grant.audience,
        auth_time=grant.auth_time,
        amr=grant.amr,
        acr=grant.requested_acr,
        expires_at=now + (client.refresh_token_ttl or context.settings.refresh_token_ttl),
    )


def first_access_jti(family: refresh_tokens.Family) -> str:
    return refresh_tokens.family_access_jti(family.id, 0)


async def start_refresh_family(
    connection: Connection,
    family: refresh_tokens.Family,
    issued: Issued,
    context: TokenContext,
    now: datetime,
) -> None:
    """Store the family with its first token (idp.oauth.refresh_format), added to what
    ``issued`` will answer."""
    token = refresh_format.first(refresh_format.secret_key(context.settings))
    await refresh_tokens.insert_family(
        connection,
        family,
        token.handle_hash,
        token.token_hash,
        now,
        context.settings.refresh_idle_ttl,
    )
    issued.extra["refresh_token"] = token.token
