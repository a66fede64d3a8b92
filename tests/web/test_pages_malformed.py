"""Hostile and malformed input to the browser pages (``/authorize``, ``/login``, ``/consent``)
and to ``/userinfo``: never a 500 and never a traceback. The table's driver and its language:
``tests/web/malformed.py``.

What each kind of error must look like:

* errors about the client or its redirect URI, and every /login and /consent error: a 4xx HTML
  page with the security headers, never a redirect (RFC 6749 §4.1.2.1: the redirect URI is not
  trusted yet);
* later /authorize errors: a 303 to the registered redirect URI with a spec ``error``, ``state``
  and ``iss`` (RFC 6749 §4.1.2.1, RFC 9207 §2);
* /userinfo errors: JSON with a ``WWW-Authenticate: Bearer`` challenge (RFC 6750 §3).
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import asyncpg
import pytest

from idp.clock import FrozenClock
from idp.settings import Settings
from idp.web.authorize import PENDING_TTL
from idp.web.state import AppState
from tests.conftest import InstanceFactory
from tests.factories import PASSWORD, make_client, make_user
from tests.oauth.flow import (
    REDIRECT,
    Authorization,
    exchange_code,
    hidden_fields,
    query_of,
    sign_in,
)
from tests.web.malformed import (
    ANY,
    FORM,
    JSON,
    Bearer,
    Case,
    Context,
    Endpoint,
    Page,
    Redirect,
    b64,
    forget_cookies,
    hmac_with_public_key,
    run,
    segment,
    sign_out,
    stranger_signed,
    unsigned,
    wait,
)

EMAIL = "alice@example.com"
CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
GARBAGE = secrets.token_urlsafe(7_680)
# Access tokens signed with idp's own active key whose claims are wrong.
OWN_SIGNED: dict[str, dict[str, Any]] = {
    "expired_token": {"exp": 1},
    "sub_not_uuid_token": {"sub": "admin"},
    "sub_unknown_token": {"sub": str(uuid.uuid4())},
    "other_audience_token": {"aud": "https://api.example"},
    "token_without_openid": {"scope": "read"},
}


@dataclass
class Pages(Context):
    """One running app with a registered third-party client (so that /consent is reachable) and
    a user; ``auth`` is the client's authorization request."""

    state: AppState
    client_id: str
    secret: str
    user_id: uuid.UUID
    auth: Authorization
    tokens: dict[str, str] | None = None

    async def value(self, name: str) -> str:
        """The request's own values; a real ``access_token`` or ``id_token``; a forged access
        token (``stranger_token``, ``stranger_kid_token``, ``unsigned_token``, ``hs256_token``,
        ``jwt_typ_token`` and ``OWN_SIGNED``); a ``login_csrf_token``."""
        kid = self.state["keyring"].snapshot.signer.kid
        match name:
            case "client_id":
                return self.client_id
            case "state":
                return self.auth.state
            case "issuer":
                return self.state["settings"].issuer
            case "access_token" | "id_token":
                return (await self.issued())[name]
            case "stranger_token" | "stranger_kid_token":
                header = {"alg": "RS256", "kid": "stranger" if "kid" in name else kid}
                return stranger_signed({**header, "typ": "at+jwt"}, self.claims())
            case "unsigned_token":
                return unsigned({"alg": "RS256", "typ": "at+jwt"}, self.claims())
            case "hs256_token":
                header = {"alg": "RS256", "kid": kid, "typ": "at+jwt"}
                return hmac_with_public_key(self.state["keyring"], header, self.claims())
            case "jwt_typ_token":
                return self.state["keyring"].sign(self.claims(), typ="JWT")
            case "login_csrf_token":  # minted for the sign-in form: no good for the consent form
                token = (await login_form(self))["csrf_token"]
                self.auth = Authorization(self.client_id, REDIRECT)
                return token
        return self.state["keyring"].sign(self.claims(**OWN_SIGNED[name]), typ="at+jwt")

    def claims(self, **changes: Any) -> dict[str, Any]:
        """Claims as idp puts them in an access token for this user (RFC 9068 §2.2)."""
        issuer = self.state["settings"].issuer
        now = int(self.clock.now().timestamp())
        claims: dict[str, Any] = {
            "iss": issuer,
            "aud": [issuer],
            "sub": str(self.user_id),
            "client_id": self.client_id,
            "jti": secrets.token_urlsafe(16),
            "iat": now,
            "exp": now + 600,
            "scope": "openid profile email",
        }
        return {**claims, **changes}

    async def issued(self) -> dict[str, str]:
        """A real access token and ID token through the whole code flow."""
        if self.tokens is None:
            fields = await consent_form(self)
            allowed = await self.http.post("/consent", data={**fields, "decision": "allow"})
            code = query_of(allowed.headers["location"])["code"]
            response = await exchange_code(self.http, self.client_id, self.secret, code, self.auth)
            assert response.status_code == 200, response.text
            self.tokens = response.json()
        return self.tokens


