"""Running an installer (apt-get, npm) for a test: its output, or the test fails with it."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path

import pytest


async def run_or_fail(
    command: list[str],
    *,
    env: Mapping[str, str],
    within: float,
    cwd: Path | None = None,
    shown: str | None = None,
) -> str:
    """``command``'s output; a non-zero exit, or no end within ``within`` seconds, fails the
    test with the output (never a skip). ``shown`` names the command in the failure (default:
    its words)."""
    shown = shown or " ".join(command)
    process = await asyncio.create_subprocess_exec(
        *command,
        cwd=cwd,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=dict(env),
    )
    try:
        async with asyncio.timeout(within):
            output, _ = await process.communicate()
    except TimeoutError:
        process.kill()
        await process.wait()
        pytest.fail(f"{shown!r} did not finish within {within:.0f} s")
    text = output.decode(errors="replace")
    if process.returncode != 0:
        pytest.fail(f"{shown!r} exited with {process.returncode}:\n{text}")
    return text
