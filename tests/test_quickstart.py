"""The README's quick start, from a fresh clone: ``scripts/serve`` brings up a working provider
and a newcomer signs in as the demo user with what it printed.

Slow on purpose (it creates a virtualenv and installs the project, as a newcomer would).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import free_port
from tests.oauth.flow import hidden_fields

ROOT = Path(__file__).resolve().parent.parent
STARTUP_LIMIT = 300.0


@pytest.fixture
def fresh_clone(tmp_path: Path) -> Iterator[Path]:
    clone = tmp_path / "idp"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
    try:
        yield clone
    finally:
        shutil.rmtree(clone, ignore_errors=True)


async def sign_in_as_the_demo_user(client: httpx.AsyncClient, printed: str) -> str:
    """What a newcomer does: open the printed URL, sign in with the printed credentials (the
    browser keeps the demo's flow cookie for the callback)."""
    password = re.search(r"demo user demo@example.com, password (\S+)", printed)
    url = re.search(r"sign in at (\S+)", printed)
    assert password is not None, printed
    assert url is not None, printed
    response = await client.get(url.group(1))  # the demo's start page, then /authorize
    while response.headers["location"].split("?")[0] != "/login":
        assert response.status_code == 303, response.text
        response = await client.get(response.headers["location"])
    page = await client.get(response.headers["location"])
    fields = hidden_fields(page.text)
    form = {**fields, "email": "demo@example.com", "password": password.group(1)}
    callback = await client.post("/login", data=form)
    assert "/demo/callback?" in callback.headers["location"], callback.text
    return (await client.get(callback.headers["location"])).text


def codes_exchanged(exposition: str) -> float:
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            labels = sample.labels
            if sample.name == "idp_tokens_issued_total" and labels == {
                "grant_type": "authorization_code"
            }:
                return sample.value
    return 0.0


def json_lines(output: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


async def start_serve(
    clone: Path, port: int, env: dict[str, str], output: BinaryIO
) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        *("bash", "scripts/serve", "--port", str(port), "--workers", "2"),
        cwd=clone,
        env=env,
        stdout=output,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,
    )


async def test_scripts_serve_from_a_fresh_clone_serves_discovery_and_jwks(
    fresh_clone: Path, tmp_path: Path
) -> None:
    port = free_port()
    log = tmp_path / "serve.log"
    env = {key: value for key, value in os.environ.items() if not key.startswith("IDP_")}
    with log.open("wb") as output:
        process = await start_serve(fresh_clone, port, env, output)
    base = f"http://127.0.0.1:{port}"
    issuer = f"http://localhost:{port}"  # the demo's issuer names a domain: passkeys need one
    try:
        async with httpx.AsyncClient(base_url=base, timeout=5) as client:
            # As a newcomer does: wait for how to sign in, then go; it works at once.
            deadline = time.monotonic() + STARTUP_LIMIT
            while "idp: sign in at " not in log.read_text():
                assert process.returncode is None, f"scripts/serve exited:\n{log.read_text()}"
                assert time.monotonic() < deadline, f"not ready in time:\n{log.read_text()}"
                await asyncio.sleep(0.5)
            assert (await client.get("/readyz")).status_code == 200
            discovery = (await client.get("/.well-known/openid-configuration")).json()
            jwks = (await client.get(discovery["jwks_uri"].removeprefix(issuer))).json()
            signed_in = await sign_in_as_the_demo_user(client, log.read_text())
        # Whichever worker answers a scrape, it counts the other's work too (multiprocess mode).
        issued = set()
        for _ in range(6):
            async with httpx.AsyncClient(base_url=base, timeout=5) as scraper:  # new connection
                issued.add(codes_exchanged((await scraper.get("/metrics")).text))
        assert "You are signed in" in signed_in
        assert issued == {1.0}, issued
        assert "demo@example.com" in signed_in, "the page shows the decoded ID token"
        assert discovery["issuer"] == issuer
        assert len(jwks["keys"]) == 2
        data_dir = fresh_clone / ".idp"
        assert not stat.S_IMODE(data_dir.stat().st_mode) & 0o066, "data dir readable by others"
        assert stat.S_IMODE((data_dir / "key-encryption-key").stat().st_mode) == 0o600
    finally:
        if process.returncode is None:
            os.killpg(process.pid, signal.SIGINT)
            try:
                async with asyncio.timeout(30):
                    await process.wait()
            except TimeoutError:
                os.killpg(process.pid, signal.SIGKILL)
                await process.wait()
                raise AssertionError(f"scripts/serve ignored SIGINT:\n{log.read_text()}") from None
    assert process.returncode == 0, log.read_text()
    postmaster = fresh_clone / ".idp" / "pg" / "postmaster.pid"
    assert not postmaster.exists(), "the embedded PostgreSQL stops with the last idp process"
    request_lines = [
        line for line in json_lines(log.read_text()) if line["logger"] == "idp.request"
    ]
    assert request_lines, "one JSON line a request"
    assert all(line["request_id"] for line in request_lines)
    assert_banner_comes_after_the_start_up_lines(log.read_text())


def assert_banner_comes_after_the_start_up_lines(output: str) -> None:
    """Not a terminal: JSON log lines. What a newcomer needs is printed once, after every line
    of the start-up (idp's own; third-party chatter is not printed at all), not lost among
    them."""
    lines = output.splitlines()
    banner = [i for i, line in enumerate(lines) if line.startswith("idp: ")]
    assert banner == list(range(banner[0], banner[0] + 5)), "the five banner lines, together"
    assert "/demo/mailbox" in lines[banner[-2]], "no mail server: where the demo's mail appears"
    assert "sign in at" in lines[banner[-1]]
    chatter = [
        line
        for line in json_lines(output)
        if not line["logger"].startswith("idp.") and line["level"] in ("debug", "info")
    ]
    assert chatter == []
    after = json_lines("\n".join(lines[banner[-1] + 1 :]))
    assert all(line["logger"] == "idp.request" or line["actor"] != "startup" for line in after)
