"""The verifier record: verifications per second of one cached RS256 access token on one core.

    scripts/bench --verifier [--duration 2s] [--rounds 5] [--iterations N] [--out FILE]

Three contenders verify the same idp-shaped token (RFC 9068: ``typ`` at+jwt, the claims of
``idp.oauth.access_token.access_token_claims``, RSA-2048) in one process, on one event loop,
pinned to one CPU (``os.sched_setaffinity``):

(a) ``idp_rp.verifier.TokenVerifier.verify`` with a warm ``JwksCache``;
(b) the ceiling: ``cryptography``'s RSA PKCS#1 v1.5 SHA-256 verification of the same signing
    input, with the base64url and JSON decoding and the same header and claim checks (alg, typ,
    kid, crit; required claims, iss, aud, exp/nbf/iat with 60 s leeway) written out inline;
(c) PyJWT: ``PyJWKClient`` (default settings) + ``jwt.decode(..., algorithms=["RS256"],
    audience=..., issuer=...)``.

The JWKS is served by a real HTTP server on 127.0.0.1 (``max-age=3600``); (a) and (c) fetch it
during the warm-up, and the bench fails if any request reaches it during the measured runs.
Each round runs every contender for ``--duration`` (default 2 s; or ``--iterations`` tokens),
the order rotated from round to round, so that noise from the rest of the machine shows as
spread. Targets: (a) at least 0.8 of (b), and at least 1.0 of (c). Writes
bench/results/verifier.md.
"""

from __future__ import annotations

import asyncio
import base64
import importlib.metadata
import json
import os
import platform
import statistics
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
from config import RESULTS, ROOT, log, seconds_of
from cryptography.hazmat.backends.openssl.backend import backend as openssl
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.hashes import SHA256
from joserfc import jws
from joserfc.jwk import RSAKey

from idp.oauth.access_token import access_token_claims

RP_SOURCE = str(ROOT / "rp")  # idp-rp from this checkout, as tests/rp/conftest.py does
if RP_SOURCE not in sys.path:
    sys.path.insert(0, RP_SOURCE)

from idp_rp.verifier import TokenVerifier  # noqa: E402

ISSUER = "https://idp.bench.example"
AUDIENCE = "https://api.bench.example"
LEEWAY = 60
TYPES = frozenset({"at+jwt", "application/at+jwt"})
REQUIRED = ("iss", "exp", "aud", "sub", "client_id", "iat", "jti")
TARGET_CEILING = 0.8  # (a) / (b)
TARGET_PYJWT = 1.0  # (a) / (c)
BATCH = 200  # verifications between two looks at the clock


@dataclass(frozen=True)
class Rate:
    cpu: float  # verifications per second of this process's CPU time
    wall: float  # verifications per wall-clock second


@dataclass
class Contender:
    key: str  # a, b, c
    label: str
    runs: list[float] = field(default_factory=list)  # verifications per CPU second
    wall: list[float] = field(default_factory=list)  # verifications per wall-clock second


class Refused(Exception):
    pass


def _b64(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


class Ceiling:
    """(b): the least a correct verification does, with nothing between it and OpenSSL."""

    def __init__(self, key: RSAPublicKey, kid: str) -> None:
        self.key = key
        self.kid = kid

    def verify(self, token: str) -> dict[str, Any]:
        header_segment, payload_segment, signature_segment = token.split(".")
        header = json.loads(_b64(header_segment))
        if header.get("alg") != "RS256" or str(header.get("typ")).lower() not in TYPES:
            raise Refused("alg or typ")
        if "crit" in header or header.get("kid") != self.kid:
            raise Refused("crit or kid")
        signing_input = f"{header_segment}.{payload_segment}".encode("ascii")
        self.key.verify(_b64(signature_segment), signing_input, padding.PKCS1v15(), SHA256())
        claims = json.loads(_b64(payload_segment))
        if not isinstance(claims, dict) or any(name not in claims for name in REQUIRED):
            raise Refused("claims")
        audience = claims["aud"]
        if claims["iss"] != ISSUER or AUDIENCE not in (
            [audience] if isinstance(audience, str) else audience
        ):
            raise Refused("iss or aud")
        now = time.time()
        if now >= claims["exp"] + LEEWAY or now < claims["iat"] - LEEWAY:
            raise Refused("exp or iat")
        if "nbf" in claims and now < claims["nbf"] - LEEWAY:
            raise Refused("nbf")
        if not all(isinstance(claims[name], str) for name in ("sub", "client_id", "jti")):
            raise Refused("types")
        return claims


@contextmanager
def jwks_served(public: dict[str, Any]) -> Iterator[tuple[str, list[str]]]:
    """A real HTTP server publishing ``public``; its URL and the paths of the requests made."""
    body = json.dumps({"keys": [public]}).encode()
    requests: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            requests.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Cache-Control", "public, max-age=3600")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/jwks.json", requests
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _token(key: RSAKey) -> str:
    """An access token as idp issues one (idp.oauth.access_token), valid for an hour."""
    claims = access_token_claims(
        issuer=ISSUER,
        subject="3f1c2a9e-5b7d-4e8f-9a0b-1c2d3e4f5a6b",
        client_id="bench-api-client",
        audience=[AUDIENCE],
        scopes=["openid", "profile", "email", "read:orders"],
        now=datetime.now(UTC),
        ttl=timedelta(hours=1),
        extra={"auth_time": int(time.time()), "acr": "urn:idp:acr:pwd", "roles": ["staff"]},
    )
    header = {"alg": "RS256", "typ": "at+jwt", "kid": key.kid}
    return jws.serialize_compact(header, json.dumps(claims).encode(), key, algorithms=["RS256"])


def _pin() -> str:
    """Pin this process (its one event loop) to one CPU: the last of those it may use."""
    if not hasattr(os, "sched_setaffinity"):
        return "not pinned (no sched_setaffinity here)"
    cpu = max(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})
    return f"pinned to CPU {cpu}"


