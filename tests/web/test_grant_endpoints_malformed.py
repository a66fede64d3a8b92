"""Malformed and hostile input to the refresh_token grant at ``POST /token``, to ``POST /revoke``
(RFC 7009), ``POST /introspect`` (RFC 7662) and ``GET|POST /logout`` (OIDC RP-Initiated Logout
1.0): never a 500 and never a traceback.

What each answer must look like:

* /token, /revoke and /introspect errors: JSON with a spec ``error`` (RFC 6749 §5.2, RFC 7009
  §2.2.1) and ``Cache-Control: no-store``; a 401 carries a ``Basic`` challenge;
* /revoke of a token it does not know: 200, as for a revoked one (RFC 7009 §2.2);
* /introspect of anything but a live token: 200 ``{"active": false}`` (RFC 7662 §2.2);
* /logout: a 303 only to the registered ``post_logout_redirect_uri`` (§3), otherwise the
  signed-out page with the security headers.

Whatever was sent to /token, /revoke or /introspect, the signed-in app's refresh token still works
afterwards: hostile input neither spends nor revokes the grant it names.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import parse_qs, urlencode, urlsplit

import asyncpg
import httpx
import pytest
from joserfc import jwt

from idp.keys.crypto import generate_key, load_signing_key
from idp.settings import Settings
from idp.web.state import AppState
from tests.conftest import Instance, InstanceFactory
from tests.factories import assert_security_headers, make_client, make_user
from tests.oauth.flow import REDIRECT, App

pytestmark = pytest.mark.usefixtures("real_time")

AFTER = "https://app.example/signed-out"
OTHER_REDIRECT = "https://other.example/callback"
OTHER_AFTER = "https://other.example/signed-out"
SPA_REDIRECT = "https://spa.example/callback"
STATE = "logout-state-1"
FORM = "application/x-www-form-urlencoded"
SCOPES = ("openid", "email", "roles", "offline_access")
# RFC 6749 §5.2 and RFC 7009 §2.2.1.
SPEC_ERRORS = frozenset(
    {
        "invalid_request",
        "invalid_client",
        "invalid_grant",
        "unauthorized_client",
        "unsupported_grant_type",
        "invalid_scope",
        "unsupported_token_type",
    }
)


@dataclass(frozen=True)
class Credentials:
    client_id: str
    secret: str


@dataclass
class Ctx:
    """A running app; a confidential client with a signed-in user and its tokens; another
    confidential client and a public one, both allowed to refresh; a resource server."""

    instance: Instance
    app: App
    tokens: dict[str, str]  # access_token, id_token, refresh_token (scope "openid email")
    other: Credentials
    spa: str
    api: Credentials

    @property
    def http(self) -> httpx.AsyncClient:
        return self.instance.client

    @property
    def state(self) -> AppState:
        return self.instance.state

    @property
    def app_credentials(self) -> Credentials:
        return Credentials(self.app.client_id, self.app.secret)


Scenario = Callable[[Ctx], Awaitable[httpx.Response]]
# Who calls: a client by Basic, the public client by client_id, nobody, or a raw header.
Who = Literal["app", "other", "api", "spa", "nobody"] | bytes
# A change to a default parameter: a new value, a list to repeat it, None to drop it.
Change = str | list[str] | None


# -- building requests --------------------------------------------------------------------------
def raw_basic(user_pass: bytes) -> bytes:
    return b"Basic " + base64.b64encode(user_pass)


def basic(credentials: Credentials) -> bytes:
    return raw_basic(f"{credentials.client_id}:{credentials.secret}".encode())


def identify(ctx: Ctx, who: Who) -> tuple[dict[bytes, bytes], dict[str, str]]:
    """The headers and form fields with which ``who`` presents itself."""
    if isinstance(who, bytes):
        return {b"authorization": who}, {}
    if who == "nobody":
        return {}, {}
    if who == "spa":
        return {}, {"client_id": ctx.spa}
    credentials = {"app": ctx.app_credentials, "other": ctx.other, "api": ctx.api}[who]
    return {b"authorization": basic(credentials)}, {}


def encoded(defaults: dict[str, str], changes: dict[str, Change], raw: bytes = b"") -> bytes:
    """``defaults`` altered by ``changes``, form-encoded, then ``raw`` appended as is (for bytes
    and escapes no encoder would produce)."""
    fields: dict[str, str | list[str]] = dict(defaults)
    for name, value in changes.items():
        if value is None:
            fields.pop(name, None)
        else:
            fields[name] = value
    body = urlencode(fields, doseq=True).encode()
    return b"&".join(part for part in (body, raw) if part)


async def post_form(
    ctx: Ctx,
    path: str,
    defaults: dict[str, str],
    changes: dict[str, Change],
    *,
    who: Who,
    raw: bytes,
    content_type: str | None,
    method: str,
) -> httpx.Response:
    headers, identity = identify(ctx, who)
    if content_type is not None:
        headers[b"content-type"] = content_type.encode()
    body = encoded({**identity, **defaults}, changes, raw)
    return await ctx.http.request(method, path, content=body, headers=headers)


async def refresh(
    ctx: Ctx,
    *,
    who: Who = "app",
    raw: bytes = b"",
    content_type: str | None = FORM,
    method: str = "POST",
    **changes: Change,
) -> httpx.Response:
    """The app's valid refresh request, altered."""
    defaults = {"grant_type": "refresh_token", "refresh_token": ctx.tokens["refresh_token"]}
    return await post_form(
        ctx, "/token", defaults, changes,
        who=who, raw=raw, content_type=content_type, method=method,
    )  # fmt: skip


