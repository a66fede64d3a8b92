"""``idp clients initial-token`` and ``idp resources`` as an operator runs them: subprocesses on
the test database, checked against the rows and audit events they leave behind."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import asyncpg

from idp.hashing import digest
from tests.helpers import assert_one_line_error, idp

MCP = "https://mcp.example/mcp"


async def test_initial_token_prints_a_token_stored_only_by_its_digest(
    cli_env: dict[str, str], pool: asyncpg.Pool
) -> None:
    before = datetime.now(UTC)
    result = await idp(
        cli_env, "clients", "initial-token", "--expires", "2h", "--uses", "3", "--json"
    )
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    row = await pool.fetchrow(
        "SELECT id, token_hash, expires_at, uses_left, created_by FROM initial_access_tokens"
    )
    assert row is not None
    assert printed["id"] == str(row["id"])  # what DELETE /admin/v1/initial-tokens/{id} takes
    assert row["token_hash"] == digest(printed["token"])
    assert printed["token"].encode() not in row["token_hash"]
    assert row["uses_left"] == 3
    assert (
        before + timedelta(hours=2) <= row["expires_at"] <= datetime.now(UTC) + timedelta(hours=2)
    )
    assert row["created_by"].startswith("cli:")
    action = await pool.fetchval("SELECT action FROM audit_log WHERE actor LIKE 'cli:%'")
    assert action == "initial_token.issued"


async def test_initial_token_defaults_to_a_day_and_any_number_of_uses(
    cli_env: dict[str, str], pool: asyncpg.Pool
) -> None:
    result = await idp(cli_env, "clients", "initial-token")
    assert result.returncode == 0, result.stderr
    assert "shown only now" in result.stdout
    row = await pool.fetchrow("SELECT created_at, expires_at, uses_left FROM initial_access_tokens")
    assert row is not None
    assert row["uses_left"] is None
    assert row["expires_at"] - row["created_at"] == timedelta(days=1)


async def test_initial_token_refuses_zero_uses_in_one_line(
    cli_env: dict[str, str], pool: asyncpg.Pool
) -> None:
    line = assert_one_line_error(await idp(cli_env, "clients", "initial-token", "--uses", "0"))
    assert "at least 1" in line
    assert await pool.fetchval("SELECT count(*) FROM initial_access_tokens") == 0


async def test_resources_are_added_listed_and_removed(
    cli_env: dict[str, str], pool: asyncpg.Pool
) -> None:
    env = {**cli_env, "IDP_RESOURCES": "https://configured.example/api"}
    added = await idp(env, "resources", "add", MCP)
    again = await idp(env, "resources", "add", MCP)
    listed = await idp(env, "resources", "list", "--json")
    removed = await idp(env, "resources", "remove", MCP)
    missing = await idp(env, "resources", "remove", MCP)
    fragment = await idp(env, "resources", "add", "https://mcp.example/#x")
    assert added.returncode == 0, added.stderr
    assert "registered already" in assert_one_line_error(again)
    assert [(row["url"], row["source"]) for row in json.loads(listed.stdout)] == [
        ("https://configured.example/api", "IDP_RESOURCES"),
        (MCP, "database"),
    ]
    assert removed.returncode == 0, removed.stderr
    assert "not a registered resource" in assert_one_line_error(missing)
    assert "RFC 8707" in assert_one_line_error(fragment)
    assert await pool.fetchval("SELECT count(*) FROM resources") == 0
    actions = await pool.fetch("SELECT action, subject FROM audit_log ORDER BY id")
    assert [(row["action"], row["subject"]) for row in actions] == [
        ("resource.added", MCP),
        ("resource.removed", MCP),
    ]