async def authorization_request(ctx: Pages) -> dict[str, str]:
    """The client's valid request (PKCE, state and nonce its own)."""
    return query_of(ctx.auth.url())


async def login_form(ctx: Pages) -> dict[str, str]:
    """Start a request and load the sign-in page (which sets the pre-login cookie)."""
    start = await ctx.http.get(ctx.auth.url())
    assert start.headers["location"].startswith("/login?"), start.text
    page = await ctx.http.get(start.headers["location"])
    assert page.status_code == 200, page.text
    return hidden_fields(page.text)


async def beside_a_real_request(ctx: Pages) -> dict[str, str]:
    """A real pending request exists beside the hostile one."""
    await login_form(ctx)
    return {}


async def consent_location(ctx: Pages) -> str:
    """Sign in for the third-party client; the consent page's location."""
    start = await ctx.http.get(ctx.auth.url())
    after = await sign_in(ctx.http, start.headers["location"], EMAIL, PASSWORD)
    location = after.headers["location"]
    assert location.startswith("/consent?"), after.text
    return location


async def consent_query(ctx: Pages) -> dict[str, str]:
    return query_of(await consent_location(ctx))


async def consent_form(ctx: Pages) -> dict[str, str]:
    page = await ctx.http.get(await consent_location(ctx))
    assert page.status_code == 200, page.text
    return hidden_fields(page.text)


def to_client(error: str, *, state: bool = True) -> Redirect:
    """To the registered redirect URI with ``error``, ``iss`` (RFC 9207 §2) and the request's
    ``state`` if it was sound (RFC 6749 §4.1.2.1)."""
    echoed = {"state": "{state}"} if state else {}
    return Redirect(REDIRECT, {"error": error, "iss": "{issuer}", **echoed})


def bearer(token: str) -> bytes:
    return f"Bearer {token}".encode()


AUTHORIZE = Endpoint[Pages]("GET", "/authorize", prepare=authorization_request)
LOGIN_PAGE = Endpoint[Pages]("GET", "/login", prepare=beside_a_real_request)
LOGIN = Endpoint[Pages](
    "POST", "/login", {"email": EMAIL, "password": PASSWORD}, None, FORM, login_form
)
CONSENT_PAGE = Endpoint[Pages]("GET", "/consent", prepare=consent_query)
CONSENT = Endpoint[Pages]("POST", "/consent", {"decision": "allow"}, None, FORM, consent_form)
USERINFO = Endpoint[Pages]("GET", "/userinfo")
USERINFO_POST = Endpoint[Pages]("POST", "/userinfo", content_type=FORM)

PAGE = Page()
BAD = to_client("invalid_request")
BAD_SCOPE = to_client("invalid_scope")
BAD_STATE = to_client("invalid_request", state=False)
UNSUPPORTED = to_client("unsupported_response_type")
NO_TOKEN = Bearer(401, None)  # RFC 6750 §3.1: no credentials at all, no error code
BAD_TOKEN = Bearer(401, "invalid_token")
BAD_USERINFO_REQUEST = Bearer(400, "invalid_request")