async def revoke(
    ctx: Ctx,
    *,
    who: Who = "app",
    raw: bytes = b"",
    content_type: str | None = FORM,
    method: str = "POST",
    **changes: Change,
) -> httpx.Response:
    """The app revoking its own refresh token (which a refused request must leave alive)."""
    defaults = {"token": ctx.tokens["refresh_token"]}
    return await post_form(
        ctx, "/revoke", defaults, changes,
        who=who, raw=raw, content_type=content_type, method=method,
    )  # fmt: skip


async def introspect(
    ctx: Ctx,
    *,
    who: Who = "api",
    raw: bytes = b"",
    content_type: str | None = FORM,
    method: str = "POST",
    **changes: Change,
) -> httpx.Response:
    """The resource server introspecting the app's live access token."""
    defaults = {"token": ctx.tokens["access_token"]}
    return await post_form(
        ctx, "/introspect", defaults, changes,
        who=who, raw=raw, content_type=content_type, method=method,
    )  # fmt: skip


def logout_defaults(ctx: Ctx) -> dict[str, str]:
    return {
        "id_token_hint": ctx.tokens["id_token"],
        "post_logout_redirect_uri": AFTER,
        "state": STATE,
    }


async def logout_get(ctx: Ctx, raw: str = "", **changes: Change) -> httpx.Response:
    """The app's valid logout request as a browser sends it, altered."""
    query = encoded(logout_defaults(ctx), changes, raw.encode()).decode()
    with pytest.MonkeyPatch.context() as patch:
        # httpx refuses URLs over 64 KB; the app itself must cope with longer ones.
        patch.setattr("httpx._urlparse.MAX_URL_LENGTH", 1 << 20)
        return await ctx.http.get(f"/logout?{query}")


async def logout_post(
    ctx: Ctx,
    *,
    raw: bytes = b"",
    content_type: str | None = FORM,
    method: str = "POST",
    **changes: Change,
) -> httpx.Response:
    return await post_form(
        ctx, "/logout", logout_defaults(ctx), changes,
        who="nobody", raw=raw, content_type=content_type, method=method,
    )  # fmt: skip


async def with_cookie(ctx: Ctx, value: bytes) -> httpx.Response:
    """A valid logout whose session cookie is hostile."""
    query = urlencode(logout_defaults(ctx))
    ctx.http.cookies.clear()
    headers = {b"cookie": b"idp_session=" + value}
    return await ctx.http.get(f"/logout?{query}", headers=headers)


# -- tokens that are not what they claim --------------------------------------------------------
def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def segment(value: dict[str, Any]) -> str:
    return b64(json.dumps(value).encode())


def part(token: str, index: int) -> dict[str, Any]:
    piece = token.split(".")[index]
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(piece + "=" * (-len(piece) % 4)))
    return decoded


def stranger_signed(ctx: Ctx, token: str) -> str:
    """The same header (kid too) and claims, signed by a fresh key idp never published."""
    signer = ctx.state["keyring"].snapshot.signer
    key = load_signing_key(generate_key(signer.alg, now=datetime.now(UTC)).private_der)
    return jwt.encode(part(token, 0), part(token, 1), key, algorithms=[signer.alg])


def unsigned(token: str) -> str:
    header = {**part(token, 0), "alg": "none"}
    return f"{segment(header)}.{segment(part(token, 1))}."


def hmac_with_public_key(ctx: Ctx, token: str) -> str:
    """Algorithm confusion: HS256 keyed with the published public key."""
    signer = ctx.state["keyring"].snapshot.signer
    header = {**part(token, 0), "alg": "HS256"}
    signing_input = f"{segment(header)}.{segment(part(token, 1))}"
    mac = hmac.new(signer.key.as_pem(private=False), signing_input.encode(), hashlib.sha256)
    return f"{signing_input}.{b64(mac.digest())}"


def resigned(ctx: Ctx, token: str, *, typ: str = "JWT", **changes: Any) -> str:
    """Signed with idp's own active key: only the claims are changed."""
    return ctx.state["keyring"].sign({**part(token, 1), **changes}, typ=typ)


# -- expectations -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Refused:
    """A JSON OAuth error with ``Cache-Control: no-store``."""

    status: int
    error: str


@dataclass(frozen=True)
class Revoked:
    """/revoke's 200: done, or nothing to do (RFC 7009 §2.2)."""


@dataclass(frozen=True)
class Inactive:
    """/introspect's 200 ``{"active": false}`` (RFC 7662 §2.2)."""


@dataclass(frozen=True)
class SignedOut:
    """The signed-out page: no redirect at all."""


