"""``idp clients``: add, list, disable, enable, rotate-secret, initial-token: each one call of
the service layer the management API calls too (idp.admin.clients, idp.admin.initial_tokens)."""

from __future__ import annotations

import argparse
from datetime import timedelta
from typing import Any

import asyncpg

from idp.admin import clients as service
from idp.admin import initial_tokens
from idp.admin.cursors import MAX_LIMIT
from idp.clock import SystemClock
from idp.commands.common import UserError, actor, iso, print_json, print_table, with_pool
from idp.db import clients
from idp.oauth.registration import DEFAULT_SCOPES, GRANT_TYPES
from idp.settings import Settings, parse_duration


def _row(client: clients.Client) -> dict[str, Any]:
    def seconds(value: timedelta | None) -> int | None:
        return None if value is None else int(value.total_seconds())

    return {
        "client_id": client.client_id,
        "name": client.name,
        "public": client.public,
        "first_party": client.first_party,
        "require_mfa": client.require_mfa,
        "admin": client.admin,
        "registration": client.registration,  # operator, dynamic or metadata_document
        "redirect_uris": list(client.redirect_uris),
        "grant_types": list(client.grant_types),
        "scope": " ".join(client.scopes),
        "audiences": list(client.audiences),
        "introspect_audiences": list(client.introspect_audiences),
        "post_logout_redirect_uris": list(client.post_logout_redirect_uris),
        "access_token_ttl": seconds(client.access_token_ttl),
        "refresh_token_ttl": seconds(client.refresh_token_ttl),
        "disabled": client.disabled,
        "created_at": iso(client.created_at),
    }


def _duration(text: str | None, option: str) -> timedelta | None:
    if text is None:
        return None
    try:
        value = parse_duration(text)
    except ValueError as exc:
        raise UserError(f"{option}: {exc}") from None
    if value <= timedelta(0):
        raise UserError(f"{option} must be longer than 0s")
    return value


async def add(args: argparse.Namespace, settings: Settings, pool: asyncpg.Pool) -> int:
    async with pool.acquire() as connection:
        created = await service.create(
            connection,
            clock=SystemClock(),
            settings=settings,
            actor=actor(),
            name=args.name,
            grant_types=args.grant_type,
            redirect_uris=args.redirect_uri,
            post_logout_redirect_uris=args.post_logout_redirect_uri,
            scopes=args.scope.split(),
            audiences=args.audience,
            introspect_audiences=args.introspect_audience,
            public=args.public,
            first_party=args.first_party,
            require_mfa=args.require_mfa,
            admin=args.admin,
            access_token_ttl=_duration(args.access_token_ttl, "--access-token-ttl"),
            refresh_token_ttl=_duration(args.refresh_token_ttl, "--refresh-token-ttl"),
        )
    client, secret = created.client, created.secret
    if args.json:
        print_json({"client_id": client.client_id, "client_secret": secret, **_row(client)})
    else:
        print(f"client_id:     {client.client_id}")
        if secret is not None:
            print(f"client_secret: {secret}")
            print("(the secret is shown only now: store it in the client's configuration)")
    return 0


async def list_clients(args: argparse.Namespace, settings: Settings, pool: asyncpg.Pool) -> int:
    rows = []
    cursor = None
    while True:  # page by page, as the API does
        page = await service.page(pool, limit=MAX_LIMIT, cursor=cursor)
        rows += [_row(client) for client in page.clients]
        cursor = page.next_cursor
        if cursor is None:
            break
    if args.json:
        print_json(rows)
    else:
        print_table(
            ["CLIENT_ID", "NAME", "TYPE", "GRANTS", "INTROSPECTS", "DISABLED"],
            [
                [
                    row["client_id"],
                    row["name"],
                    "public" if row["public"] else "confidential",
                    ",".join(row["grant_types"]),
                    ",".join(row["introspect_audiences"]) or None,
                    row["disabled"],
                ]
                for row in rows
            ],
        )
    return 0


async def _set_disabled(args: argparse.Namespace, pool: asyncpg.Pool, disabled: bool) -> int:
    async with pool.acquire() as connection:
        await service.set_disabled(
            connection,
            clock=SystemClock(),
            actor=actor(),
            client_id=args.client_id,
            disabled=disabled,
        )
    return 0


async def disable(args: argparse.Namespace, settings: Settings, pool: asyncpg.Pool) -> int:
    return await _set_disabled(args, pool, True)


async def enable(args: argparse.Namespace, settings: Settings, pool: asyncpg.Pool) -> int:
    return await _set_disabled(args, pool, False)


async def rotate_secret(args: argparse.Namespace, settings: Settings, pool: asyncpg.Pool) -> int:
    async with pool.acquire() as connection:
        rotated = await service.rotate_secret(
            connection, clock=SystemClock(), actor=actor(), client_id=args.client_id
        )
    if args.json:
        print_json({"client_id": args.client_id, "client_secret": rotated.secret})
    else:
        print(f"client_secret: {rotated.secret}")
        print("(the old secret no longer works; this one is shown only now)")
    return 0


def _client_id_command(group: Any, name: str, help_text: str) -> argparse.ArgumentParser:
    # No "-h": a client id may start with "-h" (use --help); see idp.cli.parse.
    parser: argparse.ArgumentParser = group.add_parser(name, help=help_text, add_help=False)
    parser.add_argument("--help", action="help", help="show this help message and exit")
    parser.add_argument("client_id", nargs="?", metavar="CLIENT_ID", help="the client")
    parser.set_defaults(identifier="client_id", required=True)
    return parser


