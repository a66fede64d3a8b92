"""What makes a client registration valid (RFC 6749 §2); its redirect URIs follow
idp.oauth.redirect_uris."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import datetime, timedelta

from idp.db.clients import Client
from idp.oauth.access_token import ADMIN_SCOPES
from idp.oauth.client_auth import new_secret
from idp.oauth.redirect_uris import RedirectUriError, validate_redirect_uri
from idp.settings import Settings

GRANT_TYPES = ("authorization_code", "refresh_token", "client_credentials")
DEFAULT_SCOPES = ("openid", "profile", "email", "offline_access")


class RegistrationError(ValueError):
    """The registration is refused; the message says why."""


def check_introspect_audiences(audiences: Sequence[str], *, public: bool, issuer: str) -> None:
    """RFC 7662 §2.1: only an authenticated client may introspect, so a public client cannot
    speak for a resource server. An audience is compared whole with a token's ``aud`` values.

    The issuer is refused (§4): it is idp's own audience (/userinfo), in the ``aud`` of every
    ``openid`` token and of every token whose client registered no audience, so a client holding
    it would learn about nearly every other client's tokens."""
    if audiences and public:
        raise RegistrationError(
            "a public client cannot introspect tokens: --introspect-audience needs a secret"
        )
    for audience in audiences:
        if not audience.isprintable() or not audience or " " in audience:
            raise RegistrationError(
                f"introspect audience {audience!r} must be one visible word, such as a URI"
            )
        if audience == issuer:
            raise RegistrationError(
                f"introspect audience {audience!r} is the issuer, in nearly every token's aud: "
                "name the resource server's own audience (a client's --audience)"
            )


def new_client_id() -> str:
    """144 random bits, base64url, never starting with "-" (a command line would read an option)."""
    while True:
        client_id = secrets.token_urlsafe(18)
        if not client_id.startswith("-"):
            return client_id


def with_admin_rights(
    scopes: Sequence[str],
    audiences: Sequence[str],
    introspect_audiences: Sequence[str],
    *,
    admin: bool,
    public: bool,
    settings: Settings,
) -> tuple[list[str], list[str]]:
    """The scopes and audiences a client asked for, with the management API's added for an admin
    client (``idp:admin``, ``idp:admin.read`` and ``{issuer}/admin``), which no client may name
    itself."""
    reserved = set(scopes) & set(ADMIN_SCOPES) or (
        {settings.admin_audience} & {*audiences, *introspect_audiences}
    )
    if reserved:
        raise RegistrationError(
            f"{', '.join(sorted(reserved))}: only an admin client (--admin) gets the management "
            "API's scopes and audience"
        )
    if not admin:
        return list(scopes), list(audiences)
    if public:
        raise RegistrationError("an admin client needs a secret: it cannot be --public")
    return [*scopes, *ADMIN_SCOPES], [*audiences, settings.admin_audience]


def validate(client: Client, settings: Settings) -> None:
    """The rules every client's registration meets, at creation and at every change: grants,
    redirect URIs, introspection audiences, token lifetimes. RegistrationError says which fails.
    """
    grant_types = client.grant_types
    unknown = [grant for grant in grant_types if grant not in GRANT_TYPES]
    if unknown or not grant_types:
        raise RegistrationError(f"grant types must be among {', '.join(GRANT_TYPES)}")
    if client.public and "client_credentials" in grant_types:
        raise RegistrationError("a public client cannot use client_credentials")
    if "authorization_code" in grant_types and not client.redirect_uris:
        raise RegistrationError("authorization_code needs at least one --redirect-uri")
    if "refresh_token" in grant_types and "authorization_code" not in grant_types:
        raise RegistrationError("refresh_token comes only with authorization_code")
    for uri in [*client.redirect_uris, *client.post_logout_redirect_uris]:
        try:
            validate_redirect_uri(uri, public=client.public)
        except RedirectUriError as error:
            raise RegistrationError(str(error)) from None
    check_introspect_audiences(
        client.introspect_audiences, public=client.public, issuer=settings.issuer
    )
    ttl = client.access_token_ttl
    if ttl is not None and ttl > settings.max_access_token_ttl:
        raise RegistrationError(
            "--access-token-ttl may not exceed IDP_MAX_ACCESS_TOKEN_TTL "
            f"({int(settings.max_access_token_ttl.total_seconds())}s): signing keys are kept "
            "published only that long after they stop signing"
        )


def register(
    *,
    name: str,
    redirect_uris: Sequence[str],
    grant_types: Sequence[str],
    scopes: Sequence[str],
    audiences: Sequence[str],
    post_logout_redirect_uris: Sequence[str],
    public: bool,
    first_party: bool,
    access_token_ttl: timedelta | None,
    refresh_token_ttl: timedelta | None,
    settings: Settings,
    now: datetime,
    introspect_audiences: Sequence[str] = (),
    admin: bool = False,
) -> tuple[Client, str | None]:
    """A new client and its secret (None for a public client); the secret is shown once.

    ``admin``: it may get tokens for the management API (audience ``{issuer}/admin``, scopes
    ``idp:admin`` and ``idp:admin.read``), which no other client may name."""
    scopes, audiences = with_admin_rights(
        scopes, audiences, introspect_audiences, admin=admin, public=public, settings=settings
    )
    secret, digest = (None, None) if public else new_secret()
    client = Client(
        client_id=new_client_id(),
        name=name,
        secret_hash=digest,
        redirect_uris=tuple(dict.fromkeys(redirect_uris)),
        grant_types=tuple(dict.fromkeys(grant_types)),
        scopes=tuple(dict.fromkeys(scopes)),
        audiences=tuple(dict.fromkeys(audiences)),
        post_logout_redirect_uris=tuple(dict.fromkeys(post_logout_redirect_uris)),
        first_party=first_party,
        access_token_ttl=access_token_ttl,
        refresh_token_ttl=refresh_token_ttl,
        disabled=False,
        created_at=now,
        introspect_audiences=tuple(dict.fromkeys(introspect_audiences)),
        admin=admin,
    )
    validate(client, settings)
    return client, secret
