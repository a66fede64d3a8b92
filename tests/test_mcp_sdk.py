"""The MCP Python SDK end to end (MCP authorization 2025-11-25): an MCP client with the SDK's
``OAuthClientProvider`` finds idp through the MCP server's protected resource metadata
(RFC 9728), registers itself (RFC 7591, IDP_DCR=open) or presents a Client ID Metadata Document
URL (IDP_CIMD=on), walks the hosted login and consent, gets a token whose ``aud`` is the MCP
server's URL (RFC 8707), and lists the server's tools."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import asyncpg
import jwt
from mcp.client.auth import OAuthClientProvider
from mcp.shared.auth import OAuthClientMetadata

from idp.oauth.document_fetch import DocumentFetcher
from idp.settings import Settings
from tests.conftest import free_socket, serving
from tests.document_server import client_context, document_server
from tests.factories import PASSWORD, make_user
from tests.mcp_stack import (
    TOOL,
    BrowserWalk,
    MemoryStorage,
    list_tools_with_oauth,
    mcp_server,
    mcp_url_of,
)


async def test_an_mcp_client_registers_signs_in_and_lists_tools_with_a_token_for_the_server(
    settings: Settings, pool: asyncpg.Pool
) -> None:
    user = await make_user(pool)
    listening, callback = free_socket(), free_socket()
    redirect_uri = f"http://127.0.0.1:{callback.getsockname()[1]}/callback"
    callback.close()  # only its port is needed: the walk stops at the redirect
    mcp_url = mcp_url_of(listening)
    async with (
        serving(replace(settings, dcr="open", resources=(mcp_url,))) as idp,
        mcp_server(idp.base_url, listening) as server,
    ):
        storage = MemoryStorage()
        walk = BrowserWalk(idp.base_url, redirect_uri, user.email, PASSWORD)
        provider = OAuthClientProvider(
            server_url=server.url,
            client_metadata=OAuthClientMetadata(
                client_name="MCP test client",
                redirect_uris=[redirect_uri],  # type: ignore[list-item]
                grant_types=["authorization_code"],
                response_types=["code"],
                token_endpoint_auth_method="none",
            ),
            storage=storage,
            redirect_handler=walk.redirect_handler,
            callback_handler=walk.callback_handler,
        )
        tools = await list_tools_with_oauth(provider, server.url)

    assert tools == [TOOL]
    assert len(walk.authorization_urls) == 1
    assert storage.tokens is not None
    assert storage.client_info is not None
    claims = jwt.decode(storage.tokens.access_token, options={"verify_signature": False})
    assert claims["aud"] == server.url
    assert claims["iss"] == idp.base_url
    assert server.verifier.verified, "the server accepted the token only after checking it"
    row = await pool.fetchrow(
        "SELECT registration, first_party FROM clients WHERE client_id = $1",
        storage.client_info.client_id,
    )
    assert row is not None
    assert (row["registration"], row["first_party"]) == ("dynamic", False)


async def test_an_mcp_client_with_the_sdk_default_metadata_is_registered_as_public(
    settings: Settings, pool: asyncpg.Pool
) -> None:
    """The SDK's default metadata names no token_endpoint_auth_method (RFC 7591 §2 would mean
    client_secret_basic): under IDP_DCR=open idp substitutes none (§3.2.1), which the SDK
    accepts, and asks for refresh_token, which a public native client may have. Its redirect URI
    is ``http://localhost:PORT/callback``, as the SDK's examples and most MCP clients write it
    (idp.oauth.redirect_uris)."""
    user = await make_user(pool)
    listening, callback = free_socket(), free_socket()
    redirect_uri = f"http://localhost:{callback.getsockname()[1]}/callback"
    callback.close()
    mcp_url = mcp_url_of(listening)
    async with (
        serving(replace(settings, dcr="open", resources=(mcp_url,))) as idp,
        mcp_server(idp.base_url, listening) as server,
    ):
        storage = MemoryStorage()
        walk = BrowserWalk(idp.base_url, redirect_uri, user.email, PASSWORD)
        provider = OAuthClientProvider(
            server_url=server.url,
            client_metadata=OAuthClientMetadata(redirect_uris=[redirect_uri]),  # type: ignore[list-item]
            storage=storage,
            redirect_handler=walk.redirect_handler,
            callback_handler=walk.callback_handler,
        )
        tools = await list_tools_with_oauth(provider, server.url)

    assert tools == [TOOL]
    assert storage.client_info is not None
    assert storage.client_info.token_endpoint_auth_method == "none"
    assert storage.client_info.client_secret is None
    assert set(storage.client_info.grant_types) == {"authorization_code", "refresh_token"}
    assert [str(uri) for uri in storage.client_info.redirect_uris or []] == [redirect_uri]


async def test_an_mcp_client_known_by_its_metadata_document_signs_in_and_lists_tools(
    settings: Settings, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    """The second way MCP clients identify themselves (MCP authorization 2025-11-25 §"Client ID
    Metadata Documents"): no registration; the SDK sends its document's https URL as client_id,
    idp fetches the document (over real TLS from a local server, IDP_CIMD_ALLOW_LOOPBACK) and
    accepts only the redirect URI it names."""
    user = await make_user(pool)
    listening, callback = free_socket(), free_socket()
    redirect_uri = f"http://127.0.0.1:{callback.getsockname()[1]}/callback"
    callback.close()
    mcp_url = mcp_url_of(listening)
    here = replace(
        settings, dcr="closed", cimd=True, cimd_allow_loopback=True, resources=(mcp_url,)
    )
    async with document_server(tmp_path) as documents:
        fetcher = DocumentFetcher(allow_loopback=True, ssl_context=client_context(tmp_path))
        document_url = documents.url("/mcp-client.json")
        documents.serve_document(
            "/mcp-client.json",
            {
                "client_id": document_url,
                "client_name": "MCP test client (metadata document)",
                "redirect_uris": [redirect_uri],
                "grant_types": ["authorization_code"],
                "response_types": ["code"],
                "token_endpoint_auth_method": "none",
            },
            Cache_Control="max-age=600",
        )
        try:
            async with (
                serving(here, documents=fetcher) as idp,
                mcp_server(idp.base_url, listening) as server,
            ):
                storage = MemoryStorage()
                walk = BrowserWalk(idp.base_url, redirect_uri, user.email, PASSWORD)
                provider = OAuthClientProvider(
                    server_url=server.url,
                    client_metadata=OAuthClientMetadata(
                        redirect_uris=[redirect_uri],  # type: ignore[list-item]
                        token_endpoint_auth_method="none",
                    ),
                    storage=storage,
                    redirect_handler=walk.redirect_handler,
                    callback_handler=walk.callback_handler,
                    client_metadata_url=document_url,
                )
                tools = await list_tools_with_oauth(provider, server.url)
        finally:
            await fetcher.aclose()

    assert tools == [TOOL]
    assert storage.client_info is not None
    assert storage.client_info.client_id == document_url
    assert storage.tokens is not None
    claims = jwt.decode(storage.tokens.access_token, options={"verify_signature": False})
    assert (claims["aud"], claims["client_id"]) == (server.url, document_url)
    assert documents.requests["/mcp-client.json"] == 1, "fetched once, then cached"
    registered = await pool.fetchval(
        "SELECT registration FROM clients WHERE client_id = $1", document_url
    )
    assert registered == "metadata_document"
    assert await pool.fetchval("SELECT count(*) FROM clients WHERE registration = 'dynamic'") == 0
