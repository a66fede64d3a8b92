"""The person's side of an authorization request, as a browser without JavaScript would walk
it: /authorize → /login (password) → /consent (allow) → back to the client's redirect URI. For
clients registered by programs, which always see the consent page."""

from __future__ import annotations

from urllib.parse import urlsplit

import httpx

from tests.oauth.flow import hidden_fields, sign_in


async def walk_hosted_login(
    http: httpx.AsyncClient, authorize_url: str, redirect_uri: str, email: str, password: str
) -> str:
    """Where idp finally sends the browser (the redirect URI with ``code`` or ``error``);
    ``http``'s base URL is idp's."""
    response = await http.get(authorize_url)
    for _ in range(8):
        assert response.status_code in (302, 303), response.text
        location = response.headers["location"]
        if location.startswith(redirect_uri):
            return location
        path = urlsplit(location).path
        if path == "/login":
            response = await sign_in(http, location, email, password)
        elif path == "/consent":
            page = await http.get(location)
            assert page.status_code == 200, page.text
            fields = {**hidden_fields(page.text), "decision": "allow"}
            response = await http.post("/consent", data=fields)
        else:
            response = await http.get(location)
    raise AssertionError(f"the walk never came back to {redirect_uri}")
