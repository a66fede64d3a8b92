"""``idp users`` and ``idp clients`` as an operator runs them: subprocesses on the test database,
checked against the rows (and audit events) they leave behind."""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest
from argon2 import PasswordHasher, Type, extract_parameters
from argon2.exceptions import VerifyMismatchError

from idp.db import clients
from idp.oauth.registration import register
from idp.settings import Settings
from tests.factories import make_client, make_user
from tests.helpers import assert_one_line_error, idp

PASSWORD = "s3cret-Horse-battery"


async def cli_audit_events(pool: asyncpg.Pool) -> list[tuple[str, str | None]]:
    """(action, subject) of every audit event recorded by a CLI actor, in order."""
    rows = await pool.fetch(
        "SELECT actor, action, subject FROM audit_log WHERE actor LIKE 'cli:%' ORDER BY id"
    )
    return [(row["action"], row["subject"]) for row in rows]


async def audit_log_text(pool: asyncpg.Pool) -> str:
    rows = await pool.fetch("SELECT actor, action, subject, reason, details::text FROM audit_log")
    return "\n".join(" ".join(str(value) for value in row.values()) for row in rows)


async def user_row(pool: asyncpg.Pool, email: str) -> asyncpg.Record:
    row = await pool.fetchrow(
        "SELECT id, email, name, password_hash, roles, disabled FROM users "
        "WHERE lower(email) = lower($1)",
        email,
    )
    assert row is not None, f"no user {email}"
    return row


def password_matches(password_hash: str, password: str) -> bool:
    try:
        return PasswordHasher().verify(password_hash, password)
    except VerifyMismatchError:
        return False


# -- users add ------------------------------------------------------------------------------
async def test_users_add_stores_an_argon2id_hash_of_the_password_read_from_stdin(
    cli_env: dict[str, str], pool: asyncpg.Pool
) -> None:
    result = await idp(
        cli_env,
        *("users", "add", "alice@example.com", "--name", "Alice", "--role", "admin"),
        "--password-stdin",
        stdin=f"{PASSWORD}\n".encode(),
    )

    assert result.returncode == 0, result.stderr
    row = await user_row(pool, "alice@example.com")
    assert result.stdout.splitlines() == [str(row["id"])]
    assert (row["name"], list(row["roles"]), row["disabled"]) == ("Alice", ["admin"], False)
    assert row["password_hash"].startswith("$argon2id$")
    parameters = extract_parameters(row["password_hash"])
    assert parameters.type is Type.ID
    # IDP_ARGON2_PROFILE=test reached the command.
    assert (parameters.memory_cost, parameters.time_cost, parameters.parallelism) == (1024, 1, 1)
    assert password_matches(row["password_hash"], PASSWORD)
    assert not password_matches(row["password_hash"], PASSWORD + "x")


async def test_users_add_never_echoes_or_audits_the_password(
    cli_env: dict[str, str], pool: asyncpg.Pool
) -> None:
    result = await idp(
        cli_env,
        *("users", "add", "alice@example.com", "--password-stdin"),
        stdin=f"{PASSWORD}\n".encode(),
    )

    assert result.returncode == 0, result.stderr
    assert PASSWORD not in result.stdout
    assert PASSWORD not in result.stderr
    user_id = str((await user_row(pool, "alice@example.com"))["id"])
    assert await cli_audit_events(pool) == [("user.created", user_id)]
    assert PASSWORD not in await audit_log_text(pool)


async def test_users_add_without_a_password_on_stdin_exits_1_and_adds_nobody(
    cli_env: dict[str, str], pool: asyncpg.Pool
) -> None:
    # stdin is /dev/null: there is no password, and none is taken from anywhere else.
    result = await idp(cli_env, "users", "add", "alice@example.com", "--password-stdin")

    assert assert_one_line_error(result) == "idp: Use at least 12 characters."
    assert await pool.fetchval("SELECT count(*) FROM users") == 0


