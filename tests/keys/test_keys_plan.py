"""``idp keys plan`` and ``idp keys revoke --dry-run`` as an operator runs them: the plan is
checked against what the scheduler's tick really does when a frozen clock reaches each planned
instant, and a dry run against a dump of every table."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from idp.clock import FrozenClock
from idp.keys.lifecycle import PLANNED_KID_PREFIX, CreateKey
from idp.keys.manager import KeyManager
from idp.settings import Settings
from tests.factories import run_command
from tests.helpers import IDP, idp, key_states

ROOT = Path(__file__).resolve().parent.parent.parent
REVOKE_KEY = ["bash", str(ROOT / "scripts" / "revoke-key")]
ROTATED_AGO = timedelta(minutes=10)


@dataclass(frozen=True)
class History:
    """Keys made by the scheduler's tick: ``retired_soon`` signed until ``ROTATED_AGO``,
    ``active`` signs since, ``pending`` is the next key."""

    retiring: str
    active: str
    pending: str


def whole_seconds_now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


async def created(manager: KeyManager) -> dict[str, str]:
    """state → kid of the keys one tick creates."""
    return {
        item.transition.state: item.kid
        for item in await manager.tick()
        if isinstance(item.transition, CreateKey)
    }


@pytest.fixture
async def history(pool: asyncpg.Pool, settings: Settings, clock: FrozenClock) -> History:
    """Two ticks 30 days apart, the rotation ``ROTATED_AGO`` before the real now (the CLI reads
    the system clock); whole seconds, as the CLI prints them."""
    manager = KeyManager(pool, settings, clock)
    clock.set(whole_seconds_now() - settings.key_rotation_interval - ROTATED_AGO)
    first = await created(manager)
    clock.advance(settings.key_rotation_interval)
    second = await created(manager)
    return History(retiring=first["active"], active=first["pending"], pending=second["pending"])


async def plan_json(env: dict[str, str], *args: str) -> dict[str, Any]:
    result = await idp(env, "keys", "plan", "--json", *args)
    assert result.returncode == 0, result.stderr
    parsed: dict[str, Any] = json.loads(result.stdout)
    return parsed


async def test_keys_plan_predicts_every_transition_the_scheduler_then_makes(
    cli_env: dict[str, str],
    history: History,
    pool: asyncpg.Pool,
    settings: Settings,
    clock: FrozenClock,
) -> None:
    plan = await plan_json(cli_env)
    changes = plan["changes"]
    assert isinstance(changes, list)
    # The retiring key leaves, the pending one signs 30 days after the last rotation (creating a
    # next key), the key it relieves leaves in turn.
    assert [[t["action"] for t in change["transitions"]] for change in changes] == [
        ["retire"],
        ["demote", "promote", "createkey"],
        ["retire"],
    ]
    manager = KeyManager(pool, settings, clock)
    real_kid: dict[str, str] = {}
    for change in changes:
        at = datetime.fromisoformat(change["at"])
        clock.set(at - timedelta(seconds=1))
        assert await manager.tick() == [], f"tick made a change before {at}"
        clock.set(at)
        applied = await manager.tick()
        for item, planned in zip(applied, change["transitions"], strict=True):
            if planned["kid"].startswith(PLANNED_KID_PREFIX):
                real_kid[planned["kid"]] = item.kid
            assert (type(item.transition).__name__.lower(), item.kid) == (
                planned["action"],
                real_kid.get(planned["kid"], planned["kid"]),
            )
    first, rotation, last = changes
    assert first["transitions"][0]["kid"] == history.retiring
    assert [t["kid"] for t in rotation["transitions"][:2]] == [history.active, history.pending]
    assert last["transitions"][0]["kid"] == history.active
    # IDP_JWKS_MAX_AGE (5 minutes) before every change: each is more than 5 minutes away from the
    # one before it.
    assert [change["jwks_max_age_before"] for change in changes] == [300, 300, 300]
    assert await key_states(pool) == {
        history.retiring: "retired",
        history.active: "retired",
        history.pending: "active",
        real_kid[rotation["transitions"][2]["kid"]]: "pending",
    }


async def test_keys_plan_table_shows_utc_times_and_how_far_away_they_are(
    cli_env: dict[str, str], history: History, settings: Settings
) -> None:
    plan = await plan_json(cli_env)
    result = await idp(cli_env, "keys", "plan")

    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    rotation = next(c for c in plan["changes"] if len(c["transitions"]) == 3)
    line = next(line for line in result.stdout.splitlines() if "starts signing" in line)
    assert line.startswith(rotation["at"])
    assert "in 29d 23h" in line  # 30 days after a rotation 10 minutes ago
    assert history.pending in line
    assert f"{history.retiring} leaves the JWKS" in result.stdout


@pytest.mark.parametrize(
    ("cache", "warned"),
    # The retirement window: the longest token TTL (1 h) + clock skew + key check interval.
    [("2h", True), ("63m", True), ("62m", False), ("10m", False)],
)
async def test_keys_plan_warns_of_a_verifier_cache_longer_than_the_retirement_window(
    cli_env: dict[str, str], history: History, cache: str, warned: bool
) -> None:
    table = await idp(cli_env, "keys", "plan", "--verifier-cache", cache)
    plan = await plan_json(cli_env, "--verifier-cache", cache)

    assert table.returncode == 0  # advice, not failure
    assert ("idp: warning:" in table.stderr) is warned
    assert bool(plan["warnings"]) is warned
    # Whatever its length, the revoked key's exposure is named.
    assert "trusts the revoked key for up to" in table.stdout
    assert any("revoked key" in note for note in plan["notes"])


async def test_keys_plan_refuses_a_verifier_cache_that_is_not_a_duration(
    cli_env: dict[str, str], history: History
) -> None:
    result = await idp(cli_env, "keys", "plan", "--verifier-cache", "soon")

    assert result.returncode == 2
    assert "is not a duration" in result.stderr


# -- revoke --dry-run -----------------------------------------------------------------------
async def database_dump(pool: asyncpg.Pool) -> dict[str, list[str]]:
    """Every row of every table, as text."""
    tables = [
        row["tablename"]
        for row in await pool.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1"
        )
    ]
    return {
        table: [
            row[0] for row in await pool.fetch(f'SELECT t::text FROM "{table}" AS t ORDER BY 1')
        ]
        for table in tables
    }


@pytest.fixture(params=["idp keys revoke", "scripts/revoke-key"])
def revoke_command(request: pytest.FixtureRequest) -> list[str]:
    """Both incident commands: their dry runs must be the same."""
    return [*IDP, "keys", "revoke"] if request.param == "idp keys revoke" else REVOKE_KEY


async def dry_run_leaving_no_trace(
    pool: asyncpg.Pool, command: list[str], env: dict[str, str]
) -> str:
    """The command's stdout, once proven to have changed no row."""
    before = await database_dump(pool)
    result = await run_command(command, env)
    assert result.returncode == 0, result.stderr
    assert await database_dump(pool) == before
    return result.stdout


