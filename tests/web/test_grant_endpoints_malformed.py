"""Malformed and hostile input to the refresh_token grant at ``POST /token``, to ``POST /revoke``
(RFC 7009), ``POST /introspect`` (RFC 7662) and ``GET|POST /logout`` (OIDC RP-Initiated Logout
1.0): never a 500 and never a traceback. The table's driver and its language:
``tests/web/malformed.py``.

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

from dataclasses import dataclass

import asyncpg
import pytest

from idp.clock import FrozenClock
from idp.keys.keyring import Keyring
from idp.settings import Settings
from tests.conftest import Instance, InstanceFactory
from tests.factories import make_client, make_user
from tests.oauth.flow import REDIRECT, App
from tests.web.malformed import (
    BAD_CLIENT,
    BAD_GRANT,
    BAD_REQUEST,
    FORM,
    JSON,
    NOT_ALLOWED,
    Basic,
    Case,
    Context,
    Endpoint,
    OAuthError,
    Ok,
    Page,
    Redirect,
    b64,
    forget_cookies,
    hmac_with_public_key,
    part,
    run,
    segment,
    stranger_signed,
    unsigned,
)

pytestmark = pytest.mark.usefixtures("real_time")

AFTER = "https://app.example/signed-out"
OTHER_REDIRECT = "https://other.example/callback"
OTHER_AFTER = "https://other.example/signed-out"
SPA_REDIRECT = "https://spa.example/callback"
STATE = "logout-state-1"
SCOPES = ("openid", "email", "roles", "offline_access")
OVERSIZED = b"pad=" + b"a" * (16 * 1024 + 1)
TOO_MANY_FIELDS = b"&".join(b"f%d=1" % i for i in range(100))
ONE_MEGABYTE = b"pad=" + b"a" * (1 << 20)
LATIN1_FORM = FORM + "; charset=iso-8859-1"
LOGOUT_METHODS = frozenset({"GET", "HEAD", "POST"})
EDDSA_HEADER_TOKEN = f"{segment({'alg': 'EdDSA', 'typ': 'at+jwt'})}.e30.c2ln"
LIST_HEADER_TOKEN = f"{b64(b'[1]')}.e30.c2ln"


@dataclass
class Grants(Context):
    """A confidential client ("app") with a signed-in user and its tokens (scope "openid email");
    another confidential client and a public one ("spa"), both allowed to refresh; a resource
    server ("api") for the app's tokens."""

    app: App
    keyring: Keyring
    names: dict[str, str]

    async def value(self, name: str) -> str:
        """A real token or credential; ``unsigned_``, ``stranger_`` or ``hs256_`` before a
        token's name: that token forged (see tests/web/malformed.py)."""
        if name in self.names:
            return self.names[name]
        forgery, _, real = name.partition("_")
        header, claims = part(self.names[real], 0), part(self.names[real], 1)
        match forgery:
            case "unsigned":
                return unsigned(header, claims)
            case "stranger":
                return stranger_signed(header, claims)
            case "hs256":
                return hmac_with_public_key(self.keyring, header, claims)
        raise KeyError(name)


APP = Basic(b"{app_id}:{app_secret}")
OTHER = Basic(b"{other_id}:{other_secret}")
API = Basic(b"{api_id}:{api_secret}")
REFRESH_FIELDS = {"grant_type": "refresh_token", "refresh_token": "{refresh_token}"}
LOGOUT_FIELDS = {"id_token_hint": "{id_token}", "post_logout_redirect_uri": AFTER, "state": STATE}
REFRESH = Endpoint[Grants]("POST", "/token", REFRESH_FIELDS, auth=APP, content_type=FORM)
REVOKE = Endpoint[Grants]("POST", "/revoke", {"token": "{refresh_token}"}, APP, FORM)
INTROSPECT = Endpoint[Grants]("POST", "/introspect", {"token": "{access_token}"}, API, FORM)
LOGOUT = Endpoint[Grants]("GET", "/logout", LOGOUT_FIELDS)
LOGOUT_POST = Endpoint[Grants]("POST", "/logout", LOGOUT_FIELDS, content_type=FORM)

