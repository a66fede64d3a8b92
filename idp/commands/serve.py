"""``idp serve``: migrate, make sure a signing key exists, (with ``--demo``) seed the demo, serve.

What to open is printed last, once every worker has started and the socket listens: on a
terminal it is then the last thing on screen, not lost among start-up lines.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

from idp.clock import SystemClock
from idp.db.migrate import migrate
from idp.db.pool import create_pool
from idp.demo import DemoCredentials, seed
from idp.keys.manager import KeyManager
from idp.logs import choose_format, uvicorn_log_config
from idp.logs import configure as configure_logging
from idp.runtime import resolve
from idp.settings import Settings

BANNER_POLL = 0.05  # seconds between looks at StartupWatch's marks


def serve(args: argparse.Namespace) -> int:
    from idp.server import serve as run_server  # uvicorn and the app: only this command

    environment = Settings.from_env(os.environ, host=args.host, port=args.port, demo=args.demo)
    log_format = configure_logging(choose_format(environment.log_format, sys.stdout.isatty()))
    settings = replace(resolve(environment), demo=args.demo)
    demo = asyncio.run(prepare(settings, seed_demo=args.demo))
    workers = max(1, args.workers)
    with tempfile.TemporaryDirectory(prefix="idp-serve-") as watch_dir:
        stop = threading.Event()
        lines = banner(settings, workers, demo, demo_asked=args.demo)
        threading.Thread(
            target=print_once_started,
            args=(Path(watch_dir), workers, lines, stop),
            name="idp-banner",
            daemon=True,
        ).start()
        try:
            run_server(
                settings,
                host=args.host,
                port=args.port,
                workers=workers,
                log_config=uvicorn_log_config(log_format, watch_dir),
            )
        finally:
            stop.set()
    return 0


async def prepare(settings: Settings, *, seed_demo: bool) -> DemoCredentials | None:
    """Migrate, create the first keys on a fresh database, seed the demo if asked (None when
    not asked, or when the database holds other users or clients)."""
    assert settings.database_url is not None
    pool = await create_pool(settings.database_url, min_size=1, max_size=2)
    try:
        async with pool.acquire() as connection:
            await migrate(connection)
        await KeyManager(pool, settings, SystemClock()).tick(actor="startup")
        return await seed(pool, settings, SystemClock().now()) if seed_demo else None
    finally:
        await pool.close()


def banner(
    settings: Settings, workers: int, demo: DemoCredentials | None, *, demo_asked: bool
) -> list[str]:
    lines = [
        f"idp: serving {settings.issuer} with {workers} worker{'s' if workers > 1 else ''}; "
        "press Ctrl+C to stop",
        f"idp: discovery at {settings.issuer}/.well-known/openid-configuration",
    ]
    if demo is not None:
        lines.append(f"idp: demo user {demo.email}, password {demo.password}")
        if settings.smtp_url is None:
            lines.append(
                f"idp: no IDP_SMTP_URL: the mail idp sends (sign-up, password reset) appears at "
                f"{settings.issuer}/demo/mailbox"
            )
        lines.append(f"idp: sign in at {demo.authorization_url}")
    elif demo_asked:
        lines.append("idp: demo not seeded: the database already has other users or clients")
    return lines


def print_once_started(
    watch_dir: Path, workers: int, lines: list[str], stop: threading.Event
) -> None:
    """Print ``lines`` once the socket listens and ``workers`` workers have started, as
    ``idp.logs.StartupWatch`` marks them in ``watch_dir``; nothing if ``stop`` comes first."""
    while not stop.wait(BANNER_POLL):
        started = sum(1 for _ in watch_dir.glob("started-*"))
        if (watch_dir / "listening").exists() and started >= workers:
            print("\n".join(lines), flush=True)
            return


def add_parsers(commands: Any) -> None:
    serving = commands.add_parser(
        "serve",
        help="migrate, make sure a signing key exists, serve",
        description="Apply pending migrations, create the first signing keys on a fresh "
        "database, and serve. Without IDP_DATABASE_URL, idp runs its own PostgreSQL in "
        "IDP_DATA_DIR (default ./.idp). Logs go to stderr: readable on a terminal, JSON "
        "otherwise (IDP_LOG_FORMAT=auto, json or text).",
    )
    serving.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: %(default)s)"
    )
    serving.add_argument(
        "--port", type=int, default=8000, metavar="PORT", help="TCP port (default: %(default)s)"
    )
    serving.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        metavar="N",
        help="worker processes (default: one per CPU, %(default)s here)",
    )
    serving.add_argument(
        "--demo",
        action="store_true",
        help="on an empty database, seed a demo user and a first-party demo client, and print "
        "how to sign in",
    )
    serving.set_defaults(run=serve)
