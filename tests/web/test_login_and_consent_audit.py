"""Sign-ins and consent decisions leave audit events: who, what, from where, and never a
password."""

from __future__ import annotations

import json

import asyncpg
import pytest

from idp.settings import Settings
from tests.conftest import InstanceFactory
from tests.factories import make_client, make_user
from tests.oauth.flow import Authorization, authorize_code, hidden_fields, query_of, sign_in

REDIRECT = "https://app.example/callback"
PASSWORD = "correct horse battery"
WRONG = "Tr0ub4dor&3-guess"


async def events(pool: asyncpg.Pool) -> list[tuple[str, str, str | None, str | None]]:
    """(actor, action, subject, reason) of every sign-in event, in order."""
    rows = await pool.fetch(
        "SELECT actor, action, subject, reason FROM audit_log WHERE action LIKE 'login.%' "
        "ORDER BY id"
    )
    return [(row["actor"], row["action"], row["subject"], row["reason"]) for row in rows]


async def audit_text(pool: asyncpg.Pool) -> str:
    rows = await pool.fetch("SELECT actor, action, subject, reason, details::text FROM audit_log")
    return "\n".join(" ".join(str(value) for value in row.values()) for row in rows)


async def client_id(pool: asyncpg.Pool, settings: Settings, *, first_party: bool = True) -> str:
    client, _ = await make_client(
        pool,
        settings,
        grant_types=("authorization_code",),
        redirect_uris=(REDIRECT,),
        scopes=("openid", "profile", "email"),
        first_party=first_party,
    )
    return client.client_id


async def test_a_sign_in_is_audited_with_the_user_id_and_the_address(
    app_instance: InstanceFactory, pool: asyncpg.Pool, settings: Settings
) -> None:
    app_id = await client_id(pool, settings)
    user = await make_user(pool)
    async with app_instance() as app:
        await authorize_code(app.client, Authorization(app_id, REDIRECT), user.email, PASSWORD)

    assert await events(pool) == [(f"user:{user.id}", "login.succeeded", str(user.id), None)]
    details = await pool.fetchval("SELECT details FROM audit_log WHERE action LIKE 'login.%'")
    assert json.loads(details) == {"ip": "127.0.0.1"}
    assert PASSWORD not in await audit_text(pool)


async def test_failed_sign_ins_are_audited_by_lower_cased_email_and_never_the_password(
    app_instance: InstanceFactory, pool: asyncpg.Pool, settings: Settings
) -> None:
    app_id = await client_id(pool, settings)
    user = await make_user(pool, "alice@example.com")
    async with app_instance() as app:
        start = await app.client.get(Authorization(app_id, REDIRECT).url())
        login = start.headers["location"]
        wrong = await sign_in(app.client, login, " Alice@Example.COM ", WRONG)
        unknown = await sign_in(app.client, login, "Nobody@example.com", PASSWORD)
        right = await sign_in(app.client, login, "alice@example.com", PASSWORD)

    assert (wrong.status_code, unknown.status_code, right.status_code) == (401, 401, 303)
    assert await events(pool) == [
        ("anonymous", "login.failed", "alice@example.com", "wrong password"),
        ("anonymous", "login.failed", "nobody@example.com", "unknown email"),
        (f"user:{user.id}", "login.succeeded", str(user.id), None),
    ]
    text = await audit_text(pool)
    assert WRONG not in text
    assert PASSWORD not in text


async def test_a_disabled_user_signing_in_is_audited_as_a_failure(
    app_instance: InstanceFactory, pool: asyncpg.Pool, settings: Settings
) -> None:
    app_id = await client_id(pool, settings)
    await make_user(pool, "alice@example.com")
    await pool.execute("UPDATE users SET disabled = true")
    async with app_instance() as app:
        start = await app.client.get(Authorization(app_id, REDIRECT).url())
        refused = await sign_in(
            app.client, start.headers["location"], "alice@example.com", PASSWORD
        )

    assert refused.status_code == 401
    assert await events(pool) == [
        ("anonymous", "login.failed", "alice@example.com", "user disabled")
    ]
    assert PASSWORD not in await audit_text(pool)


async def test_setting_a_lock_is_audited_and_refusals_while_locked_are_not(
    app_instance: InstanceFactory, pool: asyncpg.Pool, settings: Settings
) -> None:
    app_id = await client_id(pool, settings)
    await make_user(pool, "alice@example.com")
    async with app_instance() as app:
        start = await app.client.get(Authorization(app_id, REDIRECT).url())
        for _ in range(6):  # five free attempts, then a lock
            await sign_in(app.client, start.headers["location"], "alice@example.com", WRONG)
        locked = await sign_in(app.client, start.headers["location"], "alice@example.com", WRONG)

    assert locked.status_code == 429
    found = await events(pool)
    assert [action for _, action, _, _ in found].count("login.failed") == 6
    locks = [(subject, reason) for _, action, subject, reason in found if action == "login.locked"]
    assert locks == [("email:alice@example.com", "6 failures"), ("ip:127.0.0.1", "6 failures")]
    assert WRONG not in await audit_text(pool)


@pytest.mark.parametrize("decision", ["allow", "deny"])
async def test_consent_decisions_are_audited_with_the_client_and_scopes(
    decision: str, app_instance: InstanceFactory, pool: asyncpg.Pool, settings: Settings
) -> None:
    app_id = await client_id(pool, settings, first_party=False)
    user = await make_user(pool)
    async with app_instance() as app:
        start = await app.client.get(Authorization(app_id, REDIRECT, scope="openid email").url())
        after_login = await sign_in(app.client, start.headers["location"], user.email, PASSWORD)
        page = await app.client.get(after_login.headers["location"])
        answered = await app.client.post(
            "/consent", data={**hidden_fields(page.text), "decision": decision}
        )

    assert ("code" in query_of(answered.headers["location"])) == (decision == "allow")
    row = await pool.fetchrow(
        "SELECT actor, action, subject, details FROM audit_log WHERE action LIKE 'consent.%'"
    )
    assert row is not None
    action = "consent.granted" if decision == "allow" else "consent.denied"
    assert (row["actor"], row["action"], row["subject"]) == (
        f"user:{user.id}",
        action,
        str(user.id),
    )
    assert json.loads(row["details"]) == {"client_id": app_id, "scopes": ["openid", "email"]}
    granted = await pool.fetchval("SELECT count(*) FROM consents")
    assert granted == (1 if decision == "allow" else 0)
