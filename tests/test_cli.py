"""The ``idp`` command and ``scripts/revoke-key`` as an operator runs them: subprocesses on the
test database, checked against the rows they leave behind."""

from __future__ import annotations

import argparse
import base64
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from joserfc import jws

from idp.cli import build_parser
from idp.clock import FrozenClock, SystemClock
from idp.keys.crypto import b64url, decrypt_private_key, encrypt_private_key
from idp.keys.lifecycle import CreateKey
from idp.keys.manager import KeyManager
from idp.settings import Settings
from tests.conftest import InstanceFactory
from tests.factories import (
    Completed,
    environ_without_idp,
    kids,
    make_client,
    run_command,
    verify,
)
from tests.helpers import IDP, assert_one_line_error, key_states

ROOT = Path(__file__).resolve().parent.parent
REVOKE_KEY = ["bash", str(ROOT / "scripts" / "revoke-key")]
CONFIRMATION_PROMPT = "Type 'yes' to confirm"
# A kid is a base64url thumbprint and starts with "-" one time in 64, which argparse would take
# for an option: the tests pass kids after "--" (see test_kid_starting_with_a_dash_...).


@dataclass(frozen=True)
class Keys:
    """The keys a fresh database gets from its first tick."""

    active: str
    pending: str


async def run(
    command: Sequence[str], env: dict[str, str], *, stdin: bytes | None = None
) -> Completed:
    return await run_command(command, env, stdin=stdin)


@pytest.fixture
def cli_env(settings: Settings, kek: bytes, tmp_path: Path) -> dict[str, str]:
    """The environment of an operator's shell pointed at the test database, with its KEK."""
    assert settings.database_url is not None
    env = environ_without_idp()
    return env | {
        "IDP_DATABASE_URL": settings.database_url,
        "IDP_KEY_ENCRYPTION_KEY": b64url(kek),
        "IDP_DATA_DIR": str(tmp_path / "unused-data-dir"),
    }


@pytest.fixture
async def keys(pool: asyncpg.Pool, settings: Settings, clock: FrozenClock) -> Keys:
    applied = await KeyManager(pool, settings, clock).tick()
    by_state = {
        item.transition.state: item.kid
        for item in applied
        if isinstance(item.transition, CreateKey)
    }
    return Keys(active=by_state["active"], pending=by_state["pending"])


@pytest.fixture(params=["idp keys revoke", "scripts/revoke-key"])
def revoke_command(request: pytest.FixtureRequest) -> list[str]:
    """Both incident commands: they must behave the same."""
    if request.param == "idp keys revoke":
        return [*IDP, "keys", "revoke"]
    return REVOKE_KEY


async def cli_audit_events(pool: asyncpg.Pool) -> list[tuple[str, str, str | None]]:
    """(action, subject, reason) of every audit event recorded by a CLI actor, in order."""
    rows = await pool.fetch(
        "SELECT actor, action, subject, reason FROM audit_log WHERE actor LIKE 'cli:%' ORDER BY id"
    )
    return [(row["action"], row["subject"], row["reason"]) for row in rows]


def b64url_int(text: str) -> int:
    return int.from_bytes(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)), "big")


# -- keys list / rotate / export ------------------------------------------------------------
async def test_keys_list_json_shows_every_key_with_kid_alg_and_state(
    cli_env: dict[str, str], keys: Keys
) -> None:
    result = await run([*IDP, "keys", "list", "--json"], cli_env)

    assert result.returncode == 0, result.stderr
    listed = json.loads(result.stdout)
    assert sorted((key["kid"], key["alg"], key["state"]) for key in listed) == sorted(
        [(keys.active, "RS256", "active"), (keys.pending, "RS256", "pending")]
    )


async def test_keys_rotate_activates_pending_key_and_keeps_previous_as_retiring(
    cli_env: dict[str, str], keys: Keys, pool: asyncpg.Pool
) -> None:
    result = await run([*IDP, "keys", "rotate"], cli_env)

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [keys.pending]
    states = await key_states(pool)
    assert states.pop(keys.pending) == "active"
    assert states.pop(keys.active) == "retiring"
    assert list(states.values()) == ["pending"]  # a next key is published at once
    (successor,) = states
    assert await cli_audit_events(pool) == [
        ("key.retiring", keys.active, "manual rotation"),
        ("key.activated", keys.pending, "manual rotation"),
        ("key.created", successor, "next key"),
    ]


