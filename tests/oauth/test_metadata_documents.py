"""Client ID Metadata Documents (draft-ietf-oauth-client-id-metadata-document): a client_id
that is an https URL, its document fetched over real https from a server in the test process
(tests.document_server), never mocked."""

from __future__ import annotations

import asyncio
import html
import ipaddress
import json
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from idp.clock import FrozenClock
from idp.db import clients, metadata_documents
from idp.oauth.document_clients import REFUSAL_TTL
from idp.oauth.document_fetch import DocumentFetcher, GuardedBackend, IPAddress
from idp.oauth.metadata_document import (
    MAX_CACHE,
    MIN_CACHE,
    DocumentError,
    address_allowed,
    cache_expiry,
    check_client_id_url,
)
from idp.settings import Settings
from tests.conftest import Instance, InstanceFactory
from tests.document_server import (
    Answer,
    DocumentServer,
    app_fetching,
    client_context,
    document_server,
)
from tests.factories import PASSWORD, assert_oauth_error, make_client, make_user
from tests.oauth.flow import Authorization, hidden_fields, query_of, sign_in
from tests.smtp import TestAuthority, wait_until

LOOPBACK_REDIRECT = "http://127.0.0.1/callback"
JSON = {"Content-Type": "application/json"}
PRESENTED_REDIRECT = "http://127.0.0.1:53111/callback"  # any port (RFC 8252 §7.3)


@pytest.fixture
async def docs(tmp_path: Path, pool: asyncpg.Pool) -> AsyncIterator[DocumentServer]:
    """The document server, and an empty database (``pool``) for the app the test opens."""
    async with document_server(tmp_path) as server:
        yield server


def document(url: str, **extra: Any) -> dict[str, Any]:
    return {
        "client_id": url,
        "client_name": "Notes CLI",
        "client_uri": "https://notes.example",
        "redirect_uris": [LOOPBACK_REDIRECT],
        "grant_types": ["authorization_code", "refresh_token"],
        "token_endpoint_auth_method": "none",
        **extra,
    }


def page_text(response: httpx.Response) -> str:
    return html.unescape(response.text)


async def authorize_page(app: Instance, client_id: str, **extra: str) -> httpx.Response:
    auth = Authorization(client_id, PRESENTED_REDIRECT, scope="openid email offline_access")
    return await app.client.get(auth.url(**extra))


async def disabled_in(app: Instance, client_id: str) -> bool:
    cached = await app.state["clients"].find(client_id)
    return cached is not None and cached.disabled


def assert_refused_page(response: httpx.Response, words: str) -> None:
    """An error page, never a redirect: the document's redirect URIs are not trusted."""
    assert response.status_code == 400, response.text
    assert "location" not in response.headers
    assert "metadata document was refused" in page_text(response)
    assert words in page_text(response), page_text(response)


async def test_metadata_document_client_signs_in_consents_and_gets_tokens(
    docs: DocumentServer,
    settings: Settings,
    clock: FrozenClock,
    pool: asyncpg.Pool,
    tmp_path: Path,
) -> None:
    url = docs.url("/notes/client.json")
    docs.serve_document("/notes/client.json", document(url), Cache_Control="max-age=3600")
    user = await make_user(pool)
    async with app_fetching(settings, clock, tmp_path, cimd_allow_loopback=True) as app:
        auth = Authorization(url, PRESENTED_REDIRECT, scope="openid email offline_access")
        answer = await app.client.get(auth.url())
        assert answer.status_code == 303, answer.text
        answer = await sign_in(app.client, answer.headers["location"], user.email, PASSWORD)
        assert answer.headers["location"].startswith("/consent?request="), answer.text
        page = await app.client.get(answer.headers["location"])
        assert page.status_code == 200
        text = page_text(page)
        assert "Allow Notes CLI?" in text
        assert "registered by a program, not by this site's operator" in " ".join(text.split())
        assert f"127.0.0.1:{docs.port}" in text  # the host that publishes the document
        assert '<strong id="redirect-host">127.0.0.1:53111</strong>' in text
        answer = await app.client.post(
            "/consent", data={**hidden_fields(page.text), "decision": "allow"}
        )
        location = answer.headers["location"]
        assert location.startswith(PRESENTED_REDIRECT), location
        code = query_of(location)["code"]
        tokens = await app.client.post(
            "/token",
            data={
                "grant_type": "authorization_code",
                "client_id": url,
                "code": code,
                "redirect_uri": PRESENTED_REDIRECT,
                "code_verifier": auth.verifier,
            },
        )
        assert tokens.status_code == 200, tokens.text
        body = tokens.json()
        assert {"access_token", "id_token", "refresh_token"} <= body.keys()
        refreshed = await app.client.post(
            "/token",
            data={
                "grant_type": "refresh_token",
                "client_id": url,
                "refresh_token": body["refresh_token"],
            },
        )
        assert refreshed.status_code == 200, refreshed.text
    stored = await clients.by_id(pool, url)
    assert stored is not None
    assert stored.registration == "metadata_document"
    assert stored.public
    assert stored.unverified
    assert not stored.first_party
    assert stored.redirect_uris == (LOOPBACK_REDIRECT,)
    assert stored.grant_types == ("authorization_code", "refresh_token")
    assert stored.metadata == {"client_uri": "https://notes.example"}
    assert stored.metadata_expires_at == clock.now() + timedelta(hours=1)
    assert docs.requests["/notes/client.json"] == 1
    events = await pool.fetch(
        "SELECT actor, action, subject FROM audit_log WHERE action LIKE 'client.%' ORDER BY id"
    )
    assert [tuple(event) for event in events] == [
        (f"client:{url}", "client.metadata_document_stored", url)
    ]


