"""The ``idp`` command (also ``python -m idp``): the parser, and one-line errors. The commands
live in ``idp.commands``.

Exit status: 0 success, 1 user error (one readable line on stderr, no traceback), 2 usage.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence

import asyncpg

from idp.admin.problems import ProblemError
from idp.commands import audit, clients, keys, mail, migrate, resources, serve, sessions, users
from idp.commands.common import UserError
from idp.keys.crypto import KeyDecryptionError
from idp.keys.lifecycle import KeyLifecycleError
from idp.settings import SettingsError
from idp.terminal import printable

EXAMPLES = """\
examples:
  idp serve --demo                      serve on http://localhost:8000 with a demo user
  idp users add ada@example.com --name "Ada Lovelace" --password-stdin
  idp clients add "Example app" --grant-type authorization_code --grant-type refresh_token \\
      --redirect-uri https://app.example.com/callback
  idp clients add "Billing job" --grant-type client_credentials --audience https://api.example.com
  idp keys rotate                       a new signing key signs from now
  idp keys revoke KID --reason "key leaked"
  idp audit tail --limit 20

Settings come from IDP_* environment variables (see the README); 'idp COMMAND --help' tells more.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="idp",
        description="An OAuth 2.0 / OpenID Connect provider: serve it, and manage its users, "
        "clients and signing keys.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (serve, migrate, users, clients, resources, keys, sessions, audit, mail):
        module.add_parsers(commands)
    return parser


# Kids (RFC 7638 thumbprints) and client ids are base64url: one in 64 starts with "-".
_BASE64URL = re.compile(r"^-[A-Za-z0-9_-]+$")


def parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """argparse, except that an identifier starting with "-" is still taken for the positional
    argument a command names in ``identifier`` (declared ``nargs="?"``; ``required`` says
    whether it must be given). A command's ``check(args)`` may name a usage error."""
    args, extras = parser.parse_known_args(argv)
    name: str | None = getattr(args, "identifier", None)
    if name and len(extras) == 1 and _BASE64URL.match(extras[0]) and getattr(args, name) is None:
        setattr(args, name, extras[0])
    elif extras:
        parser.error(f"unrecognized arguments: {' '.join(extras)}")
    if name and getattr(args, "required", False) and getattr(args, name) is None:
        parser.error(f"the following arguments are required: {name}")
    check = getattr(args, "check", None)
    if check is not None and (problem := check(args)) is not None:
        parser.error(problem)
    return args


def run(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> int:
    args = parse(parser, argv)
    try:
        result: int = args.run(args)
        return result
    except (UserError, SettingsError, KeyLifecycleError, KeyDecryptionError) as exc:
        print(f"idp: {exc}", file=sys.stderr)
        return 1
    except ProblemError as problem:  # the service layer's refusals (idp.admin), one line
        print(f"idp: {printable(problem.detail)}", file=sys.stderr)
        return 1
    except (PermissionError, FileNotFoundError, IsADirectoryError) as exc:
        print(f"idp: {exc}", file=sys.stderr)
        return 1
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        print(f"idp: database error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def main(argv: Sequence[str] | None = None) -> int:
    return run(build_parser(), argv)


def revoke_key_main(argv: Sequence[str] | None = None) -> int:
    """``scripts/revoke-key``: the same code path as ``idp keys revoke``."""
    parser = argparse.ArgumentParser(
        prog="revoke-key",
        description="Revoke a compromised signing key in every idp process now.",
        allow_abbrev=False,
        add_help=False,
    )
    keys.add_revoke_arguments(parser)
    return run(parser, argv)