async def test_keys_rotate_again_within_a_minute_is_refused_with_one_line(
    cli_env: dict[str, str], keys: Keys, pool: asyncpg.Pool
) -> None:
    first = await run([*IDP, "keys", "rotate"], cli_env)
    assert first.returncode == 0, first.stderr
    states_after_first = await key_states(pool)

    second = await run([*IDP, "keys", "rotate"], cli_env)

    line = assert_one_line_error(second)
    assert "less than a minute ago" in line
    assert second.stdout == ""
    assert await key_states(pool) == states_after_first


async def keys_made_now(pool: asyncpg.Pool, settings: Settings) -> Keys:
    """The first keys, made at this very moment, as ``idp serve`` makes them at start-up."""
    applied = await KeyManager(pool, settings, SystemClock()).tick(actor="startup")
    made = {i.transition.state: i.kid for i in applied if isinstance(i.transition, CreateKey)}
    return Keys(active=made["active"], pending=made["pending"])


async def test_keys_rotate_right_after_start_up_is_refused_with_one_line_naming_force(
    cli_env: dict[str, str], pool: asyncpg.Pool, settings: Settings
) -> None:
    await keys_made_now(pool, settings)
    before = await key_states(pool)

    result = await run([*IDP, "keys", "rotate"], cli_env)

    line = assert_one_line_error(result)
    assert "rotate again in" in line
    assert "--force" in line
    assert result.stdout == ""
    assert await key_states(pool) == before


async def test_keys_rotate_force_right_after_start_up_rotates_with_one_warning_and_audits_it(
    cli_env: dict[str, str],
    pool: asyncpg.Pool,
    settings: Settings,
    clock: FrozenClock,
    app_instance: InstanceFactory,
) -> None:
    keys = await keys_made_now(pool, settings)

    result = await run([*IDP, "keys", "rotate", "--force"], cli_env)

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [keys.pending]
    (warning,) = result.stderr.splitlines()
    assert warning.startswith("idp: warning: ")
    assert "unknown kid" in warning
    assert "10 times a minute" in warning
    reasons = {action: reason for action, _, reason in await cli_audit_events(pool)}
    assert reasons["key.retiring"] == reasons["key.activated"] == "manual rotation, forced"
    # What a relying service sees next: a token signed by the new key, both keys published.
    clock.set(datetime.now(UTC))
    client, secret = await make_client(pool, settings)
    async with app_instance() as instance:
        response = await instance.client.post(
            "/token", auth=(client.client_id, secret), data={"grant_type": "client_credentials"}
        )
        jwks = (await instance.client.get("/jwks.json")).content
    assert response.status_code == 200, response.text
    token = response.json()["access_token"]
    assert jws.extract_compact(token.encode()).protected["kid"] == keys.pending
    assert {keys.active, keys.pending} <= kids(jwks)
    assert verify(token, jwks, ["RS256"])["client_id"] == client.client_id


async def test_keys_rotate_force_when_nothing_needs_forcing_rotates_without_warning(
    cli_env: dict[str, str], keys: Keys, pool: asyncpg.Pool
) -> None:
    result = await run([*IDP, "keys", "rotate", "--force"], cli_env)

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [keys.pending]
    assert result.stderr == ""
    assert ("key.activated", keys.pending, "manual rotation") in await cli_audit_events(pool)


async def test_keys_export_pem_is_the_public_key_of_the_published_jwk(
    cli_env: dict[str, str], keys: Keys, pool: asyncpg.Pool
) -> None:
    result = await run([*IDP, "keys", "export", "--pem", "--", keys.active], cli_env)

    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("-----BEGIN PUBLIC KEY-----\n")
    public_key = load_pem_public_key(result.stdout.encode())
    assert isinstance(public_key, rsa.RSAPublicKey)
    jwk = json.loads(
        await pool.fetchval("SELECT public_jwk FROM signing_keys WHERE kid = $1", keys.active)
    )
    numbers = public_key.public_numbers()
    assert numbers.n == b64url_int(jwk["n"])
    assert numbers.e == b64url_int(jwk["e"])


