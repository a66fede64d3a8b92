"""``idp keys revoke KID --dry-run --json`` (and ``scripts/revoke-key``): the dry run's plan for
programs (the next signer and since when it is published, until when the revoked keys' tokens
stay valid, every transition), with nothing written; and a dry run announces nothing either: no
NOTIFY reaches a LISTEN on any of idp's channels, while a real revocation's does."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg
import pytest

from idp.clock import FrozenClock
from idp.db.registrations import RESOURCES_CHANNEL
from idp.keys.keyring import CHANNEL as KEYS_CHANNEL
from idp.keys.manager import KeyManager
from idp.mail.sender import CHANNEL as MAIL_CHANNEL
from idp.oauth.client_registry import CHANNEL as CLIENTS_CHANNEL
from idp.oauth.deny_list import CHANNEL as REVOCATIONS_CHANNEL
from idp.oauth.user_cache import CHANNEL as USERS_CHANNEL
from idp.settings import Settings
from tests.factories import run_command
from tests.helpers import IDP, key_states
from tests.keys.test_keys_plan import (
    REVOKE_KEY,
    ROTATED_AGO,
    History,
    created,
    dry_run_leaving_no_trace,
    whole_seconds_now,
)

# Every channel idp NOTIFYs (grep NOTIFY / pg_notify in idp/ and migrations/).
IDP_CHANNELS = (
    KEYS_CHANNEL,
    REVOCATIONS_CHANNEL,
    USERS_CHANNEL,
    CLIENTS_CHANNEL,
    MAIL_CHANNEL,
    RESOURCES_CHANNEL,
)
BARRIER = "test_barrier"


@pytest.fixture(params=["idp keys revoke", "scripts/revoke-key"])
def revoke_command(request: pytest.FixtureRequest) -> list[str]:
    """Both incident commands: their dry runs must be the same."""
    return [*IDP, "keys", "revoke"] if request.param == "idp keys revoke" else REVOKE_KEY


@pytest.fixture
async def history(pool: asyncpg.Pool, settings: Settings, clock: FrozenClock) -> History:
    """As in tests/keys/test_keys_plan.py: two ticks 30 days apart, the rotation ROTATED_AGO
    before the real now (the CLI reads the system clock)."""
    manager = KeyManager(pool, settings, clock)
    clock.set(whole_seconds_now() - settings.key_rotation_interval - ROTATED_AGO)
    first = await created(manager)
    clock.advance(settings.key_rotation_interval)
    second = await created(manager)
    return History(retiring=first["active"], active=first["pending"], pending=second["pending"])


def iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="seconds")


async def created_at(pool: asyncpg.Pool, kid: str) -> datetime:
    value: datetime = await pool.fetchval("SELECT created_at FROM signing_keys WHERE kid = $1", kid)
    return value


async def test_dry_run_json_of_the_active_key_names_the_promoted_signer_and_the_tokens_end(
    cli_env: dict[str, str],
    history: History,
    pool: asyncpg.Pool,
    settings: Settings,
    revoke_command: list[str],
) -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    plan = json.loads(
        await dry_run_leaving_no_trace(
            pool, [*revoke_command, "--dry-run", "--json", "--", history.active], cli_env
        )
    )
    after = datetime.now(UTC)

    assert plan["dry_run"] is True
    assert (plan["target"], plan["all"]) == (history.active, False)
    assert plan["next_signer"] == {
        "kid": history.pending,
        "change": "promoted",
        "published_since": iso(await created_at(pool, history.pending)),
    }
    [revoked] = plan["revoked"]
    assert (revoked["kid"], revoked["state"]) == (history.active, "active")
    tail = settings.longest_token_ttl + settings.clock_skew
    # The active key signs until the revocation: its tokens last one token lifetime from now.
    assert before + tail <= datetime.fromisoformat(revoked["tokens_valid_until"]) <= after + tail
    assert datetime.fromisoformat(plan["now"]) + tail == datetime.fromisoformat(
        revoked["tokens_valid_until"]
    )
    assert plan["transitions"] == [
        {"action": "revoke", "kid": history.active},
        {"action": "promote", "kid": history.pending},
        {"action": "createkey", "kid": None, "state": "pending"},
    ]


async def test_dry_run_json_of_the_retiring_key_keeps_the_signer_and_dates_its_last_token(
    cli_env: dict[str, str], history: History, pool: asyncpg.Pool, settings: Settings
) -> None:
    plan = json.loads(
        await dry_run_leaving_no_trace(
            pool, [*IDP, "keys", "revoke", "--dry-run", "--json", history.retiring], cli_env
        )
    )

    assert plan["next_signer"] == {
        "kid": history.active,
        "change": "unchanged",
        "published_since": iso(await created_at(pool, history.active)),
    }
    rotated = await pool.fetchval(
        "SELECT activated_at FROM signing_keys WHERE kid = $1", history.active
    )
    assert plan["revoked"] == [
        {
            "kid": history.retiring,
            "state": "retiring",
            "tokens_valid_until": iso(rotated + settings.longest_token_ttl + settings.clock_skew),
        }
    ]
    assert plan["transitions"] == [{"action": "revoke", "kid": history.retiring}]


async def test_dry_run_json_of_the_pending_key_has_no_tokens_to_outlive_it(
    cli_env: dict[str, str], history: History, pool: asyncpg.Pool
) -> None:
    plan = json.loads(
        await dry_run_leaving_no_trace(
            pool, [*IDP, "keys", "revoke", "--dry-run", "--json", history.pending], cli_env
        )
    )

    assert plan["next_signer"]["kid"] == history.active
    assert plan["revoked"] == [
        {"kid": history.pending, "state": "pending", "tokens_valid_until": None}
    ]
    assert plan["transitions"] == [
        {"action": "revoke", "kid": history.pending},
        {"action": "createkey", "kid": None, "state": "pending"},
    ]


async def test_dry_run_json_of_every_key_names_a_brand_new_signer(
    cli_env: dict[str, str], history: History, pool: asyncpg.Pool
) -> None:
    plan = json.loads(
        await dry_run_leaving_no_trace(
            pool, [*IDP, "keys", "revoke", "--all", "--dry-run", "--json"], cli_env
        )
    )

    assert (plan["target"], plan["all"]) == (None, True)
    assert plan["next_signer"] == {"kid": None, "change": "new", "published_since": None}
    assert {key["kid"]: key["state"] for key in plan["revoked"]} == {
        history.retiring: "retiring",
        history.active: "active",
        history.pending: "pending",
    }


async def test_json_without_dry_run_is_a_usage_error_and_revokes_nothing(
    cli_env: dict[str, str], history: History, pool: asyncpg.Pool
) -> None:
    states = await key_states(pool)
    result = await run_command(
        [*IDP, "keys", "revoke", "--json", "--reason", "x", "--yes", history.active], cli_env
    )

    assert result.returncode == 2
    assert "--json goes with --dry-run" in result.stderr
    assert await key_states(pool) == states


# -- no NOTIFY from a dry run --------------------------------------------------------------
class Listening:
    """A LISTEN on every channel idp uses, plus a barrier channel: PostgreSQL delivers
    notifications in the order their transactions committed, so once a barrier NOTIFY sent
    after a command has arrived, every NOTIFY that command sent has arrived before it."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self.heard: list[tuple[str, str]] = []
        self._barriers: dict[str, asyncio.Event] = {}

    def on_notify(self, connection: object, pid: int, channel: str, payload: object) -> None:
        if channel == BARRIER:
            self._barriers[str(payload)].set()
        else:
            self.heard.append((channel, str(payload)))

    async def settled(self) -> list[tuple[str, str]]:
        """Every notification committed so far (a NOTIFY from another session)."""
        token = secrets.token_hex(8)
        self._barriers[token] = asyncio.Event()
        await self.pool.execute("SELECT pg_notify($1, $2)", BARRIER, token)
        await asyncio.wait_for(self._barriers[token].wait(), timeout=10)
        heard, self.heard = self.heard, []
        return heard


