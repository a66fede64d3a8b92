"""Malformed requests to ``POST /token``: each gets a 4xx JSON error with a spec error code
(RFC 6749 §5.2, RFC 8707 §2), never a 500 and never a traceback. The table's driver and its
language: ``tests/web/malformed.py``."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg
import pytest

from idp.clock import FrozenClock
from idp.settings import Settings
from tests.conftest import InstanceFactory
from tests.factories import make_client
from tests.web.malformed import (
    BAD_CLIENT,
    BAD_REQUEST,
    FORM,
    JSON,
    NOT_ALLOWED,
    Basic,
    Case,
    Context,
    Endpoint,
    OAuthError,
    run,
)

REGISTERED_AUDIENCE = "https://api.example"
UNSUPPORTED = OAuthError(400, "unsupported_grant_type")
BAD_SCOPE = OAuthError(400, "invalid_scope")
BAD_TARGET = OAuthError(400, "invalid_target")
CLIENT = Basic(b"{client_id}:{secret}")
POST_AUTH = b"client_id={client_id}&client_secret={secret}"
OVERSIZED = b"pad=" + b"a" * (16 * 1024 + 1)
TOO_MANY_FIELDS = b"&".join(b"f%d=1" % i for i in range(100))
JSON_BODY = b'{"grant_type": "client_credentials"}'
MULTIPART_TYPE = "multipart/form-data; boundary=b"
MULTIPART = (
    b'--b\r\nContent-Disposition: form-data; name="grant_type"\r\n\r\n'
    b"client_credentials\r\n--b--\r\n"
)


@dataclass
class Client(Context):
    """A confidential client with the client_credentials grant."""

    client_id: str
    secret: str

    async def value(self, name: str) -> str:
        return {"client_id": self.client_id, "secret": self.secret}[name]


TOKEN = Endpoint[Client](
    "POST", "/token", {"grant_type": "client_credentials"}, auth=CLIENT, content_type=FORM
)

# fmt: off
CASES = [
    # The body's framing: only application/x-www-form-urlencoded, UTF-8, bounded.
    TOKEN("empty-body", BAD_REQUEST, body=b""),
    TOKEN("empty-body-no-auth", BAD_CLIENT, body=b"", auth=None),
    TOKEN("only-separators", BAD_REQUEST, body=b"&&&=&"),
    TOKEN("oversized-body", BAD_REQUEST, raw=OVERSIZED),
    TOKEN("oversized-body-no-auth", BAD_REQUEST, auth=None,
          raw=POST_AUTH + b"&pad=" + b"a" * 20_000),
    TOKEN("too-many-fields", BAD_REQUEST, raw=TOO_MANY_FIELDS),
    TOKEN("content-type-json", BAD_REQUEST, body=JSON_BODY, content_type=JSON),
    TOKEN("content-type-text-plain", BAD_REQUEST, content_type="text/plain"),
    TOKEN("content-type-multipart", BAD_REQUEST, body=MULTIPART, content_type=MULTIPART_TYPE),
    TOKEN("content-type-missing", BAD_REQUEST, content_type=None),
    TOKEN("content-type-form-prefix", BAD_REQUEST, content_type=FORM + "-evil"),
    TOKEN("invalid-utf8-raw", BAD_REQUEST, raw=b"scope=r\xffad"),
    TOKEN("invalid-utf8-percent-encoded", BAD_REQUEST, raw=b"scope=%ff"),
    TOKEN("invalid-utf8-percent-encoded-client-id", BAD_REQUEST, auth=None,
          raw=b"client_id=%ff%fe&client_secret=x"),
    TOKEN("utf8-encoded-surrogate", BAD_REQUEST, raw=b"scope=%ed%a0%80"),
    TOKEN("invalid-utf8-in-field-name", BAD_REQUEST, raw=b"%ff=1"),
    TOKEN("latin1-charset-declared", BAD_REQUEST, raw=b"scope=r\xe9ad",
          content_type=FORM + "; charset=iso-8859-1"),
    # RFC 6749 §3.1: parameters MUST NOT be included more than once.
    TOKEN("missing-grant-type", BAD_REQUEST, grant_type=None, scope="read"),
    TOKEN("empty-grant-type", BAD_REQUEST, grant_type=""),
    TOKEN("duplicated-grant-type", BAD_REQUEST, grant_type=["client_credentials"] * 2),
    TOKEN("duplicated-grant-type-differing", BAD_REQUEST,
          grant_type=["client_credentials", "password"]),
    TOKEN("duplicated-client-id", BAD_REQUEST, auth=None,
          raw=b"client_id={client_id}&" + POST_AUTH),
    TOKEN("duplicated-client-secret", BAD_REQUEST, auth=None,
          raw=b"client_secret={secret}&" + POST_AUTH),
    TOKEN("duplicated-scope", BAD_REQUEST, scope=["read", "read"]),
    # Client authentication (RFC 6749 §2.3.1): 401 with a Basic challenge.
    TOKEN("no-authentication", BAD_CLIENT, auth=None),
    TOKEN("client-secret-without-client-id", BAD_CLIENT, auth=None, client_secret="{secret}"),
    TOKEN("basic-not-base64", BAD_CLIENT, auth=b"Basic !!!not-base64!!!"),
    TOKEN("basic-bad-base64-padding", BAD_CLIENT, auth=b"Basic YWJj="),
    TOKEN("basic-without-colon", BAD_CLIENT, auth=Basic(b"{client_id}")),
    TOKEN("basic-non-utf8-after-decoding", BAD_CLIENT, auth=Basic(b"\xff\xfe:{secret}")),
    TOKEN("basic-percent-encoded-invalid-utf8", BAD_CLIENT, auth=Basic(b"%ff%fe:{secret}")),
    TOKEN("basic-non-ascii-header", BAD_CLIENT, auth=b"Basic \xe9\xe9\xe9\xe9"),
    TOKEN("basic-empty", BAD_CLIENT, auth=b"Basic "),
    TOKEN("basic-scheme-alone", BAD_CLIENT, auth=b"Basic"),
    TOKEN("authorization-empty", BAD_CLIENT, auth=b""),
    TOKEN("bearer-scheme", BAD_CLIENT, auth=b"Bearer x"),
    TOKEN("basic-empty-client-id", BAD_CLIENT, auth=Basic(b":{secret}")),
    TOKEN("basic-wrong-secret", BAD_CLIENT, auth=Basic(b"{client_id}:{secret}x")),
    TOKEN("basic-id-mismatching-form-client-id", BAD_CLIENT, client_id="someone-else"),
    TOKEN("basic-and-client-secret", BAD_REQUEST, client_secret="{secret}"),
    TOKEN("very-long-client-id", BAD_CLIENT, auth=None, client_id="a" * 10_000, client_secret="x"),
    TOKEN("very-long-basic-header", BAD_CLIENT, auth=Basic(b"a" * 60_000 + b":x")),
    TOKEN("nul-in-client-id", BAD_CLIENT, auth=None, client_id="a\x00b", client_secret="x"),
    TOKEN("nul-in-basic-client-id", BAD_CLIENT, auth=Basic(b"a\x00b:x")),
    TOKEN("nul-in-public-client-id", BAD_CLIENT, auth=None, client_id="\x00"),
    TOKEN("nul-in-secret", BAD_CLIENT, auth=None, client_id="{client_id}", client_secret="\x00"),
    # The grant's own parameters.
    TOKEN("unknown-grant-type", UNSUPPORTED, body=b"grant_type=urn:example:unknown"),
    TOKEN("grant-type-with-spaces", UNSUPPORTED, grant_type="client credentials"),
    TOKEN("grant-type-padded", UNSUPPORTED, body=b"grant_type=%20client_credentials%20"),
    TOKEN("grant-type-upper-case", UNSUPPORTED, grant_type="CLIENT_CREDENTIALS"),
    TOKEN("grant-type-with-nul", UNSUPPORTED, grant_type="client_credentials\x00"),
    TOKEN("semicolon-separated-fields", UNSUPPORTED,
          body=b"grant_type=client_credentials;scope=read"),
    TOKEN("password-grant", UNSUPPORTED, grant_type="password", username="a", password="b"),
    TOKEN("scope-with-quote", BAD_REQUEST, scope='read"'),
    TOKEN("scope-with-backslash", BAD_REQUEST, raw=b"scope=read%5c"),
    TOKEN("scope-with-double-space", BAD_REQUEST, scope="read  write"),
    TOKEN("scope-with-leading-space", BAD_REQUEST, scope=" read"),
    TOKEN("scope-with-tab", BAD_REQUEST, scope="read\twrite"),
    TOKEN("scope-with-nul", BAD_REQUEST, scope="read\x00"),
    TOKEN("scope-non-ascii", BAD_REQUEST, raw=b"scope=r%c3%a9ad"),
    TOKEN("scope-unregistered", BAD_SCOPE, scope="admin"),
    TOKEN("scope-openid", BAD_SCOPE, scope="openid"),
    TOKEN("resource-unregistered", BAD_TARGET, raw=b"resource=https://evil.example"),
    TOKEN("resource-with-nul", BAD_TARGET, raw=b"resource=https://api.example%00"),
    TOKEN("audience-unregistered", BAD_TARGET, raw=b"audience=https://evil.example"),
    # Methods other than POST (RFC 6749 §3.2: the client MUST use POST).
    TOKEN("get", NOT_ALLOWED, method="GET", body=b"", auth=None, content_type=None),
    TOKEN("put", NOT_ALLOWED, method="PUT", content_type=None),
]
# fmt: on


@pytest.mark.parametrize("case", CASES)
async def test_malformed_token_request_gets_a_json_oauth_error_not_a_crash(
    app_instance: InstanceFactory,
    pool: asyncpg.Pool,
    settings: Settings,
    clock: FrozenClock,
    case: Case[Client],
) -> None:
    client, secret = await make_client(
        pool, settings, scopes=("read", "write", "openid"), audiences=(REGISTERED_AUDIENCE,)
    )
    async with app_instance() as instance:
        await run(Client(instance.client, clock, client.client_id, secret), case)