@dataclass(frozen=True)
class BackToApp:
    """A 303 to the registered post-logout URI carrying ``state`` and nothing else."""

    state: str = STATE


Expect = Refused | Revoked | Inactive | SignedOut | BackToApp


def case(name: str, scenario: Scenario, expect: Expect) -> pytest.ParameterSet:
    return pytest.param(scenario, expect, id=name)


def bug(name: str, scenario: Scenario, expect: Expect, reason: str) -> pytest.ParameterSet:
    """A row that fails because of a bug in idp/: the expectation is the right answer."""
    marks = pytest.mark.xfail(strict=True, reason=reason)
    return pytest.param(scenario, expect, id=name, marks=marks)


BAD_REQUEST = Refused(400, "invalid_request")
BAD_CLIENT = Refused(401, "invalid_client")
BAD_GRANT = Refused(400, "invalid_grant")
NOT_ALLOWED = Refused(405, "method_not_allowed")
OVERSIZED = b"pad=" + b"a" * (16 * 1024 + 1)
TOO_MANY_FIELDS = b"&".join(b"f%d=1" % i for i in range(100))
ONE_MEGABYTE = b"pad=" + b"a" * (1 << 20)
LATIN1_FORM = FORM + "; charset=iso-8859-1"


TOKEN_CASES = [
    # The refresh_token parameter itself (RFC 6749 §6, §3.1).
    case("refresh-missing", lambda c: refresh(c, refresh_token=None), BAD_REQUEST),
    case("refresh-empty", lambda c: refresh(c, refresh_token=""), BAD_REQUEST),
    case(
        "refresh-duplicated",
        lambda c: refresh(c, refresh_token=[c.tokens["refresh_token"]] * 2),
        BAD_REQUEST,
    ),
    case(
        "refresh-duplicated-differing",
        lambda c: refresh(c, refresh_token=[c.tokens["refresh_token"], "garbage"]),
        BAD_REQUEST,
    ),
    case("refresh-10kb", lambda c: refresh(c, refresh_token="a" * 10_000), BAD_GRANT),
    case("refresh-body-oversized", lambda c: refresh(c, raw=OVERSIZED), BAD_REQUEST),
    case("refresh-body-1mb", lambda c: refresh(c, raw=ONE_MEGABYTE), BAD_REQUEST),
    case(
        "refresh-latin1-charset-declared",
        lambda c: refresh(c, raw=b"scope=\xe9", content_type=LATIN1_FORM),
        BAD_REQUEST,
    ),
    case("refresh-too-many-fields", lambda c: refresh(c, raw=TOO_MANY_FIELDS), BAD_REQUEST),
    case("refresh-nul", lambda c: refresh(c, refresh_token="\x00"), BAD_GRANT),
    case(
        "refresh-real-with-nul",
        lambda c: refresh(c, refresh_token=c.tokens["refresh_token"] + "\x00"),
        BAD_GRANT,
    ),
    case(
        "refresh-real-padded",
        lambda c: refresh(c, refresh_token=f" {c.tokens['refresh_token']} "),
        BAD_GRANT,
    ),
    case(
        "refresh-raw-non-utf8",
        lambda c: refresh(c, refresh_token=None, raw=b"refresh_token=\xff\xfe"),
        BAD_REQUEST,
    ),
    case(
        "refresh-percent-encoded-non-utf8",
        lambda c: refresh(c, refresh_token=None, raw=b"refresh_token=%ff%fe"),
        BAD_REQUEST,
    ),
    case(
        "refresh-utf8-encoded-surrogate",
        lambda c: refresh(c, refresh_token=None, raw=b"refresh_token=%ed%a0%80"),
        BAD_REQUEST,
    ),
    case("refresh-non-ascii", lambda c: refresh(c, refresh_token="\u00e9\u4e2d"), BAD_GRANT),
    case(
        "refresh-access-token",
        lambda c: refresh(c, refresh_token=c.tokens["access_token"]),
        BAD_GRANT,
    ),
    case("refresh-id-token", lambda c: refresh(c, refresh_token=c.tokens["id_token"]), BAD_GRANT),
    case(
        "refresh-token-as-authorization-code",
        lambda c: refresh(
            c,
            grant_type="authorization_code",
            refresh_token=None,
            code=c.tokens["refresh_token"],
            redirect_uri=REDIRECT,
            code_verifier="v" * 43,
        ),
        BAD_GRANT,
    ),
    case(
        "refresh-grant-the-client-lacks",
        lambda c: refresh(c, grant_type="client_credentials"),
        Refused(400, "unauthorized_client"),
    ),
    case(
        "refresh-unsigned-jwt",
        lambda c: refresh(c, refresh_token=unsigned(c.tokens["access_token"])),
        BAD_GRANT,
    ),
    # Scope: narrowed only, never widened (RFC 6749 §6), and well-formed (§3.3).
    case(
        "scope-widened",
        lambda c: refresh(c, scope="openid email roles"),
        Refused(400, "invalid_scope"),
    ),
    case("scope-unregistered", lambda c: refresh(c, scope="admin"), Refused(400, "invalid_scope")),
    case("scope-duplicated", lambda c: refresh(c, scope=["openid", "openid"]), BAD_REQUEST),
    case("scope-with-quote", lambda c: refresh(c, scope='openid"'), BAD_REQUEST),
    case("scope-double-space", lambda c: refresh(c, scope="openid  email"), BAD_REQUEST),
    case("scope-with-nul", lambda c: refresh(c, scope="openid\x00"), BAD_REQUEST),
    case("scope-non-ascii", lambda c: refresh(c, scope="\u00e9mail"), BAD_REQUEST),
    case(
        "scope-percent-encoded-non-utf8",
        lambda c: refresh(c, raw=b"scope=%ff"),
        BAD_REQUEST,
    ),
    # Whose token: bound to its client (RFC 6749 §6, §10.4).
    case("another-clients-token", lambda c: refresh(c, who="other"), BAD_GRANT),
    case("public-client-presents-confidential-token", lambda c: refresh(c, who="spa"), BAD_GRANT),
    case(
        "client-without-refresh-grant",
        lambda c: refresh(c, who="api"),
        Refused(400, "unauthorized_client"),
    ),
    # Client authentication (RFC 6749 §2.3.1).
    case("no-client-authentication", lambda c: refresh(c, who="nobody"), BAD_CLIENT),
    case("basic-not-base64", lambda c: refresh(c, who=b"Basic !!!"), BAD_CLIENT),
    case("basic-without-colon", lambda c: refresh(c, who=raw_basic(b"app")), BAD_CLIENT),
    case("basic-non-utf8", lambda c: refresh(c, who=raw_basic(b"\xff\xfe:x")), BAD_CLIENT),
    case("basic-latin1-header-bytes", lambda c: refresh(c, who=b"Basic \xe9\xff"), BAD_CLIENT),
    case(
        "basic-wrong-secret",
        lambda c: refresh(c, who=raw_basic(f"{c.app.client_id}:{c.app.secret}x".encode())),
        BAD_CLIENT,
    ),
    case(
        "basic-refresh-token-as-secret",
        lambda c: refresh(
            c, who=raw_basic(f"{c.app.client_id}:{c.tokens['refresh_token']}".encode())
        ),
        BAD_CLIENT,
    ),
    case(
        "basic-public-client-empty-secret",
        lambda c: refresh(c, who=raw_basic(f"{c.spa}:".encode())),
        BAD_CLIENT,
    ),
    case("bearer-scheme", lambda c: refresh(c, who=b"Bearer abc"), BAD_CLIENT),
    case(
        "basic-and-client-secret",
        lambda c: refresh(c, client_secret=c.app.secret),
        BAD_REQUEST,
    ),
    case(
        "basic-and-differing-client-id",
        lambda c: refresh(c, client_id=c.other.client_id),
        BAD_CLIENT,
    ),
    # The request's framing.
    case(
        "grant-type-duplicated", lambda c: refresh(c, grant_type=["refresh_token"] * 2), BAD_REQUEST
    ),
    case("content-type-json", lambda c: refresh(c, content_type="application/json"), BAD_REQUEST),
    case("content-type-missing", lambda c: refresh(c, content_type=None), BAD_REQUEST),
    case("get", lambda c: refresh(c, method="GET"), NOT_ALLOWED),
    case("put", lambda c: refresh(c, method="PUT"), NOT_ALLOWED),
]

