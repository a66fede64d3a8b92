"""``idp keys``: list, rotate, plan, export, revoke (and ``scripts/revoke-key``, the same
revoke)."""

from __future__ import annotations

import argparse
import sys
from datetime import datetime, timedelta
from typing import Any, TextIO

import asyncpg

from idp.admin import keys as admin_keys
from idp.clock import SystemClock
from idp.commands.common import UserError, actor, iso, print_json, print_table, with_pool
from idp.db import signing_keys
from idp.keys import lifecycle
from idp.keys.crypto import public_pem
from idp.keys.manager import KeyManager
from idp.settings import Settings, parse_duration

# One line, for --force: what a forced rotation may cause, and what bounds it.
FORCED_WARNING = (
    "idp: warning: rotated with --force: verifiers that cached the JWKS before the new key was "
    "published meet an unknown kid and fetch the JWKS again (jwks-rsa does so at most 10 times "
    "a minute; more rotations within a minute can exceed that)"
)


async def list_keys(args: argparse.Namespace, settings: Settings, pool: asyncpg.Pool) -> int:
    rows = [
        {
            "kid": key.kid,
            "alg": key.alg,
            "state": key.state,
            "created_at": iso(key.created_at),
            "activated_at": iso(key.activated_at),
            "retired_at": iso(key.retired_at),
            "revoked_at": iso(key.revoked_at),
            "revoked_reason": key.revoked_reason,
        }
        for key in await admin_keys.list_keys(pool)
    ]
    if args.json:
        print_json(rows)
        return 0
    print_table(
        ["KID", "ALG", "STATE", "CREATED", "ACTIVATED", "ENDED"],
        [
            [
                row["kid"],
                row["alg"],
                row["state"],
                row["created_at"],
                row["activated_at"],
                row["revoked_at"] or row["retired_at"],
            ]
            for row in rows
        ],
    )
    return 0


async def rotate(args: argparse.Namespace, settings: Settings, pool: asyncpg.Pool) -> int:
    rotation = await admin_keys.rotate(
        KeyManager(pool, settings, SystemClock()),
        actor=actor(),
        force=args.force,
        override="--force",
    )
    if rotation.forced:
        print(FORCED_WARNING, file=sys.stderr)
    print(rotation.kid)
    return 0


async def export(args: argparse.Namespace, settings: Settings, pool: asyncpg.Pool) -> int:
    found = await signing_keys.fetch_public_jwk(pool, args.kid)
    if found is None:
        raise UserError(f"no signing key with kid {args.kid!r}")
    jwk, state = found
    if state in ("retired", "revoked"):
        print(
            f"idp: warning: key {args.kid} is {state}; verifiers must not trust it", file=sys.stderr
        )
    print(public_pem(jwk), end="")
    return 0


def _confirm(prompt: str, stdin: TextIO) -> bool:
    print(prompt, end="", file=sys.stderr, flush=True)
    answer = stdin.readline()
    return answer.strip().lower() in ("y", "yes")


