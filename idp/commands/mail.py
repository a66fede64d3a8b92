"""``idp mail test ADDRESS`` (send a test mail now, say in one line how it went) and
``idp mail queue [--json]`` (what waits in the outbox, and why)."""

from __future__ import annotations

import argparse
import asyncio
import os
from dataclasses import asdict
from datetime import timedelta
from typing import Any

import asyncpg

from idp.clock import SystemClock
from idp.commands.common import UserError, iso, positive_int, print_json, print_table, with_pool
from idp.db import outbox
from idp.janitor import RETENTION
from idp.mail import smtp
from idp.mail.compose import Composer
from idp.settings import Settings
from idp.terminal import printable

DEFAULT_LIMIT = 100
_NO_SMTP = (
    "IDP_SMTP_URL is not set: nothing is sent, mail waits in the outbox "
    "(idp serve --demo shows it on /demo/mailbox)"
)

EXAMPLES = """\
examples:
  IDP_SMTP_URL=smtp://mail.example.com:587?tls=require idp mail test ada@example.com
  IDP_SMTP_URL='smtps://me%40example.com:secret@smtp.example.com' idp mail test me@example.com
  idp mail queue                 what waits, its attempts and last error; sent and given up
  idp mail queue --json

IDP_SMTP_URL: smtp://[user:pass@]host[:port] uses STARTTLS when the server offers it (port 25);
add ?tls=require to refuse a server without it; smtps:// is TLS from the start (port 465).
"""


def _server(settings: Settings) -> smtp.SmtpServer | None:
    return None if settings.smtp_url is None else smtp.SmtpServer.from_url(settings.smtp_url)


def send_test(args: argparse.Namespace) -> int:
    """Directly, not through the outbox: the operator sees the server's answer now."""
    settings = Settings.from_env(os.environ)  # no database needed
    server = _server(settings)
    if server is None:
        raise UserError("IDP_SMTP_URL is not set: there is no mail server to send to")
    mail = Composer(settings).compose("test", args.address, name=None, link=settings.issuer)
    try:
        sent = asyncio.run(smtp.send(server, settings.sender, mail))
    except smtp.SmtpError as error:
        raise UserError(str(error)) from None
    print(f"idp: sent to {printable(args.address)} {sent.describe()}")
    return 0


async def show_queue(args: argparse.Namespace, settings: Settings, pool: asyncpg.Pool) -> int:
    now = SystemClock().now()
    waiting = await outbox.waiting(pool, args.limit)
    totals = await outbox.totals(pool, now - timedelta(hours=24))
    server = _server(settings)
    if args.json:
        print_json(
            {
                "smtp": None if server is None else server.address,
                "waiting": [_row(row) for row in waiting],
                "summary": asdict(totals),
            }
        )
        return 0
    if server is None:
        print(f"idp: {_NO_SMTP}")
    print_table(
        ["ID", "TO", "TEMPLATE", "ATTEMPTS", "NEXT ATTEMPT", "LAST ERROR"],
        [
            [row.id, row.recipient, row.template, row.attempts, iso(row.next_attempt_at),
             row.last_error]
            for row in waiting
        ],
    )  # fmt: skip
    more = f" ({len(waiting)} shown)" if totals.waiting > len(waiting) else ""
    print(
        f"{totals.waiting} waiting{more}, {totals.sent} sent in the last 24 h, "
        f"{totals.given_up} given up (kept {RETENTION.days} days)"
    )
    return 0


def _row(row: outbox.Waiting) -> dict[str, Any]:
    return {
        "id": row.id,
        "to": row.recipient,
        "template": row.template,
        "queued_at": iso(row.created_at),
        "attempts": row.attempts,
        "next_attempt_at": iso(row.next_attempt_at),
        "last_error": row.last_error,
    }


def add_parsers(commands: Any) -> None:
    group = commands.add_parser(
        "mail",
        help="idp's mail: test the mail server, show the queue",
        description="Test the mail server IDP_SMTP_URL names, and see what waits to be sent.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    ).add_subparsers(dest="mail", required=True, metavar="COMMAND")
    testing = group.add_parser(
        "test",
        help="send a test mail now and say how the mail server answered",
        description="Send a test mail to ADDRESS directly (not through the outbox) and print, "
        "in one line, where it went and whether TLS was used, or why the server refused it.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    testing.add_argument("address", metavar="ADDRESS", help="where to send the test mail")
    testing.set_defaults(run=send_test)
    queue = group.add_parser(
        "queue",
        help="the mail waiting to be sent, and why",
        description="The mails waiting in the outbox (attempts, next attempt, last error), and "
        "how many were sent in the last 24 h and given up.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    queue.add_argument("--json", action="store_true", help="one JSON object instead of a table")
    queue.add_argument(
        "--limit",
        type=positive_int,
        default=DEFAULT_LIMIT,
        metavar="N",
        help="how many waiting mails to list, oldest first (default: %(default)s)",
    )
    queue.set_defaults(run=with_pool(show_queue))
