"""One driver for the tables of hostile and malformed requests (``tests/web/test_*_malformed.py``).

A row is data: an endpoint's valid request, altered, and the answer it must get.

* An ``Endpoint`` is the valid request. Its fields go in the query of a GET and in a form body
  otherwise; its ``prepare`` is a flow that yields more of them (the hidden fields of a page).
* Calling an endpoint makes a row: ``REFRESH("refresh-empty", BAD_REQUEST, refresh_token="")``.
  A keyword that is no argument of ``Endpoint.__call__`` changes a field: a new value replaces
  it, a list repeats it, None drops it. ``raw`` is appended to the encoded fields as is (bytes
  and escapes no encoder produces), ``body`` replaces them all, ``as_json`` sends them as a JSON
  object; ``method``, ``content_type``, ``auth`` and ``headers`` change the rest; ``steps`` run
  just before the request is sent (forget the cookies, let time pass).
* ``{name}`` in any string or bytes of a row, its expectation included, stands for the value the
  table's ``Context`` gives that name (a client id, a real token, a forged one): rows hold no code.

``run`` sends a row through the app and checks the answer: never a 500 or a traceback, a
``Location`` only where a redirect is expected, and exactly the expected shape: an OAuth JSON
error (RFC 6749 §5.2), a Bearer challenge (RFC 6750 §3), a readable HTML page, a redirect or a
200 JSON answer.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Any, Generic, TypeVar
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from joserfc import jwt

from idp.clock import FrozenClock
from idp.keys.crypto import generate_key, load_signing_key
from idp.keys.keyring import Keyring
from tests.factories import assert_oauth_error, assert_security_headers

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"
# The error codes each kind of answer may carry.
TOKEN_ERRORS = frozenset({  # RFC 6749 §5.2, RFC 7009 §2.2.1, RFC 8707 §2
    "invalid_request", "invalid_client", "invalid_grant", "unauthorized_client",
    "unsupported_grant_type", "invalid_scope", "invalid_target", "unsupported_token_type",
})  # fmt: skip
# RFC 6749 §4.1.2.1, OIDC Core §3.1.2.6, RFC 8707 §2, Unmet Authentication Requirements 1.0 §2.
AUTHORIZE_ERRORS = frozenset({
    "unmet_authentication_requirements",
    "invalid_request", "unauthorized_client", "access_denied", "unsupported_response_type",
    "invalid_scope", "server_error", "temporarily_unavailable", "interaction_required",
    "login_required", "account_selection_required", "consent_required", "invalid_request_uri",
    "invalid_request_object", "request_not_supported", "request_uri_not_supported",
    "registration_not_supported", "invalid_target",
})  # fmt: skip
BEARER_ERRORS = frozenset({"invalid_request", "invalid_token", "insufficient_scope"})  # RFC 6750
# RFC 6750 §3: error_description is a quoted-string of these characters only.
_CHALLENGE_TEXT = re.compile(r"^[\x20\x21\x23-\x5b\x5d-\x7e]*$")
_NAME = re.compile(r"\{(\w+)\}")
_NAME_BYTES = re.compile(rb"\{(\w+)\}")


# -- what must come back ------------------------------------------------------------------------
@dataclass(frozen=True)
class OAuthError:
    """A JSON error of the token, revocation or introspection endpoint with ``Cache-Control:
    no-store`` (RFC 6749 §5.2); a 401 carries a Basic challenge (§2.3.1), a 405 ``Allow``."""

    status: int
    error: str
    allow: frozenset[str] = frozenset({"POST"})


@dataclass(frozen=True)
class Bearer:
    """A JSON error with a Bearer challenge (RFC 6750 §3); ``error`` None: the challenge has none
    (§3.1: the request carried no credentials at all)."""

    status: int
    error: str | None


@dataclass(frozen=True)
class Page:
    """A readable HTML page with the security headers, never a redirect; it says one of
    ``says``, if given."""

    status: int = 400
    says: tuple[str, ...] = ()


ANY = "<any value>"


@dataclass(frozen=True)
class Redirect:
    """A 303 with the security headers to ``to`` (scheme, host and path; no fragment) whose query
    is exactly ``query``, one value each (``ANY``: whatever value); an ``error`` may come with
    an ``error_description``."""

    to: str
    query: Mapping[str, str]


@dataclass(frozen=True)
class Ok:
    """A 200 with ``Cache-Control: no-store``; its JSON body is ``body`` if one is given."""

    body: Any = None


Expect = OAuthError | Bearer | Page | Redirect | Ok

BAD_REQUEST = OAuthError(400, "invalid_request")
BAD_CLIENT = OAuthError(401, "invalid_client")
BAD_GRANT = OAuthError(400, "invalid_grant")
NOT_ALLOWED = OAuthError(405, "method_not_allowed")


# -- what is sent -------------------------------------------------------------------------------
class Keep(Enum):
    """The endpoint's own value (for arguments where None means "none")."""

    KEEP = "keep"