REVOKE_CASES = [
    # The token parameter (RFC 7009 §2.1).
    case("revoke-token-missing", lambda c: revoke(c, token=None), BAD_REQUEST),
    case("revoke-token-empty", lambda c: revoke(c, token=""), BAD_REQUEST),
    case(
        "revoke-token-duplicated",
        lambda c: revoke(c, token=[c.tokens["refresh_token"]] * 2),
        BAD_REQUEST,
    ),
    case(
        "revoke-token-duplicated-differing",
        lambda c: revoke(c, token=[c.tokens["refresh_token"], c.tokens["access_token"]]),
        BAD_REQUEST,
    ),
    case("revoke-token-10kb", lambda c: revoke(c, token="a" * 10_000), Revoked()),
    case("revoke-token-10kb-dots", lambda c: revoke(c, token="a." * 5_000), Revoked()),
    case("revoke-body-oversized", lambda c: revoke(c, raw=OVERSIZED), BAD_REQUEST),
    case("revoke-body-1mb", lambda c: revoke(c, raw=ONE_MEGABYTE), BAD_REQUEST),
    case("revoke-too-many-fields", lambda c: revoke(c, raw=TOO_MANY_FIELDS), BAD_REQUEST),
    case("revoke-token-nul", lambda c: revoke(c, token="\x00"), Revoked()),
    case(
        "revoke-real-refresh-with-nul",
        lambda c: revoke(c, token=c.tokens["refresh_token"] + "\x00"),
        Revoked(),
    ),
    case(
        "revoke-token-raw-non-utf8",
        lambda c: revoke(c, token=None, raw=b"token=\xff\xfe"),
        BAD_REQUEST,
    ),
    case(
        "revoke-token-percent-encoded-non-utf8",
        lambda c: revoke(c, token=None, raw=b"token=%ff%fe"),
        BAD_REQUEST,
    ),
    case("revoke-token-non-ascii", lambda c: revoke(c, token="\u00e9\u4e2d"), Revoked()),
    case("revoke-token-garbage-jwt", lambda c: revoke(c, token="a.b.c"), Revoked()),
    case(
        "revoke-unsigned-access-token",
        lambda c: revoke(c, token=unsigned(c.tokens["access_token"])),
        Revoked(),
    ),
    case(
        "revoke-stranger-signed-access-token",
        lambda c: revoke(c, token=stranger_signed(c, c.tokens["access_token"])),
        Revoked(),
    ),
    case("revoke-id-token", lambda c: revoke(c, token=c.tokens["id_token"]), Revoked()),
    # token_type_hint: honoured as an order of search, never trusted (§2.1).
    case(
        "revoke-hint-duplicated",
        lambda c: revoke(c, token_type_hint=["refresh_token", "access_token"]),
        BAD_REQUEST,
    ),
    case(
        "revoke-hint-unknown-with-garbage",
        lambda c: revoke(c, token="garbage", token_type_hint="urn:example:bogus"),
        Revoked(),
    ),
    case(
        "revoke-hint-non-utf8",
        lambda c: revoke(c, raw=b"token_type_hint=%ff"),
        BAD_REQUEST,
    ),
    case(
        "revoke-hint-nul-with-garbage",
        lambda c: revoke(c, token="garbage", token_type_hint="refresh_token\x00"),
        Revoked(),
    ),
    case(
        "revoke-hint-10kb-with-garbage",
        lambda c: revoke(c, token="garbage", token_type_hint="a" * 10_000),
        Revoked(),
    ),
    # Client authentication (§2.1) and whose token it is.
    case("revoke-no-client-authentication", lambda c: revoke(c, who="nobody"), BAD_CLIENT),
    case("revoke-basic-not-base64", lambda c: revoke(c, who=b"Basic %%%"), BAD_CLIENT),
    case(
        "revoke-basic-wrong-secret",
        lambda c: revoke(c, who=raw_basic(f"{c.app.client_id}:wrong".encode())),
        BAD_CLIENT,
    ),
    case(
        "revoke-basic-unknown-client",
        lambda c: revoke(c, who=raw_basic(b"nobody:secret")),
        BAD_CLIENT,
    ),
    case(
        "revoke-another-clients-refresh-token",
        lambda c: revoke(c, who="other"),
        Refused(400, "unauthorized_client"),
    ),
    case(
        "revoke-another-clients-access-token",
        lambda c: revoke(c, who="other", token=c.tokens["access_token"]),
        Refused(400, "unauthorized_client"),
    ),
    case(
        "revoke-public-client-confidential-token",
        lambda c: revoke(c, who="spa"),
        Refused(400, "unauthorized_client"),
    ),
    # Framing and method.
    case(
        "revoke-content-type-json",
        lambda c: revoke(c, content_type="application/json"),
        BAD_REQUEST,
    ),
    case("revoke-content-type-text", lambda c: revoke(c, content_type="text/plain"), BAD_REQUEST),
    case("revoke-content-type-missing", lambda c: revoke(c, content_type=None), BAD_REQUEST),
    case("revoke-get", lambda c: revoke(c, method="GET"), NOT_ALLOWED),
    case("revoke-put", lambda c: revoke(c, method="PUT"), NOT_ALLOWED),
]

