"""Hostile and malformed input to the browser pages (``/authorize``, ``/login``, ``/consent``)
and to ``/userinfo``: never a 500 and never a traceback.

What each kind of error must look like:

* errors about the client or its redirect URI, and every /login and /consent error: a 4xx HTML
  page with the security headers, never a redirect (RFC 6749 §4.1.2.1: the redirect URI is not
  trusted yet);
* later /authorize errors: a 303 to the registered redirect URI with a spec ``error``, ``state``
  and ``iss`` (RFC 6749 §4.1.2.1, RFC 9207 §2);
* /userinfo errors: JSON with a ``WWW-Authenticate: Bearer`` challenge (RFC 6750 §3).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import asyncpg
import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey

from idp.clock import FrozenClock
from idp.oauth.pkce import s256
from idp.settings import Settings
from idp.web.authorize import PENDING_TTL
from idp.web.state import AppState
from tests.conftest import InstanceFactory
from tests.factories import assert_security_headers, make_client, make_user
from tests.oauth.flow import Authorization, exchange_code, hidden_fields, query_of, sign_in

REDIRECT = "https://app.example/callback"
EMAIL = "alice@example.com"
PASSWORD = "correct horse battery"
FORM = "application/x-www-form-urlencoded"
# RFC 6749 §4.1.2.1, OIDC Core §3.1.2.6, RFC 8707 §2.
AUTHORIZE_ERRORS = frozenset(
    {
        "invalid_request",
        "unauthorized_client",
        "access_denied",
        "unsupported_response_type",
        "invalid_scope",
        "server_error",
        "temporarily_unavailable",
        "interaction_required",
        "login_required",
        "account_selection_required",
        "consent_required",
        "invalid_request_uri",
        "invalid_request_object",
        "request_not_supported",
        "request_uri_not_supported",
        "registration_not_supported",
        "invalid_target",
    }
)
# RFC 6750 §3: error_description is a quoted-string of these characters only.
_CHALLENGE_TEXT = re.compile(r"^[\x20\x21\x23-\x5b\x5d-\x7e]*$")


@dataclass
class Ctx:
    """One running app with a registered third-party client and a user."""

    http: httpx.AsyncClient
    state: AppState
    clock: FrozenClock
    client_id: str
    secret: str
    user_id: uuid.UUID
    auth: Authorization


Scenario = Callable[[Ctx], Awaitable[httpx.Response]]


@dataclass(frozen=True)
class Page:
    """An HTML error page in the browser, never a redirect."""

    status: int = 400


@dataclass(frozen=True)
class ToClient:
    """A 303 to the registered redirect URI with ``error``; ``state`` echoed if it was sound."""

    error: str
    echoes_state: bool = True


@dataclass(frozen=True)
class Onward:
    """A 303 to one of idp's own pages (the request was acceptable)."""

    path: str


@dataclass(frozen=True)
class Bearer:
    """A JSON /userinfo error with a Bearer challenge; ``error`` None: the challenge has none."""

    status: int
    error: str | None


Expect = Page | ToClient | Onward | Bearer


# -- /authorize ---------------------------------------------------------------------------------
def authorize_url(ctx: Ctx, raw: str = "", **changes: str | list[str] | None) -> str:
    """A valid request with ``changes`` (None drops a parameter, a list repeats it) and ``raw``
    appended to the query as is (for escapes no encoder would produce)."""
    auth = ctx.auth
    params: dict[str, str | list[str]] = {
        "response_type": "code",
        "client_id": auth.client_id,
        "redirect_uri": auth.redirect_uri,
        "scope": auth.scope,
        "state": auth.state,
        "nonce": auth.nonce,
        "code_challenge": s256(auth.verifier),
        "code_challenge_method": "S256",
    }
    for name, value in changes.items():
        if value is None:
            params.pop(name, None)
        else:
            params[name] = value
    query = urlencode(params, doseq=True)
    return f"/authorize?{query}&{raw}" if raw else f"/authorize?{query}"


async def authorize(ctx: Ctx, raw: str = "", **changes: str | list[str] | None) -> httpx.Response:
    with pytest.MonkeyPatch.context() as patch:
        # httpx refuses URLs over 64 KB; the app itself must cope with longer ones.
        patch.setattr("httpx._urlparse.MAX_URL_LENGTH", 1 << 20)
        return await ctx.http.get(authorize_url(ctx, raw, **changes))


