"""The benchmark's table (used by ``bench/run.py``): per scenario and server the medians of the
alternated runs, the ratios between servers with their range, the targets; and every run.

    python bench/report.py RESULTS_JSON [--out FILE]

re-renders a run that ``bench/run.py --json FILE`` saved: prints the table and writes it, with its
header (date, core count, wrk parameters, versions, ceilings), to FILE as Markdown.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from wrk import Measure

TIMES = "\u00d7"  # the multiplication sign, escaped for the linter
DASH = "\u2013"  # the en dash of a range
SERVERS = ("idp", "baseline", "peer", "ceiling")  # the order of a round
BASELINE_FLOOR = 0.95  # the bound: no scenario more than 5% below the code before it


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
    # Each server's runs in round order; None for a round in which it could not be measured.
    runs: dict[str, list[Measure | None]] = field(default_factory=dict)
    # Why a server's runs are missing although it was to be measured: {"peer": "answered 401"}.
    failed: dict[str, str] = field(default_factory=dict)
    has_peer: bool = True  # False: the peer has no such scenario (the round trip)

    def measured(self, server: str) -> list[Measure]:
        return [m for m in self.runs.get(server, []) if m is not None]

    def median(self, server: str) -> Measure | None:
        """The medians of the server's runs, field by field; None if it was never measured."""
        runs = self.measured(server)
        if not runs:
            return None

        def middle(values: list[float | None]) -> float | None:
            known = [v for v in values if v is not None]
            return statistics.median(known) if known else None

        return Measure(
            rps=statistics.median(m.rps for m in runs),
            p50_ms=statistics.median(m.p50_ms for m in runs),
            p99_ms=statistics.median(m.p99_ms for m in runs),
            requests=sum(m.requests for m in runs),
            non_2xx=sum(m.non_2xx for m in runs),
            cpu=middle([m.cpu for m in runs]),
            pg_cpu=middle([m.pg_cpu for m in runs]),
        )

    def ratios(self, server: str, other: str) -> list[float]:
        """server's req/s over other's, round by round, in the rounds that measured both."""
        pairs = zip(self.runs.get(server, []), self.runs.get(other, []), strict=False)
        return [a.rps / b.rps for a, b in pairs if a is not None and b is not None and b.rps]


@dataclass
class Results:
    date: str
    cores: int
    wrk: str  # the wrk parameters
    versions: dict[str, str]
    ceilings: dict[str, str]  # scenario -> what its ceiling does
    notes: list[str]
    rows: list[Row]
    rounds: int = 1
    baseline: str = ""  # the git ref idp was compared with, if any

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str) -> Results:
        """Also reads the single-run records written before runs were alternated."""
        data: dict[str, Any] = json.loads(text)

        def measure(value: dict[str, Any] | None) -> Measure | None:
            return None if value is None else Measure(**value)

        rows = []
        for r in data.pop("rows"):
            if "runs" in r:
                runs = {s: [measure(m) for m in ms] for s, ms in r["runs"].items()}
            else:
                runs = {s: [measure(r[s])] for s in ("idp", "peer", "ceiling") if r.get(s)}
            rows.append(Row(r["scenario"], runs, r["failed"], r["has_peer"]))
        return cls(rows=rows, **data)


def _rps(m: Measure | None) -> str:
    return "-" if m is None else f"{m.rps:,.0f}"


def _ms(value: float) -> str:
    return f"{value:.1f} ms" if value >= 100 else f"{value:.2f} ms"


def _p(m: Measure | None, percentile: str) -> str:
    return "-" if m is None else _ms(getattr(m, f"p{percentile}_ms"))


def cpu_text(m: Measure | None) -> str:
    if m is None or m.cpu is None:
        return "-"
    if m.pg_cpu is None:
        return f"{m.cpu:.2f}"
    return f"{m.cpu:.2f} (pg {m.pg_cpu:.2f})"


def ratio_text(ratios: list[float]) -> str:
    """The median ratio, and with several rounds the lowest and highest, e.g. 1.02 (0.97 to
    1.06), written with an en dash."""
    if not ratios:
        return "-"
    median = f"{statistics.median(ratios):.2f}"
    if len(ratios) == 1:
        return median
    return f"{median} ({min(ratios):.2f}{DASH}{max(ratios):.2f})"


def target_text(row: Row, with_baseline: bool) -> str:
    parts = []
    target = TARGETS.get(row.scenario)
    if target is not None:
        parts.append(f"≥{target.ratio:.1f}{TIMES} {target.versus}")
    if row.has_peer:
        parts.append("p99 ≤ peer")
    if with_baseline:
        parts.append(f"≥{BASELINE_FLOOR:.2f}{TIMES} baseline")
    return ", ".join(parts) or "-"


def met(row: Row, with_baseline: bool) -> str:
    """ "yes", "no: <what fell short>", or "n/a" when a comparison was not measured; on medians."""
    idp = row.median("idp")
    if idp is None:
        return "n/a"
    misses, unknown = [], []
    comparisons = []
    target = TARGETS.get(row.scenario)
    if target is not None:
        comparisons.append((target.versus, target.ratio))
    if with_baseline:
        comparisons.append(("baseline", BASELINE_FLOOR))
    for versus, floor in comparisons:
        ratios = row.ratios("idp", versus)
        if not ratios:
            unknown.append(f"no {versus}")
        elif statistics.median(ratios) < floor:
            misses.append(f"{statistics.median(ratios):.2f}{TIMES} {versus}")
    if row.has_peer:
        peer = row.median("peer")
        if peer is None:
            if "no peer" not in unknown:
                unknown.append("no peer")
        elif idp.p99_ms > peer.p99_ms:
            misses.append("p99")
    if misses:
        return "no: " + ", ".join(misses)
    if unknown:
        return "n/a (" + ", ".join(unknown) + ")"
    return "-" if not comparisons and not row.has_peer else "yes"