@pytest.mark.parametrize(
    "arguments",
    [
        ["users", "add", "alice@example.com", "--password", PASSWORD],
        ["users", "add", "alice@example.com"],  # --password-stdin is required
    ],
    ids=["password-in-argv", "no-password-stdin"],
)
async def test_users_add_refuses_a_password_in_argv_as_a_usage_error(
    arguments: list[str], cli_env: dict[str, str], pool: asyncpg.Pool
) -> None:
    result = await idp(cli_env, *arguments, stdin=f"{PASSWORD}\n".encode())

    assert result.returncode == 2, result.stderr
    assert "usage:" in result.stderr
    assert await pool.fetchval("SELECT count(*) FROM users") == 0


async def test_users_add_same_email_in_another_case_exits_1_with_one_line(
    cli_env: dict[str, str], pool: asyncpg.Pool
) -> None:
    first = await idp(
        cli_env,
        *("users", "add", "alice@example.com", "--password-stdin"),
        stdin=f"{PASSWORD}\n".encode(),
    )
    assert first.returncode == 0, first.stderr

    second = await idp(
        cli_env,
        *("users", "add", "Alice@Example.COM", "--password-stdin"),
        stdin=b"another password\n",
    )

    assert "exists already" in assert_one_line_error(second)
    assert second.stdout == ""
    assert await pool.fetchval("SELECT count(*) FROM users") == 1
    assert [action for action, _ in await cli_audit_events(pool)] == ["user.created"]


async def test_users_add_with_a_password_shorter_than_the_policy_exits_1(
    cli_env: dict[str, str], pool: asyncpg.Pool
) -> None:
    result = await idp(
        cli_env, *("users", "add", "alice@example.com", "--password-stdin"), stdin=b"p9-Zr4kq\n"
    )

    assert assert_one_line_error(result) == "idp: Use at least 12 characters."
    assert "p9-Zr4kq" not in result.stderr
    assert await pool.fetchval("SELECT count(*) FROM users") == 0
    assert await cli_audit_events(pool) == []


# -- users list -----------------------------------------------------------------------------
async def test_users_list_json_shows_every_user_without_password_hashes(
    cli_env: dict[str, str], pool: asyncpg.Pool
) -> None:
    bob = await make_user(pool, "bob@example.com", name="Bob", roles=("ops",))
    alice = await make_user(pool, "alice@example.com", name="Alice", roles=("admin", "ops"))

    result = await idp(cli_env, "users", "list", "--json")

    assert result.returncode == 0, result.stderr
    listed = json.loads(result.stdout)
    assert [
        (user["id"], user["email"], user["name"], user["roles"], user["disabled"])
        for user in listed
    ] == [
        (str(alice.id), "alice@example.com", "Alice", ["admin", "ops"], False),
        (str(bob.id), "bob@example.com", "Bob", ["ops"], False),
    ]
    assert all("password_hash" not in user for user in listed)
    assert alice.password_hash is not None
    assert alice.password_hash not in result.stdout
    assert await cli_audit_events(pool) == []  # reading writes nothing


# -- users disable / enable -----------------------------------------------------------------
async def test_users_disable_then_enable_flips_the_flag_and_audits_both(
    cli_env: dict[str, str], pool: asyncpg.Pool
) -> None:
    await make_user(pool, "alice@example.com")

    disabled = await idp(cli_env, "users", "disable", "alice@example.com")

    assert disabled.returncode == 0, disabled.stderr
    assert (await user_row(pool, "alice@example.com"))["disabled"] is True

    enabled = await idp(cli_env, "users", "enable", "alice@example.com")

    assert enabled.returncode == 0, enabled.stderr
    assert (await user_row(pool, "alice@example.com"))["disabled"] is False
    assert [action for action, _ in await cli_audit_events(pool)] == [
        "user.disabled",
        "user.enabled",
    ]


@pytest.mark.parametrize("verb", ["disable", "enable"])
async def test_users_disable_or_enable_unknown_email_exits_1_with_one_line(
    verb: str, cli_env: dict[str, str], pool: asyncpg.Pool
) -> None:
    await make_user(pool, "alice@example.com")

    result = await idp(cli_env, "users", verb, "nobody@example.com")

    assert "nobody@example.com" in assert_one_line_error(result)
    assert (await user_row(pool, "alice@example.com"))["disabled"] is False
    assert await cli_audit_events(pool) == []


