"""An MCP deployment around idp, for end-to-end tests with the MCP Python SDK (`mcp`):

- ``mcp_server``: a real MCP server (``MCPServer``, one tool) on uvicorn on a free port of
  127.0.0.1, protected by ``IdpTokenVerifier`` (idp's JWTs checked against idp's JWKS with
  PyJWT: RS256 signature, ``iss``, ``aud`` = the server's URL, ``exp``), and serving RFC 9728
  protected resource metadata that names idp;
- ``BrowserWalk``: the SDK's redirect and callback handlers, walking idp's hosted login and
  consent over plain HTTP as a person would, and handing the code back;
- ``MemoryStorage``: the SDK's token storage, kept to look at afterwards;
- ``list_tools_with_oauth``: an MCP client with ``OAuthClientProvider`` listing the tools.

Reusable for other ways of getting a client_id (dynamic registration, or a Client ID Metadata
Document URL passed as ``client_metadata_url``).
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

import httpx
import httpx2
import jwt
from mcp import ClientSession
from mcp.client.auth import OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.server.auth.provider import AccessToken
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import MCPServer
from mcp.shared.auth import AuthorizationCodeResult, OAuthClientInformationFull, OAuthToken

from tests.conftest import uvicorn_serving
from tests.hosted_login import walk_hosted_login

MCP_PATH = "/mcp"
TOOL = "add"
# What the protected resource metadata asks clients to request (RFC 9728 scopes_supported).
MCP_SCOPES = ["profile"]


class IdpTokenVerifier:
    """The resource server's check of idp's access tokens (RFC 9068 §4), with PyJWT: the JWKS
    is fetched asynchronously (idp runs on the same event loop) and again for an unknown kid."""

    def __init__(self, issuer: str, audience: str) -> None:
        self.issuer = issuer
        self.audience = audience
        self._keys: jwt.PyJWKSet | None = None
        self.verified: list[dict[str, object]] = []  # the claims of every token accepted

    async def _key(self, kid: str) -> jwt.PyJWK:
        for refetch in (False, True):
            if self._keys is None or refetch:
                async with httpx.AsyncClient() as http:
                    answer = await http.get(f"{self.issuer}/jwks.json")
                    answer.raise_for_status()
                self._keys = jwt.PyJWKSet.from_dict(answer.json())
            for key in self._keys.keys:
                if key.key_id == kid:
                    return key
        raise jwt.InvalidTokenError(f"unknown kid {kid!r}")

    async def verify_token(self, token: str) -> AccessToken | None:
        try:
            kid = jwt.get_unverified_header(token).get("kid")
            if not isinstance(kid, str):
                return None
            key = await self._key(kid)
            claims = jwt.decode(
                token,
                key,
                algorithms=["RS256"],
                audience=self.audience,
                issuer=self.issuer,
                options={"require": ["exp", "iss", "aud", "sub", "client_id"]},
            )
        except (jwt.InvalidTokenError, httpx.HTTPError):
            return None
        self.verified.append(claims)
        return AccessToken(
            token=token,
            client_id=claims["client_id"],
            scopes=str(claims.get("scope", "")).split(),
            expires_at=claims["exp"],
            resource=self.audience,
            subject=claims["sub"],
        )


@dataclass
class McpServer:
    url: str  # the MCP endpoint, which is also the resource (RFC 8707) and the token's aud
    verifier: IdpTokenVerifier


def mcp_url_of(listening: socket.socket) -> str:
    return f"http://127.0.0.1:{listening.getsockname()[1]}{MCP_PATH}"


@asynccontextmanager
async def mcp_server(issuer: str, listening: socket.socket) -> AsyncIterator[McpServer]:
    """An MCP server with one tool, ``add``, whose tokens idp (``issuer``) issues."""
    url = mcp_url_of(listening)
    verifier = IdpTokenVerifier(issuer, url)
    server = MCPServer(
        "calculator",
        token_verifier=verifier,
        auth=AuthSettings(
            issuer_url=issuer,  # type: ignore[arg-type]
            resource_server_url=url,  # type: ignore[arg-type]
            required_scopes=MCP_SCOPES,
            validate_token_resource=False,  # the verifier checks aud itself
        ),
    )

    @server.tool()
    def add(a: int, b: int) -> int:
        """Add two numbers."""
        return a + b

    with listening:
        async with uvicorn_serving(server.streamable_http_app(), listening):
            yield McpServer(url, verifier)


@dataclass
class MemoryStorage:
    tokens: OAuthToken | None = None
    client_info: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client_info

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client_info = client_info


@dataclass
class BrowserWalk:
    """The person in front of the browser: signs in with a password and allows the request."""

    issuer: str
    redirect_uri: str
    email: str
    password: str
    authorization_urls: list[str] = field(default_factory=list)
    _landed: str = ""

    async def redirect_handler(self, authorization_url: str) -> None:
        self.authorization_urls.append(authorization_url)
        async with httpx.AsyncClient(base_url=self.issuer) as browser:
            self._landed = await walk_hosted_login(
                browser, authorization_url, self.redirect_uri, self.email, self.password
            )

    async def callback_handler(self) -> AuthorizationCodeResult:
        query = {key: values[0] for key, values in parse_qs(urlsplit(self._landed).query).items()}
        assert "code" in query, f"the authorization failed: {query}"
        return AuthorizationCodeResult(
            code=query["code"], state=query.get("state"), iss=query.get("iss")
        )


async def list_tools_with_oauth(provider: OAuthClientProvider, mcp_url: str) -> list[str]:
    """The MCP client's side: connect with the provider's OAuth and list the tools' names."""
    async with (
        httpx2.AsyncClient(auth=provider, timeout=30) as http,
        streamable_http_client(mcp_url, http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        listed = await session.list_tools()
    return [tool.name for tool in listed.tools]