async def test_document_whose_client_id_differs_is_refused(
    docs: DocumentServer, settings: Settings, clock: FrozenClock, tmp_path: Path
) -> None:
    url = docs.url("/a.json")
    docs.serve_document("/a.json", document(docs.url("/b.json")))
    async with app_fetching(settings, clock, tmp_path, cimd_allow_loopback=True) as app:
        answer = await authorize_page(app, url)
    assert_refused_page(answer, "client_id is not the URL it was fetched from")


async def test_document_on_loopback_is_refused_without_connecting_unless_allowed(
    docs: DocumentServer, settings: Settings, clock: FrozenClock, tmp_path: Path
) -> None:
    url = docs.serve_document("/client.json", document(docs.url("/client.json")))
    async with app_fetching(settings, clock, tmp_path, cimd_allow_loopback=False) as app:
        answer = await authorize_page(app, url)
    assert_refused_page(answer, "127.0.0.1, which is not a public address")
    assert docs.connections == 0  # refused before any connection: the server saw nothing


@pytest.mark.parametrize(
    "host",
    [
        "10.0.0.7",
        "169.254.169.254",  # the cloud metadata service
        "192.168.1.1",
        "100.64.0.1",
        "[fd00::1]",
        "0.0.0.0",  # noqa: S104 - an address refused, not bound
    ],
)
async def test_document_on_a_private_address_is_refused(
    host: str, settings: Settings, clock: FrozenClock, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    TestAuthority(tmp_path)  # the authority the fetcher trusts; no server: nothing to reach
    # Loopback allowed, and still never a private network; a connection attempt would have
    # run into the timeout instead.
    async with app_fetching(settings, clock, tmp_path, timeout=2, cimd_allow_loopback=True) as app:
        answer = await authorize_page(app, f"https://{host}/client.json")
    assert_refused_page(answer, "which is not a public address")


@pytest.mark.parametrize("length", [True, False], ids=["content-length", "until-close"])
async def test_document_too_large_is_refused(
    length: bool, docs: DocumentServer, settings: Settings, clock: FrozenClock, tmp_path: Path
) -> None:
    url = docs.url("/big.json")
    padded = json.dumps(document(url, padding="x" * 200_000)).encode()
    docs.answers["/big.json"] = Answer(headers=JSON, body=padded, length=length)
    async with app_fetching(settings, clock, tmp_path, cimd_allow_loopback=True) as app:
        answer = await authorize_page(app, url)
    assert_refused_page(answer, "larger than 5120 bytes")


async def test_slow_document_is_refused_at_the_timeout(
    docs: DocumentServer, settings: Settings, clock: FrozenClock, tmp_path: Path
) -> None:
    url = docs.url("/slow.json")
    body = json.dumps(document(url)).encode()
    docs.answers["/slow.json"] = Answer(body=body, delay=3)
    async with app_fetching(
        settings, clock, tmp_path, timeout=0.3, cimd_allow_loopback=True
    ) as app:
        answer = await authorize_page(app, url)
    assert_refused_page(answer, "did not arrive within 0.3 seconds")
    assert docs.requests["/slow.json"] == 1


async def test_redirect_to_another_host_is_not_followed(
    docs: DocumentServer, settings: Settings, clock: FrozenClock, tmp_path: Path
) -> None:
    url = docs.url("/moved.json")
    docs.serve_document("/client.json", document(url))
    elsewhere = docs.url("/client.json", host="localhost")
    docs.answers["/moved.json"] = Answer(status=302, headers={"Location": elsewhere})
    async with app_fetching(settings, clock, tmp_path, cimd_allow_loopback=True) as app:
        answer = await authorize_page(app, url)
    assert_refused_page(answer, "answered with a redirect (HTTP 302)")
    assert docs.requests["/client.json"] == 0


async def test_redirect_uri_not_in_the_document_is_refused_on_a_page(
    docs: DocumentServer, settings: Settings, clock: FrozenClock, tmp_path: Path
) -> None:
    url = docs.serve_document("/client.json", document(docs.url("/client.json")))
    async with app_fetching(settings, clock, tmp_path, cimd_allow_loopback=True) as app:
        auth = Authorization(url, "https://attacker.example/callback", scope="openid")
        answer = await app.client.get(auth.url())
    assert answer.status_code == 400
    assert "location" not in answer.headers
    assert "Unknown redirect URI" in answer.text


async def test_a_document_listing_localhost_is_used_with_any_port(
    docs: DocumentServer, settings: Settings, clock: FrozenClock, tmp_path: Path
) -> None:
    """Claude Code's document lists ``http://localhost/callback`` and
    ``http://127.0.0.1/callback``; its requests come from ``http://localhost:PORT/callback``
    (RFC 8252 §7.3, §8.3; idp.oauth.redirect_uris)."""
    url = docs.url("/client.json")
    uris = ["http://localhost/callback", "http://127.0.0.1/callback"]
    docs.serve_document("/client.json", document(url, redirect_uris=uris))
    async with app_fetching(settings, clock, tmp_path, cimd_allow_loopback=True) as app:
        auth = Authorization(url, "http://localhost:8080/callback", scope="openid")
        answer = await app.client.get(auth.url())
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"].startswith("/login"), answer.headers["location"]


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        ({"token_endpoint_auth_method": "client_secret_basic"}, "uses a shared secret"),
        ({"token_endpoint_auth_method": "client_secret_post"}, "uses a shared secret"),
        ({"client_secret": "s3cret"}, "must not contain a client_secret"),
        ({"token_endpoint_auth_method": "private_key_jwt"}, "is not supported"),
        ({"redirect_uris": ["javascript:alert(1)"]}, "use https, loopback http"),
        ({"redirect_uris": ["http://localhost.evil.example/cb"]}, "plain http is allowed only on"),
        ({"grant_types": ["client_credentials"]}, "grant_types must be authorization_code"),
        ({"scope": "openid idp:admin"}, "scope not available to such clients: idp:admin"),
    ],
    ids=[
        "secret-basic",
        "secret-post",
        "secret",
        "private-key-jwt",
        "js-uri",
        "localhost-subdomain",
        "cc",
        "scope",
    ],
)
async def test_document_asking_for_what_such_clients_cannot_have_is_refused(
    extra: dict[str, Any],
    words: str,
    docs: DocumentServer,
    settings: Settings,
    clock: FrozenClock,
    tmp_path: Path,
) -> None:
    url = docs.url("/client.json")
    docs.serve_document("/client.json", document(url, **extra))
    async with app_fetching(settings, clock, tmp_path, cimd_allow_loopback=True) as app:
        answer = await authorize_page(app, url)
    assert_refused_page(answer, words)


