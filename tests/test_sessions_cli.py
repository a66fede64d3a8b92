"""``idp sessions revoke`` and ``idp users disable`` cut a signed-in user off everywhere at once
(browser session, refresh tokens, access tokens) and leave everyone else alone;
``idp audit tail`` shows what happened."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from idp.db import audit
from idp.settings import Settings
from tests.conftest import Instance, InstanceFactory
from tests.factories import assert_oauth_error, make_client, make_user
from tests.helpers import idp
from tests.oauth.flow import Authorization, authorize_code, exchange_code

pytestmark = pytest.mark.usefixtures("real_time")  # the CLI runs on the system clock

REDIRECT = "https://app.example/callback"
PASSWORD = "correct horse battery"
SCOPE = "openid email"


NOTIFY_LIMIT = 1.0  # seconds for a change made by another process to count here


@dataclass
class Person:
    """A user with their own browser (cookies) and the tokens the app holds for them."""

    email: str
    cookies: httpx.Cookies
    tokens: dict[str, str]


class RelyingApp:
    """A first-party confidential client with refresh tokens, used by several people."""

    def __init__(self, instance: Instance, client_id: str, secret: str) -> None:
        self.http = instance.client
        self.client_id, self.secret = client_id, secret

    async def sign_in(self, email: str, password: str = PASSWORD) -> Person:
        self.http.cookies = httpx.Cookies()  # a browser of their own
        auth = Authorization(self.client_id, REDIRECT, scope=SCOPE)
        code = await authorize_code(self.http, auth, email, password)
        response = await exchange_code(self.http, self.client_id, self.secret, code, auth)
        assert response.status_code == 200, response.text
        return Person(email, httpx.Cookies(self.http.cookies), response.json())

    async def refresh(self, person: Person) -> httpx.Response:
        response = await self.http.post(
            "/token",
            auth=(self.client_id, self.secret),
            data={"grant_type": "refresh_token", "refresh_token": person.tokens["refresh_token"]},
        )
        if response.status_code == 200:
            person.tokens = response.json()
        return response

    async def authorize_asks_for_login(self, person: Person) -> bool:
        self.http.cookies = person.cookies
        auth = Authorization(self.client_id, REDIRECT, scope=SCOPE)
        response = await self.http.get(auth.url())
        assert response.status_code == 303, response.text
        location = response.headers["location"]
        assert location.startswith(("/login", f"{REDIRECT}?code=")), location
        return location.startswith("/login")

    async def userinfo_status(self, access_token: str) -> int:
        response = await self.http.get(
            "/userinfo", headers={"Authorization": f"Bearer {access_token}"}
        )
        return response.status_code

    async def userinfo_refuses(self, access_token: str) -> bool:
        """401 within NOTIFY_LIMIT: the CLI is another process, and its deny-list entries and
        user changes reach this one's memory by NOTIFY (README, Production shape)."""
        deadline = time.monotonic() + NOTIFY_LIMIT
        while (status := await self.userinfo_status(access_token)) != 401:
            assert status == 200, status
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.01)
        return True


async def relying_app(instance: Instance, pool: asyncpg.Pool, settings: Settings) -> RelyingApp:
    client, secret = await make_client(
        pool,
        settings,
        grant_types=("authorization_code", "refresh_token"),
        redirect_uris=(REDIRECT,),
        scopes=("openid", "email"),
        first_party=True,
    )
    return RelyingApp(instance, client.client_id, secret)


def jwt_claims(token: str) -> dict[str, Any]:
    """The payload of a JWT, unverified: only to read the jti it carries."""
    payload = token.split(".")[1]
    claims: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    )
    return claims


async def assert_cut_off(app: RelyingApp, person: Person, access_tokens: list[str]) -> None:
    assert await app.authorize_asks_for_login(person), "the browser session still works"
    assert_oauth_error(await app.refresh(person), 400, "invalid_grant")
    for token in access_tokens:
        assert await app.userinfo_refuses(token)


async def assert_still_signed_in(app: RelyingApp, person: Person) -> None:
    assert not await app.authorize_asks_for_login(person)
    assert (await app.refresh(person)).status_code == 200
    assert await app.userinfo_status(person.tokens["access_token"]) == 200