INTROSPECT_CASES = [
    # The token parameter (RFC 7662 §2.1).
    case("introspect-token-missing", lambda c: introspect(c, token=None), BAD_REQUEST),
    case("introspect-token-empty", lambda c: introspect(c, token=""), BAD_REQUEST),
    case(
        "introspect-token-duplicated",
        lambda c: introspect(c, token=[c.tokens["access_token"]] * 2),
        BAD_REQUEST,
    ),
    case(
        "introspect-token-percent-encoded-non-utf8",
        lambda c: introspect(c, token=None, raw=b"token=%ff%fe"),
        BAD_REQUEST,
    ),
    case(
        "introspect-token-raw-non-utf8",
        lambda c: introspect(c, token=None, raw=b"token=\xc3\x28"),
        BAD_REQUEST,
    ),
    case("introspect-body-oversized", lambda c: introspect(c, raw=OVERSIZED), BAD_REQUEST),
    case("introspect-token-10kb", lambda c: introspect(c, token="a" * 10_000), Inactive()),
    case("introspect-token-nul", lambda c: introspect(c, token="\x00"), Inactive()),
    case(
        "introspect-real-access-with-nul",
        lambda c: introspect(c, token=c.tokens["access_token"] + "\x00"),
        Inactive(),
    ),
    case(
        "introspect-real-refresh-with-nul",
        lambda c: introspect(c, token=c.tokens["refresh_token"] + "\x00"),
        Inactive(),
    ),
    case("introspect-token-non-ascii", lambda c: introspect(c, token="\u00e9\u4e2d"), Inactive()),
    case("introspect-token-garbage-jwt", lambda c: introspect(c, token="a.b.c"), Inactive()),
    case(
        "introspect-eddsa-header",
        lambda c: introspect(c, token=f"{segment({'alg': 'EdDSA', 'typ': 'at+jwt'})}.e30.c2ln"),
        Inactive(),
    ),
    case(
        "introspect-header-is-a-list",
        lambda c: introspect(c, token=f"{b64(b'[1]')}.e30.c2ln"),
        Inactive(),
    ),
    case(
        "introspect-unsigned-access-token",
        lambda c: introspect(c, token=unsigned(c.tokens["access_token"])),
        Inactive(),
    ),
    case(
        "introspect-stranger-signed-access-token",
        lambda c: introspect(c, token=stranger_signed(c, c.tokens["access_token"])),
        Inactive(),
    ),
    case(
        "introspect-hs256-with-public-key",
        lambda c: introspect(c, token=hmac_with_public_key(c, c.tokens["access_token"])),
        Inactive(),
    ),
    case("introspect-id-token", lambda c: introspect(c, token=c.tokens["id_token"]), Inactive()),
    case(
        "introspect-hint-duplicated",
        lambda c: introspect(c, token_type_hint=["access_token", "access_token"]),
        BAD_REQUEST,
    ),
    case(
        "introspect-hint-unknown-with-garbage",
        lambda c: introspect(c, token="garbage", token_type_hint="id_token"),
        Inactive(),
    ),
    # Client authentication (§2.1): a confidential client only.
    case("introspect-no-client-authentication", lambda c: introspect(c, who="nobody"), BAD_CLIENT),
    case("introspect-public-client", lambda c: introspect(c, who="spa"), BAD_CLIENT),
    case("introspect-basic-not-base64", lambda c: introspect(c, who=b"Basic ===="), BAD_CLIENT),
    case(
        "introspect-basic-wrong-secret",
        lambda c: introspect(c, who=raw_basic(f"{c.api.client_id}:{c.app.secret}".encode())),
        BAD_CLIENT,
    ),
    case(
        "introspect-basic-access-token-as-secret",
        lambda c: introspect(
            c, who=raw_basic(f"{c.api.client_id}:{c.tokens['access_token']}".encode())
        ),
        BAD_CLIENT,
    ),
    case(
        "introspect-client-id-without-secret",
        lambda c: introspect(c, who="nobody", client_id=c.api.client_id),
        BAD_CLIENT,
    ),
    case(
        "introspect-basic-and-client-secret",
        lambda c: introspect(c, client_secret=c.api.secret),
        BAD_REQUEST,
    ),
    # Framing and method.
    case(
        "introspect-content-type-json",
        lambda c: introspect(c, content_type="application/json"),
        BAD_REQUEST,
    ),
    case(
        "introspect-content-type-missing", lambda c: introspect(c, content_type=None), BAD_REQUEST
    ),
    case("introspect-get", lambda c: introspect(c, method="GET"), NOT_ALLOWED),
]