async def test_token_endpoint_answers_invalid_client_for_a_refused_document(
    docs: DocumentServer, settings: Settings, clock: FrozenClock, tmp_path: Path
) -> None:
    url = docs.url("/client.json")
    docs.serve_document("/client.json", document(docs.url("/other.json")))
    async with app_fetching(settings, clock, tmp_path, cimd_allow_loopback=True) as app:
        answer = await app.client.post(
            "/token",
            data={
                "grant_type": "authorization_code",
                "client_id": url,
                "code": "nope",
                "redirect_uri": PRESENTED_REDIRECT,
                "code_verifier": "v" * 43,
            },
        )
    assert_oauth_error(answer, 401, "invalid_client")
    assert "not the URL it was fetched from" in answer.json()["error_description"]


async def test_cached_document_is_not_refetched_before_it_expires(
    docs: DocumentServer,
    settings: Settings,
    clock: FrozenClock,
    pool: asyncpg.Pool,
    tmp_path: Path,
) -> None:
    url = docs.url("/client.json")
    docs.serve_document("/client.json", document(url), Cache_Control="public, max-age=600")
    async with app_fetching(settings, clock, tmp_path, cimd_allow_loopback=True) as app:
        for _ in range(3):
            assert (await authorize_page(app, url)).status_code == 303
        assert docs.requests["/client.json"] == 1
        clock.advance(timedelta(seconds=599))
        assert (await authorize_page(app, url)).status_code == 303
        assert docs.requests["/client.json"] == 1
        # Past max-age: fetched again, and the row follows the changed document.
        docs.serve_document(
            "/client.json", document(url, client_name="Notes CLI 2"), Cache_Control="max-age=600"
        )
        clock.advance(timedelta(seconds=2))
        assert (await authorize_page(app, url)).status_code == 303
        assert docs.requests["/client.json"] == 2
        assert (await authorize_page(app, url)).status_code == 303
        assert docs.requests["/client.json"] == 2
    stored = await clients.by_id(pool, url)
    assert stored is not None
    assert stored.name == "Notes CLI 2"
    assert stored.metadata_expires_at == clock.now() + timedelta(seconds=600)


