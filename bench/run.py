"""The project's performance record: idp beside node-oidc-provider (the peer) and beside ceilings.

    scripts/bench [--only SCENARIO,...] [--no-peer] [--out FILE] [--json FILE]
    scripts/bench --soak SECONDS [--out FILE]

Every scenario runs with wrk against ``idp serve --workers 2`` on a fresh embedded PostgreSQL (in
a temporary IDP_DATA_DIR, whatever this shell's IDP_* variables say), against the peer
(``bench/peer/server.js``, 2 cluster workers) where it has the scenario, and against a ceiling
(``bench/ceiling.py`` under uvicorn ``--workers 2``) where one exists: the least a Starlette app
does for the same answer. One server is loaded at a time, all on this machine; a warm-up run
precedes each measured one. Prints one table and writes it to bench/results/latest.md.

``--soak SECONDS`` runs the mixed workload against idp alone for SECONDS after a warm-up, samples
the RSS of idp's processes and PostgreSQL's every 5 s, and writes bench/results/soak.md.

Environment:
    BENCH_DURATION          measured run per scenario (wrk -d), default 10s
    BENCH_CONNECTIONS       open connections (wrk -c), default 64
    BENCH_THREADS           wrk threads (wrk -t), default 2
    ROUND_TRIP_CONCURRENCY  concurrent browsers of the code round trip, default 8
    BENCH_SOAK_WARMUP       the soak's warm-up, default 60s
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import importlib.metadata
import json
import os
import platform
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from types import FrameType
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import asyncpg
import httpx
import report
import roundtrip

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
PEER_DIR = BENCH / "peer"
RESULTS = BENCH / "results"
BIN = Path(sys.executable).parent  # the virtual environment's bin/: idp, uvicorn

SCENARIOS = [
    "jwks",
    "discovery",
    "client_credentials",
    "introspection",
    "userinfo",
    "refresh_token",
    "mixed",
    "roundtrip",
]
IDP_ONLY = {"roundtrip"}  # the peer has no password sign-in (bench/peer/README.md)
WORKERS = 2
WARMUP = "2s"
READY_TIMEOUT = 60.0  # seconds for a server to answer
STOP_TIMEOUT = 15.0  # seconds for a server to exit after SIGTERM before SIGKILL
SOAK_INTERVAL = 5.0  # seconds between RSS samples
SOAK_MAX_GROWTH = 0.10
EMAIL = "bench@example.com"
REDIRECT = "https://bench.example/callback"
RESOURCE = "https://api.example"
SPARE_TOKENS = 2  # refresh tokens beyond the refresh scenario's, for its check
CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


class NotMeasured(Exception):
    """A scenario could not be measured on a server; the message says why (shown in the table)."""


def seconds_of(text: str) -> int:
    """wrk's duration syntax, as far as we use it: ``10``, ``10s``, ``2m``, ``1h``."""
    match = re.fullmatch(r"(\d+)([smh]?)", text.strip())
    if match is None:
        raise SystemExit(f"bench: {text!r} is not a duration (e.g. 10s, 2m)")
    return int(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[match.group(2)]


def basic(client_id: str, secret: str) -> str:
    return base64.b64encode(f"{client_id}:{secret}".encode()).decode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


# --- processes -------------------------------------------------------------------------------


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


_STATUS = re.compile(r'"status":\s*(\d+)')
_ERROR_LINE = re.compile(
    r'Traceback|"level":"(?:error|critical)"|\bERROR\b|server_error|Unhandled|Exception'
)
MAX_LOG_LINES = 200


def postmaster(data: Path) -> int | None:
    """The embedded PostgreSQL's postmaster pid, if it runs."""
    try:
        first = (data / "pg" / "postmaster.pid").read_text().splitlines()[0]
        pid = int(first)
        os.kill(pid, 0)
    except (OSError, ValueError, IndexError):
        return None
    return pid


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


class CpuMeter:
    """CPU seconds of a server's process group and, optionally, of PostgreSQL: the postmaster and
    its children (each backend calls setsid, so they are not in the postmaster's group)."""

    def __init__(self, server: Server, data: Path | None):
        self.server = server
        self.data = data

    def ticks(self) -> tuple[int, int]:
        table = processes()
        pids = {p.pid for p in table.values() if p.pgrp == self.server.pid}
        pg: set[int] = set()
        master = postmaster(self.data) if self.data is not None else None
        if master is not None:
            pg = {p.pid for p in table.values() if p.pid == master or p.ppid == master}
        return sum(table[p].ticks for p in pids | pg), sum(table[p].ticks for p in pg)


def timed_cpu(meter: CpuMeter, run: Callable[[], report.Measure]) -> report.Measure:
    """The run's measure, with the cores its server kept busy on average meanwhile."""
    total0, pg0 = meter.ticks()
    began = time.monotonic()
    measure = run()
    elapsed = time.monotonic() - began
    total1, pg1 = meter.ticks()
    measure.cpu = (total1 - total0) / CLK_TCK / elapsed
    if meter.data is not None:
        measure.pg_cpu = (pg1 - pg0) / CLK_TCK / elapsed
    return measure


# --- scenarios -------------------------------------------------------------------------------


@dataclass
class Check:
    """One request that must succeed before a scenario is loaded."""

    method: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    body: str | None = None
    introspection: bool = False  # the answer must say active: true

    def problem(self, client: httpx.Client) -> str | None:
        try:
            answer = client.request(self.method, self.url, headers=self.headers, content=self.body)
        except httpx.HTTPError as error:
            return f"{self.method} {urlsplit(self.url).path}: {error!r}"
        what = f"{self.method} {urlsplit(self.url).path} answered {answer.status_code}"
        if answer.status_code != httpx.codes.OK:
            return f"{what}: {answer.text[:200]}"
        if self.introspection:
            try:
                active = answer.json().get("active")
            except ValueError:
                active = None
            if active is not True:
                return f"{what} but not active: {answer.text[:200]}"
        return None


@dataclass
class Job:
    """One scenario on one server, as wrk runs it."""

    url: str
    script: Path | None = None
    headers: list[str] = field(default_factory=list)  # wrk -H
    env: dict[str, str] = field(default_factory=dict)
    warmup_env: dict[str, str] = field(default_factory=dict)
    run_env: dict[str, str] = field(default_factory=dict)
    thread_per_connection: bool = False
    checks: list[Check] = field(default_factory=list)


def form_headers(basic_credentials: str) -> dict[str, str]:
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if basic_credentials:
        headers["Authorization"] = f"Basic {basic_credentials}"
    return headers


def post_form(url: str, form: str, basic_credentials: str, introspection: bool = False) -> Job:
    check = Check("POST", url, form_headers(basic_credentials), form, introspection)
    return Job(
        url,
        BENCH / "post_form.lua",
        env={"BENCH_FORM": form, "BENCH_BASIC": basic_credentials},
        checks=[check],
    )


@dataclass
class Provider:
    """idp or the peer: where its endpoints are and the credentials its scenarios use."""

    name: str
    server: Server
    base: str
    machine: tuple[str, str]  # client_credentials client (id, secret)
    machine_form: str
    api: tuple[str, str]  # the resource server that introspects
    web: tuple[str, str]  # the code-flow client
    data: Path | None  # IDP_DATA_DIR: PostgreSQL counts towards its CPU
    paths: dict[str, str] = field(default_factory=dict)
    refresh_file: Path | None = None
    spares: list[str] = field(default_factory=list)  # refresh tokens for the refresh check
    introspectable: Callable[[], str] | None = None
    code_flow: Callable[[], str] | None = None  # an access token of the code flow, for userinfo
    password: str = ""  # the user's, for the round trip

    def url(self, endpoint: str) -> str:
        if endpoint not in self.paths:
            raise NotMeasured(f"no {endpoint} endpoint in {self.name}'s discovery")
        return self.base + self.paths[endpoint]

    def discover(self) -> None:
        document = httpx.get(self.base + "/.well-known/openid-configuration", timeout=10).json()
        self.paths = {"discovery": "/.well-known/openid-configuration"}
        for endpoint, key in [
            ("jwks", "jwks_uri"),
            ("token", "token_endpoint"),
            ("introspect", "introspection_endpoint"),
            ("userinfo", "userinfo_endpoint"),
        ]:
            if key in document:
                self.paths[endpoint] = urlsplit(document[key]).path

    def spare(self) -> str:
        if not self.spares:
            raise NotMeasured("no refresh token left")
        return self.spares.pop()

    def bearer(self) -> str:
        """A fresh access token of the code flow, which userinfo accepts."""
        assert self.code_flow is not None
        return self.code_flow()

    def live_token(self) -> str:
        """A fresh access token that this provider's introspection accepts."""
        if self.introspectable is not None:
            return self.introspectable()
        return client_credentials(self.url("token"), self.machine, self.machine_form)

    def job(self, scenario: str, connections: int) -> Job | None:
        if scenario == "jwks":
            return Job(self.url("jwks"), checks=[Check("GET", self.url("jwks"))])
        if scenario == "discovery":
            return Job(self.url("discovery"), checks=[Check("GET", self.url("discovery"))])
        if scenario == "client_credentials":
            return post_form(self.url("token"), self.machine_form, basic(*self.machine))
        if scenario == "introspection":
            form = urlencode({"token": self.live_token()})
            return post_form(self.url("introspect"), form, basic(*self.api), introspection=True)
        if scenario == "userinfo":
            header = f"Bearer {self.bearer()}"
            check = Check("GET", self.url("userinfo"), {"Authorization": header})
            return Job(self.url("userinfo"), headers=[f"Authorization: {header}"], checks=[check])
        if scenario == "refresh_token":
            assert self.refresh_file is not None
            return refresh_job(self.url("token"), self.refresh_file, self.web, self, connections)
        if scenario == "mixed":
            return self.mixed()
        return None

    def mixed(self) -> Job:
        bearer = self.bearer()
        env = {
            "BENCH_JWKS_PATH": urlsplit(self.url("jwks")).path,
            "BENCH_USERINFO_PATH": urlsplit(self.url("userinfo")).path,
            "BENCH_BEARER": bearer,
            "BENCH_INTROSPECT_PATH": urlsplit(self.url("introspect")).path,
            "BENCH_INTROSPECT_FORM": urlencode({"token": self.live_token()}),
            "BENCH_INTROSPECT_BASIC": basic(*self.api),
            "BENCH_TOKEN_PATH": urlsplit(self.url("token")).path,
            "BENCH_TOKEN_FORM": self.machine_form,
            "BENCH_TOKEN_BASIC": basic(*self.machine),
        }
        checks = [
            Check("GET", self.url("jwks")),
            Check("GET", self.url("userinfo"), {"Authorization": f"Bearer {bearer}"}),
            Check(
                "POST",
                self.url("introspect"),
                form_headers(env["BENCH_INTROSPECT_BASIC"]),
                env["BENCH_INTROSPECT_FORM"],
                introspection=True,
            ),
            Check("POST", self.url("token"), form_headers(basic(*self.machine)), self.machine_form),
        ]
        return Job(self.base + "/", BENCH / "mixed.lua", env=env, checks=checks)


def client_credentials(url: str, client: tuple[str, str], form: str) -> str:
    answer = httpx.post(url, content=form, headers=form_headers(basic(*client)), timeout=10)
    if answer.status_code != httpx.codes.OK:
        raise NotMeasured(f"client_credentials answered {answer.status_code}: {answer.text[:200]}")
    token: str = answer.json()["access_token"]
    return token


def refresh_job(
    url: str, tokens: Path, web: tuple[str, str], provider: Provider | None, connections: int
) -> Job:
    """Each connection refreshes its own family (bench/refresh.lua, one wrk thread each); the
    warm-up uses other families than the measured run, as a consumed token presented again would
    revoke its family. The check refreshes a spare family (any token, for the ceiling)."""
    check_token = provider.spare() if provider is not None else "ceiling"
    form = urlencode({"grant_type": "refresh_token", "refresh_token": check_token})
    return Job(
        url,
        BENCH / "refresh.lua",
        env={"BENCH_REFRESH_TOKENS": str(tokens), "BENCH_BASIC": basic(*web)},
        warmup_env={"BENCH_REFRESH_OFFSET": "0"},
        run_env={"BENCH_REFRESH_OFFSET": str(connections)},
        thread_per_connection=True,
        checks=[Check("POST", url, form_headers(basic(*web)), form)],
    )


# --- the benchmark ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Config:
    duration: str
    connections: int
    threads: int
    round_trip_concurrency: int
    soak_warmup: str

    @classmethod
    def from_env(cls) -> Config:
        env = os.environ
        config = cls(
            duration=f"{seconds_of(env.get('BENCH_DURATION') or '10s')}s",
            connections=int(env.get("BENCH_CONNECTIONS") or 64),
            threads=int(env.get("BENCH_THREADS") or 2),
            round_trip_concurrency=int(env.get("ROUND_TRIP_CONCURRENCY") or 8),
            soak_warmup=f"{seconds_of(env.get('BENCH_SOAK_WARMUP') or '60s')}s",
        )
        if config.threads > config.connections:
            raise SystemExit("bench: BENCH_THREADS must not exceed BENCH_CONNECTIONS")
        return config

    @property
    def wrk_text(self) -> str:
        return (
            f"wrk -t{self.threads} -c{self.connections} -d{self.duration} --latency "
            f"(after a {WARMUP} warm-up; refresh: -t{self.connections} -c{self.connections})"
        )


class Bench:
    def __init__(self, config: Config):
        self.config = config
        self.work = Path(tempfile.mkdtemp(prefix="idp-bench-"))  # logs, token files
        self.data = Path(tempfile.mkdtemp(prefix="idp-bench-data-"))  # IDP_DATA_DIR
        self.servers: list[Server] = []
        # idp uses its own fresh embedded database, whatever this shell's IDP_* variables say.
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("IDP_")}
        self.notes: list[str] = []
        self.log_problems: list[str] = []

    def close(self) -> None:
        for server in reversed(self.servers):
            self.stop(server)
        stop_postgres(self.data)
        shutil.rmtree(self.work, ignore_errors=True)
        shutil.rmtree(self.data, ignore_errors=True)

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

    # idp -------------------------------------------------------------------------------------

    def idp_cli(self, *args: str, stdin: str | None = None) -> str:
        return subprocess.run(
            [str(BIN / "idp"), *args],
            env=self.env | {"IDP_DATA_DIR": str(self.data)},
            input=stdin,
            capture_output=True,
            text=True,
            check=True,
        ).stdout

    def start_idp(self, refresh_families: int) -> Provider:
        port = free_port()
        log(f"starting idp on 127.0.0.1:{port} (workers {WORKERS}, IDP_DATA_DIR {self.data})")
        argv = [str(BIN / "idp"), "serve", "--host", "127.0.0.1", "--port", str(port)]
        server = Server(
            "idp",
            [*argv, "--workers", str(WORKERS)],
            self.env | {"IDP_DATA_DIR": str(self.data)},
            self.work,
        )
        base = f"http://127.0.0.1:{port}"
        self.start(server, base + "/readyz")

        # Clients, a user, tokens: through the CLI and the HTTP API, as an operator and apps
        # would. Access tokens live an hour, so that a long run's bearer stays valid.
        def client(*args: str) -> tuple[str, str]:
            created = json.loads(self.idp_cli("clients", "add", *args, "--json"))
            return created["client_id"], created["client_secret"]

        machine = client(
            "bench",
            *("--grant-type", "client_credentials", "--scope", "read"),
            *("--audience", RESOURCE, "--access-token-ttl", "1h"),
        )
        # The resource server for RESOURCE: it may introspect the tokens meant for it.
        api = client(
            "bench-api",
            *("--grant-type", "client_credentials", "--introspect-audience", RESOURCE),
        )
        web = client(
            "bench-web",
            *("--grant-type", "authorization_code", "--grant-type", "refresh_token"),
            *("--redirect-uri", REDIRECT, "--scope", "openid email", "--first-party"),
            *("--access-token-ttl", "1h"),
        )
        password = secrets.token_urlsafe(16)
        for n in range(self.config.round_trip_concurrency):  # one person a browser
            email = roundtrip.browser_email(EMAIL, n)
            self.idp_cli("users", "add", email, "--password-stdin", stdin=password + "\n")
        idp = Provider(
            "idp",
            server,
            base,
            machine=machine,
            machine_form="grant_type=client_credentials",
            api=api,
            web=web,
            data=self.data,
            password=password,
        )
        idp.discover()
        idp.introspectable = partial(self.idp_introspectable, idp)
        idp.code_flow = partial(idp_code_flow, base, web, password)
        count = refresh_families + SPARE_TOKENS if refresh_families else 0
        log(f"idp: {count} code flows for refresh tokens")
        tokens = asyncio.run(idp_refresh_tokens(base, web, password, count))
        idp.refresh_file = self.work / "idp-refresh-tokens"
        idp.refresh_file.write_text("\n".join(tokens[:refresh_families]) + "\n")
        idp.spares = tokens[refresh_families:]
        return idp

    def idp_introspectable(self, idp: Provider) -> str:
        """A client_credentials token of ``bench`` (aud https://api.example), which the resource
        server ``bench-api`` introspects; it must be active, or the scenario measures nothing."""
        token = client_credentials(idp.url("token"), idp.machine, idp.machine_form)
        answer = httpx.post(idp.url("introspect"), data={"token": token}, auth=idp.api, timeout=10)
        if answer.status_code != httpx.codes.OK or answer.json().get("active") is not True:
            raise NotMeasured(f"idp does not introspect a live token as active: {answer.text}")
        return token

    def start_ceiling(self, idp: Provider) -> Ceiling:
        """The ceiling app, sized like idp's answers, introspecting and writing against idp's own
        database and keys."""
        sizes = {
            name: len(httpx.get(idp.url(name), timeout=10).content)
            for name in ("jwks", "discovery")
        }
        socket_dir = (self.data / "pg" / "postmaster.pid").read_text().splitlines()[4]
        port = free_port()
        log(f"starting the ceiling app on 127.0.0.1:{port} (workers {WORKERS})")
        argv = [str(BIN / "uvicorn"), "ceiling:app", "--app-dir", str(BENCH)]
        argv += ["--host", "127.0.0.1", "--port", str(port), "--workers", str(WORKERS)]
        argv += ["--no-access-log", "--log-level", "warning"]
        env = self.env | {
            "BENCH_CEILING_SIZES": f"{sizes['jwks']},{sizes['discovery']}",
            "BENCH_DATABASE_URL": f"postgresql://postgres:@/postgres?host={socket_dir}",
            "BENCH_JWKS_URL": idp.url("jwks"),
        }
        base = f"http://127.0.0.1:{port}"
        server = self.start(Server("ceiling", argv, env, self.work), base + "/ceiling")
        return Ceiling(server, base, sizes, idp)

    # measuring -------------------------------------------------------------------------------

    def wrk(self, job: Job, duration: str, env: dict[str, str], latency: bool) -> str:
        argv = self.wrk_argv(job, duration, latency)
        done = subprocess.run(
            argv, env=self.env | job.env | env, capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            raise NotMeasured(f"wrk failed: {done.stderr.strip()[:200]}")
        return done.stdout

    def measure(self, label: str, server: Server, job: Job, data: Path | None) -> report.Measure:
        with httpx.Client(timeout=10) as client:
            for check in job.checks:
                problem = check.problem(client)
                if problem is not None:
                    raise NotMeasured(problem)
        log(f"{label}: warm-up {WARMUP}, then {self.config.duration}")
        self.wrk(job, WARMUP, job.warmup_env, latency=False)
        if data is not None:
            # A checkpoint due in the middle of a run would slow whichever server it fell on:
            # every run on PostgreSQL starts right after one.
            postgres_query(data, "CHECKPOINT")

        def run() -> report.Measure:
            output = self.wrk(job, self.config.duration, job.run_env, latency=True)
            return report.parse(label, output)

        return timed_cpu(CpuMeter(server, data), run)

    def attempt(
        self,
        row: report.Row,
        server: Server,
        job: Callable[[], Job | None],
        data: Path | None,
    ) -> None:
        """Measure one scenario on one server into its row; why not, when it cannot be."""
        label = f"{row.scenario} on {server.name}"
        try:
            made = job()
            if made is None:
                raise NotMeasured("no such scenario")
            measure = self.measure(label, server, made, data)
        except NotMeasured as error:
            log(f"{label}: not measured: {error}")
            row.failed[server.name] = f"not measured: {error}"
        else:
            setattr(row, server.name, measure)

    def round_trip(self, idp: Provider) -> report.Measure:
        """A whole authorization-code round trip (authorize, login page, sign-in, token
        exchange); the sign-in's argon2id (RFC 9106 low-memory profile) bounds it."""
        concurrency = self.config.round_trip_concurrency
        log(f"roundtrip: {self.config.duration} with {concurrency} concurrent browsers")
        argv = [sys.executable, str(BENCH / "roundtrip.py"), idp.base, *idp.web, EMAIL]
        argv += [idp.password, self.config.duration.removesuffix("s"), str(concurrency)]

        def run() -> report.Measure:
            done = subprocess.run(argv, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise NotMeasured(f"roundtrip.py failed: {done.stderr.strip()[:200]}")
            return report.parse("roundtrip", done.stdout)

        return timed_cpu(CpuMeter(idp.server, self.data), run)

    # the peer --------------------------------------------------------------------------------

    def peer_unavailable(self) -> str | None:
        if shutil.which("node") is None:
            return "node is not installed"
        if not (PEER_DIR / "server.js").is_file():
            return "bench/peer/server.js is missing"
        installed = PEER_DIR / "node_modules" / "oidc-provider" / "package.json"
        if not installed.is_file():
            log("installing the peer's packages (npm install in bench/peer)")
            done = subprocess.run(
                ["npm", "install", "--no-package-lock", "--no-audit", "--no-fund"],
                cwd=PEER_DIR,
                capture_output=True,
                text=True,
                check=False,
            )
            if done.returncode != 0:
                return f"npm install failed: {done.stderr.strip()[-300:]}"
        return None

    def start_peer(self, refresh_families: int) -> Provider:
        clients = json.loads((PEER_DIR / "clients.json").read_text())

        def credentials(name: str) -> tuple[str, str]:
            return clients[name]["client_id"], clients[name]["client_secret"]

        port = free_port()
        log(f"starting the peer on 127.0.0.1:{port} (workers {WORKERS})")
        env = self.env | {"PEER_PORT": str(port), "PEER_WORKERS": str(WORKERS)}
        server = Server("peer", ["node", "server.js"], env, self.work, cwd=PEER_DIR)
        base = f"http://127.0.0.1:{port}"
        self.start(server, base + "/readyz")
        tokens_py = [sys.executable, str(PEER_DIR / "tokens.py")]

        def introspectable() -> str:
            # An opaque client_credentials token: oidc-provider does not introspect JWTs.
            done = subprocess.run(
                [*tokens_py, "--access-token", base], capture_output=True, text=True, check=False
            )
            if done.returncode != 0:
                raise NotMeasured(f"tokens.py --access-token failed: {done.stderr.strip()[:200]}")
            return done.stdout.strip()

        peer = Provider(
            "peer",
            server,
            base,
            machine=credentials("bench"),
            machine_form=urlencode(
                {"grant_type": "client_credentials", "resource": RESOURCE, "scope": "read"}
            ),
            api=credentials("bench-api"),
            web=credentials("bench-web"),
            data=None,
            introspectable=introspectable,
            code_flow=partial(peer_code_flow, base, credentials("bench-web")),
        )
        peer.discover()
        count = refresh_families + SPARE_TOKENS if refresh_families else 0
        log(f"peer: {count} code flows for refresh tokens")
        done = subprocess.run(
            [*tokens_py, base, str(count)], capture_output=True, text=True, check=False
        )
        tokens = done.stdout.split()
        if done.returncode != 0 or len(tokens) != count:
            raise NotMeasured(f"tokens.py failed: {done.stderr.strip()[-300:]}")
        peer.refresh_file = self.work / "peer-refresh-tokens"
        peer.refresh_file.write_text("\n".join(tokens[:refresh_families]) + "\n")
        peer.spares = tokens[refresh_families:]
        return peer

    # the runs --------------------------------------------------------------------------------

    def compare(self, scenarios: list[str], with_peer: bool) -> report.Results:
        """Every scenario on idp and its ceiling, then on the peer; the table's rows."""
        connections = self.config.connections
        families = 2 * connections if "refresh_token" in scenarios else 0
        rows = {s: report.Row(s, has_peer=s not in IDP_ONLY) for s in scenarios}
        versions = common_versions()

        idp = self.start_idp(families)
        versions["PostgreSQL"] = postgres_version(self.data)
        ceiling = self.start_ceiling(idp) if set(scenarios) & set(CEILINGS) else None
        for scenario in scenarios:
            row = rows[scenario]
            if scenario == "roundtrip":
                try:
                    row.idp = self.round_trip(idp)
                except NotMeasured as error:
                    row.failed["idp"] = f"not measured: {error}"
                continue
            self.attempt(row, idp.server, partial(idp.job, scenario, connections), self.data)
            if ceiling is not None and scenario in CEILINGS:
                job = partial(ceiling.job, scenario, connections)
                self.attempt(row, ceiling.server, job, self.data)
        if ceiling is not None:
            self.stop(ceiling.server)
        self.stop(idp.server)
        stop_postgres(self.data)

        peer_scenarios = [s for s in scenarios if s not in IDP_ONLY]
        reason = None if with_peer else "--no-peer"
        if reason is None and peer_scenarios:
            reason = self.peer_unavailable()
        if reason is None and peer_scenarios:
            versions["node"] = node_version()
            versions["oidc-provider"] = oidc_provider_version()
            try:
                peer = self.start_peer(families)
            except NotMeasured as error:
                reason = str(error)
            else:
                for scenario in peer_scenarios:
                    job = partial(peer.job, scenario, connections)
                    self.attempt(rows[scenario], peer.server, job, None)
                self.stop(peer.server)
        if reason is not None:
            self.notes.append(f"peer not measured: {reason}")
            log(f"peer not measured: {reason}")
        return report.Results(
            date=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            cores=os.cpu_count() or 0,
            wrk=self.config.wrk_text,
            versions=versions,
            ceilings={s: ceiling.describe(s) for s in scenarios if ceiling and s in CEILINGS},
            notes=self.notes + self.log_problems,
            rows=[rows[s] for s in scenarios],
        )

    # the soak --------------------------------------------------------------------------------

    def soak(self, seconds: int) -> tuple[bool, str]:
        """The mixed workload on idp alone for ``seconds`` after a warm-up; every SOAK_INTERVAL
        the RSS of each idp process and PostgreSQL's total. Passes when no idp process (nor their
        total) grew by SOAK_MAX_GROWTH or more after the warm-up and there was no error."""
        warmup = seconds_of(self.config.soak_warmup)
        if seconds < SOAK_INTERVAL or warmup + seconds > 3300:
            raise SystemExit("bench: --soak takes 5 to 3300 s with the warm-up (1 h tokens)")
        versions = common_versions()
        idp = self.start_idp(0)
        versions["PostgreSQL"] = postgres_version(self.data)
        job = idp.mixed()
        with httpx.Client(timeout=10) as client:
            for check in job.checks:
                problem = check.problem(client)
                if problem is not None:
                    raise SystemExit(f"bench: the mixed workload cannot run: {problem}")
        log(f"soak: warm-up {self.config.soak_warmup} (not counted), then {seconds}s")
        self.wrk(job, self.config.soak_warmup, {}, latency=False)

        samples: list[dict[str, int]] = []  # "idp <pid>" / "PostgreSQL" -> KiB
        labels: dict[str, str] = {}
        meter = CpuMeter(idp.server, self.data)

        def sample() -> None:
            current: dict[str, int] = {}
            table = processes()
            for proc in table.values():
                if proc.pgrp != idp.server.pid:
                    continue
                kib = rss_kib(proc.pid)
                if kib is None:
                    continue
                key = f"idp {proc.pid}"
                current[key] = kib
                if key not in labels:
                    kind = "worker"
                    if proc.pid == idp.server.pid:
                        kind = "supervisor"
                    elif "resource_tracker" in cmdline(proc.pid):
                        kind = "resource tracker"
                    labels[key] = f"idp {kind} ({proc.pid})"
            master = postmaster(self.data)
            pg = [p.pid for p in table.values() if master in (p.pid, p.ppid)]
            current["PostgreSQL"] = sum(rss_kib(pid) or 0 for pid in pg)
            labels["PostgreSQL"] = f"PostgreSQL, {len(pg)} processes (sum)"
            samples.append(current)

        output = self.work / "soak.wrk"

        def run() -> report.Measure:
            argv = self.wrk_argv(job, f"{seconds}s", latency=True)
            with output.open("w") as out:
                wrk = subprocess.Popen(argv, env=self.env | job.env, stdout=out, stderr=out)
                began = time.monotonic()
                while True:
                    sample()
                    wake = began + len(samples) * SOAK_INTERVAL
                    try:
                        wrk.wait(timeout=max(0.0, wake - time.monotonic()))
                        break
                    except subprocess.TimeoutExpired:
                        continue
            sample()
            if wrk.returncode != 0:
                raise SystemExit(f"bench: wrk failed: {output.read_text()[:300]}")
            return report.parse("soak", output.read_text())

        measure = timed_cpu(meter, run)
        self.stop(idp.server)
        return soak_report(self.config, seconds, versions, measure, samples, labels, self)

    def wrk_argv(self, job: Job, duration: str, latency: bool) -> list[str]:
        threads, connections = self.config.threads, self.config.connections
        if job.thread_per_connection:
            threads = connections
        argv = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}"]
        if latency:
            argv.append("--latency")
        for header in job.headers:
            argv += ["-H", header]
        if job.script is not None:
            argv += ["-s", str(job.script)]
        argv.append(job.url)
        return argv


def mib(kib: int) -> str:
    return f"{kib / 1024:.1f} MiB"


def soak_report(
    config: Config,
    seconds: int,
    versions: dict[str, str],
    measure: report.Measure,
    samples: list[dict[str, int]],
    labels: dict[str, str],
    bench: Bench,
) -> tuple[bool, str]:
    first, last = samples[0], samples[-1]
    idp_keys = [k for k in first if k.startswith("idp ")]
    failures = []
    lines = []

    def row(label: str, series: list[int], gated: bool) -> None:
        start, end, peak = series[0], series[-1], max(series)
        growth = (end - start) / start if start else 0.0
        if gated and growth >= SOAK_MAX_GROWTH:
            failures.append(f"{label} grew {growth:.1%}")
        lines.append(f"| {label} | {mib(start)} | {mib(end)} | {growth:+.1%} | {mib(peak)} |")

    for key in idp_keys:
        row(labels[key], [s.get(key, 0) for s in samples], gated=True)
        if key not in last:
            failures.append(f"{labels[key]} exited")
    new = sorted({k for s in samples for k in s if k.startswith("idp ")} - set(idp_keys))
    failures += [f"{labels[k]} appeared (a restarted worker?)" for k in new]
    totals = [sum(v for k, v in s.items() if k.startswith("idp ")) for s in samples]
    row("idp total", totals, gated=True)
    row(labels["PostgreSQL"] + ", not gated", [s["PostgreSQL"] for s in samples], gated=False)
    if measure.problems:
        failures.append(measure.problems)
    failures += bench.log_problems
    passed = not failures
    verdict = "PASS" if passed else "FAIL: " + "; ".join(failures)
    every = ", ".join(f"{t / 1024:.0f}" for t in totals)
    text = "\n".join(
        [
            "# idp soak",
            "",
            f"- date: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}",
            f"- cores (`nproc`): {os.cpu_count()}",
            f"- versions: {', '.join(f'{k} {v}' for k, v in versions.items())}",
            f"- load: the mixed workload (bench/mixed.lua) on `idp serve --workers 2`, "
            f"`wrk -t{config.threads} -c{config.connections} -d{seconds}s --latency` after a "
            f"{config.soak_warmup} warm-up that counts towards nothing",
            f"- RSS (VmRSS) sampled every {SOAK_INTERVAL:.0f} s; PostgreSQL's is the sum over its "
            "processes (shared buffers counted in each), shown but not gated",
            *(f"- {note}" for note in bench.notes),
            f"- {measure.requests:,} requests, {measure.rps:,.0f} req/s, p50 "
            f"{measure.p50_ms:.2f} ms, p99 {measure.p99_ms:.2f} ms, idp CPU "
            f"{report.cpu_text(measure)} cores, errors: {measure.problems or 'none'}",
            "",
            "| process | RSS after warm-up | RSS at the end | growth | max |",
            "| --- | ---: | ---: | ---: | ---: |",
            *lines,
            "",
            f"idp total RSS (MiB) every {SOAK_INTERVAL:.0f} s: {every}",
            "",
            f"**RSS growth < {SOAK_MAX_GROWTH:.0%} and no errors: {verdict}**",
            "",
        ]
    )
    print(text)
    return passed, text


CEILINGS = ["jwks", "discovery", "client_credentials", "introspection", "refresh_token"]


@dataclass
class Ceiling:
    """bench/ceiling.py: the least a Starlette app under uvicorn does for each scenario."""

    server: Server
    base: str
    sizes: dict[str, int]  # idp's answers' sizes: jwks, discovery
    idp: Provider

    def describe(self, scenario: str) -> str:
        if scenario in self.sizes:
            return f"constant pre-encoded JSON as large as idp's answer ({self.sizes[scenario]} B)"
        return {
            "client_credentials": "sign one RS256 JWT",
            "introspection": "verify one RS256 JWT + one indexed SELECT (idp's database)",
            "refresh_token": f"sign {report.TIMES}2 (access and ID token, RS256) + one INSERT "
            "(idp's database)",
        }[scenario]

    def job(self, scenario: str, connections: int) -> Job | None:
        if scenario in self.sizes:
            url = f"{self.base}/ceiling/{self.sizes[scenario]}"
            return Job(url, checks=[Check("GET", url)])
        if scenario == "client_credentials":
            return post_form(f"{self.base}/ceiling/sign", "grant_type=client_credentials", "")
        if scenario == "introspection":
            form = urlencode({"token": self.idp.live_token()})
            return post_form(f"{self.base}/ceiling/introspect", form, "")
        if scenario == "refresh_token":
            assert self.idp.refresh_file is not None
            url = f"{self.base}/ceiling/refresh"
            return refresh_job(url, self.idp.refresh_file, self.idp.web, None, connections)
        return None


def idp_code_flow(base: str, web: tuple[str, str], password: str) -> str:
    """An access token of idp's code flow (a sign-in through bench/roundtrip.py)."""

    async def flow() -> str:
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            issued = await roundtrip.round_trip(client, *web, EMAIL, password)
        return issued["access_token"]

    return asyncio.run(flow())


def peer_code_flow(base: str, web: tuple[str, str]) -> str:
    """An access token of the peer's code flow that its userinfo accepts: asked for without a
    resource indicator (bench/peer/tokens.py asks for https://api.example, whose JWT access
    tokens oidc-provider's userinfo refuses). The peer signs in and consents by itself."""
    verifier = secrets.token_urlsafe(48)
    query = {
        "response_type": "code",
        "client_id": web[0],
        "redirect_uri": REDIRECT,
        "scope": "openid email",
        "state": secrets.token_urlsafe(8),
        "nonce": secrets.token_urlsafe(8),
        "code_challenge": roundtrip.s256(verifier),
        "code_challenge_method": "S256",
    }
    with httpx.Client(base_url=base, timeout=30) as client:
        url = f"{base}/authorize?{urlencode(query)}"
        for _ in range(10):
            answer = client.get(url)
            if not answer.is_redirect:
                raise NotMeasured(f"the peer's code flow stopped at {answer.status_code}")
            url = urljoin(url, answer.headers["location"])
            if url.startswith(REDIRECT):
                break
        code = parse_qs(urlsplit(url).query).get("code")
        if not code:
            raise NotMeasured(f"the peer's code flow ended without a code: {url[:200]}")
        form = {
            "grant_type": "authorization_code",
            "code": code[0],
            "redirect_uri": REDIRECT,
            "code_verifier": verifier,
        }
        answer = client.post("/token", data=form, auth=web)
    if answer.status_code != httpx.codes.OK:
        raise NotMeasured(f"the peer's code exchange answered {answer.status_code}")
    token: str = answer.json()["access_token"]
    return token


async def idp_refresh_tokens(
    base: str, web: tuple[str, str], password: str, count: int, concurrency: int = 4
) -> list[str]:
    """Sign in ``count`` times through the code flow (bench/roundtrip.py), a few at a time."""
    queue = list(range(count))
    tokens: list[str] = []

    async def worker() -> None:
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            while queue:
                queue.pop()
                issued = await roundtrip.round_trip(client, *web, EMAIL, password)
                tokens.append(issued["refresh_token"])

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return tokens


# --- versions --------------------------------------------------------------------------------


def command_output(argv: list[str], cwd: Path = ROOT) -> str:
    try:
        done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False)
    except OSError:
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