class _Meter:
    """Counts verifications made in batches of ``batch`` until ``iterations`` are made (when
    given) or ``seconds`` have passed, then their rate."""

    def __init__(self, seconds: float, iterations: int) -> None:
        self.seconds, self.iterations = seconds, iterations
        self.batch = min(BATCH, iterations) if iterations else BATCH
        self.count = 0
        self.start, self.cpu_start = time.perf_counter(), time.process_time()

    def batch_done(self) -> Rate | None:
        """The rate once the run is over, None while it goes on."""
        self.count += self.batch
        now = time.perf_counter()
        over = (
            self.count >= self.iterations if self.iterations else now - self.start >= self.seconds
        )
        if not over:
            return None
        cpu = max(time.process_time() - self.cpu_start, 1e-9)
        return Rate(self.count / cpu, self.count / (now - self.start))


async def _rate_async(
    verify: Callable[[str], Awaitable[object]], token: str, seconds: float, iterations: int
) -> Rate:
    meter = _Meter(seconds, iterations)
    while True:
        for _ in range(meter.batch):
            await verify(token)
        if (rate := meter.batch_done()) is not None:
            return rate


def _rate_sync(
    verify: Callable[[str], object], token: str, seconds: float, iterations: int
) -> Rate:
    meter = _Meter(seconds, iterations)
    while True:
        for _ in range(meter.batch):
            verify(token)
        if (rate := meter.batch_done()) is not None:
            return rate


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "?"


async def _measure(
    rounds: int, seconds: float, iterations: int
) -> tuple[list[Contender], str, int, int]:
    key = RSAKey.generate_key(2048, parameters={"kid": "bench-2026", "use": "sig", "alg": "RS256"})
    public = dict(key.as_dict(private=False))
    token = _token(key)
    public_key = key.get_op_key("verify")
    assert isinstance(public_key, RSAPublicKey)
    ceiling = Ceiling(public_key, str(key.kid))
    with jwks_served(public) as (url, requests):
        verifier = TokenVerifier.from_jwks_uri(url, issuer=ISSUER, audience=AUDIENCE)
        jwk_client = jwt.PyJWKClient(url)

        def pyjwt(token: str) -> dict[str, Any]:
            signing_key = jwk_client.get_signing_key_from_jwt(token)
            return jwt.decode(
                token,
                signing_key.key,
                algorithms=["RS256"],
                audience=AUDIENCE,
                issuer=ISSUER,
                leeway=LEEWAY,
            )

        try:
            expected = (await verifier.verify(token)).claims
            if ceiling.verify(token) != expected or pyjwt(token) != expected:
                raise SystemExit("bench: the three contenders disagree on the token's claims")
            contenders = [
                Contender("a", "idp_rp `TokenVerifier.verify`, warm `JwksCache`"),
                Contender("b", "ceiling: `cryptography` RSA verify + the same decoding and checks"),
                Contender("c", "PyJWT `PyJWKClient` (defaults) + `jwt.decode`"),
            ]

            async def run_a(seconds: float, iterations: int) -> Rate:
                return await _rate_async(verifier.verify, token, seconds, iterations)

            async def run_b(seconds: float, iterations: int) -> Rate:
                return _rate_sync(ceiling.verify, token, seconds, iterations)

            async def run_c(seconds: float, iterations: int) -> Rate:
                return _rate_sync(pyjwt, token, seconds, iterations)

            runners = {"a": run_a, "b": run_b, "c": run_c}
            for contender in contenders:  # warm-up: caches, branch predictors, allocator
                await runners[contender.key](min(seconds, 0.5), min(iterations, 20) or 0)
            warm = len(requests)
            for round in range(rounds):
                order = contenders[round % 3 :] + contenders[: round % 3]
                for contender in order:
                    rate = await runners[contender.key](seconds, iterations)
                    contender.runs.append(rate.cpu)
                    contender.wall.append(rate.wall)
                    log(
                        f"round {round + 1}/{rounds}: ({contender.key}) {rate.cpu:,.0f}/s of CPU "
                        f"time, {rate.wall:,.0f}/s of wall-clock time"
                    )
            if len(requests) != warm or verifier.jwks.fetches != 1:
                raise SystemExit(
                    f"bench: the JWKS was fetched during the measured runs ({len(requests)} "
                    f"requests, {warm} after the warm-up): the cache was not warm"
                )
        finally:
            await verifier.aclose()
    return contenders, token, len(requests), warm


