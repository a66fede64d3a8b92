"""examples/node-api (Express, express-jwt, jwks-rsa) run by real Node.js against a served idp.

``node``/``npm`` come from PATH; when missing, Debian's ``nodejs`` and ``npm`` are installed with
apt-get (as tests/browser.py installs chromium: a failure fails the test, never a skip). The
example's packages are installed once per version of its package.json, outside the repository
(``~/.cache/idp-tests/node-api-<sha256>``, or under ``$XDG_CACHE_HOME``), so later runs never
reach the registry; ``NODE_PATH`` points ``node examples/node-api/server.js`` at them.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from tests.factories import environ_without_idp
from tests.subprocess_run import run_or_fail

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "node-api"
APT_COMMAND = "apt-get update -qq && apt-get install -y -qq nodejs npm"
INSTALL_TIMEOUT = 900.0
START_TIMEOUT = 20.0
LOCK = Path(tempfile.gettempdir()) / "idp-tests-node-install.lock"
LISTENING = "node-api: listening on "


def recommended() -> dict[str, Any]:
    """The settings server.js passes to jwks-rsa by default (examples/node-api/recommended.json)."""
    settings: dict[str, Any] = json.loads((EXAMPLE / "recommended.json").read_text())
    return settings


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "idp-tests"


async def _run(command: list[str], cwd: Path | None = None, **extra: str) -> str:
    """A command's output; any failure or timeout fails the test with it (never a skip)."""
    env = environ_without_idp() | extra
    return await run_or_fail(command, env=env, within=INSTALL_TIMEOUT, cwd=cwd)


def _locked() -> Any:
    """One installer at a time across pytest-xdist workers (released when the file closes)."""
    LOCK.touch()
    return LOCK.open("w")


async def node_modules() -> Path:
    """node/npm on PATH (installed from Debian if missing) and the example's packages, installed
    at most once per package.json: a finished install is renamed into place, never half-made."""
    package_json = (EXAMPLE / "package.json").read_bytes()
    target = cache_root() / f"node-api-{hashlib.sha256(package_json).hexdigest()[:16]}"
    with _locked() as lock:
        await asyncio.to_thread(fcntl.flock, lock, fcntl.LOCK_EX)
        if not (shutil.which("node") and shutil.which("npm")):
            await _run(["sh", "-c", APT_COMMAND], DEBIAN_FRONTEND="noninteractive")
        if not (target / "node_modules").is_dir():
            target.parent.mkdir(parents=True, exist_ok=True)
            work = Path(tempfile.mkdtemp(prefix=f"{target.name}.", dir=target.parent))
            (work / "package.json").write_bytes(package_json)
            try:  # a failed install leaves nothing behind
                npm = ["npm", "install", "--no-audit", "--no-fund", "--no-package-lock"]
                await _run(npm, cwd=work)
                await asyncio.to_thread(work.rename, target)
            finally:
                await asyncio.to_thread(shutil.rmtree, work, ignore_errors=True)
    return target / "node_modules"


@asynccontextmanager
async def node_api(issuer: str, audience: str, **env: str) -> AsyncIterator[str]:
    """``node server.js`` on a free port of 127.0.0.1 (PORT=0: it prints the one it bound);
    yields its base URL. Stopped, and its output shown, on the way out."""
    modules = await node_modules()
    process = await asyncio.create_subprocess_exec(
        "node",
        "server.js",
        cwd=EXAMPLE,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=environ_without_idp()
        | {
            "NODE_PATH": str(modules),
            "IDP_ISSUER": issuer,
            "API_AUDIENCE": audience,
            "PORT": "0",
            "HOST": "127.0.0.1",
            **env,
        },
    )
    assert process.stdout is not None
    seen: list[str] = []
    try:
        async with asyncio.timeout(START_TIMEOUT):
            while not seen or not seen[-1].startswith(LISTENING):
                line = await process.stdout.readline()
                assert line, "node-api exited while starting:\n" + "".join(seen)
                seen.append(line.decode(errors="replace"))
        yield seen[-1].removeprefix(LISTENING).strip()
    finally:
        if process.returncode is None:
            process.terminate()
        rest = await process.stdout.read()
        await process.wait()
        print("".join(seen) + rest.decode(errors="replace"))  # shown when a test fails
