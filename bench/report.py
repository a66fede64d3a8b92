"""Parse wrk's ``--latency`` output and format the benchmark's table (used by ``bench/run.py``).

    python bench/report.py RESULTS_JSON [--out FILE]

re-renders a run that ``bench/run.py --json FILE`` saved: prints the table and writes it, with its
header (date, core count, wrk parameters, versions, ceilings), to FILE as Markdown.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

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


TIMES = "\u00d7"  # the multiplication sign, escaped for the linter


@dataclass(frozen=True)
class Target:
    versus: str  # "peer" or "ceiling": idp's req/s over theirs must reach ratio
    ratio: float


# The targets. Besides them, wherever the peer was measured: idp's p99 no worse than its.
TARGETS = {
    "jwks": Target("peer", 1.0),
    "discovery": Target("peer", 1.5),
    "client_credentials": Target("peer", 1.1),
    "refresh_token": Target("ceiling", 0.8),
}


@dataclass
class Row:
    scenario: str
    idp: Measure | None = None
    peer: Measure | None = None
    ceiling: Measure | None = None
    # Why a server's cell is empty although it was to be measured: {"peer": "answered 401"}.
    failed: dict[str, str] = field(default_factory=dict)
    has_peer: bool = True  # False: the peer has no such scenario (the round trip)


@dataclass
class Results:
    date: str
    cores: int
    wrk: str  # the wrk parameters
    versions: dict[str, str]
    ceilings: dict[str, str]  # scenario -> what its ceiling does
    notes: list[str]
    rows: list[Row]

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str) -> Results:
        data: dict[str, Any] = json.loads(text)

        def measure(value: dict[str, Any] | None) -> Measure | None:
            return None if value is None else Measure(**value)

        rows = [
            Row(
                scenario=r["scenario"],
                idp=measure(r["idp"]),
                peer=measure(r["peer"]),
                ceiling=measure(r["ceiling"]),
                failed=r["failed"],
                has_peer=r["has_peer"],
            )
            for r in data.pop("rows")
        ]
        return cls(rows=rows, **data)


def _rps(m: Measure | None) -> str:
    return "-" if m is None else f"{m.rps:,.0f}"


def _ms(value: float) -> str:
    return f"{value:.1f} ms" if value >= 100 else f"{value:.2f} ms"


def cpu_text(m: Measure | None) -> str:
    if m is None or m.cpu is None:
        return "-"
    if m.pg_cpu is None:
        return f"{m.cpu:.2f}"
    return f"{m.cpu:.2f} (pg {m.pg_cpu:.2f})"


def _ratio(a: Measure | None, b: Measure | None) -> str:
    return "-" if a is None or b is None or not b.rps else f"{a.rps / b.rps:.2f}"


def target_text(row: Row) -> str:
    parts = []
    target = TARGETS.get(row.scenario)
    if target is not None:
        parts.append(f"≥{target.ratio:.1f}{TIMES} {target.versus}")
    if row.has_peer:
        parts.append("p99 ≤ peer")
    return ", ".join(parts) or "-"


def met(row: Row) -> str:
    """ "yes", "no: <what fell short>", or "n/a" when a comparison was not measured."""
    if row.idp is None:
        return "n/a"
    misses, unknown = [], []
    target = TARGETS.get(row.scenario)
    if target is not None:
        other = row.peer if target.versus == "peer" else row.ceiling
        if other is None:
            unknown.append(f"no {target.versus}")
        elif row.idp.rps < target.ratio * other.rps:
            misses.append(f"{row.idp.rps / other.rps:.2f}{TIMES} {target.versus}")
    if row.has_peer:
        if row.peer is None:
            if "no peer" not in unknown:
                unknown.append("no peer")
        elif row.idp.p99_ms > row.peer.p99_ms:
            misses.append("p99")
    if misses:
        return "no: " + ", ".join(misses)
    if unknown:
        return "n/a (" + ", ".join(unknown) + ")"
    return "-" if target is None and not row.has_peer else "yes"


def errors(row: Row) -> str:
    notes = []
    for server in ("idp", "peer", "ceiling"):
        measure: Measure | None = getattr(row, server)
        if measure is not None and measure.problems:
            notes.append(f"{server}: {measure.problems}")
        if server in row.failed:
            notes.append(f"{server}: {row.failed[server]}")
    return "; ".join(notes) or "-"


HEADER = [
    "scenario",
    "idp req/s",
    "idp p50",
    "idp p99",
    "idp CPU",
    "peer req/s",
    "peer p50",
    "peer p99",
    "peer CPU",
    "idp/peer",
    "ceiling req/s",
    "idp/ceiling",
    "target",
    "met?",
    "errors",
]
RIGHT = set(range(1, 12))  # numeric columns


def table(results: Results) -> list[list[str]]:
    return [
        [
            row.scenario,
            _rps(row.idp),
            _ms(row.idp.p50_ms) if row.idp else "-",
            _ms(row.idp.p99_ms) if row.idp else "-",
            cpu_text(row.idp),
            _rps(row.peer),
            _ms(row.peer.p50_ms) if row.peer else "-",
            _ms(row.peer.p99_ms) if row.peer else "-",
            cpu_text(row.peer),
            _ratio(row.idp, row.peer),
            _rps(row.ceiling),
            _ratio(row.idp, row.ceiling),
            target_text(row),
            met(row),
            errors(row),
        ]
        for row in results.rows
    ]


def text_table(cells: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in [HEADER, *cells]) for i in range(len(HEADER))]

    def line(row: list[str]) -> str:
        parts = (
            c.rjust(w) if i in RIGHT else c.ljust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        )
        return "  ".join(parts).rstrip()

    return "\n".join([line(HEADER), line(["-" * w for w in widths]), *map(line, cells)])


def markdown_table(cells: list[list[str]]) -> str:
    align = ["---:" if i in RIGHT else "---" for i in range(len(HEADER))]
    return "\n".join("| " + " | ".join(row) + " |" for row in [HEADER, align, *cells])


def header_lines(results: Results) -> list[str]:
    versions = ", ".join(f"{name} {version}" for name, version in results.versions.items())
    lines = [
        f"date: {results.date}",
        f"cores (`nproc`): {results.cores}",
        f"wrk: `{results.wrk}`",
        f"versions: {versions}",
        "servers: idp `idp serve --workers 2` on a fresh embedded PostgreSQL; the peer "
        "node-oidc-provider (`bench/peer/`, 2 cluster workers); the ceilings `bench/ceiling.py` "
        "under uvicorn `--workers 2` as idp runs it. One server loaded at a time, all on this "
        "machine, wrk too",
        "CPU: cores busy on average during the measured run (utime + stime of the server's "
        "process group; idp and the ceilings include PostgreSQL's processes, shown as pg); wrk "
        "not counted",
    ]
    lines += [f"ceiling of {name}: {text}" for name, text in results.ceilings.items()]
    return lines + results.notes


def markdown(results: Results) -> str:
    header = "".join(f"- {line}\n" for line in header_lines(results))
    return (
        "# idp benchmark\n\n"
        f"{header}\n"
        "Ratios, not absolute figures, are what we track: every column of a row comes from the "
        "same run on the same machine.\n\n"
        f"{markdown_table(table(results))}\n"
    )


def text(results: Results) -> str:
    header = "".join(f"{line}\n" for line in header_lines(results))
    return f"{header}\n{text_table(table(results))}"


def write(path: Path, content: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(content)
    tmp.replace(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, help="the JSON file bench/run.py --json wrote")
    parser.add_argument("--out", type=Path, help="Markdown file to write")
    args = parser.parse_args(argv)
    results = Results.from_json(args.results.read_text())
    print(text(results))
    if args.out is not None:
        write(args.out, markdown(results))
        print(f"\nwrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
