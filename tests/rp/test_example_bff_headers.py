"""The example BFF (examples/bff/app.py), the one users copy, sends its security headers on
every answer, not only the page's: nosniff, no framing, no Referer, and HSTS on https.

No idp is needed: none of these answers asks it anything (/me without a session is a 401)."""

from __future__ import annotations

import secrets

import httpx
import pytest

from examples.bff.app import create_app
from idp_rp.bff import BffConfig


def config(base_url: str) -> BffConfig:
    return BffConfig(
        issuer="http://127.0.0.1:9",
        client_id="example",
        client_secret="secret",
        base_url=base_url,
        cookie_key=secrets.token_bytes(32),
        api_upstream="http://127.0.0.1:9",
    )


@pytest.mark.parametrize("path", ["/", "/static/app.js", "/static/style.css", "/me", "/api/x"])
async def test_every_answer_carries_the_security_headers(path: str) -> None:
    app = create_app(config("http://127.0.0.1:8001"))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8001") as http:
        answer = await http.get(path)
    assert answer.status_code in (200, 401), answer.text
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["referrer-policy"] == "no-referrer"
    assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]
    assert answer.headers["x-frame-options"] == "DENY"
    assert "strict-transport-security" not in answer.headers  # http: a browser ignores it


async def test_the_page_keeps_its_own_policy_and_https_adds_hsts() -> None:
    """The page's CSP allows its own script and style, and no inline script (CSP3
    script-src 'self'); RFC 6797 HSTS on an https origin."""
    app = create_app(config("https://app.example"))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="https://app.example") as http:
        page = await http.get("/")
    policy = page.headers["content-security-policy"]
    assert "script-src 'self';" in policy
    assert "unsafe-inline" not in policy
    assert page.headers["strict-transport-security"] == "max-age=31536000"