KEEP = Keep.KEEP
Value = str | list[str] | None


@dataclass(frozen=True)
class Basic:
    """``Authorization: Basic`` of ``user_pass`` (RFC 7617), placeholders filled first."""

    user_pass: bytes


Auth = bytes | Basic | None


@dataclass
class Context:
    """A table's running app: a client with the cookies of one browser, the clock; and the values
    its rows name as ``{name}``."""

    http: httpx.AsyncClient
    clock: FrozenClock

    async def value(self, name: str) -> str:
        raise KeyError(name)


C = TypeVar("C", bound=Context)
Step = Callable[[C], None]


def forget_cookies(ctx: Context) -> None:
    ctx.http.cookies.clear()


def sign_out(ctx: Context) -> None:
    ctx.http.cookies.delete("idp_session")


def wait(delta: timedelta) -> Step[Context]:
    def advance(ctx: Context) -> None:
        ctx.clock.advance(delta)

    return advance


@dataclass(frozen=True)
class Case(Generic[C]):
    """One row: the endpoint's valid request, altered (see the module's docstring)."""

    endpoint: Endpoint[C]
    expect: Expect
    fields: Mapping[str, Value]
    raw: bytes = b""
    body: bytes | None = None
    as_json: bool = False
    method: str | None = None
    content_type: str | Keep | None = KEEP
    auth: Auth | Keep = KEEP
    headers: Mapping[str, bytes] = field(default_factory=dict)
    steps: Sequence[Step[C]] = ()


@dataclass(frozen=True)
class Endpoint(Generic[C]):
    """An endpoint's valid request; call it to make a row."""

    method: str
    path: str
    fields: Mapping[str, str] = field(default_factory=dict)
    auth: Auth = None
    content_type: str | None = None
    prepare: Callable[[C], Awaitable[dict[str, str]]] | None = None

    def __call__(
        self,
        name: str,
        expect: Expect,
        /,
        *,
        raw: bytes = b"",
        body: bytes | None = None,
        as_json: bool = False,
        method: str | None = None,
        content_type: str | Keep | None = KEEP,
        auth: Auth | Keep = KEEP,
        headers: Mapping[str, bytes] | None = None,
        steps: Sequence[Step[C]] = (),
        bug: str = "",
        **fields: Value,
    ) -> pytest.ParameterSet:
        """A row named ``name``; ``bug``: a strict xfail, for a row whose expectation is right but
        idp answers otherwise."""
        case = Case(
            self, expect, fields, raw, body, as_json, method, content_type, auth, headers or {},
            steps,
        )  # fmt: skip
        marks = [pytest.mark.xfail(strict=True, reason=bug)] if bug else []
        return pytest.param(case, id=name, marks=marks)


def _texts(case: Case[C]) -> list[str | bytes]:
    texts: list[str | bytes] = [*case.endpoint.fields.values()]
    for value in case.fields.values():
        texts.extend([value] if isinstance(value, str) else value or [])
    auth = case.endpoint.auth if isinstance(case.auth, Keep) else case.auth
    texts.append(auth.user_pass if isinstance(auth, Basic) else auth or b"")
    return [*texts, case.raw, case.body or b"", *case.headers.values()]


async def _values(ctx: Context, texts: Sequence[str | bytes]) -> dict[str, str]:
    """The value of every ``{name}`` in ``texts``, asked for in order of appearance."""
    values: dict[str, str] = {}
    for text in texts:
        found = _NAME.findall(text) if isinstance(text, str) else _NAME_BYTES.findall(text)
        for name in found:
            key = name if isinstance(name, str) else name.decode()
            if key not in values:
                values[key] = await ctx.value(key)
    return values


def _filled(values: Mapping[str, str], text: str) -> str:
    return _NAME.sub(lambda match: values[match[1]], text)


def _filled_bytes(values: Mapping[str, str], data: bytes) -> bytes:
    return _NAME_BYTES.sub(lambda match: values[match[1].decode()].encode(), data)