async def test_expired_document_that_fails_to_refetch_is_refused_not_kept(
    docs: DocumentServer, settings: Settings, clock: FrozenClock, tmp_path: Path
) -> None:
    url = docs.serve_document("/client.json", document(docs.url("/client.json")))
    async with app_fetching(settings, clock, tmp_path, cimd_allow_loopback=True) as app:
        assert (await authorize_page(app, url)).status_code == 303
        docs.answers["/client.json"] = Answer(status=500, body=b"down")
        clock.advance(MIN_CACHE + timedelta(seconds=1))  # no caching headers: the minimum
        answer = await authorize_page(app, url)
    assert_refused_page(answer, "answered HTTP 500, not 200")
    assert docs.requests["/client.json"] == 2


async def test_an_operator_client_with_that_id_is_never_replaced_by_a_document(
    docs: DocumentServer,
    settings: Settings,
    clock: FrozenClock,
    pool: asyncpg.Pool,
    tmp_path: Path,
) -> None:
    url = docs.serve_document("/client.json", document(docs.url("/client.json")))
    client, _ = await make_client(
        pool, settings, grant_types=("authorization_code",), redirect_uris=(PRESENTED_REDIRECT,)
    )
    operator = await clients.insert(pool, replace(client, client_id=url, scopes=("openid",)))
    stray = replace(operator, registration="metadata_document", name="Taken over")
    stray = replace(stray, metadata_expires_at=clock.now())
    assert await metadata_documents.upsert(pool, stray) is None
    async with app_fetching(settings, clock, tmp_path, cimd_allow_loopback=True) as app:
        assert (await authorize_page(app, url, scope="openid")).status_code == 303
    assert docs.connections == 0
    assert await clients.by_id(pool, url) == operator


async def test_concurrent_requests_share_one_fetch(
    docs: DocumentServer, settings: Settings, clock: FrozenClock, tmp_path: Path
) -> None:
    url = docs.url("/client.json")
    body = json.dumps(document(url)).encode()
    docs.answers["/client.json"] = Answer(headers=JSON, body=body, delay=0.3)
    async with app_fetching(settings, clock, tmp_path, cimd_allow_loopback=True) as app:
        answers = await asyncio.gather(*(authorize_page(app, url) for _ in range(4)))
    assert [answer.status_code for answer in answers] == [303] * 4
    assert docs.requests["/client.json"] == 1


