"""Load for a whole authorization-code round trip: /authorize → /login page → sign-in → /token.

    python bench/roundtrip.py BASE_URL CLIENT_ID CLIENT_SECRET EMAIL PASSWORD SECONDS CONCURRENCY
    python bench/roundtrip.py --refresh-tokens BASE_URL CLIENT_ID CLIENT_SECRET EMAIL PASSWORD N

Runs in its own process, never the server's. Prints its result in wrk's format (the lines that
bench/report.py reads), one "request" being one whole round trip, so that the round trip sits in
the same table as the other scenarios.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
import secrets
import sys
import time
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx

REDIRECT = "https://bench.example/callback"
_HIDDEN = re.compile(r'<input type="hidden" name="([a-z_]+)" value="([^"]*)">')


def browser_email(email: str, n: int) -> str:
    """The account the ``n``-th concurrent browser signs in to: each its own person (idp refuses
    a seventh sign-in of one account while six are being checked, idp.signin)."""
    if n == 0:
        return email
    local, domain = email.split("@")
    return f"{local}+{n}@{domain}"


def s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


async def round_trip(
    client: httpx.AsyncClient, client_id: str, secret: str, email: str, password: str
) -> dict[str, str]:
    verifier = secrets.token_urlsafe(48)
    query = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": REDIRECT,
        "scope": "openid email",
        "state": secrets.token_urlsafe(8),
        "nonce": secrets.token_urlsafe(8),
        "code_challenge": s256(verifier),
        "code_challenge_method": "S256",
    }
    client.cookies.clear()  # a new browser each time: a real sign-in, not a session reuse
    start = await client.get("/authorize?" + urlencode(query))
    page = await client.get(start.headers["location"])
    form = dict(_HIDDEN.findall(page.text)) | {"email": email, "password": password}
    signed_in = await client.post("/login", data=form)
    code = parse_qs(urlsplit(signed_in.headers["location"]).query)["code"][0]
    tokens = await client.post(
        "/token",
        auth=(client_id, secret),
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "code_verifier": verifier,
        },
    )
    tokens.raise_for_status()
    issued: dict[str, str] = tokens.json()
    return issued


async def refresh_tokens(argv: list[str]) -> int:
    """``--refresh-tokens N``: sign in N times and print one refresh token per line."""
    base_url, client_id, secret, email, password, count = argv
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        for _ in range(int(count)):
            print((await round_trip(client, client_id, secret, email, password))["refresh_token"])
    return 0


async def main(argv: list[str]) -> int:
    if argv[0] == "--refresh-tokens":
        return await refresh_tokens(argv[1:])
    base_url, client_id, secret, email, password = argv[:5]
    seconds, concurrency = float(argv[5]), int(argv[6])
    latencies: list[float] = []
    errors = 0
    deadline = time.monotonic() + seconds

    async def worker(n: int) -> None:
        nonlocal errors
        async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
            while time.monotonic() < deadline:
                began = time.monotonic()
                try:
                    await round_trip(client, client_id, secret, browser_email(email, n), password)
                except (httpx.HTTPError, KeyError):
                    errors += 1
                    continue
                latencies.append(time.monotonic() - began)

    began = time.monotonic()
    await asyncio.gather(*(worker(n) for n in range(concurrency)))
    elapsed = time.monotonic() - began
    latencies.sort()

    def percentile(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000

    if not latencies:
        print(f"no round trip completed ({errors} errors)", file=sys.stderr)
        return 1
    print("  Latency Distribution")
    print(f"     50%  {percentile(0.50):.2f}ms")
    print(f"     99%  {percentile(0.99):.2f}ms")
    print(f"  {len(latencies)} requests in {elapsed:.2f}s, 0.00MB read")
    if errors:
        print(f"  Non-2xx or 3xx responses: {errors}")
    print(f"Requests/sec: {len(latencies) / elapsed:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