# -- users set-password ---------------------------------------------------------------------
async def test_users_set_password_replaces_the_hash_so_the_old_password_fails(
    cli_env: dict[str, str], pool: asyncpg.Pool
) -> None:
    old = "the old password"
    user = await make_user(pool, "alice@example.com", old)

    result = await idp(
        cli_env,
        *("users", "set-password", "ALICE@example.com", "--password-stdin"),
        stdin=f"{PASSWORD}\n".encode(),
    )

    assert result.returncode == 0, result.stderr
    assert PASSWORD not in result.stdout + result.stderr
    stored = (await user_row(pool, "alice@example.com"))["password_hash"]
    assert stored != user.password_hash
    assert stored.startswith("$argon2id$")
    assert password_matches(stored, PASSWORD)
    assert not password_matches(stored, old)
    assert await cli_audit_events(pool) == [("user.password_set", str(user.id))]
    assert PASSWORD not in await audit_log_text(pool)


async def test_users_set_password_too_short_exits_1_and_keeps_the_old_hash(
    cli_env: dict[str, str], pool: asyncpg.Pool
) -> None:
    user = await make_user(pool, "alice@example.com")

    result = await idp(
        cli_env,
        *("users", "set-password", "alice@example.com", "--password-stdin"),
        stdin=b"short\n",
    )

    assert assert_one_line_error(result) == "idp: Use at least 12 characters."
    assert (await user_row(pool, "alice@example.com"))["password_hash"] == user.password_hash
    assert await cli_audit_events(pool) == []


async def test_users_set_password_unknown_email_exits_1_with_one_line(
    cli_env: dict[str, str], pool: asyncpg.Pool
) -> None:
    result = await idp(
        cli_env,
        *("users", "set-password", "nobody@example.com", "--password-stdin"),
        stdin=f"{PASSWORD}\n".encode(),
    )

    assert "nobody@example.com" in assert_one_line_error(result)
    assert await cli_audit_events(pool) == []