async def test_disabled_document_client_stays_disabled_and_is_not_fetched_again(
    docs: DocumentServer,
    settings: Settings,
    clock: FrozenClock,
    pool: asyncpg.Pool,
    tmp_path: Path,
) -> None:
    url = docs.serve_document("/client.json", document(docs.url("/client.json")))
    async with app_fetching(settings, clock, tmp_path, cimd_allow_loopback=True) as app:
        assert (await authorize_page(app, url)).status_code == 303
        assert await clients.disable(pool, url)
        clock.advance(timedelta(days=2))
        await wait_until(lambda: disabled_in(app, url), within=5)  # its NOTIFY arrived
        answer = await authorize_page(app, url)
    assert answer.status_code == 400
    assert "Unknown application" in answer.text
    assert docs.requests["/client.json"] == 1


async def test_document_url_is_an_unknown_client_when_cimd_is_off(
    docs: DocumentServer, app_instance: InstanceFactory
) -> None:
    url = docs.serve_document("/client.json", document(docs.url("/client.json")))
    async with app_instance(cimd=False, cimd_allow_loopback=True) as app:
        answer = await authorize_page(app, url)
    assert answer.status_code == 400
    assert "Unknown application" in answer.text
    assert docs.connections == 0


@pytest.mark.parametrize("cimd", [True, False])
async def test_discovery_says_metadata_documents_are_supported_only_when_on(
    cimd: bool, app_instance: InstanceFactory
) -> None:
    async with app_instance(cimd=cimd) as app:
        metadata = (await app.client.get("/.well-known/openid-configuration")).json()
    assert metadata.get("client_id_metadata_document_supported", False) is cimd


class PinnedResolution(GuardedBackend):
    """Every host name resolves to 127.0.0.1, as a rebinding DNS server would answer."""

    async def resolve(self, host: str, port: int) -> list[IPAddress]:
        return [ipaddress.ip_address("127.0.0.1")]


async def test_a_name_resolving_to_loopback_is_refused_before_connecting(
    docs: DocumentServer, tmp_path: Path
) -> None:
    fetcher = DocumentFetcher(
        allow_loopback=False,
        ssl_context=client_context(tmp_path),
        backend=PinnedResolution(allow_loopback=False),
    )
    docs.serve_document("/client.json", {})
    url = docs.url("/client.json", host="documents.example")
    with pytest.raises(DocumentError, match=r"documents\.example resolves to 127\.0\.0\.1"):
        await fetcher.fetch(url)
    await fetcher.aclose()
    assert docs.connections == 0


async def test_tls_verifies_the_url_host_not_the_address_connected_to(
    docs: DocumentServer, tmp_path: Path
) -> None:
    """The connection goes to the checked address; the certificate must still name the URL's
    host (the test certificate names localhost and 127.0.0.1, not documents.example)."""
    fetcher = DocumentFetcher(
        allow_loopback=True,
        ssl_context=client_context(tmp_path),
        backend=PinnedResolution(allow_loopback=True),
    )
    docs.serve_document("/client.json", {"hello": "world"})
    fetched = await fetcher.fetch(docs.url("/client.json", host="localhost"))
    assert json.loads(fetched.body) == {"hello": "world"}
    with pytest.raises(DocumentError, match="certificate"):
        await fetcher.fetch(docs.url("/client.json", host="documents.example"))
    await fetcher.aclose()
    assert docs.requests["/client.json"] == 1


NOW = datetime(2026, 3, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("headers", "lifetime"),
    [
        ({}, MIN_CACHE),
        ({"cache-control": "no-store"}, MIN_CACHE),
        ({"cache-control": "no-store, max-age=3600"}, MIN_CACHE),
        ({"cache-control": "max-age=3600, no-cache"}, MIN_CACHE),
        ({"cache-control": "max-age=0"}, MIN_CACHE),
        ({"cache-control": "public, max-age=7200"}, timedelta(hours=2)),
        ({"cache-control": "max-age=99999999"}, MAX_CACHE),
        ({"expires": "Sun, 01 Mar 2026 03:00:00 GMT"}, timedelta(hours=3)),
        ({"expires": "garbage"}, MIN_CACHE),
    ],
)
def test_cache_lifetime_follows_the_headers_within_bounds(
    headers: dict[str, str], lifetime: timedelta
) -> None:
    assert cache_expiry(headers, NOW) == NOW + lifetime