def _spread(values: list[float]) -> str:
    return f"{min(values):,.0f}-{max(values):,.0f}" if len(values) > 1 else "—"


def _ratio_row(name: str, top: Contender, bottom: Contender, target: float) -> str:
    """Judged on the median of the same-round ratios: neighbours in time saw the same load."""
    ratios = [a / b for a, b in zip(top.runs, bottom.runs, strict=True)]
    median = statistics.median(ratios)
    spread = f"{min(ratios):.2f}-{max(ratios):.2f}" if len(ratios) > 1 else "—"
    verdict = "met" if median >= target else "**missed**"
    return f"| {name} | {median:.2f} | {spread} | ≥ {target:.1f} | {verdict} |"


def markdown(
    contenders: list[Contender],
    *,
    token: str,
    requests: int,
    pinned: str,
    rounds: int,
    per_run: str,
    load: tuple[str, str],
) -> str:
    a, b, c = contenders
    ssl = openssl.openssl_version_text()
    lines = [
        f"# Verifier benchmark, {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        "",
        f"One process, one event loop, {pinned} of {os.cpu_count()} ({_cpu_model()}); "
        f"Python {platform.python_version()}, cryptography {_version('cryptography')} "
        f"({ssl}), joserfc {_version('joserfc')}, PyJWT {_version('pyjwt')}, httpx "
        f"{_version('httpx')}. One idp-shaped access token (RS256, RSA-2048, typ at+jwt, "
        f"RFC 9068 claims, {len(token)} bytes) verified over and over; the JWKS from a local "
        f"HTTP server (max-age 3600), {requests} request(s) in all, none during the measured "
        f"runs. {rounds} round(s) of {per_run} per contender, the order rotated each round. "
        f"Load average (1, 5, 15 min) before: {load[0]}; after: {load[1]}. Rates per second "
        "of this process's CPU time (`time.process_time`: what other processes on the core "
        "take is not counted), the wall-clock median beside.",
        "",
        "| contender | verifications/s (median) | min-max | every run | wall-clock median |",
        "|---|---|---|---|---|",
    ]
    for contender in contenders:
        runs = ", ".join(f"{rate:,.0f}" for rate in contender.runs)
        lines.append(
            f"| ({contender.key}) {contender.label} | {statistics.median(contender.runs):,.0f} "
            f"| {_spread(contender.runs)} | {runs} | {statistics.median(contender.wall):,.0f} |"
        )
    lines += [
        "",
        "| ratio | median of the same-round ratios | min-max | target | |",
        "|---|---|---|---|---|",
        _ratio_row("(a) / (b)", a, b, TARGET_CEILING),
        _ratio_row("(a) / (c)", a, c, TARGET_PYJWT),
        "",
    ]
    return "\n".join(lines)


def _load() -> str:
    return ", ".join(f"{value:.2f}" for value in os.getloadavg())


def main(duration: str | None, rounds: int, iterations: int, out: Path | None) -> int:
    seconds = float(seconds_of(duration or "2s"))
    pinned = _pin()
    before = _load()
    contenders, token, requests, _ = asyncio.run(_measure(rounds, seconds, iterations))
    per_run = f"{iterations} verifications" if iterations else f"{seconds:g} s"
    text = markdown(
        contenders,
        token=token,
        requests=requests,
        pinned=pinned,
        rounds=rounds,
        per_run=per_run,
        load=(before, _load()),
    )
    print(text)
    path = out or RESULTS / "verifier.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    log(f"wrote {path}")
    return 0
