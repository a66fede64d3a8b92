"""The processes the benchmark starts and stops: servers in their own sessions, their embedded
PostgreSQL, the CPU they keep busy, and the lab that stops them all at the end."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import asyncpg
import httpx
from config import ROOT, log

READY_TIMEOUT = 60.0  # seconds for a server to answer
STOP_TIMEOUT = 15.0  # seconds for a server to exit after SIGTERM before SIGKILL
CLK_TCK = os.sysconf("SC_CLK_TCK")
MAX_LOG_LINES = 200
_STATUS = re.compile(r'"status":\s*(\d+)')
_ERROR_LINE = re.compile(
    r'Traceback|"level":"(?:error|critical)"|\bERROR\b|server_error|Unhandled|Exception'
)
T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass(frozen=True)
class Proc:
    pid: int
    ppid: int
    pgrp: int
    ticks: int  # utime + stime + cutime + cstime: reaped children's CPU counts for their parent


def processes() -> dict[int, Proc]:
    table = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry.name}/stat").read_text()
        except OSError:
            continue  # gone meanwhile
        fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "
        pid = int(entry.name)
        ticks = sum(int(f) for f in fields[11:15])
        table[pid] = Proc(pid, int(fields[1]), int(fields[2]), ticks)
    return table


def rss_kib(pid: int) -> int | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
    return int(match.group(1)) if match else 0


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


class Server:
    """A server in its own session (so its workers stop with it), its output in a log file."""

    def __init__(
        self, name: str, argv: list[str], env: dict[str, str], work: Path, cwd: Path = ROOT
    ):
        self.name = name
        self.argv = argv
        self.env = env
        self.log_path = work / f"{name}.log"
        self.cwd = cwd
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> None:
        with self.log_path.open("wb") as output:
            self.proc = subprocess.Popen(
                self.argv,
                env=self.env,
                cwd=self.cwd,
                stdout=output,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def output(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def wait_ready(self, url: str) -> None:
        """Three 200s in a row, each on a new connection (so likely from every worker)."""
        assert self.proc is not None
        deadline = time.monotonic() + READY_TIMEOUT
        ok = 0
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"bench: {self.name} exited before it was ready:\n{self.output()}")
            try:
                status = httpx.get(url, timeout=2).status_code
            except httpx.HTTPError:
                status = 0
            if status == httpx.codes.OK:
                ok += 1
                if ok >= 3:
                    return
            else:
                ok = 0
                time.sleep(0.2)
        raise SystemExit(f"bench: {url} not ready after {READY_TIMEOUT:.0f}s:\n{self.output()}")

    def group_alive(self) -> bool:
        if self.proc is not None:
            self.proc.poll()  # reap the leader, or kill(-pgid, 0) keeps finding its zombie
        try:
            os.killpg(self.pid, 0)
        except ProcessLookupError:
            return False
        return True

    def stop(self) -> None:
        """SIGTERM to the whole process group, SIGKILL after STOP_TIMEOUT."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        while self.group_alive() and time.monotonic() < deadline:
            time.sleep(0.1)
        if self.group_alive():
            log(f"{self.name} ignored SIGTERM for {STOP_TIMEOUT:.0f}s; killing it")
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGKILL)
        self.proc.wait()
        self.proc = None

    def show_log(self) -> list[str]:
        """Print the server's output, idp's request lines (one per request) counted by status
        rather than shown; return the lines that tell of an error."""
        statuses: Counter[str] = Counter()
        shown: list[str] = []
        problems: list[str] = []
        try:
            output = self.log_path.open(errors="replace")
        except OSError:
            return []
        with output:
            for raw in output:
                line = raw.rstrip()
                if '"logger":"idp.request"' in line:
                    status = _STATUS.search(line)
                    code = status.group(1) if status else "?"
                    statuses[code] += 1
                    if code.startswith("5"):
                        problems.append(line)
                    continue
                if _ERROR_LINE.search(line):
                    problems.append(line)
                shown.append(line)
        if shown or statuses:
            log(f"{self.name} output:")
            if len(shown) > MAX_LOG_LINES:
                print(f"    ... {len(shown) - MAX_LOG_LINES} lines before", file=sys.stderr)
            for line in shown[-MAX_LOG_LINES:]:
                print("    " + line, file=sys.stderr)
            if statuses:
                counts = ", ".join(f"{code} \u00d7{n}" for code, n in sorted(statuses.items()))
                print(f"    (and {statuses.total()} request lines: {counts})", file=sys.stderr)
        return problems


