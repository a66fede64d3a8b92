"""Web origins (RFC 6454) of registered redirect URIs: the pages that may call the API
endpoints from a browser (CORS)."""

from __future__ import annotations

from urllib.parse import urlsplit

from idp.db.clients import Client


def origin_of(uri: str) -> str | None:
    """``scheme://host[:port]`` of an http(s) URI, lower-cased; None for any other URI (custom
    schemes of native apps have no web origin)."""
    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}".lower()


def client_origins(client: Client) -> set[str]:
    return {origin for uri in client.redirect_uris if (origin := origin_of(uri)) is not None}
