"""The RFC 9728 document and its route, read the way a client reads it (§3)."""

from __future__ import annotations

from urllib.parse import urlsplit

import httpx
import pytest
from starlette.applications import Starlette

from idp_rp.protected_resource import metadata_document, metadata_route, metadata_url

ISSUER = "https://idp.example"


async def fetch_as_a_client(app: Starlette, resource: str) -> httpx.Response:
    """RFC 9728 §3.1: the client derives the URL from the resource identifier (well-known
    suffix inserted between host and path) and GETs it."""
    url = metadata_url(resource)
    origin = "{0.scheme}://{0.netloc}".format(urlsplit(url))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=origin) as client:
        return await client.get(url)


@pytest.mark.parametrize(
    ("resource", "path"),
    [
        ("https://api.example", "/.well-known/oauth-protected-resource"),
        ("https://api.example/", "/.well-known/oauth-protected-resource"),
        ("https://api.example/mcp", "/.well-known/oauth-protected-resource/mcp"),
        ("http://localhost:8002/v1/api", "/.well-known/oauth-protected-resource/v1/api"),
    ],
    ids=["host", "host-slash", "path", "loopback-http-path"],
)
async def test_the_document_is_served_where_a_client_derives_it_and_validates(
    resource: str, path: str
) -> None:
    app = Starlette(
        routes=[metadata_route(resource, [ISSUER], scopes_supported=["read"], resource_name="API")]
    )
    assert urlsplit(metadata_url(resource)).path == path
    answer = await fetch_as_a_client(app, resource)
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/json"  # §3.2
    document = answer.json()
    # §3.3: the resource is identical to the identifier the client used, else it is refused.
    assert document["resource"] == resource
    # §2: authorization_servers are issuer identifiers; the header method only (RFC 6750 §2.1).
    assert document == {
        "resource": resource,
        "authorization_servers": [ISSUER],
        "bearer_methods_supported": ["header"],
        "scopes_supported": ["read"],
        "resource_name": "API",
    }


def test_optional_members_are_left_out_when_not_given() -> None:
    assert metadata_document("https://api.example", [ISSUER]) == {
        "resource": "https://api.example",
        "authorization_servers": [ISSUER],
        "bearer_methods_supported": ["header"],
    }


@pytest.mark.parametrize(
    "resource",
    [
        "http://api.example",
        "https://api.example/#frag",
        "https://api.example/?q=1",
        "api.example",
        "https://",
    ],
    ids=["plain-http", "fragment", "query", "relative", "no-host"],
)
def test_a_resource_that_is_not_an_https_url_without_fragment_is_refused(resource: str) -> None:
    """RFC 9728 §2: ``resource`` is a URL that uses https and has no fragment."""
    with pytest.raises(ValueError, match="must"):
        metadata_document(resource, [ISSUER])


def test_authorization_servers_must_be_a_non_empty_list() -> None:
    with pytest.raises(ValueError, match="non-empty list"):
        metadata_document("https://api.example", ISSUER)
    with pytest.raises(ValueError, match="non-empty list"):
        metadata_document("https://api.example", [])