UNAUTHORIZED = OAuthError(400, "unauthorized_client")
BAD_SCOPE = OAuthError(400, "invalid_scope")
REVOKED = Ok()  # RFC 7009 §2.2: done, or nothing to do
INACTIVE = Ok({"active": False})  # RFC 7662 §2.2
# Signed out, or (no valid id_token_hint) asked to confirm first; no redirect at all.
SIGNED_OUT = Page(200, says=("You are signed out", "Sign out of idp?"))
BACK = Redirect(AFTER, {"state": STATE})  # to the registered URI, with state and nothing else

# fmt: off
TOKEN_CASES = [
    # The refresh_token parameter itself (RFC 6749 §6, §3.1).
    REFRESH("refresh-missing", BAD_REQUEST, refresh_token=None),
    REFRESH("refresh-empty", BAD_REQUEST, refresh_token=""),
    REFRESH("refresh-duplicated", BAD_REQUEST, refresh_token=["{refresh_token}"] * 2),
    REFRESH("refresh-duplicated-differing", BAD_REQUEST,
            refresh_token=["{refresh_token}", "garbage"]),
    REFRESH("refresh-10kb", BAD_GRANT, refresh_token="a" * 10_000),
    REFRESH("refresh-body-oversized", BAD_REQUEST, raw=OVERSIZED),
    REFRESH("refresh-body-1mb", BAD_REQUEST, raw=ONE_MEGABYTE),
    REFRESH("refresh-latin1-charset-declared", BAD_REQUEST, raw=b"scope=\xe9",
            content_type=LATIN1_FORM),
    REFRESH("refresh-too-many-fields", BAD_REQUEST, raw=TOO_MANY_FIELDS),
    REFRESH("refresh-nul", BAD_GRANT, refresh_token="\x00"),
    REFRESH("refresh-real-with-nul", BAD_GRANT, refresh_token="{refresh_token}\x00"),
    REFRESH("refresh-real-padded", BAD_GRANT, refresh_token=" {refresh_token} "),
    REFRESH("refresh-raw-non-utf8", BAD_REQUEST, refresh_token=None, raw=b"refresh_token=\xff\xfe"),
    REFRESH("refresh-percent-encoded-non-utf8", BAD_REQUEST, refresh_token=None,
            raw=b"refresh_token=%ff%fe"),
    REFRESH("refresh-utf8-encoded-surrogate", BAD_REQUEST, refresh_token=None,
            raw=b"refresh_token=%ed%a0%80"),
    REFRESH("refresh-non-ascii", BAD_GRANT, refresh_token="\u00e9\u4e2d"),
    REFRESH("refresh-access-token", BAD_GRANT, refresh_token="{access_token}"),
    REFRESH("refresh-id-token", BAD_GRANT, refresh_token="{id_token}"),
    REFRESH("refresh-token-as-authorization-code", BAD_GRANT, grant_type="authorization_code",
            refresh_token=None, code="{refresh_token}", redirect_uri=REDIRECT,
            code_verifier="v" * 43),
    REFRESH("refresh-grant-the-client-lacks", UNAUTHORIZED, grant_type="client_credentials"),
    REFRESH("refresh-unsigned-jwt", BAD_GRANT, refresh_token="{unsigned_access_token}"),
    # Scope: narrowed only, never widened (RFC 6749 §6), and well-formed (§3.3).
    REFRESH("scope-widened", BAD_SCOPE, scope="openid email roles"),
    REFRESH("scope-unregistered", BAD_SCOPE, scope="admin"),
    REFRESH("scope-duplicated", BAD_REQUEST, scope=["openid", "openid"]),
    REFRESH("scope-with-quote", BAD_REQUEST, scope='openid"'),
    REFRESH("scope-double-space", BAD_REQUEST, scope="openid  email"),
    REFRESH("scope-with-nul", BAD_REQUEST, scope="openid\x00"),
    REFRESH("scope-non-ascii", BAD_REQUEST, scope="\u00e9mail"),
    REFRESH("scope-percent-encoded-non-utf8", BAD_REQUEST, raw=b"scope=%ff"),
    # Whose token: bound to its client (RFC 6749 §6, §10.4).
    REFRESH("another-clients-token", BAD_GRANT, auth=OTHER),
    REFRESH("public-client-presents-confidential-token", BAD_GRANT, auth=None,
            client_id="{spa_id}"),
    REFRESH("client-without-refresh-grant", UNAUTHORIZED, auth=API),
    # Client authentication (RFC 6749 §2.3.1).
    REFRESH("no-client-authentication", BAD_CLIENT, auth=None),
    REFRESH("basic-not-base64", BAD_CLIENT, auth=b"Basic !!!"),
    REFRESH("basic-without-colon", BAD_CLIENT, auth=Basic(b"app")),
    REFRESH("basic-non-utf8", BAD_CLIENT, auth=Basic(b"\xff\xfe:x")),
    REFRESH("basic-latin1-header-bytes", BAD_CLIENT, auth=b"Basic \xe9\xff"),
    REFRESH("basic-wrong-secret", BAD_CLIENT, auth=Basic(b"{app_id}:{app_secret}x")),
    REFRESH("basic-refresh-token-as-secret", BAD_CLIENT, auth=Basic(b"{app_id}:{refresh_token}")),
    REFRESH("basic-public-client-empty-secret", BAD_CLIENT, auth=Basic(b"{spa_id}:")),
    REFRESH("bearer-scheme", BAD_CLIENT, auth=b"Bearer abc"),
    REFRESH("basic-and-client-secret", BAD_REQUEST, client_secret="{app_secret}"),
    REFRESH("basic-and-differing-client-id", BAD_CLIENT, client_id="{other_id}"),
    # The request's framing.
    REFRESH("grant-type-duplicated", BAD_REQUEST, grant_type=["refresh_token"] * 2),
    REFRESH("content-type-json", BAD_REQUEST, content_type=JSON),
    REFRESH("content-type-missing", BAD_REQUEST, content_type=None),
    REFRESH("get", NOT_ALLOWED, method="GET"),
    REFRESH("put", NOT_ALLOWED, method="PUT"),
]

