"""What the ``idp`` commands print of stored data cannot drive the operator's terminal: a visitor
who types escape sequences into the login page, or a name holding them, shows up as visible
escapes (``\\x1b``), never as raw control bytes."""

from __future__ import annotations

import json

import asyncpg

from idp.settings import Settings
from idp.terminal import printable
from tests.conftest import InstanceFactory
from tests.factories import Completed, make_client, make_user, run_command
from tests.helpers import IDP
from tests.oauth.flow import Authorization, sign_in

REDIRECT = "https://app.example/callback"
# Sets the terminal's title (OSC 0 ... BEL), then turns the text red (SGR 31), then reverses it.
HOSTILE = "\x1b]0;pwned\x07mallory\x1b[31m@example.com\u202emoc.live"
RAW = ("\x1b", "\x07", "\u202e")
VISIBLE = ("\\x1b]0;pwned\\x07mallory\\x1b[31m@example.com\\u202emoc.live",)


async def idp(env: dict[str, str], *args: str) -> Completed:
    result = await run_command([*IDP, *args], env)
    assert result.returncode == 0, result.stderr
    return result


def assert_escaped(stdout: str) -> None:
    for char in RAW:
        assert char not in stdout, f"raw {char!r} printed"
    for text in VISIBLE:
        assert text in stdout


async def test_audit_tail_escapes_a_failed_sign_in_email_holding_terminal_escapes(
    app_instance: InstanceFactory, pool: asyncpg.Pool, settings: Settings, cli_env: dict[str, str]
) -> None:
    client, _ = await make_client(
        pool,
        settings,
        grant_types=("authorization_code",),
        redirect_uris=(REDIRECT,),
        scopes=("openid",),
    )
    async with app_instance() as instance:
        start = await instance.client.get(Authorization(client.client_id, REDIRECT, "openid").url())
        failed = await sign_in(instance.client, start.headers["location"], HOSTILE, "a password")
    assert failed.status_code == 401
    failures = "SELECT subject FROM audit_log WHERE action = 'login.failed'"
    assert await pool.fetchval(failures) == HOSTILE  # lower case already

    text = await idp(cli_env, "audit", "tail")
    as_json = await idp(cli_env, "audit", "tail", "--json")

    assert_escaped(text.stdout)
    assert "login.failed" in text.stdout
    for char in RAW:
        assert char not in as_json.stdout
    events = json.loads(as_json.stdout)
    assert [event["subject"] for event in events if event["action"] == "login.failed"] == [HOSTILE]


async def test_users_list_escapes_names_and_emails_holding_terminal_escapes(
    pool: asyncpg.Pool, cli_env: dict[str, str]
) -> None:
    await make_user(pool, HOSTILE, name=HOSTILE)

    text = await idp(cli_env, "users", "list")
    as_json = await idp(cli_env, "users", "list", "--json")

    assert_escaped(text.stdout)
    assert text.stdout.count(VISIBLE[0]) == 2  # the email and the name
    for char in RAW:
        assert char not in as_json.stdout
    assert [(user["email"], user["name"]) for user in json.loads(as_json.stdout)] == [
        (HOSTILE, HOSTILE)
    ]


async def test_clients_list_escapes_a_name_holding_terminal_escapes(
    pool: asyncpg.Pool, settings: Settings, cli_env: dict[str, str]
) -> None:
    await make_client(pool, settings, name=HOSTILE)

    text = await idp(cli_env, "clients", "list")
    as_json = await idp(cli_env, "clients", "list", "--json")

    assert_escaped(text.stdout)
    for char in RAW:
        assert char not in as_json.stdout
    assert [client["name"] for client in json.loads(as_json.stdout)] == [HOSTILE]


async def test_sessions_revoke_escapes_the_email_it_names(
    pool: asyncpg.Pool, cli_env: dict[str, str]
) -> None:
    await make_user(pool, HOSTILE)

    result = await idp(cli_env, "sessions", "revoke", "--user", HOSTILE)

    assert_escaped(result.stdout)


def test_printable_escapes_c0_del_c1_separators_and_bidi_controls_and_keeps_other_text() -> None:
    assert printable("a\tb\nc\r\x00\x7f\x9b[2J\u2028\u2066x\u2069") == (
        "a\\x09b\\x0ac\\x0d\\x00\\x7f\\x9b[2J\\u2028\\u2066x\\u2069"
    )
    assert printable("Zoë 中文 O'Brien \\ \u00a0") == "Zoë 中文 O'Brien \\ \u00a0"
    assert printable(None) == "None"