@pytest.fixture
async def listening(pool: asyncpg.Pool) -> AsyncIterator[Listening]:
    async with pool.acquire() as connection:
        listening = Listening(pool)
        for channel in (*IDP_CHANNELS, BARRIER):
            await connection.add_listener(channel, listening.on_notify)
        try:
            yield listening
        finally:
            for channel in (*IDP_CHANNELS, BARRIER):
                await connection.remove_listener(channel, listening.on_notify)


@pytest.mark.parametrize("target", ["active", "all"])
async def test_a_dry_run_sends_no_notify_and_the_real_revocation_does(
    cli_env: dict[str, str],
    history: History,
    listening: Listening,
    revoke_command: list[str],
    target: str,
) -> None:
    """The dry run must not wake idp's processes (NOTIFY idp_keys reloads every keyring); the
    real revocation, listened to the same way, must, or this test could not fail."""
    which = ["--all"] if target == "all" else ["--", history.active]
    for extra in ([], ["--json"]):
        result = await run_command([*revoke_command, "--dry-run", *extra, *which], cli_env)
        assert result.returncode == 0, result.stderr
        assert await listening.settled() == []

    options = ["--reason", "test", "--yes"]
    result = await run_command([*revoke_command, *options, *which], cli_env)
    assert result.returncode == 0, result.stderr
    assert (KEYS_CHANNEL, "changed") in await listening.settled()