# fmt: off
AUTHORIZE_CASES = [
    # Who is asking: errors about the client are pages (RFC 6749 §4.1.2.1).
    AUTHORIZE("client-id-missing", PAGE, client_id=None),
    AUTHORIZE("client-id-unknown", PAGE, client_id="nobody"),
    AUTHORIZE("client-id-duplicated", PAGE, client_id=["{client_id}"] * 2),
    AUTHORIZE("client-id-duplicated-differing", PAGE, client_id=["{client_id}", "nobody"]),
    AUTHORIZE("client-id-invalid-utf8", PAGE, client_id=None, raw=b"client_id=%ff%fe"),
    AUTHORIZE("client-id-invalid-utf8-sequence", PAGE, client_id=None, raw=b"client_id=%c3%28"),
    AUTHORIZE("client-id-nul", PAGE, client_id="{client_id}\x00"),
    AUTHORIZE("client-id-100kb", PAGE, client_id="a" * 100_000),
    # Where to send the answer: exact match only (RFC 6749 §3.1.2.3, RFC 9700 §2.1).
    AUTHORIZE("redirect-uri-missing", PAGE, redirect_uri=None),
    AUTHORIZE("redirect-uri-unregistered", PAGE, redirect_uri="https://evil.example/callback"),
    AUTHORIZE("redirect-uri-prefix-extended-path", PAGE, redirect_uri=REDIRECT + "/../../evil"),
    AUTHORIZE("redirect-uri-prefix-extended-host", PAGE,
              redirect_uri="https://app.example.evil.example/callback"),
    AUTHORIZE("redirect-uri-with-query", PAGE,
              redirect_uri=REDIRECT + "?next=https://evil.example"),
    AUTHORIZE("redirect-uri-userinfo-trick", PAGE,
              redirect_uri="https://app.example@evil.example/callback"),
    AUTHORIZE("redirect-uri-case-changed", PAGE, redirect_uri="https://APP.example/Callback"),
    AUTHORIZE("redirect-uri-scheme-case-changed", PAGE,
              redirect_uri="HTTPS://app.example/callback"),
    AUTHORIZE("redirect-uri-with-fragment", PAGE, redirect_uri=REDIRECT + "#frag"),
    AUTHORIZE("redirect-uri-duplicated", PAGE, redirect_uri=[REDIRECT, REDIRECT]),
    AUTHORIZE("redirect-uri-duplicated-differing", PAGE,
              redirect_uri=[REDIRECT, "https://evil.example/callback"]),
    AUTHORIZE("redirect-uri-nul", PAGE, redirect_uri=REDIRECT + "\x00"),
    AUTHORIZE("redirect-uri-invalid-utf8", PAGE, redirect_uri=None,
              raw=b"redirect_uri=https%3A%2F%2Fapp.example%2Fcallback%ff"),
    # Everything after the redirect URI goes back to the client.
    AUTHORIZE("response-type-missing", BAD, response_type=None),
    AUTHORIZE("response-type-token", UNSUPPORTED, response_type="token"),
    AUTHORIZE("response-type-id-token", UNSUPPORTED, response_type="id_token"),
    AUTHORIZE("response-type-hybrid", UNSUPPORTED, response_type="code id_token"),
    AUTHORIZE("response-type-duplicated", BAD, response_type=["code", "code"]),
    AUTHORIZE("response-mode-fragment", BAD, response_mode="fragment"),
    AUTHORIZE("response-mode-form-post", BAD, response_mode="form_post"),
    AUTHORIZE("request-object", to_client("request_not_supported"),
              request="eyJhbGciOiJub25lIn0.e30."),
    AUTHORIZE("request-uri", to_client("request_uri_not_supported"),
              request_uri="https://evil.example/r"),
    # PKCE, S256 only (RFC 7636 §4.3, RFC 9700 §2.1.1).
    AUTHORIZE("code-challenge-missing", BAD, code_challenge=None),
    AUTHORIZE("code-challenge-method-plain", BAD, code_challenge_method="plain"),
    AUTHORIZE("code-challenge-method-missing", BAD, code_challenge_method=None),
    AUTHORIZE("code-challenge-method-lowercase", BAD, code_challenge_method="s256"),
    AUTHORIZE("code-challenge-too-short", BAD, code_challenge=CHALLENGE[:42]),
    AUTHORIZE("code-challenge-too-long", BAD, code_challenge=CHALLENGE * 3),
    AUTHORIZE("code-challenge-bad-characters", BAD, code_challenge="+/=" + CHALLENGE[3:]),
    AUTHORIZE("code-challenge-nul", BAD, code_challenge=CHALLENGE[:42] + "\x00"),
    # Scope (RFC 6749 §3.3).
    AUTHORIZE("scope-missing", BAD_SCOPE, scope=None),
    AUTHORIZE("scope-unregistered", BAD_SCOPE, scope="openid admin"),
    AUTHORIZE("scope-with-quotes", BAD_SCOPE, scope='openid "email"'),
    AUTHORIZE("scope-only-spaces", BAD_SCOPE, scope="   "),
    AUTHORIZE("scope-invalid-utf8", BAD_SCOPE, scope=None, raw=b"scope=openid%ff"),
    AUTHORIZE("scope-nul", BAD_SCOPE, scope="openid\x00"),
    AUTHORIZE("resource-unregistered", to_client("invalid_target"),
              resource="https://evil.example"),
    # prompt and max_age (OIDC Core §3.1.2.1).
    AUTHORIZE("prompt-none-without-session", to_client("login_required"), prompt="none"),
    AUTHORIZE("prompt-none-and-login", BAD, prompt="none login"),
    AUTHORIZE("prompt-none-and-consent", BAD, prompt="none consent"),
    # Policy: discovery advertises prompt_values_supported ["none", "login", "consent"] only.
    AUTHORIZE("prompt-select-account", BAD, prompt="select_account"),
    AUTHORIZE("prompt-garbage", BAD, prompt="<script>"),
    AUTHORIZE("max-age-negative", BAD, max_age="-1"),
    AUTHORIZE("max-age-non-numeric", BAD, max_age="ten"),
    AUTHORIZE("max-age-huge", BAD, max_age="9" * 400),
    AUTHORIZE("max-age-fraction", BAD, max_age="1.5"),
    AUTHORIZE("max-age-superscript-digit", BAD, max_age="\u00b2"),
    # state and nonce: bounded, and never stored when unusable.
    AUTHORIZE("state-10kb", BAD_STATE, state="s" * 10_240),
    AUTHORIZE("state-duplicated", BAD_STATE, state=["a", "b"]),
    AUTHORIZE("nonce-1kb", BAD, nonce="n" * 1024),
    AUTHORIZE("nonce-duplicated", BAD, nonce=["a", "b"]),
    AUTHORIZE("state-nul", BAD_STATE, state="before\x00after"),
    AUTHORIZE("nonce-nul", BAD, nonce="n\x00"),
    AUTHORIZE("state-invalid-utf8", BAD_STATE, state=None, raw=b"state=%c3%28"),
    # Size: a 100 KB query is read, not choked on.
    AUTHORIZE("query-100kb-unknown-parameter", Redirect("/login", {"request": ANY}),
              pad="p" * 100_000),
    AUTHORIZE("query-100kb-in-scope", BAD_SCOPE, scope="openid " + "x" * 100_000),
]