REVOKE_CASES = [
    # The token parameter (RFC 7009 §2.1).
    REVOKE("revoke-token-missing", BAD_REQUEST, token=None),
    REVOKE("revoke-token-empty", BAD_REQUEST, token=""),
    REVOKE("revoke-token-duplicated", BAD_REQUEST, token=["{refresh_token}"] * 2),
    REVOKE("revoke-token-duplicated-differing", BAD_REQUEST,
           token=["{refresh_token}", "{access_token}"]),
    REVOKE("revoke-token-10kb", REVOKED, token="a" * 10_000),
    REVOKE("revoke-token-10kb-dots", REVOKED, token="a." * 5_000),
    REVOKE("revoke-body-oversized", BAD_REQUEST, raw=OVERSIZED),
    REVOKE("revoke-body-1mb", BAD_REQUEST, raw=ONE_MEGABYTE),
    REVOKE("revoke-too-many-fields", BAD_REQUEST, raw=TOO_MANY_FIELDS),
    REVOKE("revoke-token-nul", REVOKED, token="\x00"),
    REVOKE("revoke-real-refresh-with-nul", REVOKED, token="{refresh_token}\x00"),
    REVOKE("revoke-token-raw-non-utf8", BAD_REQUEST, token=None, raw=b"token=\xff\xfe"),
    REVOKE("revoke-token-percent-encoded-non-utf8", BAD_REQUEST, token=None, raw=b"token=%ff%fe"),
    REVOKE("revoke-token-non-ascii", REVOKED, token="\u00e9\u4e2d"),
    REVOKE("revoke-token-garbage-jwt", REVOKED, token="a.b.c"),
    REVOKE("revoke-unsigned-access-token", REVOKED, token="{unsigned_access_token}"),
    REVOKE("revoke-stranger-signed-access-token", REVOKED, token="{stranger_access_token}"),
    REVOKE("revoke-id-token", REVOKED, token="{id_token}"),
    # token_type_hint: honoured as an order of search, never trusted (§2.1).
    REVOKE("revoke-hint-duplicated", BAD_REQUEST,
           token_type_hint=["refresh_token", "access_token"]),
    REVOKE("revoke-hint-unknown-with-garbage", REVOKED, token="garbage",
           token_type_hint="urn:example:bogus"),
    REVOKE("revoke-hint-non-utf8", BAD_REQUEST, raw=b"token_type_hint=%ff"),
    REVOKE("revoke-hint-nul-with-garbage", REVOKED, token="garbage",
           token_type_hint="refresh_token\x00"),
    REVOKE("revoke-hint-10kb-with-garbage", REVOKED, token="garbage", token_type_hint="a" * 10_000),
    # Client authentication (§2.1) and whose token it is.
    REVOKE("revoke-no-client-authentication", BAD_CLIENT, auth=None),
    REVOKE("revoke-basic-not-base64", BAD_CLIENT, auth=b"Basic %%%"),
    REVOKE("revoke-basic-wrong-secret", BAD_CLIENT, auth=Basic(b"{app_id}:wrong")),
    REVOKE("revoke-basic-unknown-client", BAD_CLIENT, auth=Basic(b"nobody:secret")),
    REVOKE("revoke-another-clients-refresh-token", UNAUTHORIZED, auth=OTHER),
    REVOKE("revoke-another-clients-access-token", UNAUTHORIZED, auth=OTHER, token="{access_token}"),
    REVOKE("revoke-public-client-confidential-token", UNAUTHORIZED, auth=None,
           client_id="{spa_id}"),
    # Framing and method.
    REVOKE("revoke-content-type-json", BAD_REQUEST, content_type=JSON),
    REVOKE("revoke-content-type-text", BAD_REQUEST, content_type="text/plain"),
    REVOKE("revoke-content-type-missing", BAD_REQUEST, content_type=None),
    REVOKE("revoke-get", NOT_ALLOWED, method="GET"),
    REVOKE("revoke-put", NOT_ALLOWED, method="PUT"),
]

