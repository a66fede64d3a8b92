"""wrk jobs: what one run sends (URL, Lua script, headers, environment), the requests that must
succeed first, running wrk (or the round trip, which prints wrk's format) and reading its output.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from config import BENCH, WARMUP, Config, NotMeasured, log
from servers import CpuMeter, postgres_query

_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}
_LATENCY = re.compile(r"^\s*(50|99)(?:\.0+)?%\s+([\d.]+)(us|ms|s|m|h)\s*$", re.MULTILINE)
_RPS = re.compile(r"^Requests/sec:\s+([\d.]+)\s*$", re.MULTILINE)
_TOTAL = re.compile(r"^\s*(\d+) requests in ([\d.]+\w+),", re.MULTILINE)
_NON_2XX = re.compile(r"^\s*Non-2xx or 3xx responses:\s+(\d+)\s*$", re.MULTILINE)
_SOCKET = re.compile(
    r"^\s*Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)\s*$", re.MULTILINE
)


@dataclass
class Measure:
    """One measured run of one scenario on one server."""

    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    non_2xx: int = 0
    socket_errors: str = ""  # "" when wrk reported none
    cpu: float | None = None  # cores busy on average: the server's process group (+ PostgreSQL)
    pg_cpu: float | None = None  # of which PostgreSQL's processes

    @property
    def problems(self) -> str:
        notes = []
        if self.non_2xx:
            notes.append(f"{self.non_2xx} non-2xx/3xx")
        if self.socket_errors:
            notes.append(f"socket errors: {self.socket_errors}")
        return ", ".join(notes)


def parse(name: str, text: str) -> Measure:
    """wrk's ``--latency`` output (or the round trip's, in the same format)."""
    rps = _RPS.search(text)
    latencies = {
        m.group(1): float(m.group(2)) * _UNITS_MS[m.group(3)] for m in _LATENCY.finditer(text)
    }
    total = _TOTAL.search(text)
    if rps is None or total is None or set(latencies) != {"50", "99"}:
        raise ValueError(f"{name}: not wrk --latency output:\n{text}")
    non_2xx = _NON_2XX.search(text)
    socket = _SOCKET.search(text)
    socket_errors = ""
    if socket is not None and any(int(n) for n in socket.groups()):
        socket_errors = "connect {}, read {}, write {}, timeout {}".format(*socket.groups())
    return Measure(
        rps=float(rps.group(1)),
        p50_ms=latencies["50"],
        p99_ms=latencies["99"],
        requests=int(total.group(1)),
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=socket_errors,
    )


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
    """One scenario on one server, as wrk runs it; or, with ``command``, a program that loads the
    server for the run's duration by itself and prints wrk's format (no warm-up)."""

    url: str
    script: Path | None = None
    headers: list[str] = field(default_factory=list)  # wrk -H
    env: dict[str, str] = field(default_factory=dict)
    warmup_env: dict[str, str] = field(default_factory=dict)
    run_env: dict[str, str] = field(default_factory=dict)
    thread_per_connection: bool = False
    checks: list[Check] = field(default_factory=list)
    command: list[str] | None = None


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


def argv(config: Config, job: Job, duration: str, latency: bool) -> list[str]:
    threads, connections = config.threads, config.connections
    if job.thread_per_connection:
        threads = connections
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}"]
    if latency:
        command.append("--latency")
    for header in job.headers:
        command += ["-H", header]
    if job.script is not None:
        command += ["-s", str(job.script)]
    command.append(job.url)
    return command


def run(config: Config, env: dict[str, str], job: Job, duration: str, latency: bool) -> str:
    """wrk's output of one run of ``job``."""
    done = subprocess.run(
        argv(config, job, duration, latency), env=env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise NotMeasured(f"wrk failed: {done.stderr.strip()[:200]}")
    return done.stdout


def measure(config: Config, env: dict[str, str], label: str, job: Job, meter: CpuMeter) -> Measure:
    """Check the job's requests, warm up, then one measured run with the server's CPU."""
    with httpx.Client(timeout=10) as client:
        for check in job.checks:
            problem = check.problem(client)
            if problem is not None:
                raise NotMeasured(problem)
    if job.command is None:
        log(f"{label}: warm-up {WARMUP}, then {config.duration}")
        run(config, env | job.env | job.warmup_env, job, WARMUP, latency=False)
    else:
        log(f"{label}: {config.duration}")
    if meter.data is not None:
        # A checkpoint due in the middle of a run would slow whichever server it fell on:
        # every run on PostgreSQL starts right after one.
        postgres_query(meter.data, "CHECKPOINT")

    def output() -> str:
        if job.command is None:
            return run(config, env | job.env | job.run_env, job, config.duration, latency=True)
        done = subprocess.run(job.command, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise NotMeasured(f"{Path(job.command[1]).name} failed: {done.stderr.strip()[:200]}")
        return done.stdout

    text, cpu, pg_cpu = meter.busy(output)
    result = parse(label, text)
    result.cpu, result.pg_cpu = cpu, pg_cpu
    return result