def postmaster(data: Path) -> int | None:
    """The embedded PostgreSQL's postmaster pid, if it runs."""
    try:
        first = (data / "pg" / "postmaster.pid").read_text().splitlines()[0]
        pid = int(first)
        os.kill(pid, 0)
    except (OSError, ValueError, IndexError):
        return None
    return pid


def postgres_socket_dir(data: Path) -> str:
    return (data / "pg" / "postmaster.pid").read_text().splitlines()[4]


def postgres_query(data: Path, statement: str) -> str:
    """One statement on the embedded PostgreSQL in ``data``; its first value, as text."""
    url = f"postgresql://postgres:@/postgres?host={postgres_socket_dir(data)}"

    async def query() -> str:
        connection = await asyncpg.connect(url)
        try:
            return str(await connection.fetchval(statement))
        finally:
            await connection.close()

    return asyncio.run(query())


def stop_postgres(data: Path) -> None:
    """pgserver stops PostgreSQL when idp exits; if it did not (idp killed), stop it here."""
    pid = postmaster(data)
    if pid is None:
        return
    log(f"stopping leftover PostgreSQL {pid}")
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGINT)  # fast shutdown
    deadline = time.monotonic() + STOP_TIMEOUT
    while postmaster(data) is not None and time.monotonic() < deadline:
        time.sleep(0.1)
    if postmaster(data) is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@dataclass(frozen=True)
class CpuMeter:
    """CPU seconds of a server's process group and, optionally, of PostgreSQL: the postmaster and
    its children (each backend calls setsid, so they are not in the postmaster's group)."""

    server: Server
    data: Path | None

    def ticks(self) -> tuple[int, int]:
        table = processes()
        pids = {p.pid for p in table.values() if p.pgrp == self.server.pid}
        pg: set[int] = set()
        master = postmaster(self.data) if self.data is not None else None
        if master is not None:
            pg = {p.pid for p in table.values() if p.pid == master or p.ppid == master}
        return sum(table[p].ticks for p in pids | pg), sum(table[p].ticks for p in pg)

    def busy(self, run: Callable[[], T]) -> tuple[T, float, float | None]:
        """``run()``'s result, the cores the server kept busy on average meanwhile, and of those
        PostgreSQL's (None without a database)."""
        total0, pg0 = self.ticks()
        began = time.monotonic()
        result = run()
        elapsed = time.monotonic() - began
        total1, pg1 = self.ticks()
        pg = (pg1 - pg0) / CLK_TCK / elapsed if self.data is not None else None
        return result, (total1 - total0) / CLK_TCK / elapsed, pg


class Lab:
    """What one benchmark starts: a work directory (logs, token files), a data directory for each
    idp (its own embedded PostgreSQL), and the servers; all stopped and removed by ``close``.
    idp's databases are fresh, whatever this shell's IDP_* variables say."""

    def __init__(self) -> None:
        self.work = Path(tempfile.mkdtemp(prefix="idp-bench-"))
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("IDP_")}
        self.servers: list[Server] = []
        self.data_dirs: list[Path] = []
        self.log_problems: list[str] = []

    def data_dir(self) -> Path:
        data = Path(tempfile.mkdtemp(prefix="idp-bench-data-"))
        self.data_dirs.append(data)
        return data

    def start(self, server: Server, ready_url: str) -> Server:
        self.servers.append(server)
        server.start()
        server.wait_ready(ready_url)
        return server

    def stop(self, server: Server) -> None:
        if server in self.servers:
            self.servers.remove(server)
        server.stop()
        problems = server.show_log()
        if problems:
            self.log_problems.append(
                f"{server.name} log: {len(problems)} error line(s), e.g. `{problems[0][:120]}`"
            )

    def stop_servers(self) -> None:
        for server in reversed(self.servers):
            self.stop(server)

    def close(self) -> None:
        self.stop_servers()
        for data in self.data_dirs:
            stop_postgres(data)
            shutil.rmtree(data, ignore_errors=True)
        shutil.rmtree(self.work, ignore_errors=True)