async def test_keys_export_unknown_kid_exits_1_with_one_line(
    cli_env: dict[str, str], keys: Keys
) -> None:
    result = await run([*IDP, "keys", "export", "no-such-kid", "--pem"], cli_env)

    assert "no-such-kid" in assert_one_line_error(result)
    assert result.stdout == ""


# -- keys revoke / scripts/revoke-key -------------------------------------------------------
async def test_revoke_unknown_kid_exits_1_with_one_line(
    revoke_command: list[str], cli_env: dict[str, str], keys: Keys, pool: asyncpg.Pool
) -> None:
    before = await key_states(pool)

    result = await run([*revoke_command, "no-such-kid", "--reason", "test", "--yes"], cli_env)

    assert "no-such-kid" in assert_one_line_error(result)
    assert await key_states(pool) == before


async def test_revoke_without_yes_asks_and_a_no_revokes_nothing(
    revoke_command: list[str], cli_env: dict[str, str], keys: Keys, pool: asyncpg.Pool
) -> None:
    before = await key_states(pool)

    result = await run(
        [*revoke_command, "--reason", "test", "--", keys.pending], cli_env, stdin=b"no\n"
    )

    assert result.returncode == 1, result.stderr
    assert result.stderr.startswith(f"Revoke signing key {keys.pending}?")
    assert CONFIRMATION_PROMPT in result.stderr  # the prompt goes to stderr, not stdout
    assert "nothing revoked" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    assert await key_states(pool) == before
    assert await cli_audit_events(pool) == []


async def test_revoke_without_yes_and_a_yes_revokes(
    revoke_command: list[str], cli_env: dict[str, str], keys: Keys, pool: asyncpg.Pool
) -> None:
    result = await run(
        [*revoke_command, "--reason", "laptop stolen", "--", keys.pending], cli_env, stdin=b"yes\n"
    )

    assert result.returncode == 0, result.stderr
    assert CONFIRMATION_PROMPT in result.stderr
    states = await key_states(pool)
    assert states.pop(keys.pending) == "revoked"
    assert states.pop(keys.active) == "active"
    assert list(states.values()) == ["pending"]  # the revoked next key is replaced


async def test_revoke_with_yes_revokes_without_asking(
    revoke_command: list[str], cli_env: dict[str, str], keys: Keys, pool: asyncpg.Pool
) -> None:
    # stdin is /dev/null: had it asked, the empty answer would have refused.
    result = await run(
        [*revoke_command, "--reason", "laptop stolen", "--yes", "--", keys.pending], cli_env
    )

    assert result.returncode == 0, result.stderr
    assert CONFIRMATION_PROMPT not in result.stderr
    assert (await key_states(pool))[keys.pending] == "revoked"


async def test_revoking_the_active_key_activates_the_pending_key_and_publishes_a_new_one(
    revoke_command: list[str], cli_env: dict[str, str], keys: Keys, pool: asyncpg.Pool
) -> None:
    result = await run(
        [*revoke_command, "--reason", "key leaked", "--yes", "--", keys.active], cli_env
    )

    assert result.returncode == 0, result.stderr
    states = await key_states(pool)
    assert states.pop(keys.active) == "revoked"
    assert states.pop(keys.pending) == "active"
    assert list(states.values()) == ["pending"]
    (successor,) = states
    row = await pool.fetchrow(
        "SELECT revoked_reason, private_key_enc FROM signing_keys WHERE kid = $1", keys.active
    )
    assert row is not None
    assert row["revoked_reason"] == "key leaked"
    assert row["private_key_enc"] is None  # the private half is erased
    assert await cli_audit_events(pool) == [
        ("key.revoked", keys.active, "key leaked"),
        ("key.activated", keys.pending, "active key revoked"),
        ("key.created", successor, "next key"),
    ]