# -- /login -------------------------------------------------------------------------------------
async def login_fields(ctx: Ctx) -> dict[str, str]:
    """Start a request and load the sign-in page (which sets the pre-login cookie)."""
    start = await ctx.http.get(ctx.auth.url())
    assert start.headers["location"].startswith("/login?"), start.text
    page = await ctx.http.get(start.headers["location"])
    assert page.status_code == 200, page.text
    return hidden_fields(page.text)


def form_encoded(fields: dict[str, str]) -> bytes:
    return urlencode(fields).encode()


def json_encoded(fields: dict[str, str]) -> bytes:
    return json.dumps(fields).encode()


def changed(fields: dict[str, str], changes: dict[str, str | None]) -> dict[str, str]:
    result = dict(fields)
    for name, value in changes.items():
        if value is None:
            result.pop(name, None)
        else:
            result[name] = value
    return result


async def post(ctx: Ctx, path: str, body: bytes, content_type: str | None = FORM) -> httpx.Response:
    headers = {} if content_type is None else {"content-type": content_type}
    return await ctx.http.post(path, content=body, headers=headers)


async def login_post(
    ctx: Ctx,
    *,
    extra: bytes = b"",
    encode: Callable[[dict[str, str]], bytes] = form_encoded,
    content_type: str | None = FORM,
    forget_cookies: bool = False,
    wait: timedelta = timedelta(0),
    **changes: str | None,
) -> httpx.Response:
    """Post the sign-in form with the right credentials, altered by the arguments."""
    fields = await login_fields(ctx)
    fields = changed({**fields, "email": EMAIL, "password": PASSWORD}, changes)
    if forget_cookies:
        ctx.http.cookies.clear()
    ctx.clock.advance(wait)
    return await post(ctx, "/login", encode(fields) + extra, content_type)


async def login_get(ctx: Ctx, query: str) -> httpx.Response:
    await login_fields(ctx)  # a real pending request exists alongside the hostile one
    return await ctx.http.get(f"/login{query}")


# -- /consent -----------------------------------------------------------------------------------
async def consent_page(ctx: Ctx) -> str:
    """Sign in for a third-party client and return the consent page's location."""
    start = await ctx.http.get(ctx.auth.url())
    after = await sign_in(ctx.http, start.headers["location"], EMAIL, PASSWORD)
    location = after.headers["location"]
    assert location.startswith("/consent?"), after.text
    return location


async def consent_fields(ctx: Ctx) -> dict[str, str]:
    page = await ctx.http.get(await consent_page(ctx))
    assert page.status_code == 200, page.text
    return hidden_fields(page.text)


async def consent_get(
    ctx: Ctx, *, query: str | None = None, signed_out: bool = False
) -> httpx.Response:
    location = await consent_page(ctx)
    if signed_out:
        ctx.http.cookies.delete("idp_session")
    return await ctx.http.get(location if query is None else f"/consent{query}")


async def consent_post(
    ctx: Ctx,
    *,
    extra: bytes = b"",
    encode: Callable[[dict[str, str]], bytes] = form_encoded,
    content_type: str | None = FORM,
    signed_out: bool = False,
    **changes: str | None,
) -> httpx.Response:
    fields = changed({**await consent_fields(ctx), "decision": "allow"}, changes)
    if signed_out:
        ctx.http.cookies.delete("idp_session")
    return await post(ctx, "/consent", encode(fields) + extra, content_type)


async def consent_post_with_login_csrf(ctx: Ctx) -> httpx.Response:
    """A CSRF token minted for the sign-in form must not pass for the consent form."""
    login_csrf = (await login_fields(ctx))["csrf_token"]
    ctx.auth = Authorization(ctx.client_id, REDIRECT)
    fields = {**await consent_fields(ctx), "csrf_token": login_csrf, "decision": "allow"}
    return await post(ctx, "/consent", form_encoded(fields))


# -- /userinfo ----------------------------------------------------------------------------------
async def issued_tokens(ctx: Ctx) -> dict[str, str]:
    """A real access token and ID token through the whole code flow."""
    fields = await consent_fields(ctx)
    allowed = await post(ctx, "/consent", form_encoded({**fields, "decision": "allow"}))
    code = query_of(allowed.headers["location"])["code"]
    response = await exchange_code(ctx.http, ctx.client_id, ctx.secret, code, ctx.auth)
    assert response.status_code == 200, response.text
    tokens: dict[str, str] = response.json()
    return tokens


