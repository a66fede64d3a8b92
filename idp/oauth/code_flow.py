"""The authorization code flow between /authorize and /token: who must sign in or consent,
issuing the code, and the redirects back to the client (RFC 6749 §4.1.2, RFC 9207)."""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from idp.db import authorization_codes
from idp.db.authorization_codes import PASSWORD_ONLY, CodeGrant
from idp.db.pool import Executor
from idp.hashing import digest
from idp.oauth import acr
from idp.oauth.authorize import AuthorizationRequest

SCOPE_TEXTS = {
    "openid": "Confirm who you are",
    "profile": "See your name",
    "email": "See your email address",
    "roles": "See your roles",
    "offline_access": "Keep access while you are away",
}


@dataclass(frozen=True)
class SignedIn:
    user_id: uuid.UUID
    sid: str
    auth_time: datetime
    amr: tuple[str, ...] = PASSWORD_ONLY  # RFC 8176: the factors the session signed in with


def scope_texts(scopes: list[str]) -> list[str]:
    return [SCOPE_TEXTS.get(scope, f"Use the permission “{scope}”") for scope in scopes]


def needs_login(
    request: AuthorizationRequest,
    signed_in: SignedIn | None,
    now: datetime,
    *,
    signed_in_for_request: bool,
) -> bool:
    """OIDC Core §3.1.2.1: prompt=login asks for a sign-in made for this very request, and
    max_age bounds the age of the sign-in unless it was made for this request (whose auth_time
    is then the newest there can be). ``signed_in_for_request``: ``signed_in`` is the session
    that the parked request records as having completed its login step."""
    if signed_in is None:
        return True
    if signed_in_for_request:
        return False
    if _prompts(request, "login"):
        return True
    if request.max_age is not None:
        return now - signed_in.auth_time > timedelta(seconds=request.max_age)
    return False


def _prompts(request: AuthorizationRequest, value: str) -> bool:
    """Whether the request's space-separated ``prompt`` holds ``value``."""
    return request.prompt is not None and value in request.prompt.split()


def needs_consent(request: AuthorizationRequest, granted: set[str]) -> bool:
    """An operator's client: unless first-party, until the user granted the scopes. A client a
    program registered (``Client.unverified``: RFC 7591, a metadata document) at every
    authorization, whatever was granted before. Such clients are public, so a repeated request
    cannot be told from an impersonator's and must not be processed without the user (RFC 6749
    §10.2); their metadata is the registrant's say-so and may change under the same client_id
    (a document is refetched), and RFC 7591 §5 asks for less trust in them: the user confirms
    the client and the host it returns to each time. With prompt=none they get
    consent_required.

    prompt=consent asks for consent whatever was granted, first-party clients included (OIDC
    Core §3.1.2.1: the server SHOULD prompt for consent before returning information), as §11
    wants before a refresh token for offline_access: the MCP SDK sends it with that scope."""
    assert request.client is not None
    if request.client.unverified or _prompts(request, "consent"):
        return True
    return not request.client.first_party and not set(request.scopes) <= granted


async def issue_code(
    db: Executor,
    request: AuthorizationRequest,
    signed_in: SignedIn,
    *,
    now: datetime,
    ttl: timedelta,
) -> str:
    """A single-use code of 256 random bits, stored as its SHA-256 with everything it binds."""
    assert request.client is not None
    code = secrets.token_urlsafe(32)
    await authorization_codes.insert(
        db,
        code_hash=digest(code),
        client_id=request.client.client_id,
        grant=CodeGrant(
            user_id=signed_in.user_id,
            sid=signed_in.sid,
            redirect_uri=request.redirect_uri,
            scopes=request.scopes,
            audience=request.audience,
            nonce=request.nonce,
            code_challenge=request.code_challenge,
            auth_time=signed_in.auth_time,
            amr=list(signed_in.amr),
            acr=acr.reported(
                signed_in.amr, [*(request.essential_acr or []), *(request.acr_values or [])]
            ),
        ),
        now=now,
        expires_at=now + ttl,
    )
    return code


def redirect_to_client(request: AuthorizationRequest, issuer: str, **values: str) -> str:
    """The redirect URI with ``values``, ``state`` and ``iss`` (RFC 9207 §2) added to its query."""
    parts = urlsplit(request.redirect_uri)
    query = parse_qsl(parts.query, keep_blank_values=True)
    query += list(values.items())
    if request.state is not None:
        query.append(("state", request.state))
    query.append(("iss", issuer))
    return urlunsplit(parts._replace(query=urlencode(query)))
