"""OAuth 2.0 Protected Resource Metadata (RFC 9728): the document that tells a client (an MCP
client, say) which authorization server issues tokens for this resource, and where it is served.

``metadata_document`` and ``metadata_url`` need nothing but the standard library;
``metadata_route`` returns a Starlette route (Starlette is imported only when it is called).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

if TYPE_CHECKING:
    from starlette.routing import Route

WELL_KNOWN = "/.well-known/oauth-protected-resource"
_LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1"})


def check_resource(resource: str) -> None:
    """RFC 9728 §2 ``resource``: an https URL with no fragment (plain http is accepted for a
    loopback host only, for development). A query is discouraged by §1.2 and refused here."""
    parts = urlsplit(resource)
    loopback = parts.scheme == "http" and parts.hostname in _LOOPBACK
    if not (parts.scheme == "https" or loopback) or not parts.hostname:
        raise ValueError(f"the resource {resource!r} must be an https URL (http on localhost)")
    if parts.fragment or "#" in resource or parts.query:
        raise ValueError(f"the resource {resource!r} must have no query or fragment")


def metadata_path(resource: str) -> str:
    """RFC 9728 §3.1: the well-known suffix goes between the host and the resource's path:
    ``https://api.example/mcp`` -> ``/.well-known/oauth-protected-resource/mcp``."""
    path = urlsplit(resource).path
    return WELL_KNOWN + ("" if path == "/" else path)


def metadata_url(resource: str) -> str:
    """Where the document of ``resource`` is served; the ``resource_metadata`` of the
    ``WWW-Authenticate`` challenge (RFC 9728 §5.1)."""
    check_resource(resource)
    parts = urlsplit(resource)
    return urlunsplit((parts.scheme, parts.netloc, metadata_path(resource), "", ""))


def metadata_document(
    resource: str,
    authorization_servers: Sequence[str],
    *,
    scopes_supported: Sequence[str] = (),
    resource_name: str | None = None,
) -> dict[str, Any]:
    """RFC 9728 §2. ``resource`` must be exactly the identifier clients use (§3.3: a client
    refuses a document whose ``resource`` differs from the URL it derived the document from)."""
    check_resource(resource)
    if isinstance(authorization_servers, str) or not authorization_servers:
        raise ValueError("authorization_servers is a non-empty list of issuer URLs")
    document: dict[str, Any] = {
        "resource": resource,
        "authorization_servers": list(authorization_servers),
        "bearer_methods_supported": ["header"],  # RFC 6750 §2.1 only
    }
    if scopes_supported:
        document["scopes_supported"] = list(scopes_supported)
    if resource_name is not None:
        document["resource_name"] = resource_name
    return document


def metadata_route(
    resource: str,
    authorization_servers: Sequence[str],
    *,
    scopes_supported: Sequence[str] = (),
    resource_name: str | None = None,
) -> Route:
    """A Starlette ``Route`` answering GET at ``metadata_path(resource)`` with the document."""
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    document = metadata_document(
        resource,
        authorization_servers,
        scopes_supported=scopes_supported,
        resource_name=resource_name,
    )

    async def protected_resource_metadata(_: Request) -> JSONResponse:
        # §3.2: application/json; public, so it may be cached a little.
        return JSONResponse(document, headers={"Cache-Control": "public, max-age=3600"})

    return Route(metadata_path(resource), protected_resource_metadata, methods=["GET"])