async def test_revoke_dry_run_of_the_active_key_changes_nothing_and_names_the_pending_key(
    cli_env: dict[str, str], history: History, pool: asyncpg.Pool, revoke_command: list[str]
) -> None:
    stdout = await dry_run_leaving_no_trace(
        pool, [*revoke_command, "--dry-run", "--", history.active], cli_env
    )

    lines = stdout.splitlines()
    assert lines[0] == "dry run: nothing changed"
    created_at = await pool.fetchval(
        "SELECT created_at FROM signing_keys WHERE kid = $1", history.pending
    )
    assert lines[1] == (
        f"next signer: {history.pending}, published since "
        f"{created_at.astimezone(UTC).isoformat(timespec='seconds')}"
    )
    assert lines[2].startswith(f"tokens signed with {history.active}: valid until ")


async def test_revoke_dry_run_of_the_pending_key_says_no_token_was_signed_with_it(
    cli_env: dict[str, str], history: History, pool: asyncpg.Pool
) -> None:
    stdout = await dry_run_leaving_no_trace(
        pool, [*IDP, "keys", "revoke", "--dry-run", "--", history.pending], cli_env
    )

    assert f"next signer: {history.active} (unchanged)" in stdout
    assert f"tokens signed with {history.pending}: none signed yet" in stdout


async def test_revoke_dry_run_of_the_retiring_key_gives_its_tokens_last_expiry(
    cli_env: dict[str, str], history: History, pool: asyncpg.Pool, settings: Settings
) -> None:
    stdout = await dry_run_leaving_no_trace(
        pool, [*IDP, "keys", "revoke", "--dry-run", "--", history.retiring], cli_env
    )

    rotated = await pool.fetchval(
        "SELECT activated_at FROM signing_keys WHERE kid = $1", history.active
    )
    until = rotated + settings.longest_token_ttl + settings.clock_skew
    assert (
        f"tokens signed with {history.retiring}: valid until "
        f"{until.astimezone(UTC).isoformat(timespec='seconds')}"
    ) in stdout


async def test_revoke_dry_run_of_every_key_names_a_brand_new_signer(
    cli_env: dict[str, str], history: History, pool: asyncpg.Pool
) -> None:
    stdout = await dry_run_leaving_no_trace(
        pool, [*IDP, "keys", "revoke", "--all", "--dry-run"], cli_env
    )

    assert "next signer: a brand-new key" in stdout
    assert await key_states(pool) == {
        history.retiring: "retiring",
        history.active: "active",
        history.pending: "pending",
    }
