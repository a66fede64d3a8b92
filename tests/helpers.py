"""Small checks and utilities shared by the tests: a free port, the ``idp`` command as an
operator runs it, what a token's header and the key table say. Builders live in
``tests/factories.py``, fixtures in ``tests/conftest.py``."""

from __future__ import annotations

import os
import socket
import sys

import asyncpg
from joserfc import jws

from tests.factories import Completed, run_command

IDP = (sys.executable, "-m", "idp")


PORT_BLOCK = 16  # free ports are shared out in blocks: bind() may prefer odd or even ones
PORT_TRIES = 10_000


def free_port() -> int:
    """A port of 127.0.0.1 free now, for a process to bind later. Under pytest-xdist each worker
    takes ports from its own blocks only (port // PORT_BLOCK % workers): another worker, whose
    process has not bound its port yet, is never given the same one."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    mine = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")) % workers
    for _ in range(PORT_TRIES):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
        if port // PORT_BLOCK % workers == mine:
            return port
    raise AssertionError(f"no free port of worker {mine} of {workers} in {PORT_TRIES} tries")


async def idp(env: dict[str, str], *args: str, stdin: bytes | None = None) -> Completed:
    """``idp ARGS`` in a subprocess, whatever its exit status."""
    return await run_command([*IDP, *args], env, stdin=stdin)


def assert_one_line_error(result: Completed) -> str:
    """Exit 1 with one readable line on stderr (no traceback); returns that line."""
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def kid_of(token: str) -> str:
    """The ``kid`` of a compact JWS's protected header (unverified)."""
    kid: str = jws.extract_compact(token.encode()).protected["kid"]
    return kid


async def key_states(pool: asyncpg.Pool) -> dict[str, str]:
    """kid → state of every signing key."""
    rows = await pool.fetch("SELECT kid, state FROM signing_keys")
    return {row["kid"]: row["state"] for row in rows}