INTROSPECT_CASES = [
    # The token parameter (RFC 7662 §2.1).
    INTROSPECT("introspect-token-missing", BAD_REQUEST, token=None),
    INTROSPECT("introspect-token-empty", BAD_REQUEST, token=""),
    INTROSPECT("introspect-token-duplicated", BAD_REQUEST, token=["{access_token}"] * 2),
    INTROSPECT("introspect-token-percent-encoded-non-utf8", BAD_REQUEST, token=None,
               raw=b"token=%ff%fe"),
    INTROSPECT("introspect-token-raw-non-utf8", BAD_REQUEST, token=None, raw=b"token=\xc3\x28"),
    INTROSPECT("introspect-body-oversized", BAD_REQUEST, raw=OVERSIZED),
    INTROSPECT("introspect-token-10kb", INACTIVE, token="a" * 10_000),
    INTROSPECT("introspect-token-nul", INACTIVE, token="\x00"),
    INTROSPECT("introspect-real-access-with-nul", INACTIVE, token="{access_token}\x00"),
    INTROSPECT("introspect-real-refresh-with-nul", INACTIVE, token="{refresh_token}\x00"),
    INTROSPECT("introspect-token-non-ascii", INACTIVE, token="\u00e9\u4e2d"),
    INTROSPECT("introspect-token-garbage-jwt", INACTIVE, token="a.b.c"),
    INTROSPECT("introspect-eddsa-header", INACTIVE, token=EDDSA_HEADER_TOKEN),
    INTROSPECT("introspect-header-is-a-list", INACTIVE, token=LIST_HEADER_TOKEN),
    INTROSPECT("introspect-unsigned-access-token", INACTIVE, token="{unsigned_access_token}"),
    INTROSPECT("introspect-stranger-signed-access-token", INACTIVE,
               token="{stranger_access_token}"),
    INTROSPECT("introspect-hs256-with-public-key", INACTIVE, token="{hs256_access_token}"),
    INTROSPECT("introspect-id-token", INACTIVE, token="{id_token}"),
    INTROSPECT("introspect-hint-duplicated", BAD_REQUEST, token_type_hint=["access_token"] * 2),
    INTROSPECT("introspect-hint-unknown-with-garbage", INACTIVE, token="garbage",
               token_type_hint="id_token"),
    # Client authentication (§2.1): a confidential client only.
    INTROSPECT("introspect-no-client-authentication", BAD_CLIENT, auth=None),
    INTROSPECT("introspect-public-client", BAD_CLIENT, auth=None, client_id="{spa_id}"),
    INTROSPECT("introspect-basic-not-base64", BAD_CLIENT, auth=b"Basic ===="),
    INTROSPECT("introspect-basic-wrong-secret", BAD_CLIENT, auth=Basic(b"{api_id}:{app_secret}")),
    INTROSPECT("introspect-basic-access-token-as-secret", BAD_CLIENT,
               auth=Basic(b"{api_id}:{access_token}")),
    INTROSPECT("introspect-client-id-without-secret", BAD_CLIENT, auth=None, client_id="{api_id}"),
    INTROSPECT("introspect-basic-and-client-secret", BAD_REQUEST, client_secret="{api_secret}"),
    # Framing and method.
    INTROSPECT("introspect-content-type-json", BAD_REQUEST, content_type=JSON),
    INTROSPECT("introspect-content-type-missing", BAD_REQUEST, content_type=None),
    INTROSPECT("introspect-get", NOT_ALLOWED, method="GET"),
]