async def test_sessions_revoke_cuts_the_user_off_everywhere_and_leaves_others_alone(
    app_instance: InstanceFactory, pool: asyncpg.Pool, settings: Settings, cli_env: dict[str, str]
) -> None:
    alice_user = await make_user(pool, "alice@example.com")
    await make_user(pool, "bob@example.com", name="Bob")
    async with app_instance() as instance:
        app = await relying_app(instance, pool, settings)
        alice = await app.sign_in("alice@example.com")
        first_access = alice.tokens["access_token"]
        assert (await app.refresh(alice)).status_code == 200  # a second access token
        bob = await app.sign_in("bob@example.com")

        result = await idp(cli_env, "sessions", "revoke", "--user", "ALICE@example.com")

        assert result.returncode == 0, result.stderr
        assert result.stdout.splitlines() == [
            "alice@example.com: 1 sessions ended, 1 refresh families revoked, "
            "2 access tokens deny-listed"
        ]
        await assert_cut_off(app, alice, [first_access, alice.tokens["access_token"]])
        await assert_still_signed_in(app, bob)

        tail = await idp(cli_env, "audit", "tail", "--json")

    assert tail.returncode == 0, tail.stderr
    events = json.loads(tail.stdout)
    revoked = [event for event in events if event["action"] == "sessions.revoked"]
    assert len(revoked) == 1
    assert revoked[0]["subject"] == str(alice_user.id)
    assert revoked[0]["actor"].startswith("cli:")
    assert revoked[0]["details"] == {"sessions": 1, "refresh_families": 1, "access_tokens": 2}
    assert [event["action"] for event in events].count("login.succeeded") == 2
    assert [event["id"] for event in events] == sorted(event["id"] for event in events)
    families = await pool.fetch(
        "SELECT u.email, f.revoked_reason FROM refresh_families f JOIN users u ON u.id = f.user_id"
        " ORDER BY u.email"
    )
    assert [tuple(row) for row in families] == [
        ("alice@example.com", "sessions revoked by an operator"),
        ("bob@example.com", None),
    ]


async def test_users_disable_cuts_the_user_off_for_good_even_after_enable(
    app_instance: InstanceFactory, pool: asyncpg.Pool, settings: Settings, cli_env: dict[str, str]
) -> None:
    alice_user = await make_user(pool, "alice@example.com")
    await make_user(pool, "bob@example.com", name="Bob")
    async with app_instance() as instance:
        app = await relying_app(instance, pool, settings)
        alice = await app.sign_in("alice@example.com")
        bob = await app.sign_in("bob@example.com")

        disabled = await idp(cli_env, "users", "disable", "alice@example.com")
        assert disabled.returncode == 0, disabled.stderr
        # Enabling her again must not bring back what she held when she was disabled.
        enabled = await idp(cli_env, "users", "enable", "alice@example.com")
        assert enabled.returncode == 0, enabled.stderr

        await assert_cut_off(app, alice, [alice.tokens["access_token"]])
        await assert_still_signed_in(app, bob)
        await app.sign_in("alice@example.com")  # she may sign in afresh

    rows = await pool.fetch(
        "SELECT action, subject, details FROM audit_log WHERE actor LIKE 'cli:%' ORDER BY id"
    )
    assert [(row["action"], row["subject"]) for row in rows] == [
        ("user.disabled", str(alice_user.id)),
        ("sessions.revoked", str(alice_user.id)),
        ("user.enabled", str(alice_user.id)),
    ]
    assert json.loads(rows[1]["details"]) == {
        "sessions": 1,
        "refresh_families": 1,
        "access_tokens": 1,
    }


async def test_users_set_password_ends_the_users_sessions_and_refresh_families(
    app_instance: InstanceFactory, pool: asyncpg.Pool, settings: Settings, cli_env: dict[str, str]
) -> None:
    """Whoever knew the old password, or stole a session or token with it, is cut off."""
    alice_user = await make_user(pool, "alice@example.com")
    await make_user(pool, "bob@example.com", name="Bob")
    new_password = "a brand new passphrase"
    async with app_instance() as instance:
        app = await relying_app(instance, pool, settings)
        alice = await app.sign_in("alice@example.com")
        first_access = alice.tokens["access_token"]
        assert (await app.refresh(alice)).status_code == 200
        bob = await app.sign_in("bob@example.com")

        result = await idp(
            cli_env,
            *("users", "set-password", "alice@example.com", "--password-stdin"),
            stdin=f"{new_password}\n".encode(),
        )

        assert result.returncode == 0, result.stderr
        assert result.stdout.splitlines() == [
            "alice@example.com: password changed; 1 sessions ended, 1 refresh families revoked, "
            "2 access tokens deny-listed"
        ]
        await assert_cut_off(app, alice, [first_access, alice.tokens["access_token"]])
        await assert_still_signed_in(app, bob)
        await app.sign_in("alice@example.com", new_password)

    jtis = [jwt_claims(token)["jti"] for token in (first_access, alice.tokens["access_token"])]
    denied = await pool.fetchval(
        "SELECT count(*) FROM revoked_access_tokens WHERE jti = ANY($1)", jtis
    )
    assert denied == 2
    rows = await pool.fetch(
        "SELECT action, subject, reason FROM audit_log WHERE actor LIKE 'cli:%' ORDER BY id"
    )
    assert [tuple(row) for row in rows] == [
        ("user.password_set", str(alice_user.id), None),
        ("sessions.revoked", str(alice_user.id), "password changed"),
    ]
    families = await pool.fetch(
        "SELECT u.email, f.revoked_reason FROM refresh_families f JOIN users u ON u.id = f.user_id"
        " WHERE f.revoked_at IS NOT NULL"
    )
    assert [tuple(row) for row in families] == [("alice@example.com", "password changed")]


