"""``idp clients add ... --require-mfa``: stored on the client, shown by ``clients list --json``,
off unless asked for."""

from __future__ import annotations

import json

import asyncpg

from tests.helpers import idp

ADD = ("clients", "add", "payroll", "--grant-type", "authorization_code")
REDIRECT = ("--redirect-uri", "https://payroll.example/callback")


async def test_clients_add_require_mfa_is_stored_and_listed(
    cli_env: dict[str, str], pool: asyncpg.Pool
) -> None:
    added = await idp(cli_env, *ADD, *REDIRECT, "--require-mfa", "--json")
    assert added.returncode == 0, added.stderr
    printed = json.loads(added.stdout)
    assert printed["require_mfa"] is True
    plain = await idp(cli_env, *ADD, *REDIRECT, "--json")
    assert plain.returncode == 0, plain.stderr
    assert json.loads(plain.stdout)["require_mfa"] is False
    rows = await pool.fetch("SELECT client_id, require_mfa FROM clients")
    assert {row["client_id"]: row["require_mfa"] for row in rows} == {
        printed["client_id"]: True,
        json.loads(plain.stdout)["client_id"]: False,
    }
    listed = await idp(cli_env, "clients", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    shown = {row["client_id"]: row["require_mfa"] for row in json.loads(listed.stdout)}
    assert shown == {printed["client_id"]: True, json.loads(plain.stdout)["client_id"]: False}
