"""Where the benchmark's parts live, and how long and how hard each run loads a server."""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
PEER_DIR = BENCH / "peer"
RESULTS = BENCH / "results"
BIN = Path(sys.executable).parent  # the virtual environment's bin/: idp, uvicorn

WORKERS = 2
WARMUP = "2s"
EMAIL = "bench@example.com"
REDIRECT = "https://bench.example/callback"
RESOURCE = "https://api.example"


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


@dataclass(frozen=True)
class Config:
    duration: str  # of one measured run, in wrk's syntax
    connections: int
    threads: int
    round_trip_concurrency: int
    soak_warmup: str
    rounds: int  # measured runs of each scenario on each server, alternated

    @classmethod
    def from_env(cls, duration: str | None = None, rounds: int = 3) -> Config:
        """The BENCH_* variables (``bench/run.py``'s docstring); ``duration`` overrides
        BENCH_DURATION."""
        env = os.environ
        config = cls(
            duration=f"{seconds_of(duration or env.get('BENCH_DURATION') or '10s')}s",
            connections=int(env.get("BENCH_CONNECTIONS") or 64),
            threads=int(env.get("BENCH_THREADS") or 2),
            round_trip_concurrency=int(env.get("ROUND_TRIP_CONCURRENCY") or 8),
            soak_warmup=f"{seconds_of(env.get('BENCH_SOAK_WARMUP') or '60s')}s",
            rounds=rounds,
        )
        if config.threads > config.connections:
            raise SystemExit("bench: BENCH_THREADS must not exceed BENCH_CONNECTIONS")
        if config.rounds < 1:
            raise SystemExit("bench: --rounds must be at least 1")
        return config

    @property
    def wrk_text(self) -> str:
        return (
            f"wrk -t{self.threads} -c{self.connections} -d{self.duration} --latency "
            f"(after a {WARMUP} warm-up; refresh: -t{self.connections} -c{self.connections})"
        )
