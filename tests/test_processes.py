"""Two ``idp serve`` processes on one database, as behind a load balancer (real processes, real
ports, real HTTP): a user signs in through one and refreshes through the other, the rotation of
the refresh token being one state for both; a key revoked through the CLI leaves both JWKS within
a second."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
import pytest

from tests.factories import Completed, assert_oauth_error, kids, run_command, verify
from tests.helpers import IDP, free_port, kid_of
from tests.oauth.flow import Authorization, authorize_code, exchange_code
from tests.processes import ROOT, Processes, idp_environ

REDIRECT = "https://app.example/callback"
EMAIL = "alice@example.com"
PASSWORD = "correct horse battery"
NOTIFY_DEADLINE = 1.0


async def idp(env: dict[str, str], *arguments: str, stdin: str | None = None) -> Completed:
    done = await run_command(
        [*IDP, *arguments], env, stdin=None if stdin is None else stdin.encode(), cwd=ROOT
    )
    assert done.returncode == 0, f"idp {' '.join(arguments)}: {done.stderr}"
    return done


async def list_keys(env: dict[str, str]) -> list[dict[str, Any]]:
    keys: list[dict[str, Any]] = json.loads((await idp(env, "keys", "list", "--json")).stdout)
    return keys


def two_ports() -> tuple[int, int]:
    first = free_port()
    while (second := free_port()) == first:
        pass
    return first, second


async def refresh(
    http: httpx.AsyncClient, client: dict[str, Any], refresh_token: str
) -> httpx.Response:
    return await http.post(
        "/token",
        auth=(client["client_id"], client["client_secret"]),
        data={"grant_type": "refresh_token", "refresh_token": refresh_token},
    )


def tokens_of(response: httpx.Response) -> dict[str, str]:
    assert response.status_code == 200, response.text
    body: dict[str, str] = response.json()
    return body


async def unpublished_after(http: httpx.AsyncClient, kid: str, since: float) -> float:
    """Seconds from ``since`` until ``kid`` is gone from the JWKS ``http`` serves."""
    while True:
        response = await http.get("/jwks.json")
        assert response.status_code == 200, response.text
        elapsed = time.monotonic() - since
        if kid not in kids(response.content):
            return elapsed
        assert elapsed < NOTIFY_DEADLINE, f"{kid} still in {http.base_url}/jwks.json"
        await asyncio.sleep(0.01)


@pytest.mark.usefixtures("pool")  # for its TRUNCATE: the processes start on an empty database
async def test_two_serve_processes_share_refresh_rotation_and_a_key_revoked_leaves_both_jwks(
    processes: Processes, migrated: str, kek: bytes
) -> None:
    port_a, port_b = two_ports()
    issuer = f"http://127.0.0.1:{port_a}"  # one issuer: both stand behind one load balancer
    env = idp_environ(migrated, kek, issuer)
    # Both start on an empty database at once: one creates the keys, the other finds them.
    a, b = await asyncio.gather(processes.serve(env, port_a), processes.serve(env, port_b))
    added, created = await asyncio.gather(
        idp(env, "users", "add", EMAIL, "--name", "Alice", "--password-stdin", stdin=PASSWORD),
        idp(
            env,
            *("clients", "add", "web", "--redirect-uri", REDIRECT, "--first-party", "--json"),
            *("--grant-type", "authorization_code", "--grant-type", "refresh_token"),
        ),
    )
    user_id = added.stdout.strip()
    client = json.loads(created.stdout)
    [active] = [key["kid"] for key in await list_keys(env) if key["state"] == "active"]

    async with (
        httpx.AsyncClient(base_url=a.url, timeout=10) as http_a,
        httpx.AsyncClient(base_url=b.url, timeout=10) as http_b,
    ):
        # Sign in and exchange the code through A.
        auth = Authorization(client["client_id"], REDIRECT, scope="openid email")
        code = await authorize_code(http_a, auth, EMAIL, PASSWORD)
        exchanged = await exchange_code(
            http_a, client["client_id"], client["client_secret"], code, auth
        )
        first = tokens_of(exchanged)

        # Refresh through B; its access token verifies against A's JWKS.
        second = tokens_of(await refresh(http_b, client, first["refresh_token"]))
        jwks_a = (await http_a.get("/jwks.json")).content
        claims = verify(second["access_token"], jwks_a, ["RS256"])
        assert claims["iss"] == issuer
        assert claims["sub"] == user_id
        assert claims["client_id"] == client["client_id"]
        assert kid_of(second["access_token"]) == active
        assert second["refresh_token"] != first["refresh_token"]

        # Refresh again through A with what B issued: the rotation is one state for both.
        third = tokens_of(await refresh(http_a, client, second["refresh_token"]))

        # Revoke the active key through the CLI: both JWKS drop it within a second of its exit.
        for http in (http_a, http_b):
            assert active in kids((await http.get("/jwks.json")).content)
        await idp(env, "keys", "revoke", active, "--reason", "leaked in a test", "--yes")
        exited = time.monotonic()
        delays = await asyncio.gather(
            unpublished_after(http_a, active, exited), unpublished_after(http_b, active, exited)
        )
        assert max(delays) < NOTIFY_DEADLINE, delays
        states = {key["kid"]: key["state"] for key in await list_keys(env)}
        assert states[active] == "revoked"
        [promoted] = [kid for kid, state in states.items() if state == "active"]
        published_a = kids((await http_a.get("/jwks.json")).content)
        published_b = kids((await http_b.get("/jwks.json")).content)
        assert published_a == published_b
        assert promoted in published_a
        assert active not in published_a

        # B signs with the promoted key at once, and A's JWKS verifies it.
        fourth = tokens_of(await refresh(http_b, client, third["refresh_token"]))
        assert kid_of(fourth["access_token"]) == promoted
        jwks_a = (await http_a.get("/jwks.json")).content
        assert verify(fourth["access_token"], jwks_a, ["RS256"])["sub"] == user_id

        # A token B consumed, presented to A, is a reuse: the family dies, for B as well.
        assert_oauth_error(
            await refresh(http_a, client, third["refresh_token"]), 400, "invalid_grant"
        )
        assert_oauth_error(
            await refresh(http_b, client, fourth["refresh_token"]), 400, "invalid_grant"
        )
    for served in (a, b):
        assert served.running, served.describe()
