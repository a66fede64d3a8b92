"""``idp resources``: add, list, remove the resources (RFC 8707) that clients registered by a
program (IDP_DCR, metadata documents) may ask tokens for: the service layer
``/admin/v1/resources`` calls too (idp.admin.resources)."""

from __future__ import annotations

import argparse
from typing import Any

import asyncpg

from idp.admin import resources
from idp.clock import SystemClock
from idp.commands.common import actor, iso, print_json, print_table, with_pool
from idp.settings import Settings


async def add(args: argparse.Namespace, settings: Settings, pool: asyncpg.Pool) -> int:
    await resources.add(pool, args.url, now=SystemClock().now(), actor=actor())
    return 0


async def remove(args: argparse.Namespace, settings: Settings, pool: asyncpg.Pool) -> int:
    await resources.remove(pool, url=args.url, now=SystemClock().now(), actor=actor())
    return 0


async def list_resources(args: argparse.Namespace, settings: Settings, pool: asyncpg.Pool) -> int:
    stored = await resources.all_resources(pool)
    configured = [{"id": None, "url": url, "source": "IDP_RESOURCES", "created_at": None}
                  for url in settings.resources]  # fmt: skip
    added = [{"id": str(item.id), "url": item.url, "source": "database",
              "created_at": iso(item.created_at)} for item in stored]  # fmt: skip
    rows = configured + added
    if args.json:
        print_json(rows)
    else:
        print_table(
            ["URL", "SOURCE", "ADDED"],
            [[row["url"], row["source"], row["created_at"]] for row in rows],
        )
    return 0


def add_parsers(commands: Any) -> None:
    group = commands.add_parser(
        "resources", help="resources registered clients may ask tokens for: add, list, remove"
    ).add_subparsers(dest="resources", required=True, metavar="COMMAND")
    adding = group.add_parser(
        "add",
        help="allow a resource",
        description="Allow clients registered by a program to ask for access tokens whose aud "
        "is URL (the resource parameter, RFC 8707), e.g. an MCP server's URL.",
    )
    adding.add_argument("url", metavar="URL", help="an absolute http(s) URL without a fragment")
    adding.set_defaults(run=with_pool(add))
    listing = group.add_parser("list", help="IDP_RESOURCES and those added here")
    listing.add_argument("--json", action="store_true", help="one JSON array instead of a table")
    listing.set_defaults(run=with_pool(list_resources))
    removing = group.add_parser("remove", help="stop allowing a resource added here")
    removing.add_argument("url", metavar="URL", help="the resource")
    removing.set_defaults(run=with_pool(remove))
