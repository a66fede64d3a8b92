"""``idp audit tail [--json] [--limit N]``: the most recent audit events, oldest first."""

from __future__ import annotations

import argparse
import json
from typing import Any

import asyncpg

from idp.commands.common import iso, positive_int, print_json, print_table, with_pool
from idp.db.audit import AuditEvent, recent
from idp.settings import Settings

DEFAULT_LIMIT = 50


def _row(event: AuditEvent) -> dict[str, Any]:
    return {
        "id": event.id,
        "at": iso(event.at),
        "actor": event.actor,
        "action": event.action,
        "subject": event.subject,
        "reason": event.reason,
        "details": event.details,
    }


async def tail(args: argparse.Namespace, settings: Settings, pool: asyncpg.Pool) -> int:
    rows = [_row(event) for event in await recent(pool, args.limit)]
    if args.json:
        print_json(rows)
    else:
        print_table(
            ["AT", "ACTOR", "ACTION", "SUBJECT", "REASON", "DETAILS"],
            [
                [
                    row["at"],
                    row["actor"],
                    row["action"],
                    row["subject"],
                    row["reason"],
                    json.dumps(row["details"], separators=(",", ":")) if row["details"] else None,
                ]
                for row in rows
            ],
        )
    return 0


def add_parsers(commands: Any) -> None:
    group = commands.add_parser("audit", help="the audit log: tail").add_subparsers(
        dest="audit", required=True, metavar="COMMAND"
    )
    tailing = group.add_parser("tail", help="the most recent events, oldest first")
    tailing.add_argument("--json", action="store_true", help="one JSON array instead of a table")
    tailing.add_argument(
        "--limit",
        type=positive_int,
        default=DEFAULT_LIMIT,
        metavar="N",
        help="how many events (default: %(default)s)",
    )
    tailing.set_defaults(run=with_pool(tail))
