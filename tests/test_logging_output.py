"""What ``idp serve`` prints: readable lines on a terminal, JSON elsewhere or when asked
(IDP_LOG_FORMAT), no third-party start-up chatter, and the demo banner last, once every worker
serves."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from idp.commands.serve import print_once_started
from idp.logs import StartupWatch, TextFormatter, choose_format
from idp.settings import Settings, SettingsError
from tests.helpers import IDP, free_port
from tests.processes import ROOT, idp_environ

BANNER_LIMIT = 60.0
TEXT_LINE = re.compile(r"^\d\d:\d\d:\d\d (debug|info|warning|error|critical) ")


@pytest.mark.parametrize(
    ("setting", "tty", "chosen"),
    [
        ("auto", True, "text"),
        ("auto", False, "json"),
        ("json", True, "json"),
        ("json", False, "json"),
        ("text", True, "text"),
        ("text", False, "text"),
    ],
)
def test_log_format_is_text_on_a_terminal_json_elsewhere_unless_the_setting_says(
    setting: str, tty: bool, chosen: str
) -> None:
    assert choose_format(setting, stdout_is_tty=tty) == chosen


def test_idp_log_format_is_read_with_the_other_settings() -> None:
    assert Settings.from_env({}).log_format == "auto"
    assert Settings.from_env({"IDP_LOG_FORMAT": "json"}).log_format == "json"
    with pytest.raises(SettingsError, match="IDP_LOG_FORMAT"):
        Settings.from_env({"IDP_LOG_FORMAT": "xml"})


CONFIGURED = """
import logging, sys
from idp.logs import configure
configure(sys.argv[1])
logging.getLogger("apscheduler.scheduler").info("Adding job tentatively")
logging.getLogger("asyncio").info("chatter")
logging.getLogger("apscheduler.scheduler").warning("a job missed its run")
logging.getLogger("idp.event").info("key.created", extra={"event": "key.created", "actor": "t"})
"""


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_third_party_info_lines_are_suppressed_and_their_warnings_kept(log_format: str) -> None:
    result = subprocess.run(  # a fresh process: logging is configured once per process
        [sys.executable, "-c", CONFIGURED, log_format],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    lines = result.stderr.splitlines()
    assert len(lines) == 2, result.stderr
    assert "Adding job" not in result.stderr
    assert "chatter" not in result.stderr
    if log_format == "json":
        assert [json.loads(line)["msg"] for line in lines] == [
            "a job missed its run",
            "key.created",
        ]
    else:
        assert lines[0].endswith("warning apscheduler.scheduler: a job missed its run")
        assert lines[1].endswith("info idp.event: key.created actor=t")
        assert all(TEXT_LINE.match(line) for line in lines)


def test_text_lines_show_control_characters_as_escapes() -> None:
    record = logging.LogRecord("idp.event", logging.INFO, "", 0, "login.\x1b[31mfailed", (), None)
    record.subject = "\x1b]0;pwned\x07eve@example.com"
    line = TextFormatter().format(record)
    assert "\x1b" not in line
    assert "\x07" not in line
    assert "login.\\x1b[31mfailed" in line
    assert "\\u001b]0;pwned\\u0007eve@example.com" in line


def test_startup_watch_passes_only_warnings_and_marks_listening_and_started(
    tmp_path: Path,
) -> None:
    watch = StartupWatch(str(tmp_path))

    def record(level: int, message: str) -> logging.LogRecord:
        return logging.LogRecord("uvicorn.error", level, "", 0, message, (), None)

    assert not watch.filter(record(logging.INFO, "Uvicorn running on http://127.0.0.1:8000"))
    assert not watch.filter(record(logging.INFO, "Application startup complete."))
    assert watch.filter(record(logging.WARNING, "Invalid HTTP request received."))
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "listening",
        f"started-{os.getpid()}",
    ]


def test_banner_waits_for_the_socket_and_every_worker(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stop = threading.Event()
    printer = threading.Thread(target=print_once_started, args=(tmp_path, 2, ["hello"], stop))
    printer.start()
    try:
        for mark in ("listening", "started-1"):
            (tmp_path / mark).touch()
            time.sleep(0.2)
            assert capsys.readouterr().out == "", f"printed with only {mark} so far"
        (tmp_path / "started-2").touch()
        printer.join(timeout=5)
        assert not printer.is_alive()
        assert capsys.readouterr().out == "hello\n"
    finally:
        stop.set()
        printer.join()


# -- idp serve on a terminal ------------------------------------------------------------------
class Terminal:
    """``idp serve`` with a pseudo-terminal for stdout and stderr, as a person runs it."""

    def __init__(self, process: asyncio.subprocess.Process, master: int) -> None:
        self.process, self._master = process, master
        self._chunks: list[bytes] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        with contextlib.suppress(OSError):  # EIO once the last writer has gone
            while chunk := os.read(self._master, 65536):
                self._chunks.append(chunk)

    def lines(self) -> list[str]:
        return b"".join(self._chunks).decode(errors="replace").splitlines()

    async def wait_for(self, text: str) -> list[str]:
        deadline = time.monotonic() + BANNER_LIMIT
        while not any(text in line for line in self.lines()):
            assert self.process.returncode is None, "\n".join(self.lines())
            assert time.monotonic() < deadline, "\n".join(self.lines())
            await asyncio.sleep(0.02)
        return self.lines()


@contextlib.asynccontextmanager
async def serving_on_a_terminal(env: dict[str, str], port: int) -> AsyncIterator[Terminal]:
    master, slave = os.openpty()
    process = await asyncio.create_subprocess_exec(
        *IDP,
        *("serve", "--demo", "--port", str(port), "--workers", "2"),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=slave,
        stderr=slave,
        env=env,
        cwd=ROOT,
        start_new_session=True,
    )
    os.close(slave)
    terminal = Terminal(process, master)
    try:
        yield terminal
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            async with asyncio.timeout(15):
                await process.wait()
        except TimeoutError:
            os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
        os.close(master)


@pytest.mark.parametrize("setting", [None, "json"])
async def test_serve_on_a_terminal_prints_the_demo_banner_last_once_every_worker_serves(
    setting: str | None, settings: Settings, kek: bytes, pool: asyncpg.Pool
) -> None:
    assert settings.database_url is not None
    port = free_port()
    env = idp_environ(settings.database_url, kek, f"http://127.0.0.1:{port}")
    if setting is not None:
        env["IDP_LOG_FORMAT"] = setting
    async with serving_on_a_terminal(env, port) as terminal:
        before = await terminal.wait_for("idp: sign in at ")
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as http:
            # What the banner promises holds the moment it shows: no retry.
            assert (await http.get("/readyz")).status_code == 200
            assert (await http.get("/jwks.json")).status_code == 200
        lines = await terminal.wait_for("/jwks.json")

    banner_at = next(i for i, line in enumerate(before) if line.startswith("idp: serving "))
    banner = before[banner_at:]
    assert [line.split(":")[1].split()[0] for line in banner] == [
        "serving",
        "discovery",
        "demo",
        "no",  # no IDP_SMTP_URL: where the demo's mail appears
        "sign",
    ]
    started = before[:banner_at]
    assert any("key.created" in line for line in started), "start-up logs come first"
    text = "\n".join(lines)
    for chatter in ("apscheduler", "Adding job", "Started server process", "startup complete"):
        assert chatter not in text
    request = next(line for line in lines[banner_at:] if "/jwks.json" in line)
    if setting == "json":
        assert all(line.startswith("{") for line in started), started
        assert json.loads(request)["route"] == "/jwks.json"
    else:
        assert all(TEXT_LINE.match(line) for line in started), started
        assert " GET /jwks.json 200 " in request