LOGOUT_CASES = [
    # The valid request, so that the table can tell a redirect from a refusal.
    case("logout-valid-get", logout_get, BackToApp()),
    case("logout-valid-post", logout_post, BackToApp()),
    # id_token_hint: idp's own ID token, signature verified (§2).
    case("logout-hint-garbage", lambda c: logout_get(c, id_token_hint="not-a-jwt"), SignedOut()),
    case(
        "logout-hint-three-garbage-segments",
        lambda c: logout_get(c, id_token_hint="a.b.c"),
        SignedOut(),
    ),
    case("logout-hint-100kb", lambda c: logout_get(c, id_token_hint="a" * 100_000), SignedOut()),
    case(
        "logout-hint-with-nul",
        lambda c: logout_get(c, id_token_hint=c.tokens["id_token"] + "\x00"),
        SignedOut(),
    ),
    case(
        "logout-hint-percent-encoded-non-utf8",
        lambda c: logout_get(c, "id_token_hint=%ff%fe", id_token_hint=None),
        SignedOut(),
    ),
    case(
        "logout-hint-utf8-encoded-surrogate",
        lambda c: logout_get(c, "id_token_hint=%ed%a0%80", id_token_hint=None),
        SignedOut(),
    ),
    case(
        "logout-hint-access-token",
        lambda c: logout_get(c, id_token_hint=c.tokens["access_token"]),
        SignedOut(),
    ),
    case(
        "logout-hint-refresh-token",
        lambda c: logout_get(c, id_token_hint=c.tokens["refresh_token"]),
        SignedOut(),
    ),
    case(
        "logout-hint-signed-by-another-key",
        lambda c: logout_get(c, id_token_hint=stranger_signed(c, c.tokens["id_token"])),
        SignedOut(),
    ),
    case(
        "logout-hint-unsigned",
        lambda c: logout_get(c, id_token_hint=unsigned(c.tokens["id_token"])),
        SignedOut(),
    ),
    case(
        "logout-hint-hs256-with-public-key",
        lambda c: logout_get(c, id_token_hint=hmac_with_public_key(c, c.tokens["id_token"])),
        SignedOut(),
    ),
    case(
        "logout-hint-other-issuer",
        lambda c: logout_get(
            c, id_token_hint=resigned(c, c.tokens["id_token"], iss="https://evil.example")
        ),
        SignedOut(),
    ),
    case(
        "logout-hint-duplicated",
        lambda c: logout_get(c, id_token_hint=[c.tokens["id_token"]] * 2),
        SignedOut(),
    ),
    # client_id must agree with the hint (§2); the URI must be that client's.
    case(
        "logout-client-id-not-matching-hint",
        lambda c: logout_get(c, client_id=c.other.client_id, post_logout_redirect_uri=OTHER_AFTER),
        SignedOut(),
    ),
    case(
        "logout-hint-for-another-client",
        lambda c: logout_get(
            c,
            id_token_hint=resigned(c, c.tokens["id_token"], aud=c.other.client_id),
            client_id=c.app.client_id,
        ),
        SignedOut(),
    ),
    case(
        "logout-uri-of-another-client",
        lambda c: logout_get(c, post_logout_redirect_uri=OTHER_AFTER),
        SignedOut(),
    ),
    case(
        "logout-client-id-duplicated",
        lambda c: logout_get(c, client_id=[c.app.client_id] * 2),
        SignedOut(),
    ),
    case("logout-client-id-100kb", lambda c: logout_get(c, client_id="a" * 100_000), SignedOut()),
    case(
        "logout-client-id-with-nul",
        lambda c: logout_get(c, id_token_hint=None, client_id=c.app.client_id + "\x00"),
        SignedOut(),
    ),
    # post_logout_redirect_uri: exact match with a registered one, or no redirect (§3).
    case(
        "logout-uri-javascript",
        lambda c: logout_get(c, post_logout_redirect_uri="javascript:alert(document.cookie)"),
        SignedOut(),
    ),
    case(
        "logout-uri-data",
        lambda c: logout_get(
            c, post_logout_redirect_uri="data:text/html,<script>alert(1)</script>"
        ),
        SignedOut(),
    ),
    case(
        "logout-uri-duplicated",
        lambda c: logout_get(c, post_logout_redirect_uri=[AFTER, AFTER]),
        SignedOut(),
    ),
    case(
        "logout-uri-duplicated-differing",
        lambda c: logout_get(c, post_logout_redirect_uri=[AFTER, "https://evil.example/"]),
        SignedOut(),
    ),
    case(
        "logout-uri-with-fragment",
        lambda c: logout_get(c, post_logout_redirect_uri=AFTER + "#https://evil.example"),
        SignedOut(),
    ),
    case(
        "logout-uri-userinfo-trick",
        lambda c: logout_get(c, post_logout_redirect_uri="https://app.example@evil.example/"),
        SignedOut(),
    ),
    case(
        "logout-uri-case-changed",
        lambda c: logout_get(c, post_logout_redirect_uri=AFTER.upper()),
        SignedOut(),
    ),
    case(
        "logout-uri-percent-encoded-non-utf8",
        lambda c: logout_get(c, "post_logout_redirect_uri=%ff", post_logout_redirect_uri=None),
        SignedOut(),
    ),
    # state: passed through as is, only to the registered URI.
    case(
        "logout-state-100kb", lambda c: logout_get(c, state="s" * 100_000), BackToApp("s" * 100_000)
    ),
    case(
        "logout-state-header-injection",
        lambda c: logout_get(c, state="x\r\nLocation: https://evil.example/"),
        BackToApp("x\r\nLocation: https://evil.example/"),
    ),
    case(
        "logout-state-smuggles-a-parameter",
        lambda c: logout_get(c, state="s&state=evil&next=https://evil.example"),
        BackToApp("s&state=evil&next=https://evil.example"),
    ),
    case("logout-state-duplicated", lambda c: logout_get(c, state=["a", "b"]), SignedOut()),
    case(
        "logout-state-percent-encoded-non-utf8",
        lambda c: logout_get(c, "state=%c3%28", state=None),
        SignedOut(),
    ),
    case(
        "logout-too-many-parameters",
        lambda c: logout_get(c, "&".join(f"f{i}=1" for i in range(100))),
        SignedOut(),
    ),
    # The session cookie is hostile too.
    case("logout-cookie-10kb", lambda c: with_cookie(c, b"a" * 10_000), BackToApp()),
    case("logout-cookie-latin1-bytes", lambda c: with_cookie(c, b"\xe9\xff"), BackToApp()),
    # POST: only a form is read (§2 allows GET and POST).
    case(
        "logout-post-content-type-json",
        lambda c: logout_post(c, content_type="application/json"),
        SignedOut(),
    ),
    case(
        "logout-post-content-type-text",
        lambda c: logout_post(c, content_type="text/plain"),
        SignedOut(),
    ),
    case(
        "logout-post-content-type-missing", lambda c: logout_post(c, content_type=None), SignedOut()
    ),
    case(
        "logout-post-raw-non-utf8",
        lambda c: logout_post(c, state=None, raw=b"state=\xff\xfe"),
        SignedOut(),
    ),
    case("logout-post-state-100kb", lambda c: logout_post(c, state="s" * 100_000), SignedOut()),
    case("logout-post-body-1mb", lambda c: logout_post(c, raw=ONE_MEGABYTE), SignedOut()),
    case("logout-put", lambda c: logout_post(c, method="PUT"), NOT_ALLOWED),
    case(
        "logout-post-hint-duplicated",
        lambda c: logout_post(c, id_token_hint=[c.tokens["id_token"]] * 2),
        SignedOut(),
    ),
    case(
        "logout-post-uri-javascript",
        lambda c: logout_post(c, post_logout_redirect_uri="javascript:alert(1)"),
        SignedOut(),
    ),
]


