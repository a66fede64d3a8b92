"""Tokens from the benchmark's peer (bench/peer/server.js) for the scenarios that need one.

    python bench/peer/tokens.py BASE_URL N                 # N refresh tokens of bench-web
    python bench/peer/tokens.py --access-token BASE_URL    # an access token of bench to introspect

The first runs N authorization-code flows with PKCE (S256), each a new browser (its own cookies),
through the peer's automatic login and consent, and prints each flow's refresh token on its own
line, like ``bench/roundtrip.py --refresh-tokens`` does for idp. Every request goes on a new
connection, so a flow's steps land on different workers: a check that their state is shared.

The second prints a client_credentials access token of ``bench`` requested without a resource
indicator: an opaque one, which oidc-provider stores and can introspect (it answers
unsupported_token_type for a JWT access token). With ``--resource URI`` the token is a JWT for
that resource server instead.

Clients and secrets come from clients.json beside this file.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import secrets
import sys
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import httpx

REDIRECT = "https://bench.example/callback"
RESOURCE = "https://api.example"
SCOPE = "openid email offline_access"
MAX_REDIRECTS = 10
CONCURRENCY = 4  # flows at a time


def clients() -> dict[str, dict[str, str]]:
    loaded: dict[str, dict[str, str]] = json.loads(
        (Path(__file__).parent / "clients.json").read_text()
    )
    return loaded


def s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


async def code_flow(base_url: str, client_id: str, secret: str) -> dict[str, str]:
    """One authorization-code flow in a new browser; the token endpoint's answer."""
    verifier = secrets.token_urlsafe(48)
    query = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": REDIRECT,
        "scope": SCOPE,
        "prompt": "consent",  # oidc-provider drops offline_access under any other prompt
        "resource": RESOURCE,  # JWT access tokens (RFC 9068), here and on every refresh
        "state": secrets.token_urlsafe(8),
        "nonce": secrets.token_urlsafe(8),
        "code_challenge": s256(verifier),
        "code_challenge_method": "S256",
    }
    no_keepalive = httpx.Limits(max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=base_url, timeout=30, limits=no_keepalive) as client:
        url = urljoin(base_url, "/authorize?" + urlencode(query))
        for _ in range(MAX_REDIRECTS):
            answer = await client.get(url)
            if not answer.is_redirect:
                raise RuntimeError(f"GET {url} answered {answer.status_code}: {answer.text[:300]}")
            url = urljoin(url, answer.headers["location"])
            if url.startswith(REDIRECT):
                break
        else:
            raise RuntimeError(f"no redirect to {REDIRECT} after {MAX_REDIRECTS} steps")
        params = parse_qs(urlsplit(url).query)
        if "code" not in params:
            raise RuntimeError(f"the flow ended without a code: {url}")
        tokens = await client.post(
            "/token",
            auth=(client_id, secret),
            data={
                "grant_type": "authorization_code",
                "code": params["code"][0],
                "redirect_uri": REDIRECT,
                "code_verifier": verifier,
            },
        )
        if tokens.status_code != httpx.codes.OK:
            raise RuntimeError(f"/token answered {tokens.status_code}: {tokens.text[:300]}")
        issued: dict[str, str] = tokens.json()
        return issued


async def refresh_tokens(base_url: str, count: int) -> int:
    web = clients()["bench-web"]
    slots = asyncio.Semaphore(CONCURRENCY)

    async def one() -> str:
        async with slots:
            issued = await code_flow(base_url, web["client_id"], web["client_secret"])
        return issued["refresh_token"]

    for token in await asyncio.gather(*(one() for _ in range(count))):
        print(token)
    return 0


async def access_token(base_url: str, resource: str | None) -> int:
    machine = clients()["bench"]
    form = {"grant_type": "client_credentials", "scope": "read"}
    if resource:
        form["resource"] = resource
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        answer = await client.post(
            "/token", auth=(machine["client_id"], machine["client_secret"]), data=form
        )
    if answer.status_code != httpx.codes.OK:
        print(f"/token answered {answer.status_code}: {answer.text[:300]}", file=sys.stderr)
        return 1
    print(answer.json()["access_token"])
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--access-token", action="store_true", help="print an access token")
    parser.add_argument("--resource", help="with --access-token: a JWT for this resource")
    parser.add_argument("base_url")
    parser.add_argument("count", nargs="?", type=int, help="refresh tokens to print")
    args = parser.parse_args(argv)
    if args.access_token:
        return asyncio.run(access_token(args.base_url, args.resource))
    if args.count is None or args.count < 0:
        parser.error("give the number of refresh tokens, or --access-token")
    return asyncio.run(refresh_tokens(args.base_url, args.count))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
