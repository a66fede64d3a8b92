"""Malformed requests to ``POST /token``: each gets a 4xx JSON error with a spec error code
(RFC 6749 §5.2, RFC 8707 §2), never a 500 and never a traceback."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass, field

import asyncpg
import pytest

from idp.settings import Settings
from tests.conftest import InstanceFactory
from tests.factories import make_client

FORM = b"application/x-www-form-urlencoded"
GRANT = b"grant_type=client_credentials"
SPEC_ERRORS = frozenset(
    {
        "invalid_request",
        "invalid_client",
        "invalid_grant",
        "unauthorized_client",
        "unsupported_grant_type",
        "invalid_scope",
        "invalid_target",
    }
)
REGISTERED_AUDIENCE = "https://api.example"


@dataclass(frozen=True)
class Credentials:
    client_id: str
    secret: str


@dataclass(frozen=True)
class Sent:
    body: bytes = b""
    headers: dict[bytes, bytes] = field(default_factory=dict)
    method: str = "POST"


Build = Callable[[Credentials], Sent]


def basic(credentials: Credentials) -> bytes:
    return raw_basic(f"{credentials.client_id}:{credentials.secret}".encode())


def raw_basic(user_pass: bytes) -> bytes:
    return b"Basic " + base64.b64encode(user_pass)


def post_auth(credentials: Credentials) -> bytes:
    return f"client_id={credentials.client_id}&client_secret={credentials.secret}".encode()


def sent(
    body: bytes, authorization: bytes | None = None, content_type: bytes | None = FORM
) -> Sent:
    headers: dict[bytes, bytes] = {}
    if authorization is not None:
        headers[b"authorization"] = authorization
    if content_type is not None:
        headers[b"content-type"] = content_type
    return Sent(body, headers)


def case(name: str, build: Build, status: int, error: str) -> pytest.ParameterSet:
    return pytest.param(build, status, error, id=name)


CASES = [
    # The body's framing: only application/x-www-form-urlencoded, UTF-8, bounded.
    case("empty-body", lambda c: sent(b"", basic(c)), 400, "invalid_request"),
    case("empty-body-no-auth", lambda c: sent(b""), 401, "invalid_client"),
    case("only-separators", lambda c: sent(b"&&&=&", basic(c)), 400, "invalid_request"),
    case(
        "oversized-body",
        lambda c: sent(GRANT + b"&pad=" + b"a" * (16 * 1024 + 1), basic(c)),
        400,
        "invalid_request",
    ),
    case(
        "oversized-body-no-auth",
        lambda c: sent(GRANT + b"&" + post_auth(c) + b"&pad=" + b"a" * 20_000),
        400,
        "invalid_request",
    ),
    case(
        "too-many-fields",
        lambda c: sent(GRANT + b"".join(b"&f%d=1" % i for i in range(100)), basic(c)),
        400,
        "invalid_request",
    ),
    case(
        "content-type-json",
        lambda c: sent(b'{"grant_type": "client_credentials"}', basic(c), b"application/json"),
        400,
        "invalid_request",
    ),
    case(
        "content-type-text-plain",
        lambda c: sent(GRANT, basic(c), b"text/plain"),
        400,
        "invalid_request",
    ),
    case(
        "content-type-multipart",
        lambda c: sent(
            b'--b\r\nContent-Disposition: form-data; name="grant_type"\r\n\r\n'
            b"client_credentials\r\n--b--\r\n",
            basic(c),
            b"multipart/form-data; boundary=b",
        ),
        400,
        "invalid_request",
    ),
    case(
        "content-type-missing",
        lambda c: sent(GRANT, basic(c), None),
        400,
        "invalid_request",
    ),
    case(
        "content-type-form-prefix",
        lambda c: sent(GRANT, basic(c), FORM + b"-evil"),
        400,
        "invalid_request",
    ),
    case(
        "invalid-utf8-raw",
        lambda c: sent(GRANT + b"&scope=r\xffad", basic(c)),
        400,
        "invalid_request",
    ),
    case(
        "invalid-utf8-percent-encoded",
        lambda c: sent(GRANT + b"&scope=%ff", basic(c)),
        400,
        "invalid_request",
    ),
    case(
        "invalid-utf8-percent-encoded-client-id",
        lambda c: sent(GRANT + b"&client_id=%ff%fe&client_secret=x"),
        400,
        "invalid_request",
    ),
    case(
        "utf8-encoded-surrogate",
        lambda c: sent(GRANT + b"&scope=%ed%a0%80", basic(c)),
        400,
        "invalid_request",
    ),
    case(
        "invalid-utf8-in-field-name",
        lambda c: sent(GRANT + b"&%ff=1", basic(c)),
        400,
        "invalid_request",
    ),
    case(
        "latin1-charset-declared",
        lambda c: sent(GRANT + b"&scope=r\xe9ad", basic(c), FORM + b"; charset=iso-8859-1"),
        400,
        "invalid_request",
    ),
    # RFC 6749 §3.1: parameters MUST NOT be included more than once.
    case("missing-grant-type", lambda c: sent(b"scope=read", basic(c)), 400, "invalid_request"),
    case("empty-grant-type", lambda c: sent(b"grant_type=", basic(c)), 400, "invalid_request"),
    case(
        "duplicated-grant-type",
        lambda c: sent(GRANT + b"&" + GRANT, basic(c)),
        400,
        "invalid_request",
    ),
    case(
        "duplicated-grant-type-differing",
        lambda c: sent(GRANT + b"&grant_type=password", basic(c)),
        400,
        "invalid_request",
    ),
    case(
        "duplicated-client-id",
        lambda c: sent(GRANT + f"&client_id={c.client_id}&".encode() + post_auth(c)),
        400,
        "invalid_request",
    ),
    case(
        "duplicated-client-secret",
        lambda c: sent(GRANT + f"&client_secret={c.secret}&".encode() + post_auth(c)),
        400,
        "invalid_request",
    ),
    case(
        "duplicated-scope",
        lambda c: sent(GRANT + b"&scope=read&scope=read", basic(c)),
        400,
        "invalid_request",
    ),
    # Client authentication (RFC 6749 §2.3.1): 401 with a Basic challenge.
    case("no-authentication", lambda c: sent(GRANT), 401, "invalid_client"),
    case(
        "client-secret-without-client-id",
        lambda c: sent(GRANT + f"&client_secret={c.secret}".encode()),
        401,
        "invalid_client",
    ),
    case(
        "basic-not-base64",
        lambda c: sent(GRANT, b"Basic !!!not-base64!!!"),
        401,
        "invalid_client",
    ),
    case(
        "basic-bad-base64-padding",
        lambda c: sent(GRANT, b"Basic YWJj="),
        401,
        "invalid_client",
    ),
    case(
        "basic-without-colon",
        lambda c: sent(GRANT, raw_basic(c.client_id.encode())),
        401,
        "invalid_client",
    ),
    case(
        "basic-non-utf8-after-decoding",
        lambda c: sent(GRANT, raw_basic(b"\xff\xfe:" + c.secret.encode())),
        401,
        "invalid_client",
    ),
    case(
        "basic-percent-encoded-invalid-utf8",
        lambda c: sent(GRANT, raw_basic(b"%ff%fe:" + c.secret.encode())),
        401,
        "invalid_client",
    ),
    case(
        "basic-non-ascii-header",
        lambda c: sent(GRANT, b"Basic \xe9\xe9\xe9\xe9"),
        401,
        "invalid_client",
    ),
    case("basic-empty", lambda c: sent(GRANT, b"Basic "), 401, "invalid_client"),
    case("basic-scheme-alone", lambda c: sent(GRANT, b"Basic"), 401, "invalid_client"),
    case("authorization-empty", lambda c: sent(GRANT, b""), 401, "invalid_client"),
    case("bearer-scheme", lambda c: sent(GRANT, b"Bearer x"), 401, "invalid_client"),
    case(
        "basic-empty-client-id",
        lambda c: sent(GRANT, raw_basic(b":" + c.secret.encode())),
        401,
        "invalid_client",
    ),
    case(
        "basic-wrong-secret",
        lambda c: sent(GRANT, raw_basic(f"{c.client_id}:{c.secret}x".encode())),
        401,
        "invalid_client",
    ),
    case(
        "basic-id-mismatching-form-client-id",
        lambda c: sent(GRANT + b"&client_id=someone-else", basic(c)),
        401,
        "invalid_client",
    ),
    case(
        "basic-and-client-secret",
        lambda c: sent(GRANT + f"&client_secret={c.secret}".encode(), basic(c)),
        400,
        "invalid_request",
    ),
    case(
        "very-long-client-id",
        lambda c: sent(GRANT + b"&client_id=" + b"a" * 10_000 + b"&client_secret=x"),
        401,
        "invalid_client",
    ),
    case(
        "very-long-basic-header",
        lambda c: sent(GRANT, raw_basic(b"a" * 60_000 + b":x")),
        401,
        "invalid_client",
    ),
    case(
        "nul-in-client-id",
        lambda c: sent(GRANT + b"&client_id=a%00b&client_secret=x"),
        401,
        "invalid_client",
    ),
    case(
        "nul-in-basic-client-id",
        lambda c: sent(GRANT, raw_basic(b"a\x00b:x")),
        401,
        "invalid_client",
    ),
    case(
        "nul-in-public-client-id",
        lambda c: sent(GRANT + b"&client_id=%00"),
        401,
        "invalid_client",
    ),
    case(
        "nul-in-secret",
        lambda c: sent(GRANT + f"&client_id={c.client_id}&client_secret=%00".encode()),
        401,
        "invalid_client",
    ),
    # The grant's own parameters.
    case(
        "unknown-grant-type",
        lambda c: sent(b"grant_type=urn:example:unknown", basic(c)),
        400,
        "unsupported_grant_type",
    ),
    case(
        "grant-type-with-spaces",
        lambda c: sent(b"grant_type=client+credentials", basic(c)),
        400,
        "unsupported_grant_type",
    ),
    case(
        "grant-type-padded",
        lambda c: sent(b"grant_type=%20client_credentials%20", basic(c)),
        400,
        "unsupported_grant_type",
    ),
    case(
        "grant-type-upper-case",
        lambda c: sent(b"grant_type=CLIENT_CREDENTIALS", basic(c)),
        400,
        "unsupported_grant_type",
    ),
    case(
        "grant-type-with-nul",
        lambda c: sent(b"grant_type=client_credentials%00", basic(c)),
        400,
        "unsupported_grant_type",
    ),
    case(
        "semicolon-separated-fields",
        lambda c: sent(b"grant_type=client_credentials;scope=read", basic(c)),
        400,
        "unsupported_grant_type",
    ),
    case(
        "password-grant",
        lambda c: sent(b"grant_type=password&username=a&password=b", basic(c)),
        400,
        "unsupported_grant_type",
    ),
    case(
        "scope-with-quote",
        lambda c: sent(GRANT + b"&scope=read%22", basic(c)),
        400,
        "invalid_request",
    ),
    case(
        "scope-with-backslash",
        lambda c: sent(GRANT + b"&scope=read%5c", basic(c)),
        400,
        "invalid_request",
    ),
    case(
        "scope-with-double-space",
        lambda c: sent(GRANT + b"&scope=read++write", basic(c)),
        400,
        "invalid_request",
    ),
    case(
        "scope-with-leading-space",
        lambda c: sent(GRANT + b"&scope=+read", basic(c)),
        400,
        "invalid_request",
    ),
    case(
        "scope-with-tab",
        lambda c: sent(GRANT + b"&scope=read%09write", basic(c)),
        400,
        "invalid_request",
    ),
    case(
        "scope-with-nul",
        lambda c: sent(GRANT + b"&scope=read%00", basic(c)),
        400,
        "invalid_request",
    ),
    case(
        "scope-non-ascii",
        lambda c: sent(GRANT + b"&scope=r%c3%a9ad", basic(c)),
        400,
        "invalid_request",
    ),
    case(
        "scope-unregistered",
        lambda c: sent(GRANT + b"&scope=admin", basic(c)),
        400,
        "invalid_scope",
    ),
    case(
        "scope-openid",
        lambda c: sent(GRANT + b"&scope=openid", basic(c)),
        400,
        "invalid_scope",
    ),
    case(
        "resource-unregistered",
        lambda c: sent(GRANT + b"&resource=https://evil.example", basic(c)),
        400,
        "invalid_target",
    ),
    case(
        "resource-with-nul",
        lambda c: sent(GRANT + b"&resource=https://api.example%00", basic(c)),
        400,
        "invalid_target",
    ),
    case(
        "audience-unregistered",
        lambda c: sent(GRANT + b"&audience=https://evil.example", basic(c)),
        400,
        "invalid_target",
    ),
    # Methods other than POST (RFC 6749 §3.2: the client MUST use POST).
    case("get", lambda c: Sent(method="GET"), 405, "method_not_allowed"),
    case(
        "put", lambda c: Sent(GRANT, {b"authorization": basic(c)}, "PUT"), 405, "method_not_allowed"
    ),
]


@pytest.mark.parametrize(("build", "status", "error"), CASES)
async def test_malformed_token_request_gets_a_json_oauth_error_not_a_crash(
    app_instance: InstanceFactory,
    pool: asyncpg.Pool,
    settings: Settings,
    build: Build,
    status: int,
    error: str,
) -> None:
    client, secret = await make_client(
        pool, settings, scopes=("read", "write", "openid"), audiences=(REGISTERED_AUDIENCE,)
    )
    request = build(Credentials(client.client_id, secret))
    async with app_instance() as instance:
        response = await instance.client.request(
            request.method, "/token", content=request.body, headers=request.headers
        )
    assert "Traceback" not in response.text
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers["cache-control"] == "no-store"
    body = json.loads(response.content)
    assert body["error"] == error
    assert set(body) <= {"error", "error_description"}
    if status == 405:
        assert response.headers["allow"] == "POST"
    else:
        assert body["error"] in SPEC_ERRORS
    if status == 401:
        assert response.headers["www-authenticate"].startswith("Basic")