def access_claims(ctx: Ctx, **changes: Any) -> dict[str, Any]:
    """Claims as idp puts them in an access token for this user (RFC 9068 §2.2)."""
    issuer = ctx.state["settings"].issuer
    now = int(ctx.clock.now().timestamp())
    claims: dict[str, Any] = {
        "iss": issuer,
        "aud": [issuer],
        "sub": str(ctx.user_id),
        "client_id": ctx.client_id,
        "jti": secrets.token_urlsafe(16),
        "iat": now,
        "exp": now + 600,
        "scope": "openid profile email",
    }
    return {**claims, **changes}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def segment(value: dict[str, Any]) -> str:
    return b64(json.dumps(value).encode())


def signed_by_stranger(ctx: Ctx, *, same_kid: bool) -> str:
    """Right header and claims, signed by a fresh RSA key that idp never published."""
    signer = ctx.state["keyring"].snapshot.signer
    kid = signer.kid if same_kid else "stranger"
    key = RSAKey.generate_key(2048, parameters={"kid": kid})
    header = {"alg": "RS256", "kid": kid, "typ": "at+jwt"}
    return jwt.encode(header, access_claims(ctx), key, algorithms=["RS256"])


def unsigned(ctx: Ctx) -> str:
    header = {"alg": "none", "typ": "at+jwt"}
    return f"{segment(header)}.{segment(access_claims(ctx))}."


def hmac_with_public_key(ctx: Ctx) -> str:
    """Algorithm confusion: HS256 keyed with the published RSA public key."""
    signer = ctx.state["keyring"].snapshot.signer
    public = signer.key.as_pem(private=False)
    header = {"alg": "HS256", "kid": signer.kid, "typ": "at+jwt"}
    signing_input = f"{segment(header)}.{segment(access_claims(ctx))}"
    mac = hmac.new(public, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(mac)}"


def own_signed(ctx: Ctx, *, typ: str = "at+jwt", **changes: Any) -> str:
    """Signed with idp's own active key: only the claims are wrong."""
    return ctx.state["keyring"].sign(access_claims(ctx, **changes), typ=typ)


async def userinfo(
    ctx: Ctx,
    token: str | None = None,
    *,
    authorization: bytes | None = None,
    method: str = "GET",
    body: bytes | None = None,
    content_type: str | None = FORM,
    query: str = "",
) -> httpx.Response:
    headers: dict[bytes, bytes] = {}
    if authorization is None and token is not None:
        authorization = f"Bearer {token}".encode()
    if authorization is not None:
        headers[b"authorization"] = authorization
    if body is not None and content_type is not None:
        headers[b"content-type"] = content_type.encode()
    return await ctx.http.request(method, f"/userinfo{query}", content=body, headers=headers)


async def with_real_token(
    ctx: Ctx, use: Callable[[Ctx, dict[str, str]], Awaitable[httpx.Response]]
) -> httpx.Response:
    return await use(ctx, await issued_tokens(ctx))


async def expired(ctx: Ctx, tokens: dict[str, str]) -> httpx.Response:
    ctx.clock.advance(timedelta(hours=2))
    return await userinfo(ctx, tokens["access_token"])


async def in_header_and_body(ctx: Ctx, tokens: dict[str, str]) -> httpx.Response:
    token = tokens["access_token"]
    body = form_encoded({"access_token": token})
    return await userinfo(ctx, token, method="POST", body=body)


# -- the table ----------------------------------------------------------------------------------
def case(name: str, scenario: Scenario, expect: Expect) -> pytest.ParameterSet:
    return pytest.param(scenario, expect, id=name)


CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"