@pytest.mark.parametrize(
    ("address", "allowed"),
    [
        ("93.184.215.14", True),
        ("2606:4700::1111", True),
        ("127.0.0.1", False),
        ("::1", False),
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("192.168.0.1", False),
        ("169.254.169.254", False),
        ("100.64.0.1", False),
        ("0.0.0.0", False),  # noqa: S104 - an address refused, not bound
        ("224.0.0.1", False),
        ("240.0.0.1", False),
        ("fc00::1", False),
        ("fe80::1", False),
        ("::ffff:10.0.0.1", False),
        ("::ffff:169.254.169.254", False),
    ],
)
def test_only_public_addresses_are_fetched(address: str, allowed: bool) -> None:
    parsed = ipaddress.ip_address(address)
    assert address_allowed(parsed, allow_loopback=False) is allowed
    loopback = parsed.is_loopback
    assert address_allowed(parsed, allow_loopback=True) is (allowed or loopback)


@pytest.mark.parametrize(
    "url",
    [
        "https://client.example",
        "https://client.example/",
        "https://client.example/a/../b.json",
        "https://client.example/./b.json",
        "https://client.example/b.json#frag",
        "https://user:pw@client.example/b.json",
        "https://client.example/b json",
    ],
)
def test_client_id_url_must_follow_the_draft(url: str) -> None:
    with pytest.raises(DocumentError):
        check_client_id_url(url)


async def test_a_refused_document_is_refused_again_from_memory_for_a_minute(
    docs: DocumentServer, settings: Settings, clock: FrozenClock, tmp_path: Path
) -> None:
    """Anyone can name a URL as client_id: one that fails is not fetched on every request."""
    url = docs.url("/a.json")
    docs.serve_document("/a.json", document(docs.url("/b.json")))
    async with app_fetching(settings, clock, tmp_path, cimd_allow_loopback=True) as app:
        for _ in range(3):
            answer = await authorize_page(app, url)
            assert_refused_page(answer, "client_id is not the URL it was fetched from")
        assert docs.requests["/a.json"] == 1
        docs.serve_document("/a.json", document(url))  # fixed meanwhile
        clock.advance(REFUSAL_TTL - timedelta(seconds=1))
        assert_refused_page(await authorize_page(app, url), "client_id is not the URL")
        clock.advance(timedelta(seconds=2))
        assert (await authorize_page(app, url)).status_code == 303
    assert docs.requests["/a.json"] == 2


@pytest.mark.parametrize(
    "content_type",
    [None, "text/html", "text/plain; charset=utf-8", "application/jsonp", "application/ld+json"],
)
async def test_document_not_served_as_application_json_is_refused(
    content_type: str | None,
    docs: DocumentServer,
    settings: Settings,
    clock: FrozenClock,
    pool: asyncpg.Pool,
    tmp_path: Path,
) -> None:
    """Draft §4: a successful response has the content type application/json (or an
    application/<AS-defined>+json, and idp defines none); any other is an error: a page at
    /authorize, invalid_client at /token, and remembered like any refused document."""
    url = docs.url("/client.json")
    headers = {} if content_type is None else {"Content-Type": content_type}
    docs.answers["/client.json"] = Answer(headers=headers, body=json.dumps(document(url)).encode())
    async with app_fetching(settings, clock, tmp_path, cimd_allow_loopback=True) as app:
        answer = await authorize_page(app, url)
        assert_refused_page(answer, "not application/json (draft §4)")
        token = await app.client.post(
            "/token",
            data={
                "grant_type": "refresh_token",
                "client_id": url,
                "refresh_token": "whatever",
            },
        )
        assert_oauth_error(token, 401, "invalid_client")
        assert "not application/json" in token.json()["error_description"]
    assert docs.requests["/client.json"] == 1  # the refusal was remembered
    assert await clients.by_id(pool, url) is None


@pytest.mark.parametrize(
    "content_type", ["application/json", "application/json; charset=utf-8", "Application/JSON"]
)
async def test_document_served_as_application_json_with_parameters_is_used(
    content_type: str,
    docs: DocumentServer,
    settings: Settings,
    clock: FrozenClock,
    tmp_path: Path,
) -> None:
    url = docs.url("/client.json")
    body = json.dumps(document(url)).encode()
    docs.answers["/client.json"] = Answer(headers={"Content-Type": content_type}, body=body)
    async with app_fetching(settings, clock, tmp_path, cimd_allow_loopback=True) as app:
        assert (await authorize_page(app, url)).status_code == 303