async def send(ctx: C, case: Case[C]) -> httpx.Response:
    endpoint = case.endpoint
    values = await _values(ctx, _texts(case))
    fields: dict[str, str | list[str]] = {}
    if endpoint.prepare is not None:
        fields.update(await endpoint.prepare(ctx))
    fields.update(endpoint.fields)
    for name, change in case.fields.items():
        if change is None:
            fields.pop(name, None)
        else:
            fields[name] = change
    filled = {
        name: _filled(values, value)
        if isinstance(value, str)
        else [_filled(values, v) for v in value]
        for name, value in fields.items()
    }
    for step in case.steps:
        step(ctx)
    encoded = (json.dumps(filled) if case.as_json else urlencode(filled, doseq=True)).encode()
    raw = _filled_bytes(values, case.raw)
    payload = b"&".join(part for part in (encoded, raw) if part)
    if case.body is not None:
        payload = _filled_bytes(values, case.body)
    headers: dict[bytes, bytes] = {}
    auth = endpoint.auth if isinstance(case.auth, Keep) else case.auth
    if isinstance(auth, Basic):
        headers[b"authorization"] = b"Basic " + base64.b64encode(
            _filled_bytes(values, auth.user_pass)
        )
    elif auth is not None:
        headers[b"authorization"] = _filled_bytes(values, auth)
    content_type = (
        endpoint.content_type if isinstance(case.content_type, Keep) else case.content_type
    )
    if content_type is not None:
        headers[b"content-type"] = content_type.encode()
    headers.update(
        (name.encode(), _filled_bytes(values, value)) for name, value in case.headers.items()
    )
    method = case.method or endpoint.method
    with pytest.MonkeyPatch.context() as patch:
        # httpx refuses URLs over 64 KB; the app itself must cope with longer ones.
        patch.setattr("httpx._urlparse.MAX_URL_LENGTH", 1 << 20)
        if endpoint.method == "GET":
            url = f"{endpoint.path}?{payload.decode()}" if payload else endpoint.path
            return await ctx.http.request(method, url, headers=headers)
        return await ctx.http.request(method, endpoint.path, content=payload, headers=headers)


# -- the checks ---------------------------------------------------------------------------------
async def run(ctx: C, case: Case[C]) -> httpx.Response:
    """Send ``case`` through the app and assert its answer; the response, for a table's own
    checks."""
    response = await send(ctx, case)
    assert response.status_code < 500, response.text
    assert "Traceback" not in response.text
    expect = case.expect
    if not isinstance(expect, Redirect):
        assert "location" not in response.headers, response.headers["location"]
    match expect:
        case OAuthError():
            _check_oauth_error(response, expect)
        case Bearer():
            _check_bearer(response, expect)
        case Page(status, says):
            _check_page(response, status, says)
        case Redirect(to, query):
            values = await _values(ctx, list(query.values()))
            _check_redirect(response, to, {name: _filled(values, v) for name, v in query.items()})
        case Ok(body):
            assert response.status_code == 200, response.text
            assert response.headers["cache-control"] == "no-store"
            if body is not None:
                assert json.loads(response.content) == body
    return response


def _check_oauth_error(response: httpx.Response, expect: OAuthError) -> None:
    assert_oauth_error(response, expect.status, expect.error)
    assert response.headers["cache-control"] == "no-store"
    assert set(json.loads(response.content)) <= {"error", "error_description"}
    if expect.status == 405:
        assert set(response.headers["allow"].split(", ")) == expect.allow, response.headers
    else:
        assert expect.error in TOKEN_ERRORS
    if expect.status == 401:
        assert response.headers["www-authenticate"].startswith("Basic")


def _check_bearer(response: httpx.Response, expect: Bearer) -> None:
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
    assert body["error"] in BEARER_ERRORS
    assert set(body) <= {"error", "error_description"}


def _check_page(response: httpx.Response, status: int, says: tuple[str, ...]) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("text/html")
    assert "<html" in response.text.lower()
    assert_security_headers(response)
    if says:
        assert any(text in response.text for text in says), response.text


def _check_redirect(response: httpx.Response, to: str, query: Mapping[str, str]) -> None:
    assert response.status_code == 303, response.text
    assert_security_headers(response)
    location = urlsplit(response.headers["location"])
    assert location[:3] == urlsplit(to)[:3], location
    assert not location.fragment
    got = parse_qs(location.query, keep_blank_values=True)
    assert all(len(values) == 1 for values in got.values()), got
    if "error" in query:
        assert query["error"] in AUTHORIZE_ERRORS
        got.pop("error_description", None)
    assert got.keys() == query.keys(), got
    for name, value in query.items():
        assert value == ANY or got[name] == [value], (name, got[name])


# -- tokens that are not what they claim --------------------------------------------------------
def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def segment(value: dict[str, Any]) -> str:
    return b64(json.dumps(value).encode())


def part(token: str, index: int) -> dict[str, Any]:
    """The decoded header (0) or claims (1) of a compact JWS, unverified."""
    piece = token.split(".")[index]
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(piece + "=" * (-len(piece) % 4)))
    return decoded


def unsigned(header: dict[str, Any], claims: dict[str, Any]) -> str:
    return f"{segment({**header, 'alg': 'none'})}.{segment(claims)}."


def stranger_signed(header: dict[str, Any], claims: dict[str, Any]) -> str:
    """``header`` (its kid too) and ``claims``, signed by a fresh key idp never published."""
    alg = header["alg"]
    key = load_signing_key(generate_key(alg, now=datetime.now(UTC)).private_der)
    return jwt.encode(header, claims, key, algorithms=[alg])


def hmac_with_public_key(keyring: Keyring, header: dict[str, Any], claims: dict[str, Any]) -> str:
    """Algorithm confusion: HS256 keyed with the published public key."""
    public = keyring.snapshot.signer.key.as_pem(private=False)
    signing_input = f"{segment({**header, 'alg': 'HS256'})}.{segment(claims)}"
    mac = hmac.new(public, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(mac)}"