def common_versions() -> dict[str, str]:
    commit = command_output(["git", "rev-parse", "--short", "HEAD"]) or "?"
    if command_output(["git", "status", "--porcelain", "--", "idp", "migrations"]):
        commit += " + uncommitted changes"
    # wrk -v prints "wrk debian/4.1.0-3+b2 [epoll] ..." and exits 1.
    wrk = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False)
    words = (wrk.stdout + wrk.stderr).split()
    return {
        "idp": commit,
        "Python": platform.python_version(),
        "uvicorn": importlib.metadata.version("uvicorn"),
        "starlette": importlib.metadata.version("starlette"),
        "wrk": words[1] if len(words) > 1 else "?",
    }


def postgres_query(data: Path, statement: str) -> str:
    """One statement on the embedded PostgreSQL in ``data``; its first value, as text."""
    socket_dir = (data / "pg" / "postmaster.pid").read_text().splitlines()[4]

    async def query() -> str:
        connection = await asyncpg.connect(f"postgresql://postgres:@/postgres?host={socket_dir}")
        try:
            return str(await connection.fetchval(statement))
        finally:
            await connection.close()

    return asyncio.run(query())


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


# --- main ------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--only", help=f"comma-separated scenarios to run, of: {', '.join(SCENARIOS)}"
    )
    parser.add_argument("--no-peer", action="store_true", help="do not run the peer")
    parser.add_argument(
        "--soak",
        type=int,
        nargs="?",
        const=300,
        metavar="SECONDS",
        help="the soak (default 300 s): the mixed workload on idp alone, its RSS sampled",
    )
    parser.add_argument("--out", type=Path, help="the Markdown file to write")
    parser.add_argument("--json", type=Path, help="also save the results as JSON (bench/report.py)")
    args = parser.parse_args(argv)
    scenarios = SCENARIOS
    if args.only:
        scenarios = [s.strip() for s in args.only.split(",") if s.strip()]
        unknown = [s for s in scenarios if s not in SCENARIOS]
        if unknown:
            parser.error(f"unknown scenario(s) {', '.join(unknown)}; known: {', '.join(SCENARIOS)}")
        scenarios = [s for s in SCENARIOS if s in scenarios]
    config = Config.from_env()

    def terminate(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, terminate)
    bench = Bench(config)
    try:
        if args.soak is not None:
            passed, markdown = bench.soak(args.soak)
            out = args.out or RESULTS / "soak.md"
            report.write(out, markdown)
            log(f"wrote {out}")
            return 0 if passed else 1
        results = bench.compare(scenarios, with_peer=not args.no_peer)
    finally:
        bench.close()
    print(report.text(results))
    out = args.out or RESULTS / "latest.md"
    report.write(out, report.markdown(results))
    log(f"wrote {out}")
    if args.json is not None:
        report.write(args.json, results.to_json())
    return 0


if __name__ == "__main__":
    sys.exit(main())