LOGIN_CASES = [
    LOGIN_PAGE("login-get-no-request-id", PAGE),
    LOGIN_PAGE("login-get-empty-request-id", PAGE, request=""),
    LOGIN_PAGE("login-get-garbage-request-id", PAGE, request="garbage"),
    LOGIN_PAGE("login-get-request-id-invalid-utf8", PAGE, raw=b"request=%ff%c3%28"),
    LOGIN_PAGE("login-get-request-id-nul", PAGE, raw=b"request=%00"),
    LOGIN_PAGE("login-get-request-id-10kb", PAGE, request="r" * 10_240),
    LOGIN("login-post-no-csrf-token", PAGE, csrf_token=None),
    LOGIN("login-post-forged-csrf-token", PAGE, csrf_token="0" * 64),
    LOGIN("login-post-non-ascii-csrf-token", PAGE, csrf_token="\u00e9" * 64),
    LOGIN("login-post-csrf-token-without-cookie", PAGE, steps=[forget_cookies]),
    LOGIN("login-post-unknown-request-id", PAGE, request="garbage"),
    LOGIN("login-post-no-request-id", PAGE, request=None),
    LOGIN("login-post-expired-request-id", PAGE, steps=[wait(PENDING_TTL + timedelta(seconds=1))]),
    LOGIN("login-post-json", PAGE, as_json=True, content_type=JSON),
    LOGIN("login-post-no-content-type", PAGE, content_type=None),
    LOGIN("login-post-invalid-utf8-escape", PAGE, raw=b"x=%ff%fe"),
    LOGIN("login-post-invalid-utf8-raw", PAGE, raw=b"x=\xc3\x28"),
    LOGIN("login-post-duplicated-email", PAGE, raw=b"email=mallory%40x"),
    LOGIN("login-post-duplicated-request-id", PAGE, raw=b"request=other"),
    LOGIN("login-post-20kb", PAGE, raw=b"pad=" + b"a" * 20_480),
    LOGIN("login-post-wrong-password", Page(401), password="wrong password"),
    LOGIN("login-post-email-10kb", Page(401), email="a" * 10_240 + "@example.com"),
    LOGIN("login-post-email-nul", Page(401), email="alice\x00@example.com"),
    LOGIN("login-post-password-nul", Page(401), password="pass\x00word"),
]

