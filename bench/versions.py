"""The versions a benchmark ran with, for its record."""

from __future__ import annotations

import importlib.metadata
import json
import platform
import subprocess
from pathlib import Path

from config import PEER_DIR, ROOT
from servers import postgres_query


def command_output(argv: list[str], cwd: Path = ROOT) -> str:
    try:
        done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False)
    except OSError:
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


def common_versions(idp_commit: str) -> dict[str, str]:
    # wrk -v prints "wrk debian/4.1.0-3+b2 [epoll] ..." and exits 1.
    wrk = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False)
    words = (wrk.stdout + wrk.stderr).split()
    return {
        "idp": idp_commit,
        "Python": platform.python_version(),
        "uvicorn": importlib.metadata.version("uvicorn"),
        "starlette": importlib.metadata.version("starlette"),
        "wrk": words[1] if len(words) > 1 else "?",
    }


def postgres_version(data: Path) -> str:
    return postgres_query(data, "SHOW server_version")


def node_version() -> str:
    return command_output(["node", "--version"]).removeprefix("v") or "?"


def oidc_provider_version() -> str:
    package = PEER_DIR / "node_modules" / "oidc-provider" / "package.json"
    try:
        version: str = json.loads(package.read_text())["version"]
    except (OSError, ValueError, KeyError):
        return "?"
    return version