def assert_too_many_page(response: httpx.Response, retry_after: str, words: str) -> None:
    """RFC 6585 §4: a readable 429 with Retry-After, never a redirect."""
    assert response.status_code == 429, response.text
    assert response.headers["retry-after"] == retry_after
    assert "location" not in response.headers
    assert "text/html" in response.headers["content-type"]
    assert words in page_text(response), page_text(response)


async def test_one_address_may_cause_only_so_many_document_fetches_a_minute(
    docs: DocumentServer, settings: Settings, clock: FrozenClock, tmp_path: Path
) -> None:
    """Anyone can name any URL as client_id (draft §6.5, §8.6): idp must not become a fetcher
    of whatever an address asks for. Past IDP_CIMD_FETCHES_PER_MINUTE a 429 page, and no fetch;
    a document already cached costs no fetch; the refusal is the address's, not remembered for
    the URL; another address is not affected."""
    urls = [docs.url(f"/c{i}.json") for i in range(5)]
    for i, url in enumerate(urls):
        docs.serve_document(f"/c{i}.json", document(url))
    a, b = "198.51.100.7", "203.0.113.9"
    limited = replace(settings, cimd_allow_loopback=True, cimd_fetches_per_minute=3)
    async with (
        app_fetching(limited, clock, tmp_path, peer=a) as app,
        app_fetching(limited, clock, tmp_path, peer=b) as other,  # another process, too
    ):
        for url in urls[:3]:
            assert (await authorize_page(app, url)).status_code == 303
        clock.advance(timedelta(seconds=30))
        answer = await authorize_page(app, urls[3])
        assert_too_many_page(answer, "60", "Too many different applications")
        assert docs.requests["/c3.json"] == 0  # never fetched
        assert (await authorize_page(app, urls[0])).status_code == 303  # cached: no fetch
        assert (await authorize_page(other, urls[4])).status_code == 303  # another address

        clock.advance(timedelta(seconds=31))  # A's window is over; a refusal would be kept
        assert (await authorize_page(app, urls[3])).status_code == 303
    assert docs.requests == {f"/c{i}.json": 1 for i in range(5)}


async def test_token_endpoint_answers_429_past_the_fetch_limit(
    docs: DocumentServer, settings: Settings, clock: FrozenClock, tmp_path: Path
) -> None:
    first, second = docs.url("/first.json"), docs.url("/second.json")
    docs.serve_document("/first.json", document(first))
    docs.serve_document("/second.json", document(second))
    async with app_fetching(
        settings, clock, tmp_path, cimd_allow_loopback=True, cimd_fetches_per_minute=1
    ) as app:
        assert (await authorize_page(app, first)).status_code == 303
        answer = await app.client.post(
            "/token",
            data={"grant_type": "refresh_token", "client_id": second, "refresh_token": "x"},
        )
    assert_oauth_error(answer, 429, "too_many_requests")
    assert answer.headers["retry-after"] == "60"
    assert docs.requests["/second.json"] == 0


async def test_a_process_fetches_at_most_so_many_documents_at_once(
    docs: DocumentServer, settings: Settings, clock: FrozenClock, tmp_path: Path
) -> None:
    """IDP_CIMD_CONCURRENT_FETCHES: with every slot taken, a request that needs another fetch
    is a 429 at once (never queued behind slow servers); one for a URL being fetched joins
    that fetch."""
    slow, other = docs.url("/slow.json"), docs.url("/other.json")
    body = json.dumps(document(slow)).encode()
    docs.answers["/slow.json"] = Answer(headers=JSON, body=body, delay=0.5)
    docs.serve_document("/other.json", document(other))
    async with app_fetching(
        settings, clock, tmp_path, cimd_allow_loopback=True, cimd_concurrent_fetches=1
    ) as app:
        first = asyncio.ensure_future(authorize_page(app, slow))

        async def fetching() -> bool:
            return docs.requests["/slow.json"] == 1

        await wait_until(fetching, within=5)
        answer = await authorize_page(app, other)
        assert_too_many_page(answer, "5", "being fetched right now")
        assert docs.requests["/other.json"] == 0
        joined = await authorize_page(app, slow)
        assert joined.status_code == 303
        assert (await first).status_code == 303
        assert (await authorize_page(app, other)).status_code == 303
    assert docs.requests == {"/slow.json": 1, "/other.json": 1}