async def initial_token(args: argparse.Namespace, settings: Settings, pool: asyncpg.Pool) -> int:
    issued = await initial_tokens.issue(
        pool,
        now=SystemClock().now(),
        ttl=_duration(args.expires, "--expires") or initial_tokens.DEFAULT_TTL,
        uses=args.uses,
        actor=actor(),
    )
    if args.json:
        print_json(
            {
                "id": str(issued.record.id),
                "token": issued.token,
                "expires_at": iso(issued.expires_at),
                "uses": issued.uses,
            }
        )
    else:
        print(f"initial access token: {issued.token}")
        print(f"id:                   {issued.record.id}")
        print(f"expires at:           {iso(issued.expires_at)}")
        print(f"uses:                 {issued.uses or 'any number'}")
        print("(shown only now: a program sends it as Bearer to /oauth2/register)")
    return 0


def add_parsers(commands: Any) -> None:
    group = commands.add_parser(
        "clients", help="relying apps: add, list, disable, enable, rotate-secret, initial-token"
    ).add_subparsers(dest="clients", required=True, metavar="COMMAND")
    adding = group.add_parser(
        "add",
        help="register a client; prints its id and secret",
        description="Register a client. Prints its client_id and, unless --public, its "
        "client_secret: shown only now, store it in the client's configuration. The client "
        "authenticates with client_secret_basic or client_secret_post.",
    )
    adding.add_argument("name", metavar="NAME", help="shown to users on the consent screen")
    adding.add_argument(
        "--grant-type",
        action="append",
        default=[],
        required=True,
        choices=GRANT_TYPES,
        metavar="TYPE",
        help=f"a grant the client may use, one of: {', '.join(GRANT_TYPES)}; repeat for several "
        "(refresh_token only with authorization_code; required)",
    )
    adding.add_argument(
        "--redirect-uri",
        action="append",
        default=[],
        metavar="URI",
        help="where authorization responses may go (needed for authorization_code); https, a "
        "private-use scheme (com.example.app:/cb), or http://127.0.0.1/... or http://[::1]/... "
        "(and http://localhost/... with --public), where any port matches (RFC 8252 §7.3); "
        "repeat for several",
    )
    adding.add_argument(
        "--scope",
        default=" ".join(DEFAULT_SCOPES),
        metavar="SCOPES",
        help="the scopes the client may ask for, space-separated (default: %(default)s)",
    )
    adding.add_argument(
        "--audience",
        action="append",
        default=[],
        metavar="URI",
        help="an API the client's access tokens may be for (their aud); repeat for several "
        "(default: none, tokens are for the issuer)",
    )
    adding.add_argument(
        "--introspect-audience",
        action="append",
        default=[],
        metavar="URI",
        help="a resource server's audience (not the issuer): this client may introspect access "
        "tokens meant for it, not only its own (RFC 7662 §2.1); repeat for several",
    )
    adding.add_argument(
        "--public",
        action="store_true",
        help="a client that cannot keep a secret (SPA, mobile app): no secret, PKCE required "
        "(default: confidential)",
    )
    adding.add_argument(
        "--first-party",
        action="store_true",
        help="your own app: users are not asked for consent (default: they are)",
    )
    adding.add_argument(
        "--admin",
        action="store_true",
        help="may manage idp through the management API (/admin/v1): gets tokens for "
        "{issuer}/admin with the scopes idp:admin and idp:admin.read (needs a secret; use "
        "with --grant-type client_credentials for a deployment tool)",
    )
    adding.add_argument(
        "--require-mfa",
        action="store_true",
        help="every sign-in for this client must use two factors (acr urn:idp:acr:mfa or phr): "
        "a user signed in with a password only is asked for the second factor, and a user "
        "without one gets unmet_authentication_requirements, or sets one up when IDP_MFA is "
        "required (default: the client decides, with acr_values or claims)",
    )
    adding.add_argument(
        "--post-logout-redirect-uri",
        action="append",
        default=[],
        metavar="URI",
        help="where /logout may send the browser afterwards; repeat for several",
    )
    adding.add_argument(
        "--access-token-ttl",
        metavar="DURATION",
        help="lifetime of its access tokens, e.g. 15m, at most IDP_MAX_ACCESS_TOKEN_TTL "
        "(default: IDP_ACCESS_TOKEN_TTL)",
    )
    adding.add_argument(
        "--refresh-token-ttl",
        metavar="DURATION",
        help="absolute lifetime of its refresh tokens, e.g. 7d (default: IDP_REFRESH_TOKEN_TTL)",
    )
    adding.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object (client_id, client_secret and the registration)",
    )
    adding.set_defaults(run=with_pool(add))

    listing = group.add_parser("list", help="every client")
    listing.add_argument("--json", action="store_true", help="one JSON array instead of a table")
    listing.set_defaults(run=with_pool(list_clients))

    _client_id_command(group, "disable", "refuse the client from now on").set_defaults(
        run=with_pool(disable)
    )
    _client_id_command(group, "enable", "accept a disabled client again").set_defaults(
        run=with_pool(enable)
    )
    rotating = _client_id_command(
        group, "rotate-secret", "give the client a new secret; the old one stops working now"
    )
    rotating.add_argument("--json", action="store_true", help="print one JSON object")
    rotating.set_defaults(run=with_pool(rotate_secret))

    initial = group.add_parser(
        "initial-token",
        help="a token that lets a program register a client (IDP_DCR=token)",
        description="Print an initial access token (RFC 7591 §3), shown only now: a program "
        "sends it as 'Authorization: Bearer TOKEN' to /oauth2/register when IDP_DCR=token.",
    )
    initial.add_argument("--expires", metavar="DURATION", help="how long it lives (default: 1d)")
    initial.add_argument(
        "--uses", type=int, metavar="N", help="how many registrations it allows (default: any)"
    )
    initial.add_argument("--json", action="store_true", help="print one JSON object")
    initial.set_defaults(run=with_pool(initial_token))
