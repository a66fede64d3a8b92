"""``/admin/v1/users/{user_id}/sessions`` and ``.../consents``: an operator lists a user's
sessions and connected apps and ends them, as the user's own account page does, audited with the
operator as the actor."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from datetime import timedelta

import asyncpg

from idp.clock import FrozenClock
from idp.db import consents, sessions
from idp.settings import Settings
from tests.admin_api import problem
from tests.admin_operator import audit, operator
from tests.conftest import Instance, InstanceFactory
from tests.factories import make_client, make_user
from tests.oauth.flow import App, app_with_refresh


async def add_session(
    pool: asyncpg.Pool, user_id: uuid.UUID, clock: FrozenClock, *, lasts: timedelta
) -> str:
    """A session of the user begun now, as another browser's sign-in leaves it."""
    sid = secrets.token_urlsafe(16)
    now = clock.now()
    await sessions.insert(
        pool,
        id_hash=hashlib.sha256(sid.encode()).digest(),
        sid=sid,
        user_id=user_id,
        now=now,
        expires_at=now + lasts,
        user_agent="Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0",
        ip="192.0.2.7",
    )
    return sid


async def signed_in(instance: Instance, settings: Settings) -> tuple[App, uuid.UUID, str]:
    """A user signed in to an app that got a refresh token: the app, the user and the token."""
    pool = instance.state["pool"]
    app = await app_with_refresh(instance, pool, settings)
    tokens = await app.sign_in("openid email offline_access")
    user_id = await pool.fetchval("SELECT id FROM users WHERE email = $1", app.email)
    return app, user_id, tokens["refresh_token"]


async def refresh_refused(app: App, refresh_token: str) -> bool:
    answer = await app.refresh(refresh_token)
    assert answer.status_code in (200, 400), answer.text
    return answer.status_code == 400 and answer.json()["error"] == "invalid_grant"


async def live_sids(pool: asyncpg.Pool, user_id: uuid.UUID) -> set[str]:
    rows = await pool.fetch(
        "SELECT sid FROM sessions WHERE user_id = $1 AND ended_at IS NULL", user_id
    )
    return {row["sid"] for row in rows}


# -- sessions ---------------------------------------------------------------------------------
async def test_list_pages_through_a_users_live_sessions_only(
    app_instance: InstanceFactory, settings: Settings, clock: FrozenClock
) -> None:
    async with app_instance(admin_api=True) as instance:
        pool = instance.state["pool"]
        op = await operator(instance, settings)
        _, user_id, _ = await signed_in(instance, settings)
        day = timedelta(days=1)
        clock.advance(timedelta(seconds=1))
        second = await add_session(pool, user_id, clock, lasts=day)
        third = await add_session(pool, user_id, clock, lasts=day)  # same instant: sid breaks tie
        expired = await add_session(pool, user_id, clock, lasts=timedelta(seconds=5))
        ended = await add_session(pool, user_id, clock, lasts=day)
        await pool.execute("UPDATE sessions SET ended_at = $2 WHERE sid = $1", ended, clock.now())
        clock.advance(timedelta(seconds=10))
        seen: list[str] = []
        cursor = None
        while True:
            query = f"/users/{user_id}/sessions?limit=2" + (f"&cursor={cursor}" if cursor else "")
            answer = await op.get(query)
            assert answer.status_code == 200, answer.text
            page = answer.json()
            seen += [item["sid"] for item in page["items"]]
            assert len(seen) <= 10, "the cursor does not move on"
            cursor = page["next_cursor"]
            if cursor is None:
                break
        shown = (await op.get(f"/users/{user_id}/sessions")).json()["items"]
        unknown = await op.get(f"/users/{uuid.uuid4()}/sessions")
        not_an_id = await op.get("/users/not-an-id/sessions")
    assert len(seen) == 3
    assert set(seen[1:]) == {second, third}  # the signed-in browser's began first
    assert expired not in seen
    assert ended not in seen
    assert {item["browser"] for item in shown} >= {"Firefox on Linux"}
    problem(unknown, 404)
    problem(not_an_id, 404)


async def test_ending_a_session_ends_its_refresh_family_and_is_audited_with_the_operator(
    app_instance: InstanceFactory, settings: Settings, clock: FrozenClock
) -> None:
    async with app_instance(admin_api=True) as instance:
        pool = instance.state["pool"]
        op = await operator(instance, settings)
        app, user_id, refresh_token = await signed_in(instance, settings)
        (sid,) = await live_sids(pool, user_id)
        other = await add_session(pool, user_id, clock, lasts=timedelta(days=1))
        answer = await op.delete(f"/users/{user_id}/sessions/{sid}")
        again = await op.delete(f"/users/{user_id}/sessions/{sid}")
        refused = await refresh_refused(app, refresh_token)
        left = await live_sids(pool, user_id)
        events = await audit(pool, "session.")
    assert answer.status_code == 204, answer.text
    problem(again, 404)
    assert refused
    assert left == {other}
    assert events == [("session.ended", op.actor, str(user_id))]


