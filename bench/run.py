"""The project's performance record: idp beside node-oidc-provider (the peer), beside ceilings,
and optionally beside idp at another commit (the baseline).

    scripts/bench [--only SCENARIO,...] [--no-peer] [--rounds N] [--baseline REF]
                  [--duration D] [--out FILE] [--json FILE]
    scripts/bench --soak SECONDS [--out FILE]
    scripts/bench --accounts [--duration D] [--out FILE]
    scripts/bench --passkeys [--duration D] [--out FILE]
    scripts/bench --admin [--duration D] [--out FILE]
    scripts/bench --verifier [--duration D] [--rounds N] [--iterations N] [--out FILE]

Every scenario (bench/scenarios.py) runs with wrk against ``idp serve --workers 2`` on a fresh
embedded PostgreSQL (in a temporary IDP_DATA_DIR, whatever this shell's IDP_* variables say),
against the peer (``bench/peer/server.js``, 2 cluster workers) where it has the scenario, and
against a ceiling (``bench/ceiling.py`` under uvicorn ``--workers 2``) where one exists: the
least a Starlette app does for the same answer. With ``--baseline REF``, idp at REF (a git
commit or branch, checked out in a temporary directory) runs too, on a database of its own.
All servers run at once, idle but for the one loaded; each scenario runs ``--rounds`` times
(default 3) on each server, alternated: idp, baseline, peer, ceiling, then again. A warm-up
precedes each measured run. Prints the table of medians, ratios with their range and every
run, and writes it to bench/results/latest.md.

``--soak SECONDS`` runs the mixed workload against idp alone for SECONDS after a warm-up, samples
the RSS of idp's processes and PostgreSQL's every 5 s, and writes bench/results/soak.md.

Environment:
    BENCH_DURATION          measured run per scenario (wrk -d), default 10s (--duration wins)
    BENCH_CONNECTIONS       open connections (wrk -c), default 64
    BENCH_THREADS           wrk threads (wrk -t), default 2
    ROUND_TRIP_CONCURRENCY  concurrent browsers of the code round trip, default 8
    BENCH_SOAK_WARMUP       the soak's warm-up, default 60s
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

import report
import wrk
from baseline import checkout
from config import RESULTS, Config, NotMeasured, log
from lineup import Contender, start_lineup
from scenarios import BY_NAME, SCENARIOS, Scenario
from servers import Lab
from soak import soak


def compare(
    lab: Lab, config: Config, scenarios: list[Scenario], with_peer: bool, baseline: str | None
) -> report.Results:
    """Start every server, then run each scenario on each, round after round; the table."""
    with contextlib.ExitStack() as stack:
        old = None
        if baseline is not None:
            code, notes = stack.enter_context(checkout(baseline))
            stack.callback(lab.stop_servers)  # before its checkout goes
            old = (baseline, code, notes)
        lineup = start_lineup(lab, config, scenarios, with_peer, old)
        rows = [report.Row(s.name, has_peer=s.peer) for s in scenarios]
        for scenario, row in zip(scenarios, rows, strict=True):
            for round in range(config.rounds):
                for contender in lineup.contenders:
                    if scenario.runs_on(contender.name):
                        attempt(lab, config, row, contender, scenario, round)
        lab.stop_servers()  # their logs' errors go in the notes
    return report.Results(
        date=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        cores=os.cpu_count() or 0,
        wrk=config.wrk_text,
        versions=lineup.versions,
        ceilings=lineup.ceilings,
        notes=lineup.notes + lab.log_problems,
        rows=rows,
        rounds=config.rounds,
        baseline=baseline or "",
    )


def attempt(
    lab: Lab, config: Config, row: report.Row, contender: Contender, scenario: Scenario, round: int
) -> None:
    """Measure one run of a scenario on one server into its row; why not, when it cannot be."""
    label = f"{scenario.name} on {contender.name}, round {round + 1} of {config.rounds}"
    runs = row.runs.setdefault(contender.name, [])
    try:
        job = contender.job(scenario, round)
        measure = wrk.measure(config, lab.env, label, job, contender.meter)
    except NotMeasured as error:
        log(f"{label}: not measured: {error}")
        row.failed[contender.name] = f"not measured: {error}"
        runs.append(None)
    else:
        runs.append(measure)


def main(argv: list[str] | None = None) -> int:
    names = [s.name for s in SCENARIOS]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help=f"comma-separated scenarios to run, of: {', '.join(names)}")
    parser.add_argument("--no-peer", action="store_true", help="do not run the peer")
    parser.add_argument(
        "--rounds", type=int, default=3, help="runs of each scenario on each server (default 3)"
    )
    parser.add_argument(
        "--baseline", metavar="REF", help="also run idp at this git commit or branch, alternated"
    )
    parser.add_argument("--duration", help="each measured run, e.g. 10s (default BENCH_DURATION)")
    parser.add_argument(
        "--soak",
        type=int,
        nargs="?",
        const=300,
        metavar="SECONDS",
        help="the soak (default 300 s): the mixed workload on idp alone, its RSS sampled",
    )
    parser.add_argument(
        "--accounts",
        action="store_true",
        help="the accounts record instead (bench/accounts.py): sign-ups, forgot-password "
        "latency, mail delivery",
    )
    parser.add_argument(
        "--passkeys",
        action="store_true",
        help="the passkeys record instead (bench/passkeys.py): passkey sign-ins/s beside "
        "password sign-ins/s, and a TOTP check's cost",
    )
    parser.add_argument(
        "--admin",
        action="store_true",
        help="the management API record instead (bench/admin.py): a users page over 100,000 "
        "users, the first and the 1,000th, and dynamic registrations/s",
    )
    parser.add_argument(
        "--verifier",
        action="store_true",
        help="the relying-party verifier record instead (bench/verifier.py): verifications/s "
        "of one cached RS256 access token on one core, idp_rp beside a raw cryptography "
        "ceiling and PyJWT (--duration per run, default 2s here)",
    )
    parser.add_argument(
        "--iterations",
        type=int,
        default=0,
        metavar="N",
        help="--verifier: verify N tokens per run instead of running for --duration",
    )
    parser.add_argument("--out", type=Path, help="the Markdown file to write")
    parser.add_argument("--json", type=Path, help="also save the results as JSON (bench/report.py)")
    args = parser.parse_args(argv)
    scenarios = SCENARIOS
    if args.only:
        chosen = [s.strip() for s in args.only.split(",") if s.strip()]
        unknown = [s for s in chosen if s not in BY_NAME]
        if unknown:
            parser.error(f"unknown scenario(s) {', '.join(unknown)}; known: {', '.join(names)}")
        scenarios = [s for s in SCENARIOS if s.name in chosen]
    config = Config.from_env(args.duration, args.rounds)

    def terminate(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, terminate)
    if args.accounts:
        import accounts  # the idp package and aiosmtpd: only for this record

        return accounts.main(config, args.out)
    if args.passkeys:
        import passkeys  # the idp package and the software authenticator: only for this record

        return passkeys.main(config, args.out)
    if args.verifier:
        import verifier  # PyJWT and idp-rp (from rp/): only for this record

        return verifier.main(args.duration, args.rounds, args.iterations, args.out)
    if args.admin:
        import admin  # the idp package's CLI: only for this record

        return admin.main(config, args.out)
    lab = Lab()
    try:
        if args.soak is not None:
            passed, markdown = soak(lab, config, args.soak)
            out = args.out or RESULTS / "soak.md"
            report.write(out, markdown)
            log(f"wrote {out}")
            return 0 if passed else 1
        results = compare(lab, config, scenarios, not args.no_peer, args.baseline)
    finally:
        lab.close()
    print(report.text(results))
    out = args.out or RESULTS / "latest.md"
    report.write(out, report.markdown(results))
    log(f"wrote {out}")
    if args.json is not None:
        report.write(args.json, results.to_json())
    return 0


if __name__ == "__main__":
    sys.exit(main())
