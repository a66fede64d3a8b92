"""The soak: the mixed workload on idp alone for a while after a warm-up, the RSS of each idp
process and PostgreSQL's total sampled every SOAK_INTERVAL; it passes when no idp process (nor
their total) grew by SOAK_MAX_GROWTH or more after the warm-up and no request failed."""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
import report
import wrk
from baseline import this_checkout
from config import Config, log, seconds_of
from providers import start_idp
from scenarios import mixed_job
from servers import CpuMeter, Lab, Server, cmdline, postmaster, processes, rss_kib
from versions import common_versions, postgres_version

SOAK_INTERVAL = 5.0  # seconds between RSS samples
SOAK_MAX_GROWTH = 0.10


@dataclass
class RssSamples:
    """Every sample's RSS in KiB: "idp <pid>" for each process of idp's group, "PostgreSQL" for
    the sum over the postmaster and its children."""

    server: Server
    data: Path
    samples: list[dict[str, int]] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)

    def sample(self) -> None:
        current: dict[str, int] = {}
        table = processes()
        for proc in table.values():
            if proc.pgrp != self.server.pid:
                continue
            kib = rss_kib(proc.pid)
            if kib is None:
                continue
            key = f"idp {proc.pid}"
            current[key] = kib
            if key not in self.labels:
                kind = "worker"
                if proc.pid == self.server.pid:
                    kind = "supervisor"
                elif "resource_tracker" in cmdline(proc.pid):
                    kind = "resource tracker"
                self.labels[key] = f"idp {kind} ({proc.pid})"
        master = postmaster(self.data)
        pg = [p.pid for p in table.values() if master in (p.pid, p.ppid)]
        current["PostgreSQL"] = sum(rss_kib(pid) or 0 for pid in pg)
        self.labels["PostgreSQL"] = f"PostgreSQL, {len(pg)} processes (sum)"
        self.samples.append(current)


def soak(lab: Lab, config: Config, seconds: int) -> tuple[bool, str]:
    """Run the soak; whether it passed, and its Markdown record."""
    warmup = seconds_of(config.soak_warmup)
    if seconds < SOAK_INTERVAL or warmup + seconds > 3300:
        raise SystemExit("bench: --soak takes 5 to 3300 s with the warm-up (1 h tokens)")
    code = this_checkout()
    versions = common_versions(code.commit)
    idp = start_idp(lab, code, "idp", 0, 0, config.round_trip_concurrency)
    assert idp.data is not None
    versions["PostgreSQL"] = postgres_version(idp.data)
    job = mixed_job(idp)
    with httpx.Client(timeout=10) as client:
        for check in job.checks:
            problem = check.problem(client)
            if problem is not None:
                raise SystemExit(f"bench: the mixed workload cannot run: {problem}")
    log(f"soak: warm-up {config.soak_warmup} (not counted), then {seconds}s")
    wrk.run(config, lab.env | job.env, job, config.soak_warmup, latency=False)

    rss = RssSamples(idp.server, idp.data)
    output = lab.work / "soak.wrk"

    def run() -> str:
        argv = wrk.argv(config, job, f"{seconds}s", latency=True)
        with output.open("w") as out:
            loading = subprocess.Popen(argv, env=lab.env | job.env, stdout=out, stderr=out)
            began = time.monotonic()
            while True:
                rss.sample()
                wake = began + len(rss.samples) * SOAK_INTERVAL
                try:
                    loading.wait(timeout=max(0.0, wake - time.monotonic()))
                    break
                except subprocess.TimeoutExpired:
                    continue
        rss.sample()
        if loading.returncode != 0:
            raise SystemExit(f"bench: wrk failed: {output.read_text()[:300]}")
        return output.read_text()

    text, measure_cpu, pg_cpu = CpuMeter(idp.server, idp.data).busy(run)
    measure = wrk.parse("soak", text)
    measure.cpu, measure.pg_cpu = measure_cpu, pg_cpu
    lab.stop(idp.server)
    return soak_report(config, seconds, versions, measure, rss, lab.log_problems)


def mib(kib: int) -> str:
    return f"{kib / 1024:.1f} MiB"


def soak_report(
    config: Config,
    seconds: int,
    versions: dict[str, str],
    measure: wrk.Measure,
    rss: RssSamples,
    log_problems: list[str],
) -> tuple[bool, str]:
    samples, labels = rss.samples, rss.labels
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
    failures += log_problems
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