AUTHORIZE_CASES = [
    # Who is asking: errors about the client are pages (RFC 6749 §4.1.2.1).
    case("client-id-missing", lambda c: authorize(c, client_id=None), Page()),
    case("client-id-unknown", lambda c: authorize(c, client_id="nobody"), Page()),
    case(
        "client-id-duplicated",
        lambda c: authorize(c, client_id=[c.client_id, c.client_id]),
        Page(),
    ),
    case(
        "client-id-duplicated-differing",
        lambda c: authorize(c, client_id=[c.client_id, "nobody"]),
        Page(),
    ),
    case(
        "client-id-invalid-utf8", lambda c: authorize(c, "client_id=%ff%fe", client_id=None), Page()
    ),
    case(
        "client-id-invalid-utf8-sequence",
        lambda c: authorize(c, "client_id=%c3%28", client_id=None),
        Page(),
    ),
    case("client-id-nul", lambda c: authorize(c, client_id=c.client_id + "\x00"), Page()),
    case("client-id-100kb", lambda c: authorize(c, client_id="a" * 100_000), Page()),
    # Where to send the answer: exact match only (RFC 6749 §3.1.2.3, RFC 9700 §2.1).
    case("redirect-uri-missing", lambda c: authorize(c, redirect_uri=None), Page()),
    case(
        "redirect-uri-unregistered",
        lambda c: authorize(c, redirect_uri="https://evil.example/callback"),
        Page(),
    ),
    case(
        "redirect-uri-prefix-extended-path",
        lambda c: authorize(c, redirect_uri=REDIRECT + "/../../evil"),
        Page(),
    ),
    case(
        "redirect-uri-prefix-extended-host",
        lambda c: authorize(c, redirect_uri="https://app.example.evil.example/callback"),
        Page(),
    ),
    case(
        "redirect-uri-with-query",
        lambda c: authorize(c, redirect_uri=REDIRECT + "?next=https://evil.example"),
        Page(),
    ),
    case(
        "redirect-uri-userinfo-trick",
        lambda c: authorize(c, redirect_uri="https://app.example@evil.example/callback"),
        Page(),
    ),
    case(
        "redirect-uri-case-changed",
        lambda c: authorize(c, redirect_uri="https://APP.example/Callback"),
        Page(),
    ),
    case(
        "redirect-uri-scheme-case-changed",
        lambda c: authorize(c, redirect_uri="HTTPS://app.example/callback"),
        Page(),
    ),
    case(
        "redirect-uri-with-fragment",
        lambda c: authorize(c, redirect_uri=REDIRECT + "#frag"),
        Page(),
    ),
    case(
        "redirect-uri-duplicated",
        lambda c: authorize(c, redirect_uri=[REDIRECT, REDIRECT]),
        Page(),
    ),
    case(
        "redirect-uri-duplicated-differing",
        lambda c: authorize(c, redirect_uri=[REDIRECT, "https://evil.example/callback"]),
        Page(),
    ),
    case("redirect-uri-nul", lambda c: authorize(c, redirect_uri=REDIRECT + "\x00"), Page()),
    case(
        "redirect-uri-invalid-utf8",
        lambda c: authorize(
            c, "redirect_uri=https%3A%2F%2Fapp.example%2Fcallback%ff", redirect_uri=None
        ),
        Page(),
    ),
    # Everything after the redirect URI goes back to the client.
    case(
        "response-type-missing",
        lambda c: authorize(c, response_type=None),
        ToClient("invalid_request"),
    ),
    case(
        "response-type-token",
        lambda c: authorize(c, response_type="token"),
        ToClient("unsupported_response_type"),
    ),
    case(
        "response-type-id-token",
        lambda c: authorize(c, response_type="id_token"),
        ToClient("unsupported_response_type"),
    ),
    case(
        "response-type-hybrid",
        lambda c: authorize(c, response_type="code id_token"),
        ToClient("unsupported_response_type"),
    ),
    case(
        "response-type-duplicated",
        lambda c: authorize(c, response_type=["code", "code"]),
        ToClient("invalid_request"),
    ),
    case(
        "response-mode-fragment",
        lambda c: authorize(c, response_mode="fragment"),
        ToClient("invalid_request"),
    ),
    case(
        "response-mode-form-post",
        lambda c: authorize(c, response_mode="form_post"),
        ToClient("invalid_request"),
    ),
    case(
        "request-object",
        lambda c: authorize(c, request="eyJhbGciOiJub25lIn0.e30."),
        ToClient("request_not_supported"),
    ),
    case(
        "request-uri",
        lambda c: authorize(c, request_uri="https://evil.example/r"),
        ToClient("request_uri_not_supported"),
    ),
    # PKCE, S256 only (RFC 7636 §4.3, RFC 9700 §2.1.1).
    case(
        "code-challenge-missing",
        lambda c: authorize(c, code_challenge=None),
        ToClient("invalid_request"),
    ),
    case(
        "code-challenge-method-plain",
        lambda c: authorize(c, code_challenge_method="plain"),
        ToClient("invalid_request"),
    ),
    case(
        "code-challenge-method-missing",
        lambda c: authorize(c, code_challenge_method=None),
        ToClient("invalid_request"),
    ),
    case(
        "code-challenge-method-lowercase",
        lambda c: authorize(c, code_challenge_method="s256"),
        ToClient("invalid_request"),
    ),
    case(
        "code-challenge-too-short",
        lambda c: authorize(c, code_challenge=CHALLENGE[:42]),
        ToClient("invalid_request"),
    ),
    case(
        "code-challenge-too-long",
        lambda c: authorize(c, code_challenge=CHALLENGE * 3),
        ToClient("invalid_request"),
    ),
    case(
        "code-challenge-bad-characters",
        lambda c: authorize(c, code_challenge="+/=" + CHALLENGE[3:]),
        ToClient("invalid_request"),
    ),
    case(
        "code-challenge-nul",
        lambda c: authorize(c, code_challenge=CHALLENGE[:42] + "\x00"),
        ToClient("invalid_request"),
    ),
    # Scope (RFC 6749 §3.3).
    case("scope-missing", lambda c: authorize(c, scope=None), ToClient("invalid_scope")),
    case(
        "scope-unregistered",
        lambda c: authorize(c, scope="openid admin"),
        ToClient("invalid_scope"),
    ),
    case(
        "scope-with-quotes",
        lambda c: authorize(c, scope='openid "email"'),
        ToClient("invalid_scope"),
    ),
    case("scope-only-spaces", lambda c: authorize(c, scope="   "), ToClient("invalid_scope")),
    case(
        "scope-invalid-utf8",
        lambda c: authorize(c, "scope=openid%ff", scope=None),
        ToClient("invalid_scope"),
    ),
    case("scope-nul", lambda c: authorize(c, scope="openid\x00"), ToClient("invalid_scope")),
    case(
        "resource-unregistered",
        lambda c: authorize(c, resource="https://evil.example"),
        ToClient("invalid_target"),
    ),
    # prompt and max_age (OIDC Core §3.1.2.1).
    case(
        "prompt-none-without-session",
        lambda c: authorize(c, prompt="none"),
        ToClient("login_required"),
    ),
    case(
        "prompt-none-and-login",
        lambda c: authorize(c, prompt="none login"),
        ToClient("invalid_request"),
    ),
    # Policy: discovery advertises prompt_values_supported ["none", "login"] only.
    case("prompt-consent", lambda c: authorize(c, prompt="consent"), ToClient("invalid_request")),
    case("prompt-garbage", lambda c: authorize(c, prompt="<script>"), ToClient("invalid_request")),
    case("max-age-negative", lambda c: authorize(c, max_age="-1"), ToClient("invalid_request")),
    case("max-age-non-numeric", lambda c: authorize(c, max_age="ten"), ToClient("invalid_request")),
    case("max-age-huge", lambda c: authorize(c, max_age="9" * 400), ToClient("invalid_request")),
    case("max-age-fraction", lambda c: authorize(c, max_age="1.5"), ToClient("invalid_request")),
    case(
        "max-age-superscript-digit",
        lambda c: authorize(c, max_age="\u00b2"),
        ToClient("invalid_request"),
    ),
    # state and nonce: bounded, and never stored when unusable.
    case(
        "state-10kb",
        lambda c: authorize(c, state="s" * 10_240),
        ToClient("invalid_request", echoes_state=False),
    ),
    case(
        "state-duplicated",
        lambda c: authorize(c, state=["a", "b"]),
        ToClient("invalid_request", echoes_state=False),
    ),
    case("nonce-1kb", lambda c: authorize(c, nonce="n" * 1024), ToClient("invalid_request")),
    case("nonce-duplicated", lambda c: authorize(c, nonce=["a", "b"]), ToClient("invalid_request")),
    case(
        "state-nul",
        lambda c: authorize(c, state="before\x00after"),
        ToClient("invalid_request", echoes_state=False),
    ),
    case(
        "nonce-nul",
        lambda c: authorize(c, nonce="n\x00"),
        ToClient("invalid_request"),
    ),
    case(
        "state-invalid-utf8",
        lambda c: authorize(c, "state=%c3%28", state=None),
        ToClient("invalid_request", echoes_state=False),
    ),
    # Size: a 100 KB query is read, not choked on.
    case(
        "query-100kb-unknown-parameter", lambda c: authorize(c, pad="p" * 100_000), Onward("/login")
    ),
    case(
        "query-100kb-in-scope",
        lambda c: authorize(c, scope="openid " + "x" * 100_000),
        ToClient("invalid_scope"),
    ),
]