def errors(row: Row) -> str:
    notes = []
    for server in SERVERS:
        runs = row.runs.get(server, [])
        problems = [(n, m.problems) for n, m in enumerate(runs, 1) if m is not None and m.problems]
        for n, problem in problems:
            notes.append(f"{server}{f' run {n}' if len(runs) > 1 else ''}: {problem}")
        if server in row.failed:
            notes.append(f"{server}: {row.failed[server]}")
    return "; ".join(notes) or "-"


def header(with_baseline: bool) -> list[str]:
    baseline = ["baseline req/s", "baseline p99", "idp/baseline"] if with_baseline else []
    return [
        *("scenario", "idp req/s", "idp p50", "idp p99", "idp CPU", *baseline),
        *("peer req/s", "peer p50", "peer p99", "peer CPU", "idp/peer"),
        *("ceiling req/s", "idp/ceiling", "target", "met?", "errors"),
    ]


def table(results: Results) -> list[list[str]]:
    with_baseline = bool(results.baseline)
    cells = []
    for row in results.rows:
        idp, peer, ceiling = row.median("idp"), row.median("peer"), row.median("ceiling")
        baseline = row.median("baseline")
        versus_baseline = [
            _rps(baseline),
            _p(baseline, "99"),
            ratio_text(row.ratios("idp", "baseline")),
        ]
        cells.append(
            [
                *(row.scenario, _rps(idp), _p(idp, "50"), _p(idp, "99"), cpu_text(idp)),
                *(versus_baseline if with_baseline else []),
                *(_rps(peer), _p(peer, "50"), _p(peer, "99"), cpu_text(peer)),
                ratio_text(row.ratios("idp", "peer")),
                *(_rps(ceiling), ratio_text(row.ratios("idp", "ceiling"))),
                *(target_text(row, with_baseline), met(row, with_baseline), errors(row)),
            ]
        )
    return cells


def runs_table(results: Results) -> tuple[list[str], list[list[str]]]:
    """Every run: one line per scenario and round, req/s and p99 per server."""
    servers = [s for s in SERVERS if any(s in row.runs for row in results.rows)]
    cells = []
    for row in results.rows:
        for n in range(max((len(runs) for runs in row.runs.values()), default=0)):
            line = [row.scenario, str(n + 1)]
            for server in servers:
                runs = row.runs.get(server, [])
                m = runs[n] if n < len(runs) else None
                line.append("-" if m is None else f"{m.rps:,.0f} req/s, p99 {_ms(m.p99_ms)}")
            cells.append(line)
    return ["scenario", "round", *servers], cells


def text_table(head: list[str], cells: list[list[str]], right: set[int]) -> str:
    widths = [max(len(row[i]) for row in [head, *cells]) for i in range(len(head))]

    def line(row: list[str]) -> str:
        parts = (
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        )
        return "  ".join(parts).rstrip()

    return "\n".join([line(head), line(["-" * w for w in widths]), *map(line, cells)])


def markdown_table(head: list[str], cells: list[list[str]], right: set[int]) -> str:
    align = ["---:" if i in right else "---" for i in range(len(head))]
    return "\n".join("| " + " | ".join(row) + " |" for row in [head, align, *cells])


def numeric(head: list[str]) -> set[int]:
    """The right-aligned columns: those of numbers."""
    return {
        i for i, name in enumerate(head) if name not in ("scenario", "target", "met?", "errors")
    }


def header_lines(results: Results) -> list[str]:
    versions = ", ".join(f"{name} {version}" for name, version in results.versions.items())
    order = ", ".join(s for s in SERVERS if any(s in row.runs for row in results.rows))
    lines = [
        f"date: {results.date}",
        f"cores (`nproc`): {results.cores}",
        f"wrk: `{results.wrk}`",
        f"versions: {versions}",
        "servers: idp `idp serve --workers 2` on a fresh embedded PostgreSQL; the peer "
        "node-oidc-provider (`bench/peer/`, 2 cluster workers); the ceilings `bench/ceiling.py` "
        "under uvicorn `--workers 2` as idp runs it. One server loaded at a time, all on this "
        "machine, wrk too",
        f"runs: {results.rounds} of each scenario on each server, alternated round by round "
        f"({order}); each cell is the median of a server's runs, each ratio the median of the "
        f"rounds' ratios (each run against the other's run of the same round), with min{DASH}max",
        "CPU: cores busy on average during the measured run (utime + stime of the server's "
        "process group; idp and the ceilings include PostgreSQL's processes, shown as pg); wrk "
        "not counted",
    ]
    lines += [f"ceiling of {name}: {text}" for name, text in results.ceilings.items()]
    return lines + results.notes


def markdown(results: Results) -> str:
    head = header(bool(results.baseline))
    runs_head, runs = runs_table(results)
    lines = "".join(f"- {line}\n" for line in header_lines(results))
    return (
        "# idp benchmark\n\n"
        f"{lines}\n"
        "Ratios, not absolute figures, are what we track: the servers of a ratio ran in the same "
        "rounds on the same machine.\n\n"
        f"{markdown_table(head, table(results), numeric(head))}\n\n"
        "## Every run\n\n"
        f"{markdown_table(runs_head, runs, set(range(1, len(runs_head))))}\n"
    )


def text(results: Results) -> str:
    head = header(bool(results.baseline))
    runs_head, runs = runs_table(results)
    lines = "".join(f"{line}\n" for line in header_lines(results))
    return (
        f"{lines}\n{text_table(head, table(results), numeric(head))}\n\n"
        f"{text_table(runs_head, runs, set(range(1, len(runs_head))))}"
    )


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