async def test_users_set_password_help_says_it_ends_sessions_and_refresh_tokens(
    cli_env: dict[str, str],
) -> None:
    result = await idp(cli_env, "users", "set-password", "--help")

    assert result.returncode == 0, result.stderr
    assert "ends every session" in " ".join(result.stdout.split())
    assert "revokes their refresh tokens" in " ".join(result.stdout.split())


async def test_sessions_revoke_denies_access_tokens_of_clients_without_refresh_tokens(
    app_instance: InstanceFactory, pool: asyncpg.Pool, settings: Settings, cli_env: dict[str, str]
) -> None:
    await make_user(pool, "alice@example.com")
    client, secret = await make_client(
        pool,
        settings,
        grant_types=("authorization_code",),
        redirect_uris=(REDIRECT,),
        scopes=("openid", "email"),
        first_party=True,
    )
    async with app_instance() as instance:
        app = RelyingApp(instance, client.client_id, secret)
        alice = await app.sign_in("alice@example.com")
        assert "refresh_token" not in alice.tokens
        assert await app.userinfo_status(alice.tokens["access_token"]) == 200

        result = await idp(cli_env, "sessions", "revoke", "--user", "alice@example.com")

        assert result.returncode == 0, result.stderr
        assert "0 refresh families revoked, 1 access tokens deny-listed" in result.stdout
        assert await app.userinfo_refuses(alice.tokens["access_token"])
        assert await app.authorize_asks_for_login(alice)


async def test_sessions_revoke_of_a_user_without_sessions_is_audited_all_the_same(
    pool: asyncpg.Pool, cli_env: dict[str, str]
) -> None:
    user = await make_user(pool, "alice@example.com")

    result = await idp(cli_env, "sessions", "revoke", "--user", "alice@example.com")

    assert result.returncode == 0, result.stderr
    row = await pool.fetchrow("SELECT action, subject, details FROM audit_log")
    assert row is not None
    assert (row["action"], row["subject"]) == ("sessions.revoked", str(user.id))
    assert json.loads(row["details"]) == {"sessions": 0, "refresh_families": 0, "access_tokens": 0}


async def test_sessions_revoke_of_an_unknown_email_exits_1_with_one_line(
    pool: asyncpg.Pool, cli_env: dict[str, str]
) -> None:
    result = await idp(cli_env, "sessions", "revoke", "--user", "nobody@example.com")

    assert result.returncode == 1
    assert result.stderr.splitlines() == ["idp: no user with email nobody@example.com"]
    assert await pool.fetchval("SELECT count(*) FROM audit_log") == 0


@pytest.mark.parametrize(
    "arguments",
    [["sessions", "revoke"], ["audit", "tail", "--limit", "0"], ["audit", "tail", "--limit", "x"]],
    ids=["no-user", "limit-0", "limit-not-a-number"],
)
async def test_usage_errors_exit_2(arguments: list[str], cli_env: dict[str, str]) -> None:
    result = await idp(cli_env, *arguments)

    assert result.returncode == 2, result.stderr
    assert "usage:" in result.stderr


async def test_audit_tail_prints_the_most_recent_events_oldest_first(
    pool: asyncpg.Pool, cli_env: dict[str, str]
) -> None:
    start = datetime(2026, 3, 1, 12, tzinfo=UTC)
    async with pool.acquire() as connection:
        for i in range(5):
            await audit.record(
                connection,
                now=start + timedelta(minutes=i),
                actor="scheduler",
                action=f"test.event{i}",
                subject=f"s{i}",
                details={"n": i} if i % 2 else None,
            )

    as_json = await idp(cli_env, "audit", "tail", "--json", "--limit", "3")
    as_text = await idp(cli_env, "audit", "tail", "--limit", "2")

    assert as_json.returncode == 0, as_json.stderr
    events = json.loads(as_json.stdout)
    assert [(event["action"], event["subject"], event["details"]) for event in events] == [
        ("test.event2", "s2", {}),
        ("test.event3", "s3", {"n": 3}),
        ("test.event4", "s4", {}),
    ]
    assert events[0]["at"] == "2026-03-01T12:02:00+00:00"
    assert as_text.returncode == 0, as_text.stderr
    lines = as_text.stdout.splitlines()
    assert lines[0].split() == ["AT", "ACTOR", "ACTION", "SUBJECT", "REASON", "DETAILS"]
    assert [line.split() for line in lines[1:]] == [
        ["2026-03-01T12:03:00+00:00", "scheduler", "test.event3", "s3", "-", '{"n":3}'],
        ["2026-03-01T12:04:00+00:00", "scheduler", "test.event4", "s4", "-", "-"],
    ]