LOGIN_CASES = [
    case("login-get-no-request-id", lambda c: login_get(c, ""), Page()),
    case("login-get-empty-request-id", lambda c: login_get(c, "?request="), Page()),
    case("login-get-garbage-request-id", lambda c: login_get(c, "?request=garbage"), Page()),
    case("login-get-request-id-invalid-utf8", lambda c: login_get(c, "?request=%ff%c3%28"), Page()),
    case("login-get-request-id-nul", lambda c: login_get(c, "?request=%00"), Page()),
    case("login-get-request-id-10kb", lambda c: login_get(c, "?request=" + "r" * 10_240), Page()),
    case("login-post-no-csrf-token", lambda c: login_post(c, csrf_token=None), Page()),
    case("login-post-forged-csrf-token", lambda c: login_post(c, csrf_token="0" * 64), Page()),
    case(
        "login-post-non-ascii-csrf-token",
        lambda c: login_post(c, csrf_token="\u00e9" * 64),
        Page(),
    ),
    case(
        "login-post-csrf-token-without-cookie", lambda c: login_post(c, forget_cookies=True), Page()
    ),
    case("login-post-unknown-request-id", lambda c: login_post(c, request="garbage"), Page()),
    case("login-post-no-request-id", lambda c: login_post(c, request=None), Page()),
    case(
        "login-post-expired-request-id",
        lambda c: login_post(c, wait=PENDING_TTL + timedelta(seconds=1)),
        Page(),
    ),
    case(
        "login-post-json",
        lambda c: login_post(c, encode=json_encoded, content_type="application/json"),
        Page(),
    ),
    case("login-post-no-content-type", lambda c: login_post(c, content_type=None), Page()),
    case("login-post-invalid-utf8-escape", lambda c: login_post(c, extra=b"&x=%ff%fe"), Page()),
    case("login-post-invalid-utf8-raw", lambda c: login_post(c, extra=b"&x=\xc3\x28"), Page()),
    case(
        "login-post-duplicated-email", lambda c: login_post(c, extra=b"&email=mallory%40x"), Page()
    ),
    case(
        "login-post-duplicated-request-id", lambda c: login_post(c, extra=b"&request=other"), Page()
    ),
    case("login-post-20kb", lambda c: login_post(c, extra=b"&pad=" + b"a" * 20_480), Page()),
    case(
        "login-post-wrong-password", lambda c: login_post(c, password="wrong password"), Page(401)
    ),
    case(
        "login-post-email-10kb",
        lambda c: login_post(c, email="a" * 10_240 + "@example.com"),
        Page(401),
    ),
    case(
        "login-post-email-nul",
        lambda c: login_post(c, email="alice\x00@example.com"),
        Page(401),
    ),
    case("login-post-password-nul", lambda c: login_post(c, password="pass\x00word"), Page(401)),
]

