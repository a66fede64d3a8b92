"""Parse wrk's ``--latency`` output and format the benchmark table (used by ``scripts/bench``).

    python bench/report.py --out FILE --params TEXT --cores N --ceiling NAME
        [--same-size SCENARIO=CEILING]... NAME=WRK_OUTPUT...

Prints the table as text and writes it, with the date, core count and wrk parameters, to FILE as
Markdown. The ratio column is each scenario's req/s over the ceiling scenario's.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}
_LATENCY = re.compile(r"^\s*(50|99)(?:\.0+)?%\s+([\d.]+)(us|ms|s|m|h)\s*$", re.MULTILINE)
_RPS = re.compile(r"^Requests/sec:\s+([\d.]+)\s*$", re.MULTILINE)
_TOTAL = re.compile(r"^\s*(\d+) requests in ([\d.]+\w+),", re.MULTILINE)
_NON_2XX = re.compile(r"^\s*Non-2xx or 3xx responses:\s+(\d+)\s*$", re.MULTILINE)
_SOCKET = re.compile(
    r"^\s*Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)\s*$", re.MULTILINE
)


@dataclass(frozen=True)
class Result:
    name: str
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    non_2xx: int
    socket_errors: str  # "" when wrk reported none

    @property
    def problems(self) -> str:
        notes = []
        if self.non_2xx:
            notes.append(f"{self.non_2xx} non-2xx/3xx")
        if self.socket_errors:
            notes.append(f"socket errors: {self.socket_errors}")
        return "; ".join(notes)


def parse(name: str, text: str) -> Result:
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
    return Result(
        name=name,
        rps=float(rps.group(1)),
        p50_ms=latencies["50"],
        p99_ms=latencies["99"],
        requests=int(total.group(1)),
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=socket_errors,
    )


def rows(results: list[Result], ceiling: Result, same_size: dict[str, Result]) -> list[list[str]]:
    return [
        [
            r.name,
            f"{r.rps:,.0f}",
            f"{r.p50_ms:.2f} ms",
            f"{r.p99_ms:.2f} ms",
            f"{r.rps / ceiling.rps:.2f}",
            f"{r.rps / same_size[r.name].rps:.2f}" if r.name in same_size else "-",
            r.problems or "-",
        ]
        for r in results
    ]


HEADER = ["scenario", "req/s", "p50", "p99", "vs ceiling", "vs same-size ceiling", "errors"]
RIGHT = {1, 2, 3, 4, 5}  # numeric columns


def text_table(table: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in [HEADER, *table]) for i in range(len(HEADER))]

    def line(row: list[str]) -> str:
        cells = (
            c.rjust(w) if i in RIGHT else c.ljust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        )
        return "  ".join(cells).rstrip()

    return "\n".join([line(HEADER), line(["-" * w for w in widths]), *map(line, table)])


def markdown_table(table: list[list[str]]) -> str:
    align = ["---:" if i in RIGHT else "---" for i in range(len(HEADER))]
    return "\n".join("| " + " | ".join(row) + " |" for row in [HEADER, align, *table])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="Markdown file to write")
    parser.add_argument("--params", required=True, help="the wrk parameters, for the record")
    parser.add_argument("--cores", required=True, help="the core count (nproc), for the record")
    parser.add_argument("--ceiling", required=True, help="the scenario the ratios are taken to")
    parser.add_argument(
        "--same-size",
        action="append",
        default=[],
        metavar="SCENARIO=CEILING",
        help="also compare SCENARIO with the ceiling run CEILING that writes as many bytes",
    )
    parser.add_argument("runs", nargs="+", metavar="NAME=FILE")
    args = parser.parse_args(argv)

    results = []
    for run in args.runs:
        name, _, path = run.partition("=")
        results.append(parse(name, Path(path).read_text()))
    by_name = {r.name: r for r in results}
    if args.ceiling not in by_name:
        parser.error(f"no run named {args.ceiling!r}")
    same_size = {}
    for pair in args.same_size:
        scenario, _, ceiling = pair.partition("=")
        if ceiling not in by_name:
            parser.error(f"no run named {ceiling!r}")
        same_size[scenario] = by_name[ceiling]
    table = rows(results, by_name[args.ceiling], same_size)

    print(text_table(table))
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    markdown = (
        "# idp benchmark\n\n"
        f"- date: {now}\n"
        f"- cores (`nproc`): {args.cores}\n"
        f"- wrk: `{args.params}`\n"
        "- servers: uvicorn `--workers 2`, access log off, log level warning; "
        "each scenario measured with the other server stopped\n"
        "- ceiling: `bench/ceiling.py`, constant pre-encoded JSON bodies from plain Starlette "
        "routes: the small one, and ones as large as each idp response (same-size ceiling)\n\n"
        f"{markdown_table(table)}\n"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(args.out.name + ".tmp")
    tmp.write_text(markdown)
    tmp.replace(args.out)
    print(f"\nwrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
