"""The accounts record: sign-ups/s beside sign-ins/s (both bound by argon2id), a
``/forgot-password`` POST's p99 beside a ``/login`` GET's p99 under one load, and the outbox's
delivery rate into a local SMTP sink.

    scripts/bench --accounts [--duration 10s] [--out FILE]

idp runs as ``idp serve --workers 2`` on a fresh embedded PostgreSQL with ``IDP_SMTP_URL``
pointing at an aiosmtpd server in this process, ``IDP_REGISTRATION=open`` and this host as a
trusted proxy (so that each forgot-password request can come from an address of its own, as
from many people, instead of tripping the per-IP limit). Writes bench/results/accounts.md.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import httpx
import roundtrip
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from baseline import this_checkout
from config import BENCH, REDIRECT, RESULTS, Config, log
from providers import start_idp
from servers import Lab, free_port

from idp.db.embedded import start_embedded_postgres
from idp.keys.crypto import load_or_create_kek
from idp.mail.message import Mail
from idp.mail.outbox import Outbox

SIGNUP_CONCURRENCY = 8  # like the round trip's browsers: argon2id bounds both
PAGE_CONCURRENCY = 16  # browsers loading the login page while as many ask for a reset
KNOWN_RESETS = 4  # per known address: under the 5 an hour idp allows, so none is refused
MAIL_BURST = 2000
MAIL_TARGET = 200.0  # mails/s on 2 cores (the target)
_HIDDEN = re.compile(r'<input[^>]*type="hidden"[^>]*name="([a-z_]+)"[^>]*value="([^"]*)"')


class Sink:
    """An SMTP server that counts what it receives, by subject."""

    def __init__(self) -> None:
        self.port = free_port()
        self.count = 0
        self.marked = 0
        self.lock = threading.Lock()
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        with self.lock:
            self.count += 1
            self.marked += b"bench-burst" in content
        return "250 OK"


@dataclass
class Latencies:
    seconds: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)

    def add(self, began: float, status: int) -> None:
        self.seconds.append(time.monotonic() - began)
        self.statuses[status] = self.statuses.get(status, 0) + 1

    def percentile(self, p: float) -> float:
        ordered = sorted(self.seconds)
        return ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000 if ordered else 0.0


def hidden_fields(page: str) -> dict[str, str]:
    return dict(_HIDDEN.findall(page))


def client_address(n: int, i: int) -> str:
    """The ``i``-th request of browser ``n`` comes from an address of its own (X-Forwarded-For,
    believed from this host): many people, not one address tripping the per-IP limits."""
    return f"10.{n}.{i // 250 % 250}.{i % 250 + 1}"


async def sign_ups(base: str, seconds: float) -> tuple[float, Latencies, list[str]]:
    """Browsers that each open /signup and send it with a new address, for ``seconds``; the
    rate, the latencies, and the addresses that now have an account."""
    done, created = Latencies(), []
    deadline = time.monotonic() + seconds

    async def browser(n: int) -> None:
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            i = 0
            while time.monotonic() < deadline:
                i += 1
                client.cookies.clear()
                headers = {"X-Forwarded-For": client_address(n, i)}
                began = time.monotonic()
                page = await client.get("/signup", headers=headers)
                email = f"signup-{n}-{secrets.token_hex(6)}@bench.example"
                form = hidden_fields(page.text) | {
                    "email": email,
                    "name": "Bench Person",
                    "password": "a long bench password " + secrets.token_hex(4),
                }
                answer = await client.post("/signup", data=form, headers=headers)
                done.add(began, answer.status_code)
                if answer.status_code == httpx.codes.OK:
                    created.append(email)

    began = time.monotonic()
    await asyncio.gather(*(browser(n) for n in range(SIGNUP_CONCURRENCY)))
    return len(done.seconds) / (time.monotonic() - began), done, created


async def login_url(base: str, client_id: str) -> str:
    verifier = secrets.token_urlsafe(48)
    query = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": REDIRECT,
        "scope": "openid email",
        "state": "s",
        "code_challenge": roundtrip.s256(verifier),
        "code_challenge_method": "S256",
    }
    async with httpx.AsyncClient(base_url=base) as client:
        started = await client.get("/authorize", params=query)
    location: str = started.headers["location"]
    return location


async def pages_under_resets(
    base: str, login: str, known: list[str], seconds: float
) -> tuple[Latencies, Latencies]:
    """Browsers loading the login page while as many others ask for a password reset, each
    from an address of its own, for known and unknown accounts alike (each known one asked for
    ``KNOWN_RESETS`` times at most, under its per-address limit; then unknown ones only)."""
    logins, resets = Latencies(), Latencies()
    deadline = time.monotonic() + seconds

    async def viewer() -> None:
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            while time.monotonic() < deadline:
                began = time.monotonic()
                logins.add(began, (await client.get(login)).status_code)

    async def forgetter(n: int) -> None:
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            form = hidden_fields((await client.get("/forgot-password")).text)
            i = 0
            while time.monotonic() < deadline:
                i += 1
                turn = (i // 2) * PAGE_CONCURRENCY + n  # each known address a few times
                is_known = i % 2 and turn < KNOWN_RESETS * len(known)
                email = known[turn % len(known)] if is_known else f"nobody-{n}-{i}@bench.example"
                ip = client_address(100 + n, i)
                began = time.monotonic()
                answer = await client.post(
                    "/forgot-password",
                    data=form | {"email": email},
                    headers={"X-Forwarded-For": ip},
                )
                resets.add(began, answer.status_code)

    await asyncio.gather(
        *(viewer() for _ in range(PAGE_CONCURRENCY)),
        *(forgetter(n) for n in range(PAGE_CONCURRENCY)),
    )
    return logins, resets


async def delivery(data: Path, sink: Sink) -> float:
    """Queue ``MAIL_BURST`` mails in one transaction; mails/s from its commit until the sink has
    them all (the senders of both workers deliver)."""
    url = start_embedded_postgres(data)
    outbox = Outbox(load_or_create_kek(data))
    connection = await asyncpg.connect(url)
    try:
        now = datetime.now(UTC)
        async with connection.transaction():
            for n in range(MAIL_BURST):
                mail = Mail(f"to{n}@bench.example", "bench", "bench-burst", "body", "<p>body</p>")
                await outbox.put(connection, mail, now)
    finally:
        await connection.close()
    began = time.monotonic()
    while sink.marked < MAIL_BURST:
        if time.monotonic() - began > 120:
            raise SystemExit(f"bench: only {sink.marked} of {MAIL_BURST} mails in 120 s")
        await asyncio.sleep(0.01)
    return MAIL_BURST / (time.monotonic() - began)


def round_trips(base: str, web: tuple[str, str], password: str, config: Config) -> float:
    command = [sys.executable, str(BENCH / "roundtrip.py"), base, *web, "bench@example.com"]
    command += [password, config.duration.removesuffix("s"), str(config.round_trip_concurrency)]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    match = re.search(r"Requests/sec:\s*([\d.]+)", output)
    assert match is not None, output
    return float(match.group(1))


def main(config: Config, out: Path | None) -> int:
    lab = Lab()
    sink = Sink()
    sink.controller.start()
    lab.env |= {
        "IDP_SMTP_URL": f"smtp://127.0.0.1:{sink.port}",
        "IDP_REGISTRATION": "open",
        "IDP_TRUSTED_PROXIES": "127.0.0.1",
    }
    try:
        idp = start_idp(lab, this_checkout(), "idp", 0, 1, config.round_trip_concurrency)
        assert idp.data is not None
        assert idp.password is not None
        seconds = float(config.duration.removesuffix("s"))
        log("sign-ins (round trips)")
        logins_per_second = round_trips(idp.base, idp.web, idp.password, config)
        log("sign-ups")
        signups_per_second, signups, known = asyncio.run(sign_ups(idp.base, seconds))
        log("login page and forgot-password under one load")
        login = asyncio.run(login_url(idp.base, idp.web[0]))
        pages, resets = asyncio.run(pages_under_resets(idp.base, login, known, seconds))
        log(f"mail delivery ({MAIL_BURST} mails)")
        mails_per_second = asyncio.run(delivery(idp.data, sink))
    finally:
        lab.close()
        sink.controller.stop()
    ratio = resets.percentile(0.99) / max(pages.percentile(0.99), 0.001)
    lines = [
        f"# Accounts benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        "",
        f"`idp serve --workers 2`, embedded PostgreSQL, {config.duration} a measurement, "
        "argon2id at RFC 9106's low-memory profile.",
        "",
        "| measurement | result | bound |",
        "|---|---|---|",
        f"| sign-ins (whole code round trips, {config.round_trip_concurrency} browsers) | "
        f"{logins_per_second:.1f}/s | argon2id |",
        f"| sign-ups (GET + POST /signup, {SIGNUP_CONCURRENCY} browsers) | "
        f"{signups_per_second:.1f}/s (statuses {signups.statuses}) | argon2id |",
        f"| `/login` GET p99, {PAGE_CONCURRENCY} browsers, while the next row runs | "
        f"{pages.percentile(0.99):.1f} ms (p50 {pages.percentile(0.5):.1f} ms, "
        f"{len(pages.seconds)} requests) | |",
        f"| `/forgot-password` POST p99, {PAGE_CONCURRENCY} browsers, known and unknown "
        "addresses | "
        f"{resets.percentile(0.99):.1f} ms (p50 {resets.percentile(0.5):.1f} ms, "
        f"{len(resets.seconds)} requests, statuses {resets.statuses}; known addresses: "
        f"{len(known)}) | "
        f"at most twice the login GET's p99: {ratio:.2f} times |",
        f"| outbox delivery into a local aiosmtpd sink ({MAIL_BURST} mails queued at once) | "
        f"{mails_per_second:.0f} mails/s | target ≥ {MAIL_TARGET:.0f} |",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    (out or RESULTS / "accounts.md").write_text(text)
    return 0