# -- the checks ---------------------------------------------------------------------------------
async def context(instance: Instance, pool: asyncpg.Pool, settings: Settings) -> Ctx:
    grants = ("authorization_code", "refresh_token")
    app, app_secret = await make_client(
        pool, settings, name="app", grant_types=grants, redirect_uris=(REDIRECT,),
        scopes=SCOPES, first_party=True, post_logout_redirect_uris=(AFTER,),
        audiences=("https://api.example",),
    )  # fmt: skip
    other, other_secret = await make_client(
        pool, settings, name="other", grant_types=grants, redirect_uris=(OTHER_REDIRECT,),
        scopes=SCOPES, first_party=True, post_logout_redirect_uris=(OTHER_AFTER,),
    )  # fmt: skip
    spa, _ = await make_client(
        pool, settings, name="spa", grant_types=grants, redirect_uris=(SPA_REDIRECT,),
        scopes=SCOPES, public=True,
    )  # fmt: skip
    # A resource server for the app's tokens (their audience: the API, and the issuer).
    api, api_secret = await make_client(
        pool, settings, name="api", introspect_audiences=("https://api.example",)
    )
    user = await make_user(pool)
    signed_in = App(instance, app.client_id, app_secret, user.email)
    tokens = await signed_in.sign_in(scope="openid email")
    return Ctx(
        instance=instance,
        app=signed_in,
        tokens=tokens,
        other=Credentials(other.client_id, other_secret),
        spa=spa.client_id,
        api=Credentials(api.client_id, api_secret),
    )