LOGOUT_CASES = [
    # The valid request, so that the table can tell a redirect from a refusal.
    LOGOUT("logout-valid-get", BACK),
    LOGOUT_POST("logout-valid-post", BACK),
    # id_token_hint: idp's own ID token, signature verified (§2).
    LOGOUT("logout-hint-garbage", SIGNED_OUT, id_token_hint="not-a-jwt"),
    LOGOUT("logout-hint-three-garbage-segments", SIGNED_OUT, id_token_hint="a.b.c"),
    LOGOUT("logout-hint-100kb", SIGNED_OUT, id_token_hint="a" * 100_000),
    LOGOUT("logout-hint-with-nul", SIGNED_OUT, id_token_hint="{id_token}\x00"),
    LOGOUT("logout-hint-percent-encoded-non-utf8", SIGNED_OUT, id_token_hint=None,
           raw=b"id_token_hint=%ff%fe"),
    LOGOUT("logout-hint-utf8-encoded-surrogate", SIGNED_OUT, id_token_hint=None,
           raw=b"id_token_hint=%ed%a0%80"),
    LOGOUT("logout-hint-access-token", SIGNED_OUT, id_token_hint="{access_token}"),
    LOGOUT("logout-hint-refresh-token", SIGNED_OUT, id_token_hint="{refresh_token}"),
    LOGOUT("logout-hint-signed-by-another-key", SIGNED_OUT, id_token_hint="{stranger_id_token}"),
    LOGOUT("logout-hint-unsigned", SIGNED_OUT, id_token_hint="{unsigned_id_token}"),
    LOGOUT("logout-hint-hs256-with-public-key", SIGNED_OUT, id_token_hint="{hs256_id_token}"),
    LOGOUT("logout-hint-other-issuer", SIGNED_OUT, id_token_hint="{id_token_of_another_issuer}"),
    LOGOUT("logout-hint-duplicated", SIGNED_OUT, id_token_hint=["{id_token}"] * 2),
    # client_id must agree with the hint (§2); the URI must be that client's.
    LOGOUT("logout-client-id-not-matching-hint", SIGNED_OUT, client_id="{other_id}",
           post_logout_redirect_uri=OTHER_AFTER),
    LOGOUT("logout-hint-for-another-client", SIGNED_OUT, id_token_hint="{id_token_for_other}",
           client_id="{app_id}"),
    LOGOUT("logout-uri-of-another-client", SIGNED_OUT, post_logout_redirect_uri=OTHER_AFTER),
    LOGOUT("logout-client-id-duplicated", SIGNED_OUT, client_id=["{app_id}"] * 2),
    LOGOUT("logout-client-id-100kb", SIGNED_OUT, client_id="a" * 100_000),
    LOGOUT("logout-client-id-with-nul", SIGNED_OUT, id_token_hint=None, client_id="{app_id}\x00"),
    # post_logout_redirect_uri: exact match with a registered one, or no redirect (§3).
    LOGOUT("logout-uri-javascript", SIGNED_OUT,
           post_logout_redirect_uri="javascript:alert(document.cookie)"),
    LOGOUT("logout-uri-data", SIGNED_OUT,
           post_logout_redirect_uri="data:text/html,<script>alert(1)</script>"),
    LOGOUT("logout-uri-duplicated", SIGNED_OUT, post_logout_redirect_uri=[AFTER, AFTER]),
    LOGOUT("logout-uri-duplicated-differing", SIGNED_OUT,
           post_logout_redirect_uri=[AFTER, "https://evil.example/"]),
    LOGOUT("logout-uri-with-fragment", SIGNED_OUT,
           post_logout_redirect_uri=AFTER + "#https://evil.example"),
    LOGOUT("logout-uri-userinfo-trick", SIGNED_OUT,
           post_logout_redirect_uri="https://app.example@evil.example/"),
    LOGOUT("logout-uri-case-changed", SIGNED_OUT, post_logout_redirect_uri=AFTER.upper()),
    LOGOUT("logout-uri-percent-encoded-non-utf8", SIGNED_OUT, post_logout_redirect_uri=None,
           raw=b"post_logout_redirect_uri=%ff"),
    # state: passed through as is, only to the registered URI.
    LOGOUT("logout-state-100kb", Redirect(AFTER, {"state": "s" * 100_000}), state="s" * 100_000),
    LOGOUT("logout-state-header-injection",
           Redirect(AFTER, {"state": "x\r\nLocation: https://evil.example/"}),
           state="x\r\nLocation: https://evil.example/"),
    LOGOUT("logout-state-smuggles-a-parameter",
           Redirect(AFTER, {"state": "s&state=evil&next=https://evil.example"}),
           state="s&state=evil&next=https://evil.example"),
    LOGOUT("logout-state-duplicated", SIGNED_OUT, state=["a", "b"]),
    LOGOUT("logout-state-percent-encoded-non-utf8", SIGNED_OUT, state=None, raw=b"state=%c3%28"),
    LOGOUT("logout-too-many-parameters", SIGNED_OUT, raw=TOO_MANY_FIELDS),
    # The session cookie is hostile too.
    LOGOUT("logout-cookie-10kb", BACK, steps=[forget_cookies],
           headers={"cookie": b"idp_session=" + b"a" * 10_000}),
    LOGOUT("logout-cookie-latin1-bytes", BACK, steps=[forget_cookies],
           headers={"cookie": b"idp_session=\xe9\xff"}),
    # POST: only a form is read (§2 allows GET and POST).
    LOGOUT_POST("logout-post-content-type-json", SIGNED_OUT, content_type=JSON),
    LOGOUT_POST("logout-post-content-type-text", SIGNED_OUT, content_type="text/plain"),
    LOGOUT_POST("logout-post-content-type-missing", SIGNED_OUT, content_type=None),
    LOGOUT_POST("logout-post-raw-non-utf8", SIGNED_OUT, state=None, raw=b"state=\xff\xfe"),
    LOGOUT_POST("logout-post-state-100kb", SIGNED_OUT, state="s" * 100_000),
    LOGOUT_POST("logout-post-body-1mb", SIGNED_OUT, raw=ONE_MEGABYTE),
    LOGOUT_POST("logout-put", OAuthError(405, "method_not_allowed", LOGOUT_METHODS), method="PUT"),
    LOGOUT_POST("logout-post-hint-duplicated", SIGNED_OUT, id_token_hint=["{id_token}"] * 2),
    LOGOUT_POST("logout-post-uri-javascript", SIGNED_OUT,
                post_logout_redirect_uri="javascript:alert(1)"),
]
# fmt: on