CONSENT_CASES = [
    case("consent-get-without-session", lambda c: consent_get(c, signed_out=True), Page()),
    case("consent-get-no-request-id", lambda c: consent_get(c, query=""), Page()),
    case(
        "consent-get-garbage-request-id", lambda c: consent_get(c, query="?request=garbage"), Page()
    ),
    case(
        "consent-get-request-id-invalid-utf8",
        lambda c: consent_get(c, query="?request=%ff"),
        Page(),
    ),
    case("consent-post-without-session", lambda c: consent_post(c, signed_out=True), Page()),
    case("consent-post-forged-csrf-token", lambda c: consent_post(c, csrf_token="0" * 64), Page()),
    case(
        "consent-post-non-ascii-csrf-token",
        lambda c: consent_post(c, csrf_token="\u00e9"),
        Page(),
    ),
    case("consent-post-no-csrf-token", lambda c: consent_post(c, csrf_token=None), Page()),
    case("consent-post-login-csrf-token", consent_post_with_login_csrf, Page()),
    case("consent-post-unknown-request-id", lambda c: consent_post(c, request="garbage"), Page()),
    case(
        "consent-post-json",
        lambda c: consent_post(c, encode=json_encoded, content_type="application/json"),
        Page(),
    ),
    case("consent-post-invalid-utf8", lambda c: consent_post(c, extra=b"&x=%c3%28"), Page()),
    case(
        "consent-post-duplicated-decision",
        lambda c: consent_post(c, extra=b"&decision=deny"),
        Page(),
    ),
    case("consent-post-20kb", lambda c: consent_post(c, extra=b"&pad=" + b"a" * 20_480), Page()),
    # A well-formed, CSRF-checked post whose decision is not "allow" is a refusal: fail safe.
    case(
        "consent-post-decision-garbage",
        lambda c: consent_post(c, decision="<script>"),
        ToClient("access_denied"),
    ),
    case(
        "consent-post-decision-missing",
        lambda c: consent_post(c, decision=None),
        ToClient("access_denied"),
    ),
]

