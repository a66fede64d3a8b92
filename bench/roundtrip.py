"""Load for a whole authorization-code round trip: /authorize → /login page → sign-in → /token.

    python bench/roundtrip.py BASE_URL CLIENT_ID CLIENT_SECRET EMAIL PASSWORD SECONDS CONCURRENCY
    python bench/roundtrip.py --refresh-tokens BASE_URL CLIENT_ID CLIENT_SECRET EMAIL PASSWORD N
    python bench/roundtrip.py --passkeys ISSUER BASE_URL CLIENT_ID CLIENT_SECRET EMAIL PASSWORD \
        SECONDS CONCURRENCY

With ``--passkeys`` each browser first adds a passkey to its person's account (signed in with the
password on /account/sign-in, not measured), held by a software authenticator
(tests/softkey.py: real ES256 signatures), then each round trip signs in with "Sign in with a
passkey" instead of the password: POST /login/passkey with the assertion. ISSUER is idp's issuer
(a domain: an RP ID is never an IP address), the origin the authenticator writes.

Runs in its own process, never the server's. Prints its result in wrk's format (the lines that
bench/report.py reads), one "request" being one whole round trip, so that the round trip sits in
the same table as the other scenarios.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import re
import secrets
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx

# The software authenticator lives with the tests; this script runs from bench/.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.softkey import SoftAuthenticator

REDIRECT = "https://bench.example/callback"
_HIDDEN = re.compile(r'<input type="hidden" name="([a-z_]+)" value="([^"]*)">')
_OPTIONS = re.compile(r'<script type="application/json" id="passkey-options">([^<]*)</script>')


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
    """Sign in with the password."""

    async def sign_in(page: str) -> httpx.Response:
        form = dict(_HIDDEN.findall(page)) | {"email": email, "password": password}
        return await client.post("/login", data=form)

    return await _round_trip(client, client_id, secret, sign_in)


async def passkey_round_trip(
    client: httpx.AsyncClient, client_id: str, secret: str, key: SoftAuthenticator
) -> dict[str, str]:
    """Sign in with a passkey: the login page's options signed by the authenticator."""

    async def sign_in(page: str) -> httpx.Response:
        options = _options(page)
        answer = key.authenticate(options)
        form = dict(_HIDDEN.findall(page)) | {"credential": json.dumps(answer)}
        return await client.post("/login/passkey", data=form)

    return await _round_trip(client, client_id, secret, sign_in)


async def _round_trip(
    client: httpx.AsyncClient,
    client_id: str,
    secret: str,
    sign_in: Callable[[str], Awaitable[httpx.Response]],
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
    signed_in = await sign_in(page.text)
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


def _options(page: str) -> dict[str, object]:
    found = _OPTIONS.search(page)
    if found is None:
        raise KeyError("no passkey options on the page: is the issuer a domain?")
    options: dict[str, object] = json.loads(found.group(1))
    return options


async def add_passkey(
    client: httpx.AsyncClient, issuer: str, email: str, password: str
) -> SoftAuthenticator:
    """Sign in to the account page with the password and add a passkey there."""
    key = SoftAuthenticator(issuer, urlsplit(issuer).hostname or "")
    page = await client.get("/account/sign-in")
    form = dict(_HIDDEN.findall(page.text)) | {"email": email, "password": password}
    signed_in = await client.post("/account/sign-in", data=form)
    if signed_in.headers.get("location") != "/account":
        raise SystemExit(f"bench: {email} could not sign in: {signed_in.status_code}")
    page = await client.get("/account/security")
    answer = key.register(_options(page.text))
    form = dict(_HIDDEN.findall(page.text)) | {"credential": json.dumps(answer), "name": "bench"}
    added = await client.post("/account/security/passkeys", data=form)
    if "done=passkey" not in added.headers.get("location", ""):
        raise SystemExit(f"bench: adding a passkey for {email} failed: {added.status_code}")
    return key


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
    issuer = None
    if argv[0] == "--passkeys":
        issuer, argv = argv[1], argv[2:]
    base_url, client_id, secret, email, password = argv[:5]
    seconds, concurrency = float(argv[5]), int(argv[6])
    latencies: list[float] = []
    errors = 0
    ready = asyncio.Barrier(concurrency)  # passkeys added by every browser before the clock
    started = deadline = 0.0

    async def worker(n: int) -> None:
        nonlocal errors, started, deadline
        person = browser_email(email, n)
        async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
            key = None if issuer is None else await add_passkey(client, issuer, person, password)
            await ready.wait()
            if not started:  # the first browser through starts the clock (one event loop)
                started = time.monotonic()
                deadline = started + seconds
            while time.monotonic() < deadline:
                began = time.monotonic()
                try:
                    if key is None:
                        await round_trip(client, client_id, secret, person, password)
                    else:
                        await passkey_round_trip(client, client_id, secret, key)
                except (httpx.HTTPError, KeyError):
                    errors += 1
                    continue
                latencies.append(time.monotonic() - began)

    await asyncio.gather(*(worker(n) for n in range(concurrency)))
    elapsed = time.monotonic() - started
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
