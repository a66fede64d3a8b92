"""``idp clients enable`` and ``idp clients rotate-secret``: the same service functions as the
management API (idp.admin.clients), run by an operator on the host."""

from __future__ import annotations

import hashlib
import json

import asyncpg

from idp.db import clients
from idp.settings import Settings
from tests.factories import make_client
from tests.helpers import assert_one_line_error, idp


async def cli_events(pool: asyncpg.Pool) -> list[tuple[str, str | None]]:
    rows = await pool.fetch(
        "SELECT action, subject FROM audit_log WHERE actor LIKE 'cli:%' ORDER BY id"
    )
    return [(row["action"], row["subject"]) for row in rows]


async def test_clients_enable_accepts_a_disabled_client_again_and_audits_it(
    cli_env: dict[str, str], pool: asyncpg.Pool, settings: Settings
) -> None:
    client, _ = await make_client(pool, settings)
    disabled = await idp(cli_env, "clients", "disable", client.client_id)
    enabled = await idp(cli_env, "clients", "enable", client.client_id)

    assert disabled.returncode == 0, disabled.stderr
    assert enabled.returncode == 0, enabled.stderr
    stored = await clients.by_id(pool, client.client_id)
    assert stored is not None
    assert stored.disabled is False
    assert await cli_events(pool) == [
        ("client.disabled", client.client_id),
        ("client.enabled", client.client_id),
    ]


async def test_clients_rotate_secret_prints_a_new_secret_and_stores_only_its_digest(
    cli_env: dict[str, str], pool: asyncpg.Pool, settings: Settings
) -> None:
    client, old = await make_client(pool, settings)
    result = await idp(cli_env, "clients", "rotate-secret", client.client_id, "--json")

    assert result.returncode == 0, result.stderr
    new = json.loads(result.stdout)["client_secret"]
    assert new
    assert new != old
    stored = await clients.by_id(pool, client.client_id)
    assert stored is not None
    assert stored.secret_hash == hashlib.sha256(new.encode()).digest()
    assert await cli_events(pool) == [("client.secret_rotated", client.client_id)]


async def test_clients_rotate_secret_of_a_public_client_is_one_line_and_changes_nothing(
    cli_env: dict[str, str], pool: asyncpg.Pool, settings: Settings
) -> None:
    client, _ = await make_client(
        pool,
        settings,
        grant_types=("authorization_code",),
        redirect_uris=("https://app.example/cb",),
        public=True,
    )
    result = await idp(cli_env, "clients", "rotate-secret", client.client_id)

    assert "public" in assert_one_line_error(result)
    stored = await clients.by_id(pool, client.client_id)
    assert stored is not None
    assert stored.secret_hash is None
    assert await cli_events(pool) == []