# -- users roles ----------------------------------------------------------------------------
async def test_users_roles_adds_and_removes_roles_sorted_without_duplicates(
    cli_env: dict[str, str], pool: asyncpg.Pool
) -> None:
    user = await make_user(pool, "alice@example.com", roles=("viewer", "admin"))
    await make_user(pool, "root@example.com", roles=("admin",))  # alice is not the last admin

    result = await idp(
        cli_env,
        *("users", "roles", "alice@example.com"),
        *("--add", "ops", "--add", "viewer", "--add", "billing", "--remove", "admin"),
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["billing", "ops", "viewer"]
    assert list((await user_row(pool, "alice@example.com"))["roles"]) == [
        "billing",
        "ops",
        "viewer",
    ]
    assert await cli_audit_events(pool) == [("user.roles_changed", str(user.id))]
    details = json.loads(
        await pool.fetchval("SELECT details FROM audit_log WHERE action = 'user.roles_changed'")
    )
    assert details == {"added": ["ops", "viewer", "billing"], "removed": ["admin"]}


async def test_users_roles_remove_admin_from_the_last_admin_exits_1_and_changes_nothing(
    cli_env: dict[str, str], pool: asyncpg.Pool, settings: Settings
) -> None:
    """An admin client is not a user: it is not the admin who would remain."""
    await make_user(pool, "alice@example.com", roles=("viewer", "admin"))
    await make_user(pool, "dormant@example.com", roles=("admin",))
    await pool.execute("UPDATE users SET disabled = true WHERE email = 'dormant@example.com'")
    await make_client(pool, settings, name="deploy", scopes=(), admin=True)

    result = await idp(
        cli_env, *("users", "roles", "alice@example.com", "--add", "ops", "--remove", "admin")
    )

    line = assert_one_line_error(result)
    assert "alice@example.com" in line
    assert "last enabled user with the admin role" in line
    assert list((await user_row(pool, "alice@example.com"))["roles"]) == ["viewer", "admin"]
    assert await cli_audit_events(pool) == []


async def test_users_roles_names_a_malformed_role_before_the_last_admin_rule(
    cli_env: dict[str, str], pool: asyncpg.Pool
) -> None:
    await make_user(pool, "alice@example.com", roles=("admin",))

    result = await idp(
        cli_env, *("users", "roles", "alice@example.com", "--remove", "admin", "--remove", "a b")
    )

    assert "must be one word" in assert_one_line_error(result)
    assert list((await user_row(pool, "alice@example.com"))["roles"]) == ["admin"]


async def test_users_disable_the_last_admin_exits_1_and_leaves_them_enabled(
    cli_env: dict[str, str], pool: asyncpg.Pool
) -> None:
    await make_user(pool, "alice@example.com", roles=("admin",))

    result = await idp(cli_env, "users", "disable", "alice@example.com")

    assert "last enabled user with the admin role" in assert_one_line_error(result)
    assert (await user_row(pool, "alice@example.com"))["disabled"] is False
    assert await cli_audit_events(pool) == []


async def test_users_roles_unknown_email_exits_1_with_one_line(
    cli_env: dict[str, str], pool: asyncpg.Pool
) -> None:
    result = await idp(cli_env, "users", "roles", "nobody@example.com", "--add", "ops")

    assert "nobody@example.com" in assert_one_line_error(result)
    assert await cli_audit_events(pool) == []


# -- clients add ----------------------------------------------------------------------------
async def client_row(pool: asyncpg.Pool, client_id: str) -> asyncpg.Record:
    row = await pool.fetchrow(
        "SELECT client_id, name, secret_hash, redirect_uris, grant_types, scopes, audiences, "
        "post_logout_redirect_uris, first_party, access_token_ttl, refresh_token_ttl, disabled "
        "FROM clients WHERE client_id = $1",
        client_id,
    )
    assert row is not None, f"no client {client_id}"
    return row


def parse_one_json_object(stdout: str) -> dict[str, Any]:
    value = json.loads(stdout)  # fails on anything printed besides the one object
    assert isinstance(value, dict)
    return value


async def test_clients_add_json_prints_id_and_secret_and_stores_only_its_sha256(
    cli_env: dict[str, str], pool: asyncpg.Pool
) -> None:
    result = await idp(
        cli_env,
        *("clients", "add", "billing-worker", "--grant-type", "client_credentials"),
        *("--audience", "https://api.example", "--json"),
    )

    assert result.returncode == 0, result.stderr
    printed = parse_one_json_object(result.stdout)
    secret = printed["client_secret"]
    assert isinstance(secret, str)
    assert len(secret) >= 43  # 256 bits, base64url
    assert (printed["name"], printed["public"], printed["grant_types"], printed["audiences"]) == (
        "billing-worker",
        False,
        ["client_credentials"],
        ["https://api.example"],
    )
    row = await client_row(pool, printed["client_id"])
    assert row["secret_hash"] == hashlib.sha256(secret.encode()).digest()
    stored = " ".join(str(value) for value in row.values())
    assert secret not in stored
    assert secret.encode() not in row["secret_hash"]
    assert await cli_audit_events(pool) == [("client.created", printed["client_id"])]
    assert secret not in await audit_log_text(pool)


async def test_clients_add_without_json_prints_id_and_secret_once(
    cli_env: dict[str, str], pool: asyncpg.Pool
) -> None:
    result = await idp(cli_env, "clients", "add", "worker", "--grant-type", "client_credentials")

    assert result.returncode == 0, result.stderr
    (client_id,) = await pool.fetchval("SELECT array_agg(client_id) FROM clients")
    secret_hash = (await client_row(pool, client_id))["secret_hash"]
    lines = dict(
        line.split(":", 1) for line in result.stdout.splitlines() if line.startswith("client_")
    )
    assert lines["client_id"].strip() == client_id
    assert hashlib.sha256(lines["client_secret"].strip().encode()).digest() == secret_hash


async def test_clients_add_public_has_a_null_secret_and_no_stored_hash(
    cli_env: dict[str, str], pool: asyncpg.Pool
) -> None:
    result = await idp(
        cli_env,
        *("clients", "add", "spa", "--public", "--first-party", "--json"),
        *("--grant-type", "authorization_code", "--grant-type", "refresh_token"),
        *("--redirect-uri", "http://127.0.0.1:3000/callback"),
        *("--redirect-uri", "https://spa.example/callback"),
    )

    assert result.returncode == 0, result.stderr
    printed = parse_one_json_object(result.stdout)
    assert printed["client_secret"] is None
    assert printed["public"] is True
    row = await client_row(pool, printed["client_id"])
    assert row["secret_hash"] is None
    assert row["first_party"] is True
    assert list(row["grant_types"]) == ["authorization_code", "refresh_token"]
    assert list(row["redirect_uris"]) == [
        "http://127.0.0.1:3000/callback",
        "https://spa.example/callback",
    ]


async def test_clients_add_accepts_an_access_token_ttl_up_to_the_maximum(
    cli_env: dict[str, str], pool: asyncpg.Pool
) -> None:
    result = await idp(
        cli_env,
        *("clients", "add", "worker", "--grant-type", "client_credentials"),
        *("--access-token-ttl", "1h", "--json"),
    )

    assert result.returncode == 0, result.stderr
    printed = parse_one_json_object(result.stdout)
    assert printed["access_token_ttl"] == 3600
    assert (await client_row(pool, printed["client_id"]))["access_token_ttl"] == 3600


@pytest.mark.parametrize(
    ("arguments", "reason"),
    [
        (
            ["--grant-type", "authorization_code", "--redirect-uri", "http://app.example/cb"],
            "plain http",
        ),
        (
            ["--grant-type", "authorization_code", "--redirect-uri", "https://app.example/cb#x"],
            "fragment",
        ),
        (
            ["--grant-type", "authorization_code", "--redirect-uri", "https://*.example.com/cb"],
            "wildcard",
        ),
        (["--public", "--grant-type", "client_credentials"], "public client"),
        (["--grant-type", "authorization_code"], "--redirect-uri"),
        (
            ["--grant-type", "client_credentials", "--grant-type", "refresh_token"],
            "refresh_token comes only with authorization_code",
        ),
        (
            ["--grant-type", "client_credentials", "--access-token-ttl", "2h"],
            "IDP_MAX_ACCESS_TOKEN_TTL",
        ),
        (
            ["--grant-type", "authorization_code", "--redirect-uri", "javascript:alert(1)//"],
            "private-use scheme",
        ),
        (
            ["--grant-type", "authorization_code", "--redirect-uri", "data:text/html,hi"],
            "private-use scheme",
        ),
        (
            ["--grant-type", "authorization_code", "--redirect-uri", "http://localhost/cb"],
            "http://localhost is for native apps without a secret; a client with a secret uses "
            "https or http://127.0.0.1 (RFC 8252 §8.3)",
        ),
        (
            ["--grant-type", "authorization_code", "--redirect-uri", "http://LocalHost:8080/cb"],
            "http://localhost is for native apps without a secret",
        ),
    ],
    ids=[
        "http-not-loopback",
        "fragment",
        "wildcard",
        "public-client-credentials",
        "code-without-redirect-uri",
        "refresh-without-code",
        "ttl-above-maximum",
        "javascript-scheme",
        "data-scheme",
        "http-localhost-with-a-secret",
        "http-localhost-with-a-secret-and-port",
    ],
)
async def test_clients_add_refuses_an_invalid_registration_with_one_line(
    arguments: list[str], reason: str, cli_env: dict[str, str], pool: asyncpg.Pool
) -> None:
    result = await idp(cli_env, "clients", "add", "bad", *arguments, "--json")

    assert reason in assert_one_line_error(result)
    assert result.stdout == ""
    assert await pool.fetchval("SELECT count(*) FROM clients") == 0
    assert await cli_audit_events(pool) == []


async def test_clients_add_with_an_unknown_grant_type_is_a_usage_error_naming_the_choices(
    cli_env: dict[str, str], pool: asyncpg.Pool
) -> None:
    result = await idp(cli_env, "clients", "add", "bad", "--grant-type", "password")

    assert result.returncode == 2, result.stderr
    assert "invalid choice: 'password'" in result.stderr
    assert "'authorization_code', 'refresh_token', 'client_credentials'" in result.stderr
    assert await pool.fetchval("SELECT count(*) FROM clients") == 0


@pytest.mark.parametrize(
    "redirect_uri",
    [
        "http://127.0.0.1:8080/cb",
        "http://127.0.0.1/cb",
        "http://[::1]:9000/cb",
        "http://localhost:33418/callback",
        "com.example.app:/oauth/cb",
    ],
)
async def test_clients_add_accepts_plain_http_redirect_uris_on_loopback(
    redirect_uri: str, cli_env: dict[str, str], pool: asyncpg.Pool
) -> None:
    result = await idp(
        cli_env,
        *("clients", "add", "native", "--public", "--grant-type", "authorization_code"),
        *("--redirect-uri", redirect_uri, "--json"),
    )

    assert result.returncode == 0, result.stderr
    client_id = parse_one_json_object(result.stdout)["client_id"]
    assert list((await client_row(pool, client_id))["redirect_uris"]) == [redirect_uri]


async def test_clients_add_introspect_audience_registers_a_resource_server_and_lists_it(
    cli_env: dict[str, str], pool: asyncpg.Pool
) -> None:
    result = await idp(
        cli_env,
        *("clients", "add", "orders-api", "--grant-type", "client_credentials"),
        *("--introspect-audience", "https://orders.example"),
        *("--introspect-audience", "https://billing.example", "--json"),
    )

    assert result.returncode == 0, result.stderr
    printed = parse_one_json_object(result.stdout)
    audiences = ["https://orders.example", "https://billing.example"]
    assert printed["introspect_audiences"] == audiences
    stored = await pool.fetchval(
        "SELECT introspect_audiences FROM clients WHERE client_id = $1", printed["client_id"]
    )
    assert list(stored) == audiences
    listed = await idp(cli_env, "clients", "list")
    assert listed.stdout.splitlines()[0].split() == [
        "CLIENT_ID", "NAME", "TYPE", "GRANTS", "INTROSPECTS", "DISABLED",
    ]  # fmt: skip
    assert listed.stdout.splitlines()[1].split() == [
        printed["client_id"], "orders-api", "confidential", "client_credentials",
        "https://orders.example,https://billing.example", "False",
    ]  # fmt: skip
    as_json = json.loads((await idp(cli_env, "clients", "list", "--json")).stdout)
    assert as_json[0]["introspect_audiences"] == audiences


@pytest.mark.parametrize(
    ("arguments", "reason"),
    [
        (
            [
                *("--public", "--grant-type", "authorization_code"),
                *("--redirect-uri", "https://spa.example/cb", "--introspect-audience", "https://a"),
            ],
            "public client cannot introspect",
        ),
        (
            ["--grant-type", "client_credentials", "--introspect-audience", "two words"],
            "must be one visible word",
        ),
        (["--grant-type", "client_credentials", "--introspect-audience", ""], "one visible word"),
    ],
    ids=["public", "space", "empty"],
)
async def test_clients_add_refuses_an_introspect_audience_it_cannot_honour(
    arguments: list[str], reason: str, cli_env: dict[str, str], pool: asyncpg.Pool
) -> None:
    result = await idp(cli_env, "clients", "add", "bad", *arguments)

    assert reason in assert_one_line_error(result)
    assert await pool.fetchval("SELECT count(*) FROM clients") == 0


async def test_clients_add_refuses_the_issuer_as_an_introspect_audience(
    cli_env: dict[str, str], pool: asyncpg.Pool
) -> None:
    """The issuer is in nearly every token's ``aud``: a client registered for it would learn
    about other clients' tokens."""
    env = cli_env | {"IDP_ISSUER": "https://idp.example"}
    result = await idp(
        env,
        *("clients", "add", "api", "--grant-type", "client_credentials"),
        *("--introspect-audience", "https://idp.example"),
    )

    assert "'https://idp.example' is the issuer" in assert_one_line_error(result)
    assert await pool.fetchval("SELECT count(*) FROM clients") == 0


# -- clients list / disable -----------------------------------------------------------------
async def test_clients_list_json_shows_every_client_without_secrets(
    cli_env: dict[str, str], pool: asyncpg.Pool, settings: Settings
) -> None:
    worker, secret = await make_client(pool, settings, name="worker", audiences=("https://api",))
    spa, _ = await make_client(
        pool,
        settings,
        name="spa",
        grant_types=("authorization_code",),
        redirect_uris=("https://spa.example/cb",),
        public=True,
    )

    result = await idp(cli_env, "clients", "list", "--json")

    assert result.returncode == 0, result.stderr
    listed = {client["client_id"]: client for client in json.loads(result.stdout)}
    assert set(listed) == {worker.client_id, spa.client_id}
    assert (listed[worker.client_id]["name"], listed[worker.client_id]["public"]) == (
        "worker",
        False,
    )
    assert listed[worker.client_id]["audiences"] == ["https://api"]
    assert (listed[spa.client_id]["name"], listed[spa.client_id]["public"]) == ("spa", True)
    assert listed[spa.client_id]["redirect_uris"] == ["https://spa.example/cb"]
    assert secret not in result.stdout
    assert all("secret_hash" not in client for client in listed.values())
    assert await cli_audit_events(pool) == []


async def client_with_id(pool: asyncpg.Pool, settings: Settings, client_id: str) -> str:
    """A registered client whose id is chosen by the test (ids are random otherwise)."""
    client, _ = register(
        name=f"client {client_id}",
        redirect_uris=(),
        grant_types=("client_credentials",),
        scopes=("read",),
        audiences=(),
        post_logout_redirect_uris=(),
        public=False,
        first_party=False,
        access_token_ttl=None,
        refresh_token_ttl=None,
        settings=settings,
        now=datetime.now(UTC),
    )
    return (await clients.insert(pool, replace(client, client_id=client_id))).client_id


async def test_clients_disable_sets_disabled_and_audits_client_disabled(
    cli_env: dict[str, str], pool: asyncpg.Pool, settings: Settings
) -> None:
    client_id = await client_with_id(pool, settings, "Zq3vV0b6kq1mN8xYcR2tWb4L")
    other_id = await client_with_id(pool, settings, "a5Hk2Ue0Lq9pT7wXsB1nVc3M")

    result = await idp(cli_env, "clients", "disable", client_id)

    assert result.returncode == 0, result.stderr
    assert (await client_row(pool, client_id))["disabled"] is True
    assert (await client_row(pool, other_id))["disabled"] is False
    assert await cli_audit_events(pool) == [("client.disabled", client_id)]
    actor = await pool.fetchval("SELECT actor FROM audit_log WHERE action = 'client.disabled'")
    assert actor.startswith("cli:")


async def test_clients_disable_a_client_id_starting_with_a_dash(
    cli_env: dict[str, str], pool: asyncpg.Pool, settings: Settings
) -> None:
    # token_urlsafe ids start with "-" one time in 64; the operator copies the id as printed.
    client_id = await client_with_id(pool, settings, "-Bq3vV0b6kq1mN8xYcR2tWb4")

    result = await idp(cli_env, "clients", "disable", client_id)

    assert result.returncode == 0, result.stderr
    assert (await client_row(pool, client_id))["disabled"] is True


async def test_clients_disable_unknown_client_id_exits_1_with_one_line(
    cli_env: dict[str, str], pool: asyncpg.Pool, settings: Settings
) -> None:
    client, _ = await make_client(pool, settings)
    unknown = str(uuid.uuid4())

    result = await idp(cli_env, "clients", "disable", unknown)

    assert unknown in assert_one_line_error(result)
    assert (await client_row(pool, client.client_id))["disabled"] is False
    assert await cli_audit_events(pool) == []