async def test_another_users_session_or_a_malformed_sid_is_404_and_ends_nothing(
    app_instance: InstanceFactory, settings: Settings
) -> None:
    async with app_instance(admin_api=True) as instance:
        pool = instance.state["pool"]
        op = await operator(instance, settings)
        app, user_id, refresh_token = await signed_in(instance, settings)
        (sid,) = await live_sids(pool, user_id)
        stranger = (await make_user(pool, "eve@example.com")).id
        answers = [
            await op.delete(f"/users/{stranger}/sessions/{sid}"),
            await op.delete(f"/users/{user_id}/sessions/a%00b"),
            await op.delete(f"/users/{user_id}/sessions/" + "x" * 300),
        ]
        refused = await refresh_refused(app, refresh_token)
        left = await live_sids(pool, user_id)
    for answer in answers:
        problem(answer, 404)
    assert not refused
    assert left == {sid}


async def test_ending_all_sessions_cuts_the_user_off_and_is_audited(
    app_instance: InstanceFactory, settings: Settings, clock: FrozenClock
) -> None:
    async with app_instance(admin_api=True) as instance:
        pool = instance.state["pool"]
        op = await operator(instance, settings)
        app, user_id, refresh_token = await signed_in(instance, settings)
        await add_session(pool, user_id, clock, lasts=timedelta(days=1))
        answer = await op.delete(f"/users/{user_id}/sessions")
        refused = await refresh_refused(app, refresh_token)
        left = await live_sids(pool, user_id)
        events = await audit(pool, "sessions.")
        unknown = await op.delete(f"/users/{uuid.uuid4()}/sessions")
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"sessions": 2, "refresh_families": 1, "access_tokens": 1}
    assert refused
    assert left == set()
    assert events == [("sessions.revoked", op.actor, str(user_id))]
    problem(unknown, 404)


# -- consents ---------------------------------------------------------------------------------
async def consented(instance: Instance, settings: Settings) -> tuple[App, uuid.UUID, str, str]:
    """A user with a refresh token of an app they consented to, and a second app's consent."""
    pool = instance.state["pool"]
    app, user_id, refresh_token = await signed_in(instance, settings)
    now = instance.state["clock"].now()
    await consents.grant(pool, user_id, app.client_id, ["openid", "email"], now)
    other, _ = await make_client(pool, settings, name="other")
    await consents.grant(pool, user_id, other.client_id, ["read"], now)
    return app, user_id, refresh_token, other.client_id


async def test_list_pages_through_a_users_consents_with_the_app_names(
    app_instance: InstanceFactory, settings: Settings
) -> None:
    async with app_instance(admin_api=True) as instance:
        op = await operator(instance, settings)
        app, user_id, _, other = await consented(instance, settings)
        first = (await op.get(f"/users/{user_id}/consents?limit=1")).json()
        second = (
            await op.get(f"/users/{user_id}/consents?limit=1&cursor={first['next_cursor']}")
        ).json()
        unknown = await op.get(f"/users/{uuid.uuid4()}/consents")
    items = first["items"] + second["items"]
    assert {item["client_id"] for item in items} == {app.client_id, other}
    assert second["next_cursor"] is None
    names = {item["client_id"]: item["client_name"] for item in items}
    assert names[other] == "other"
    problem(unknown, 404)


async def test_revoking_a_consent_ends_that_apps_refresh_tokens_and_is_audited(
    app_instance: InstanceFactory, settings: Settings
) -> None:
    async with app_instance(admin_api=True) as instance:
        pool = instance.state["pool"]
        op = await operator(instance, settings)
        app, user_id, refresh_token, other = await consented(instance, settings)
        answer = await op.delete(f"/users/{user_id}/consents/{app.client_id}")
        again = await op.delete(f"/users/{user_id}/consents/{app.client_id}")
        nul = await op.delete(f"/users/{user_id}/consents/a%00b")
        refused = await refresh_refused(app, refresh_token)
        left = (await op.get(f"/users/{user_id}/consents")).json()["items"]
        events = await audit(pool, "consent.")
        sessions_left = await live_sids(pool, user_id)
    assert answer.status_code == 204, answer.text
    problem(again, 404)
    problem(nul, 404)
    assert refused
    assert [item["client_id"] for item in left] == [other]
    assert events == [("consent.revoked", op.actor, str(user_id))]
    assert len(sessions_left) == 1  # the user's sign-in stays


async def test_a_read_only_token_lists_sessions_but_cannot_end_them(
    app_instance: InstanceFactory, settings: Settings
) -> None:
    async with app_instance(admin_api=True) as instance:
        pool = instance.state["pool"]
        reader = await operator(instance, settings, scope="idp:admin.read")
        _, user_id, _ = await signed_in(instance, settings)
        listed = await reader.get(f"/users/{user_id}/sessions")
        ending = await reader.delete(f"/users/{user_id}/sessions")
        left = await live_sids(pool, user_id)
    assert listed.status_code == 200
    problem(ending, 403)
    assert len(left) == 1