USERINFO_CASES = [
    # RFC 6750 §3.1: no credentials at all, no error code in the challenge.
    case("userinfo-no-token", lambda c: userinfo(c), Bearer(401, None)),
    case(
        "userinfo-token-in-query",
        lambda c: userinfo(c, query="?access_token=abc"),
        Bearer(401, None),
    ),
    case(
        "userinfo-post-token-in-json",
        lambda c: userinfo(
            c, method="POST", body=b'{"access_token": "abc"}', content_type="application/json"
        ),
        Bearer(401, None),
    ),
    case(
        "userinfo-basic-scheme",
        lambda c: userinfo(c, authorization=b"Basic eHl6"),
        Bearer(401, None),
    ),
    case(
        "userinfo-bearer-empty",
        lambda c: userinfo(c, authorization=b"Bearer"),
        Bearer(401, "invalid_token"),
    ),
    case(
        "userinfo-bearer-only-spaces",
        lambda c: userinfo(c, authorization=b"Bearer    "),
        Bearer(401, "invalid_token"),
    ),
    case("userinfo-not-a-jwt", lambda c: userinfo(c, "not-a-jwt"), Bearer(401, "invalid_token")),
    case(
        "userinfo-three-garbage-segments",
        lambda c: userinfo(c, "a.b.c"),
        Bearer(401, "invalid_token"),
    ),
    case(
        "userinfo-10kb-garbage",
        lambda c: userinfo(c, secrets.token_urlsafe(7_680)),
        Bearer(401, "invalid_token"),
    ),
    case(
        "userinfo-token-with-nul", lambda c: userinfo(c, "abc\x00def"), Bearer(401, "invalid_token")
    ),
    case(
        "userinfo-token-with-space", lambda c: userinfo(c, "abc def"), Bearer(401, "invalid_token")
    ),
    case(
        "userinfo-other-key-same-kid",
        lambda c: userinfo(c, signed_by_stranger(c, same_kid=True)),
        Bearer(401, "invalid_token"),
    ),
    case(
        "userinfo-other-key-unknown-kid",
        lambda c: userinfo(c, signed_by_stranger(c, same_kid=False)),
        Bearer(401, "invalid_token"),
    ),
    case(
        "userinfo-header-is-a-list",
        lambda c: userinfo(c, f"{b64(b'[1]')}.e30.c2ln"),
        Bearer(401, "invalid_token"),
    ),
    case(
        "userinfo-kid-is-a-list",
        lambda c: userinfo(c, f"{segment({'alg': 'RS256', 'kid': ['k']})}.e30.c2ln"),
        Bearer(401, "invalid_token"),
    ),
    case(
        "userinfo-unknown-crit-header",
        lambda c: userinfo(c, f"{segment({'alg': 'RS256', 'crit': ['exp']})}.e30.c2ln"),
        Bearer(401, "invalid_token"),
    ),
    case(
        "userinfo-five-segments", lambda c: userinfo(c, "a.b.c.d.e"), Bearer(401, "invalid_token")
    ),
    case(
        "userinfo-latin1-header-bytes",
        lambda c: userinfo(c, authorization=b"Bearer \xe9\xff"),
        Bearer(401, "invalid_token"),
    ),
    case("userinfo-alg-none", lambda c: userinfo(c, unsigned(c)), Bearer(401, "invalid_token")),
    case(
        "userinfo-hs256-with-public-key",
        lambda c: userinfo(c, hmac_with_public_key(c)),
        Bearer(401, "invalid_token"),
    ),
    case(
        "userinfo-expired-token",
        lambda c: with_real_token(c, expired),
        Bearer(401, "invalid_token"),
    ),
    case(
        "userinfo-id-token",
        lambda c: with_real_token(c, lambda ctx, t: userinfo(ctx, t["id_token"])),
        Bearer(401, "invalid_token"),
    ),
    case(
        "userinfo-real-token-with-nul",
        lambda c: with_real_token(c, lambda ctx, t: userinfo(ctx, t["access_token"] + "\x00")),
        Bearer(401, "invalid_token"),
    ),
    case(
        "userinfo-token-in-header-and-body",
        lambda c: with_real_token(c, in_header_and_body),
        Bearer(400, "invalid_request"),
    ),
    case(
        "userinfo-own-key-wrong-typ",
        lambda c: userinfo(c, own_signed(c, typ="JWT")),
        Bearer(401, "invalid_token"),
    ),
    case(
        "userinfo-own-key-expired",
        lambda c: userinfo(c, own_signed(c, exp=1)),
        Bearer(401, "invalid_token"),
    ),
    case(
        "userinfo-own-key-sub-not-uuid",
        lambda c: userinfo(c, own_signed(c, sub="admin")),
        Bearer(401, "invalid_token"),
    ),
    case(
        "userinfo-own-key-sub-unknown",
        lambda c: userinfo(c, own_signed(c, sub=str(uuid.uuid4()))),
        Bearer(401, "invalid_token"),
    ),
    case(
        "userinfo-own-key-other-audience",
        lambda c: userinfo(c, own_signed(c, aud="https://api.example")),
        Bearer(401, "invalid_token"),
    ),
    case(
        "userinfo-own-key-without-openid",
        lambda c: userinfo(c, own_signed(c, scope="read")),
        Bearer(403, "insufficient_scope"),
    ),
    case(
        "userinfo-post-invalid-utf8",
        lambda c: userinfo(c, method="POST", body=b"access_token=%ff%fe"),
        Bearer(400, "invalid_request"),
    ),
    case(
        "userinfo-post-duplicated-token",
        lambda c: userinfo(c, method="POST", body=b"access_token=a&access_token=b"),
        Bearer(400, "invalid_request"),
    ),
    case(
        "userinfo-post-20kb",
        lambda c: userinfo(c, method="POST", body=b"access_token=" + b"a" * 20_480),
        Bearer(400, "invalid_request"),
    ),
]