def _relative(delta: timedelta) -> str:
    """``in 3d 4h``, ``in 5m``, ``now``, ``2h ago``: two units at most."""
    seconds = int(delta.total_seconds())
    if seconds == 0:
        return "now"
    parts = []
    rest = abs(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if rest >= size:
            parts.append(f"{rest // size}{unit}")
            rest %= size
    text = " ".join(parts[:2])
    return f"in {text}" if seconds > 0 else f"{text} ago"


def _describe(transition: lifecycle.Transition, kid: str) -> str:
    match transition:
        case lifecycle.CreateKey(state="pending"):
            return f"next key {kid} created and published (pending)"
        case lifecycle.CreateKey():
            return f"key {kid} created, signs at once"
        case lifecycle.Promote():
            return f"rotation: {kid} starts signing"
        case lifecycle.Demote():
            return f"{kid} stops signing (retiring, still published)"
        case lifecycle.Retire():
            return f"{kid} leaves the JWKS"
        case lifecycle.Revoke():
            return f"{kid} revoked"
    raise AssertionError(transition)


def verifier_cache_advice(cache: timedelta, settings: Settings) -> tuple[list[str], list[str]]:
    """(warnings, notes) for a verifier caching keys by kid for ``cache``, ignoring
    Cache-Control (jwks-rsa's cacheMaxAge). Such a verifier refetches the JWKS when a token
    names a kid it does not hold, so a new key never fails it; its risk is holding a key idp
    no longer publishes."""
    window = lifecycle.retirement_window(settings)
    notes = [
        "a verifier refetches the JWKS on an unknown kid: a new signing key never fails it "
        f"(on schedule a key is published {_relative(settings.key_prepublish)[3:]} before it "
        "signs)",
        f"after a revocation it trusts the revoked key for up to {_relative(cache)[3:]} "
        f"(verifiers honouring Cache-Control: {_relative(settings.jwks_max_age)[3:]})",
    ]
    warnings = []
    if cache > window:
        warnings.append(
            f"a verifier cache of {_relative(cache)[3:]} outlasts the retirement window "
            f"({_relative(window)[3:]}: how long a key stays published after it last signed): "
            "it keeps trusting retired keys after idp has unpublished them; use at most "
            f"{int(window.total_seconds())}s, or honour Cache-Control"
        )
    return warnings, notes


async def plan(args: argparse.Namespace, settings: Settings, pool: asyncpg.Pool) -> int:
    now = SystemClock().now()
    records = [listing.record for listing in await signing_keys.fetch_all(pool)]
    horizon = now + settings.key_rotation_interval + lifecycle.retirement_window(settings)
    changes = lifecycle.timeline(records, now, settings, horizon)
    warnings, notes = (
        ([], [])
        if args.verifier_cache is None
        else verifier_cache_advice(args.verifier_cache, settings)
    )
    rows = [
        {
            "at": iso(change.at),
            "in_seconds": int((change.at - now).total_seconds()),
            "jwks_max_age_before": change.max_age_before,
            "transitions": [
                {"action": type(transition).__name__.lower(), "kid": kid}
                for transition, kid in change.transitions
            ],
        }
        for change in changes
    ]
    if args.json:
        print_json(
            {
                "now": iso(now),
                "jwks_max_age_now": lifecycle.jwks_max_age(
                    lifecycle.next_change(records, now, settings), now, settings
                ),
                "changes": rows,
                "warnings": warnings,
                "notes": notes,
            }
        )
        return 0
    print_table(
        ["WHEN (UTC)", "", "MAX-AGE BEFORE", "CHANGE"],
        [
            [iso(change.at), _relative(change.at - now), f"{change.max_age_before}s", line]
            for change in changes
            for line in [_describe(transition, kid) for transition, kid in change.transitions]
        ],
    )
    print("(MAX-AGE BEFORE: the JWKS max-age served after the previous change; it counts down")
    print(" to 0 over the last IDP_JWKS_MAX_AGE before each change)")
    for note in notes:
        print(f"note: {note}")
    for warning in warnings:
        print(f"idp: warning: {warning}", file=sys.stderr)
    return 0


def _dry_run_plan(
    args: argparse.Namespace, settings: Settings, keys: list[Any], now: datetime
) -> dict[str, Any]:
    """What ``revoke`` would do, from the revocation planner itself; nothing is written. The
    ``--json`` answer of ``--dry-run``; the text output is printed from it."""
    records = {key.kid: key for key in keys}
    transitions = lifecycle.plan_revocation(
        keys, None if args.all else args.kid, args.reason or "dry run", settings
    )
    signer = next(
        (
            t
            for t in transitions
            if isinstance(t, lifecycle.Promote)
            or (isinstance(t, lifecycle.CreateKey) and t.state == "active")
        ),
        None,
    )
    next_signer: dict[str, Any]
    if isinstance(signer, lifecycle.Promote):
        key = records[signer.kid]
        next_signer = {"kid": key.kid, "change": "promoted", "published_since": iso(key.created_at)}
    elif signer is not None:  # a brand-new key: published from the revocation's instant
        next_signer = {"kid": None, "change": "new", "published_since": None}
    else:
        active = next(key for key in keys if key.state == "active")
        next_signer = {
            "kid": active.kid,
            "change": "unchanged",
            "published_since": iso(active.created_at),
        }
    tail = settings.longest_token_ttl + settings.clock_skew
    revoked = []
    for transition in transitions:
        if not isinstance(transition, lifecycle.Revoke):
            continue
        key = records[transition.kid]
        until = None  # a pending key signed no token
        if key.state != "pending":
            last = now if key.state == "active" else key.last_signed_at
            assert last is not None
            until = iso(last + tail)
        revoked.append({"kid": key.kid, "state": key.state, "tokens_valid_until": until})
    return {
        "dry_run": True,
        "now": iso(now),
        "target": None if args.all else args.kid,
        "all": bool(args.all),
        "next_signer": next_signer,
        "revoked": revoked,
        "transitions": [
            {"action": type(t).__name__.lower(), "kid": getattr(t, "kid", None)}
            | ({"state": t.state} if isinstance(t, lifecycle.CreateKey) else {})
            for t in transitions
        ],
    }


def _print_dry_run(plan: dict[str, Any]) -> None:
    print("dry run: nothing changed")
    signer = plan["next_signer"]
    if signer["change"] == "promoted":
        print(f"next signer: {signer['kid']}, published since {signer['published_since']}")
    elif signer["change"] == "new":
        print("next signer: a brand-new key, published from the same instant")
    else:
        print(
            f"next signer: {signer['kid']} (unchanged), published since {signer['published_since']}"
        )
    for key in plan["revoked"]:
        if key["tokens_valid_until"] is None:
            print(f"tokens signed with {key['kid']}: none signed yet")
        else:
            print(
                f"tokens signed with {key['kid']}: valid until {key['tokens_valid_until']} "
                "unless revoked"
            )


async def revoke(args: argparse.Namespace, settings: Settings, pool: asyncpg.Pool) -> int:
    if args.dry_run:
        await admin_keys.check_revocable(pool, None if args.all else args.kid, args.reason or "-")
        keys = [listing.record for listing in await signing_keys.fetch_all(pool)]
        dry_run = _dry_run_plan(args, settings, keys, SystemClock().now())
        if args.json:
            print_json(dry_run)
        else:
            _print_dry_run(dry_run)
        return 0
    await admin_keys.check_revocable(pool, None if args.all else args.kid, args.reason)
    target = "EVERY signing key" if args.all else f"signing key {args.kid}"
    if not args.yes and not _confirm(
        f"Revoke {target}? Tokens it signed stop verifying everywhere. Type 'yes' to confirm: ",
        sys.stdin,
    ):
        raise UserError("not confirmed; nothing revoked")
    manager = KeyManager(pool, settings, SystemClock())
    applied = await admin_keys.revoke(
        manager, pool, None if args.all else args.kid, args.reason, actor=actor()
    )
    for item in applied:
        print(f"{type(item.transition).__name__.lower():<9} {item.kid}")
    return 0


def _one_target(args: argparse.Namespace) -> str | None:
    """A usage error unless exactly one of KID and --all is given, and --reason (but for a
    dry run)."""
    if (args.kid is None) != bool(args.all):
        return "name exactly one KID, or --all"
    if args.reason is None and not args.dry_run:
        return "the following arguments are required: --reason"
    if args.json and not args.dry_run:
        return "--json goes with --dry-run"
    return None


def _duration(text: str) -> timedelta:
    try:
        return parse_duration(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def add_revoke_arguments(parser: argparse.ArgumentParser) -> None:
    """``idp keys revoke`` and ``scripts/revoke-key`` (no "-h": a kid may start with "-h")."""
    parser.add_argument("--help", action="help", help="show this help message and exit")
    parser.add_argument("kid", nargs="?", metavar="KID", help="the key to revoke")
    parser.add_argument("--all", action="store_true", help="revoke every key and start afresh")
    parser.add_argument(
        "--reason",
        metavar="TEXT",
        help="why; kept in the audit log (required, but for --dry-run)",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="change nothing: print which key would sign next, since when verifiers could have "
        "fetched it, and until when tokens the key signed stay valid",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="with --dry-run: one JSON object (next_signer, revoked with tokens_valid_until, "
        "transitions) instead of text",
    )
    parser.add_argument(
        "--yes", action="store_true", help="do not ask for confirmation (default: ask on stdin)"
    )
    parser.set_defaults(identifier="kid", required=False, check=_one_target, run=with_pool(revoke))


def add_parsers(commands: Any) -> None:
    group = commands.add_parser(
        "keys", help="signing keys: list, rotate, plan, export, revoke"
    ).add_subparsers(dest="keys", required=True, metavar="COMMAND")

    listing = group.add_parser("list", help="every key: kid, algorithm, state and when")
    listing.add_argument("--json", action="store_true", help="one JSON array instead of a table")
    listing.set_defaults(run=with_pool(list_keys))

    rotating = group.add_parser(
        "rotate",
        help="a new key signs from now; prints its kid",
        description="The pending key signs from now (a fresh one if there is none); the previous "
        "key stays published as retiring until its tokens expire. Refused, with when to try "
        "again, while the pending key is younger than IDP_JWKS_MAX_AGE + IDP_CLOCK_SKEW + "
        "IDP_KEY_CHECK_INTERVAL or the active key younger than a minute.",
    )
    rotating.add_argument(
        "--force",
        action="store_true",
        help="rotate now even then: verifiers that cached the JWKS before the new key was "
        "published refetch it on meeting its kid; prints a warning and records 'forced' in the "
        "audit log",
    )
    rotating.set_defaults(run=with_pool(rotate))

    planning = group.add_parser(
        "plan",
        help="the scheduled key changes ahead and the JWKS max-age served until each",
        description="The next rotation (when the pending key starts signing), when each "
        "retiring key leaves the JWKS, when the next pending key is created, and the JWKS "
        "Cache-Control max-age served before each change, as the scheduler will make them "
        "(revocations and manual rotations aside). Times are UTC.",
    )
    planning.add_argument(
        "--verifier-cache",
        type=_duration,
        metavar="DURATION",
        help="advise on a verifier that caches keys by kid for DURATION (90s, 10m, 24h), "
        "ignoring Cache-Control, like jwks-rsa's cacheMaxAge: warns if it would trust a key "
        "idp has unpublished; exit status 0",
    )
    planning.add_argument("--json", action="store_true", help="one JSON object instead of a table")
    planning.set_defaults(run=with_pool(plan))

    exporting = group.add_parser(
        "export", help="a key's public half, for verifiers configured with a PEM", add_help=False
    )
    exporting.add_argument("--help", action="help", help="show this help message and exit")
    exporting.add_argument("kid", nargs="?", metavar="KID", help="the key to export")
    exporting.add_argument(
        "--pem", action="store_true", required=True, help="as a PEM public key (required)"
    )
    exporting.set_defaults(identifier="kid", required=True, run=with_pool(export))

    add_revoke_arguments(
        group.add_parser(
            "revoke",
            help="incident response: unpublish a key in every process now",
            description="The key leaves the JWKS of every idp process at once; if it was "
            "active, another key signs from the same instant. Tokens it signed stop verifying.",
            add_help=False,
        )
    )