async def context(
    instance: Instance, clock: FrozenClock, pool: asyncpg.Pool, settings: Settings
) -> Grants:
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
    app_client = App(instance, app.client_id, app_secret, user.email)
    tokens = await app_client.sign_in(scope="openid email")
    keyring = instance.state["keyring"]
    id_claims = part(tokens["id_token"], 1)
    names = {
        **tokens,
        "app_id": app.client_id,
        "app_secret": app_secret,
        "other_id": other.client_id,
        "other_secret": other_secret,
        "spa_id": spa.client_id,
        "api_id": api.client_id,
        "api_secret": api_secret,
        # Signed with idp's own active key: only a claim is changed.
        "id_token_of_another_issuer": keyring.sign({**id_claims, "iss": "https://evil.example"}),
        "id_token_for_other": keyring.sign({**id_claims, "aud": other.client_id}),
    }
    return Grants(instance.client, clock, app_client, keyring, names)


@pytest.mark.parametrize("case", TOKEN_CASES + REVOKE_CASES + INTROSPECT_CASES + LOGOUT_CASES)
async def test_hostile_input_to_grant_endpoints_is_refused_without_crashing(
    app_instance: InstanceFactory,
    pool: asyncpg.Pool,
    settings: Settings,
    clock: FrozenClock,
    case: Case[Grants],
) -> None:
    async with app_instance() as instance:
        ctx = await context(instance, clock, pool, settings)
        await run(ctx, case)
        if not isinstance(case.expect, Page | Redirect):
            after = await ctx.app.refresh(ctx.names["refresh_token"])
            assert after.status_code == 200, f"the grant did not survive: {after.text}"