# -- the checks ---------------------------------------------------------------------------------
def assert_page(response: httpx.Response, status: int) -> None:
    assert response.status_code == status, response.text
    assert "location" not in response.headers
    assert response.headers["content-type"].startswith("text/html")
    assert "<html" in response.text.lower()
    assert_security_headers(response)


def assert_to_client(response: httpx.Response, expect: ToClient, issuer: str, state: str) -> None:
    assert response.status_code == 303, response.text
    assert_security_headers(response)
    location = urlsplit(response.headers["location"])
    assert location[:3] == urlsplit(REDIRECT)[:3]
    assert not location.fragment
    query = parse_qs(location.query, keep_blank_values=True)
    assert all(len(values) == 1 for values in query.values()), query
    assert set(query) <= {"error", "error_description", "state", "iss"}, query
    assert query["error"] == [expect.error]
    assert expect.error in AUTHORIZE_ERRORS
    assert query["iss"] == [issuer]
    assert query.get("state") == ([state] if expect.echoes_state else None)


def assert_bearer(response: httpx.Response, expect: Bearer) -> None:
    assert response.status_code == expect.status, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers["cache-control"] == "no-store"
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith("Bearer ")
    found = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
    assert found.get("error") == expect.error, challenge
    assert _CHALLENGE_TEXT.match(found.get("error_description", ""))
    body = response.json()
    assert body["error"] == (expect.error or "invalid_request")
    assert set(body) <= {"error", "error_description"}


@pytest.mark.parametrize(
    ("scenario", "expect"), AUTHORIZE_CASES + LOGIN_CASES + CONSENT_CASES + USERINFO_CASES
)
async def test_hostile_input_to_pages_and_userinfo_is_refused_without_crashing(
    app_instance: InstanceFactory,
    pool: asyncpg.Pool,
    settings: Settings,
    clock: FrozenClock,
    scenario: Scenario,
    expect: Expect,
) -> None:
    client, secret = await make_client(
        pool,
        settings,
        name="Example App",
        grant_types=("authorization_code",),
        redirect_uris=(REDIRECT,),
        scopes=("openid", "profile", "email", "read"),
        first_party=False,  # so that /consent is reachable
    )
    user = await make_user(pool, EMAIL, PASSWORD)
    auth = Authorization(client.client_id, REDIRECT)
    async with app_instance() as app:
        ctx = Ctx(app.client, app.state, clock, client.client_id, secret, user.id, auth)
        response = await scenario(ctx)
    assert response.status_code < 500, response.text
    assert "Traceback" not in response.text
    location = response.headers.get("location")
    if location is not None:  # never somewhere unregistered
        assert location.startswith(("/login?", "/consent?", REDIRECT + "?")), location
    match expect:
        case Page(status):
            assert_page(response, status)
        case ToClient():
            assert_to_client(response, expect, settings.issuer, ctx.auth.state)
        case Onward(path):
            assert response.status_code == 303, response.text
            assert_security_headers(response)
            assert response.headers["location"].startswith(f"{path}?request=")
        case Bearer():
            assert_bearer(response, expect)