CONSENT_CASES = [
    CONSENT_PAGE("consent-get-without-session", PAGE, steps=[sign_out]),
    CONSENT_PAGE("consent-get-no-request-id", PAGE, request=None),
    CONSENT_PAGE("consent-get-garbage-request-id", PAGE, request="garbage"),
    CONSENT_PAGE("consent-get-request-id-invalid-utf8", PAGE, request=None, raw=b"request=%ff"),
    CONSENT("consent-post-without-session", PAGE, steps=[sign_out]),
    CONSENT("consent-post-forged-csrf-token", PAGE, csrf_token="0" * 64),
    CONSENT("consent-post-non-ascii-csrf-token", PAGE, csrf_token="\u00e9"),
    CONSENT("consent-post-no-csrf-token", PAGE, csrf_token=None),
    CONSENT("consent-post-login-csrf-token", PAGE, csrf_token="{login_csrf_token}"),
    CONSENT("consent-post-unknown-request-id", PAGE, request="garbage"),
    CONSENT("consent-post-json", PAGE, as_json=True, content_type=JSON),
    CONSENT("consent-post-invalid-utf8", PAGE, raw=b"x=%c3%28"),
    CONSENT("consent-post-duplicated-decision", PAGE, raw=b"decision=deny"),
    CONSENT("consent-post-20kb", PAGE, raw=b"pad=" + b"a" * 20_480),
    # A well-formed, CSRF-checked post whose decision is not "allow" is a refusal: fail safe.
    CONSENT("consent-post-decision-garbage", to_client("access_denied"), decision="<script>"),
    CONSENT("consent-post-decision-missing", to_client("access_denied"), decision=None),
]