def assert_refused(response: httpx.Response, expect: Refused) -> None:
    assert response.status_code == expect.status, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers["cache-control"] == "no-store"
    body = json.loads(response.content)
    assert body["error"] == expect.error, body
    assert set(body) <= {"error", "error_description"}
    if expect.status == 405:
        assert "POST" in response.headers["allow"]
    else:
        assert body["error"] in SPEC_ERRORS
    if expect.status == 401:
        assert response.headers["www-authenticate"].startswith("Basic")


def assert_signed_out(response: httpx.Response) -> None:
    """A page and no redirect: signed out, or (no valid id_token_hint) asked to confirm first."""
    assert response.status_code == 200, response.text
    assert "location" not in response.headers
    assert response.headers["content-type"].startswith("text/html")
    assert "You are signed out" in response.text or "Sign out of idp?" in response.text
    assert_security_headers(response)


def assert_back_to_app(response: httpx.Response, state: str) -> None:
    assert response.status_code == 303, response.text
    assert_security_headers(response)
    location = urlsplit(response.headers["location"])
    assert location[:3] == urlsplit(AFTER)[:3]
    assert not location.fragment
    assert parse_qs(location.query, keep_blank_values=True) == {"state": [state]}


def assert_only_registered_redirects(response: httpx.Response) -> None:
    location = response.headers.get("location")
    if location is not None:
        parts = urlsplit(location)
        assert (parts.scheme, parts.netloc, parts.path) == tuple(urlsplit(AFTER)[:3]), location


@pytest.mark.parametrize(
    ("scenario", "expect"), TOKEN_CASES + REVOKE_CASES + INTROSPECT_CASES + LOGOUT_CASES
)
async def test_hostile_input_to_grant_endpoints_is_refused_without_crashing(
    app_instance: InstanceFactory,
    pool: asyncpg.Pool,
    settings: Settings,
    scenario: Scenario,
    expect: Expect,
) -> None:
    async with app_instance() as instance:
        ctx = await context(instance, pool, settings)
        response = await scenario(ctx)
        assert response.status_code < 500, response.text
        assert "Traceback" not in response.text
        assert_only_registered_redirects(response)
        match expect:
            case Refused():
                assert_refused(response, expect)
            case Revoked():
                assert response.status_code == 200, response.text
                assert response.headers["cache-control"] == "no-store"
            case Inactive():
                assert response.status_code == 200, response.text
                assert response.headers["cache-control"] == "no-store"
                assert json.loads(response.content) == {"active": False}
            case SignedOut():
                assert_signed_out(response)
            case BackToApp(state):
                assert_back_to_app(response, state)
        if not isinstance(expect, SignedOut | BackToApp):
            after = await ctx.app.refresh(ctx.tokens["refresh_token"])
            assert after.status_code == 200, f"the grant did not survive: {after.text}"