async def test_every_cli_key_event_is_audited_with_a_cli_actor(
    revoke_command: list[str], cli_env: dict[str, str], keys: Keys, pool: asyncpg.Pool
) -> None:
    result = await run(
        [*revoke_command, "--reason", "audit me", "--yes", "--", keys.pending], cli_env
    )

    assert result.returncode == 0, result.stderr
    rows = await pool.fetch(
        "SELECT actor, action, subject, reason FROM audit_log WHERE actor <> 'scheduler' "
        "ORDER BY id"
    )
    assert [row["actor"][:4] for row in rows] == ["cli:", "cli:"]
    assert (rows[0]["action"], rows[0]["subject"], rows[0]["reason"]) == (
        "key.revoked",
        keys.pending,
        "audit me",
    )
    assert rows[1]["action"] == "key.created"


async def test_kid_starting_with_a_dash_is_revoked_with_the_documented_arguments(
    revoke_command: list[str], cli_env: dict[str, str], keys: Keys, pool: asyncpg.Pool, kek: bytes
) -> None:
    # One thumbprint in 64 starts with "-": give the pending key such a kid, re-sealing its
    # private half for the new kid (the kid is AES-GCM associated data).
    dashed = "-" + keys.pending[1:]
    sealed = await pool.fetchval(
        "SELECT private_key_enc FROM signing_keys WHERE kid = $1", keys.pending
    )
    resealed = encrypt_private_key(kek, dashed, decrypt_private_key(kek, keys.pending, sealed))
    await pool.execute(
        "UPDATE signing_keys SET kid = $2, private_key_enc = $3 WHERE kid = $1",
        keys.pending,
        dashed,
        resealed,
    )

    result = await run([*revoke_command, dashed, "--reason", "key leaked", "--yes"], cli_env)

    assert result.returncode == 0, result.stderr
    assert (await key_states(pool))[dashed] == "revoked"


# -- usage ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "command",
    [
        IDP,
        [*IDP, "keys"],
        [*IDP, "no-such-command"],
        [*IDP, "keys", "revoke", "some-kid"],  # --reason is required
        [*IDP, "keys", "export", "some-kid"],  # --pem is required
        REVOKE_KEY,
    ],
    ids=["idp", "idp-keys", "idp-unknown", "keys-revoke-no-reason", "export-no-pem", "revoke-key"],
)
async def test_usage_errors_exit_2(command: list[str], cli_env: dict[str, str]) -> None:
    result = await run(command, cli_env)

    assert result.returncode == 2, result.stderr
    assert "usage:" in result.stderr
    assert result.stdout == ""


# -- help -----------------------------------------------------------------------------------
async def test_clients_add_help_names_the_grant_type_choices_and_the_scope_default(
    cli_env: dict[str, str],
) -> None:
    result = await run([*IDP, "clients", "add", "--help"], cli_env)

    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())  # argparse wraps lines at the terminal's width
    assert "--grant-type TYPE" in text
    assert "one of: authorization_code, refresh_token, client_credentials" in text
    assert "--scope SCOPES" in text
    assert "(default: openid profile email offline_access)" in text


async def test_idp_help_ends_with_examples(cli_env: dict[str, str]) -> None:
    result = await run([*IDP, "--help"], cli_env)

    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert text.index("examples:") > text.index("options:"), "the examples come last"
    examples = text[text.index("examples:") :].splitlines()[1:]
    commands = [line.split()[1] for line in examples if line.startswith("  idp ")]
    assert {"serve", "users", "clients", "keys"} <= set(commands)


def every_parser(
    parser: argparse.ArgumentParser, name: str = "idp"
) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for command, child in action.choices.items():
                yield from every_parser(child, f"{name} {command}")


def test_every_option_and_argument_of_every_command_says_what_it_does() -> None:
    silent = [
        f"{name}: {action.option_strings or action.dest}"
        for name, parser in every_parser(build_parser())
        for action in parser._actions
        if not isinstance(action, argparse._SubParsersAction) and not action.help
    ]
    assert silent == []