USERINFO_CASES = [
    USERINFO("userinfo-no-token", NO_TOKEN),
    USERINFO("userinfo-token-in-query", NO_TOKEN, access_token="abc"),
    USERINFO_POST("userinfo-post-token-in-json", NO_TOKEN, body=b'{"access_token": "abc"}',
                  content_type=JSON),
    USERINFO("userinfo-basic-scheme", NO_TOKEN, auth=b"Basic eHl6"),
    USERINFO("userinfo-bearer-empty", BAD_TOKEN, auth=b"Bearer"),
    USERINFO("userinfo-bearer-only-spaces", BAD_TOKEN, auth=b"Bearer    "),
    USERINFO("userinfo-not-a-jwt", BAD_TOKEN, auth=bearer("not-a-jwt")),
    USERINFO("userinfo-three-garbage-segments", BAD_TOKEN, auth=bearer("a.b.c")),
    USERINFO("userinfo-10kb-garbage", BAD_TOKEN, auth=bearer(GARBAGE)),
    USERINFO("userinfo-token-with-nul", BAD_TOKEN, auth=bearer("abc\x00def")),
    USERINFO("userinfo-token-with-space", BAD_TOKEN, auth=bearer("abc def")),
    USERINFO("userinfo-other-key-same-kid", BAD_TOKEN, auth=bearer("{stranger_token}")),
    USERINFO("userinfo-other-key-unknown-kid", BAD_TOKEN, auth=bearer("{stranger_kid_token}")),
    USERINFO("userinfo-header-is-a-list", BAD_TOKEN, auth=bearer(f"{b64(b'[1]')}.e30.c2ln")),
    USERINFO("userinfo-kid-is-a-list", BAD_TOKEN,
             auth=bearer(f"{segment({'alg': 'RS256', 'kid': ['k']})}.e30.c2ln")),
    USERINFO("userinfo-unknown-crit-header", BAD_TOKEN,
             auth=bearer(f"{segment({'alg': 'RS256', 'crit': ['exp']})}.e30.c2ln")),
    USERINFO("userinfo-five-segments", BAD_TOKEN, auth=bearer("a.b.c.d.e")),
    USERINFO("userinfo-latin1-header-bytes", BAD_TOKEN, auth=b"Bearer \xe9\xff"),
    USERINFO("userinfo-alg-none", BAD_TOKEN, auth=bearer("{unsigned_token}")),
    USERINFO("userinfo-hs256-with-public-key", BAD_TOKEN, auth=bearer("{hs256_token}")),
    USERINFO("userinfo-expired-token", BAD_TOKEN, auth=bearer("{access_token}"),
             steps=[wait(timedelta(hours=2))]),
    USERINFO("userinfo-id-token", BAD_TOKEN, auth=bearer("{id_token}")),
    USERINFO("userinfo-real-token-with-nul", BAD_TOKEN, auth=bearer("{access_token}\x00")),
    USERINFO_POST("userinfo-token-in-header-and-body", BAD_USERINFO_REQUEST,
                  auth=bearer("{access_token}"), access_token="{access_token}"),
    USERINFO("userinfo-own-key-wrong-typ", BAD_TOKEN, auth=bearer("{jwt_typ_token}")),
    USERINFO("userinfo-own-key-expired", BAD_TOKEN, auth=bearer("{expired_token}")),
    USERINFO("userinfo-own-key-sub-not-uuid", BAD_TOKEN, auth=bearer("{sub_not_uuid_token}")),
    USERINFO("userinfo-own-key-sub-unknown", BAD_TOKEN, auth=bearer("{sub_unknown_token}")),
    USERINFO("userinfo-own-key-other-audience", BAD_TOKEN, auth=bearer("{other_audience_token}")),
    USERINFO("userinfo-own-key-without-openid", Bearer(403, "insufficient_scope"),
             auth=bearer("{token_without_openid}")),
    USERINFO_POST("userinfo-post-invalid-utf8", BAD_USERINFO_REQUEST, body=b"access_token=%ff%fe"),
    USERINFO_POST("userinfo-post-duplicated-token", BAD_USERINFO_REQUEST,
                  body=b"access_token=a&access_token=b"),
    USERINFO_POST("userinfo-post-20kb", BAD_USERINFO_REQUEST,
                  body=b"access_token=" + b"a" * 20_480),
]
# fmt: on


@pytest.mark.parametrize("case", AUTHORIZE_CASES + LOGIN_CASES + CONSENT_CASES + USERINFO_CASES)
async def test_hostile_input_to_pages_and_userinfo_is_refused_without_crashing(
    app_instance: InstanceFactory,
    pool: asyncpg.Pool,
    settings: Settings,
    clock: FrozenClock,
    case: Case[Pages],
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
        ctx = Pages(app.client, clock, app.state, client.client_id, secret, user.id, auth)
        await run(ctx, case)
