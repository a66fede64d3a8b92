"""Which client address idp believes (``idp.server``), through ``idp serve`` over real HTTP from
127.0.0.1: ``X-Forwarded-For`` counts only from a peer in ``IDP_TRUSTED_PROXIES`` (none by
default), and then its rightmost address that is not a trusted proxy wins. The address is what
a failed sign-in is throttled by (``ip:...``) and what the audit log records. uvicorn's own
``FORWARDED_ALLOW_IPS`` is set to ``*`` in these processes' environment: idp must ignore it."""

from __future__ import annotations

import asyncpg
import httpx

from idp.settings import Settings
from tests.factories import make_client, make_user
from tests.helpers import free_port
from tests.oauth.flow import Authorization, sign_in
from tests.processes import Processes, idp_environ

REDIRECT = "https://app.example/callback"
EMAIL = "alice@example.com"
WRONG = "not her password"


async def failed_sign_in_from(
    processes: Processes,
    pool: asyncpg.Pool,
    settings: Settings,
    migrated: str,
    kek: bytes,
    forwarded_for: list[str],
    **env: str,
) -> list[str]:
    """One wrong password per ``X-Forwarded-For`` value, sent from 127.0.0.1 to an
    ``idp serve`` started with ``env``; the addresses the audit log then holds, in order."""
    client, _ = await make_client(
        pool,
        settings,
        grant_types=("authorization_code",),
        redirect_uris=(REDIRECT,),
        scopes=("openid",),
    )
    await make_user(pool, EMAIL)
    port = free_port()
    environ = idp_environ(migrated, kek, f"http://127.0.0.1:{port}", **env)
    served = await processes.serve({**environ, "FORWARDED_ALLOW_IPS": "*"}, port)
    auth = Authorization(client.client_id, REDIRECT, scope="openid")
    for value in forwarded_for:
        headers = {"X-Forwarded-For": value}
        async with httpx.AsyncClient(base_url=served.url, headers=headers, timeout=10) as http:
            start = await http.get(auth.url())
            assert start.status_code == 303, start.text
            refused = await sign_in(http, start.headers["location"], EMAIL, WRONG)
            assert refused.status_code == 401, refused.text
    rows = await pool.fetch(
        "SELECT details->>'ip' AS ip FROM audit_log WHERE action = 'login.failed' ORDER BY id"
    )
    return [row["ip"] for row in rows]


async def throttled_addresses(pool: asyncpg.Pool) -> set[str]:
    keys = await pool.fetch("SELECT key FROM login_failures WHERE key LIKE 'ip:%'")
    return {row["key"].removeprefix("ip:") for row in keys}


async def test_x_forwarded_for_from_a_peer_not_trusted_is_ignored(
    processes: Processes, pool: asyncpg.Pool, settings: Settings, migrated: str, kek: bytes
) -> None:
    audited = await failed_sign_in_from(
        processes, pool, settings, migrated, kek, ["203.0.113.9", "198.51.100.7, 203.0.113.9"]
    )

    assert audited == ["127.0.0.1", "127.0.0.1"]
    assert await throttled_addresses(pool) == {"127.0.0.1"}


async def test_from_a_trusted_proxy_the_rightmost_address_not_trusted_wins(
    processes: Processes, pool: asyncpg.Pool, settings: Settings, migrated: str, kek: bytes
) -> None:
    audited = await failed_sign_in_from(
        processes,
        pool,
        settings,
        migrated,
        kek,
        # The client wrote "spoofed"; the proxy appended what it saw. A second trusted hop
        # (127.0.0.2, in the trusted network) is skipped.
        ["spoofed, 203.0.113.9", "spoofed, 198.51.100.7, 127.0.0.2"],
        IDP_TRUSTED_PROXIES="127.0.0.1, 127.0.0.0/8",
    )

    assert audited == ["203.0.113.9", "198.51.100.7"]
    assert await throttled_addresses(pool) == {"203.0.113.9", "198.51.100.7"}
