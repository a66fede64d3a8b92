"""The refresh rule (idp.db.refresh_rule) over every state a family and a presented token can be
in. Each state is built for real, through the endpoints and the database; then each condition in
SQL and in Python, the rotation statement against PostgreSQL, the grant's diagnosis (``judge``)
and introspection's ``RefreshState.active`` must agree on it, and /introspect and /token must
answer accordingly."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta

import asyncpg
import httpx
import pytest

from idp.clock import FrozenClock
from idp.db import clients, refresh_rule, refresh_tokens, token_status
from idp.db.clients import Client
from idp.db.refresh_rule import Condition
from idp.oauth import refresh_format
from idp.oauth.grants.refresh_token import Verdict, judge
from idp.oauth.params import parse_scope
from idp.settings import Settings
from tests.conftest import InstanceFactory
from tests.factories import assert_oauth_error, make_client, make_user
from tests.oauth.flow import Authorization, authorize_code, exchange_code, introspect

REDIRECT = "https://app.example/callback"
PASSWORD = "correct horse battery"
GRACE = timedelta(seconds=30)
IDLE_TTL = timedelta(hours=1)
TTL = timedelta(hours=3)
SECOND = timedelta(seconds=1)


@dataclass
class Scene:
    """A client with the refresh_token grant, another such client, and the tokens of the one
    family the first client got by a sign-in, oldest first."""

    http: httpx.AsyncClient
    pool: asyncpg.Pool
    clock: FrozenClock
    settings: Settings
    client: Client
    secret: str
    other: Client
    other_secret: str
    tokens: list[str] = field(default_factory=list)

    def auth(self, *, other: bool = False) -> tuple[str, str]:
        client, secret = (self.other, self.other_secret) if other else (self.client, self.secret)
        return client.client_id, secret

    async def post(
        self, token: str, *, other: bool = False, scope: str | None = None
    ) -> httpx.Response:
        form = {"grant_type": "refresh_token", "refresh_token": token}
        if scope is not None:
            form["scope"] = scope
        return await self.http.post("/token", auth=self.auth(other=other), data=form)

    async def refresh(self) -> None:
        response = await self.post(self.tokens[-1])
        assert response.status_code == 200, response.text
        self.tokens.append(response.json()["refresh_token"])


@dataclass(frozen=True)
class Attempt:
    """A token presented to /token: by the family's client or the other one, with a scope."""

    token: str
    other: bool = False
    scope: str | None = None


async def current(scene: Scene) -> Attempt:
    await scene.refresh()
    return Attempt(scene.tokens[-1])


async def current_narrower(scene: Scene) -> Attempt:
    return Attempt(scene.tokens[-1], scope="openid")


async def current_wider(scene: Scene) -> Attempt:
    return Attempt(scene.tokens[-1], scope="openid email roles")


async def previous(scene: Scene) -> Attempt:
    await scene.refresh()
    return Attempt(scene.tokens[0])


async def previous_after_grace(scene: Scene) -> Attempt:
    await scene.refresh()
    scene.clock.advance(GRACE + SECOND)
    return Attempt(scene.tokens[0])


async def older_generation(scene: Scene) -> Attempt:
    await scene.refresh()
    await scene.refresh()
    return Attempt(scene.tokens[0])


async def forged_earlier_generation(scene: Scene) -> Attempt:
    await scene.refresh()
    handle = scene.tokens[0].split(".")[0]
    return Attempt(f"{handle}.0.{secrets.token_urlsafe(32)}")


async def mangled_current(scene: Scene) -> Attempt:
    token = scene.tokens[-1]
    return Attempt(token[:-1] + ("A" if token[-1] != "A" else "B"))


async def generation_not_issued(scene: Scene) -> Attempt:
    """A genuine token of the next generation, which only the server can make."""
    presented = refresh_format.parse(scene.tokens[-1])
    assert presented is not None
    key = refresh_format.secret_key(scene.settings)
    return Attempt(refresh_format.successor(presented, key).token)


async def unknown_family(scene: Scene) -> Attempt:
    return Attempt(f"{secrets.token_urlsafe(16)}.0.{secrets.token_urlsafe(32)}")


async def other_client(scene: Scene) -> Attempt:
    return Attempt(scene.tokens[-1], other=True)


async def other_client_earlier_generation(scene: Scene) -> Attempt:
    await scene.refresh()
    return Attempt(scene.tokens[0], other=True)


async def expired_idle(scene: Scene) -> Attempt:
    scene.clock.advance(IDLE_TTL + SECOND)
    return Attempt(scene.tokens[-1])


async def expired_absolute(scene: Scene) -> Attempt:
    for _ in range(3):  # used every 50 minutes: never idle, but the family ages
        scene.clock.advance(timedelta(minutes=50))
        await scene.refresh()
    scene.clock.advance(timedelta(minutes=31))  # 3 h 01 after the sign-in
    return Attempt(scene.tokens[-1])


async def revoked(scene: Scene) -> Attempt:
    await revoke(scene, scene.tokens[-1])
    return Attempt(scene.tokens[-1])


async def revoked_earlier_generation(scene: Scene) -> Attempt:
    await scene.refresh()
    await revoke(scene, scene.tokens[-1])
    return Attempt(scene.tokens[0])


async def revoke(scene: Scene, token: str) -> None:
    auth = (scene.client.client_id, scene.secret)
    response = await scene.http.post("/revoke", auth=auth, data={"token": token})
    assert response.status_code == 200, response.text


async def disabled_user(scene: Scene) -> Attempt:
    await scene.pool.execute("UPDATE users SET disabled = true")
    return Attempt(scene.tokens[-1])


async def disabled_client(scene: Scene) -> Attempt:
    assert await clients.disable(scene.pool, scene.client.client_id)
    return Attempt(scene.tokens[-1])


@dataclass(frozen=True)
class State:
    build: Callable[[Scene], Awaitable[Attempt]]
    verdict: Verdict
    grace: timedelta = GRACE
    answer: tuple[int, str] | None = None  # /token's, when not the verdict's


# Every state, and what the rule makes of it.
STATES = {
    "current": State(current, Verdict.ROTATE),
    "current-narrower-scope": State(current_narrower, Verdict.ROTATE),
    "current-wider-scope": State(current_wider, Verdict.WIDER_SCOPE),
    "previous-within-grace": State(previous, Verdict.RETRY),
    "previous-after-grace": State(previous_after_grace, Verdict.REUSE),
    "previous-without-grace": State(previous, Verdict.REUSE, grace=timedelta(0)),
    "older-generation": State(older_generation, Verdict.REUSE),
    "forged-earlier-generation": State(forged_earlier_generation, Verdict.FORGED),
    "mangled-current": State(mangled_current, Verdict.FORGED),
    "generation-not-issued": State(generation_not_issued, Verdict.NOT_ISSUED),
    "unknown-family": State(unknown_family, Verdict.UNKNOWN),
    "other-client": State(other_client, Verdict.OTHER_CLIENT),
    "other-client-earlier-generation": State(other_client_earlier_generation, Verdict.OTHER_CLIENT),
    "expired-idle": State(expired_idle, Verdict.IDLE_EXPIRED),
    "expired-absolute": State(expired_absolute, Verdict.EXPIRED),
    "revoked": State(revoked, Verdict.REVOKED),
    "revoked-earlier-generation": State(revoked_earlier_generation, Verdict.REVOKED),
    # Disabling a user revokes their families (migration 0011).
    "disabled-user": State(disabled_user, Verdict.REVOKED),
    # The rule holds, but client authentication turns a disabled client away before it.
    "disabled-client": State(disabled_client, Verdict.ROTATE, answer=(401, "invalid_client")),
}


async def refresh_client(pool: asyncpg.Pool, settings: Settings) -> tuple[Client, str]:
    return await make_client(
        pool, settings, grant_types=("authorization_code", "refresh_token"),
        redirect_uris=(REDIRECT,), scopes=("openid", "email", "roles"), first_party=True,
    )  # fmt: skip


async def signed_in(
    http: httpx.AsyncClient, pool: asyncpg.Pool, settings: Settings, clock: FrozenClock
) -> Scene:
    client, secret = await refresh_client(pool, settings)
    other, other_secret = await refresh_client(pool, settings)
    user = await make_user(pool, password=PASSWORD)
    auth = Authorization(client.client_id, REDIRECT, scope="openid email")
    code = await authorize_code(http, auth, user.email, PASSWORD)
    response = await exchange_code(http, client.client_id, secret, code, auth)
    assert response.status_code == 200, response.text
    scene = Scene(http, pool, clock, settings, client, secret, other, other_secret)
    scene.tokens.append(response.json()["refresh_token"])
    return scene


# Each condition of the rule in SQL, as the rotation binds its parameters ($4 and $6, typed
# here, belong to its SET list), on the family's row; NULL is false, as in a WHERE.
CONDITIONS_IN_SQL = """
SELECT {columns}
FROM refresh_families f, (SELECT $4::bytea, $6::interval) AS set_list
WHERE f.handle_hash = $1
""".format(
    columns=", ".join(
        f"COALESCE({sql}, false) AS {condition.name.lower()}"
        for condition, sql in refresh_rule.SQL.items()
    )
)


async def failed_in_sql(
    pool: asyncpg.Pool,
    presented: refresh_format.Presented,
    client_id: str,
    requested: list[str] | None,
    scene: Scene,
) -> frozenset[Condition]:
    row = await pool.fetchrow(
        CONDITIONS_IN_SQL,
        presented.handle_hash,
        presented.token_hash,
        scene.clock.now(),
        b"",
        client_id,
        timedelta(0),
        [] if requested is None else requested,  # none asked: contained in any scope
    )
    assert row is not None
    return frozenset(condition for condition in Condition if not row[condition.name.lower()])


async def statement_matches(
    pool: asyncpg.Pool,
    presented: refresh_format.Presented,
    client_id: str,
    requested: list[str] | None,
    scene: Scene,
) -> bool:
    """Whether the real rotation matches the family's row; rolled back, so nothing changes."""
    successor = refresh_format.successor(presented, refresh_format.secret_key(scene.settings))
    async with pool.acquire() as connection:
        transaction = connection.transaction()
        await transaction.start()
        try:
            rotated = await refresh_tokens.rotate(
                connection,
                presented.handle_hash,
                presented.token_hash,
                scene.clock.now(),
                successor.token_hash,
                client_id,
                IDLE_TTL,
                requested,
            )
        finally:
            await transaction.rollback()
    return rotated is not None


FAMILY_STATE = "SELECT generation, revoked_at IS NOT NULL AS revoked FROM refresh_families"


@pytest.mark.parametrize("state", STATES.values(), ids=STATES.keys())
async def test_the_rotation_and_the_diagnosis_agree_on_every_state(
    app_instance: InstanceFactory,
    pool: asyncpg.Pool,
    settings: Settings,
    clock: FrozenClock,
    state: State,
) -> None:
    """On the state as built: each condition is met or not alike in SQL and in Python; the
    diagnosis names the state's verdict; the real rotation matches exactly when that verdict is
    ROTATE; introspection calls the token active exactly when the rule holds but for the scope
    (it asks none). Then, on a fresh app instance, /introspect says the same and /token answers
    as the verdict says: 200 for a
    rotation (the family one generation on) or a retry (the same successor again), else the
    error, the family revoked only by a reuse or already."""
    overrides = {
        "refresh_reuse_grace": state.grace,
        "refresh_idle_ttl": IDLE_TTL,
        "refresh_token_ttl": TTL,
    }
    async with app_instance(**overrides) as instance:
        scene = await signed_in(instance.client, pool, settings, clock)
        attempt = await state.build(scene)
    presented = refresh_format.parse(attempt.token)
    assert presented is not None
    client_id = (scene.other if attempt.other else scene.client).client_id
    requested = parse_scope(attempt.scope)
    now = clock.now()

    family = await refresh_tokens.find(pool, presented.handle_hash)
    key = refresh_format.secret_key(settings)
    verdict = judge(family, presented, client_id, requested, now, grace=state.grace, key=key)
    assert verdict is state.verdict
    if family is not None:
        failed = refresh_rule.failed(family, presented.token_hash, client_id, now, requested)
        assert await failed_in_sql(pool, presented, client_id, requested, scene) == failed
    matches = await statement_matches(pool, presented, client_id, requested, scene)
    assert matches is (verdict is Verdict.ROTATE)
    # Introspection (RFC 7662 §2.2) asks no scope: active exactly when the rule holds but for one.
    active = verdict in (Verdict.ROTATE, Verdict.WIDER_SCOPE)
    found = await token_status.refresh_state(pool, presented.handle_hash, presented.token_hash)
    assert (found is not None and found.active(now, client_id)) is active

    before = await pool.fetchrow(FAMILY_STATE)
    assert before is not None
    async with app_instance(**overrides) as instance:  # a new one: no client or user cached
        scene.http = instance.client
        if state.answer is None:
            body = await introspect(scene.http, scene.auth(other=attempt.other), attempt.token)
            assert body["active"] is active
        response = await scene.post(attempt.token, other=attempt.other, scope=attempt.scope)
    after = await pool.fetchrow(FAMILY_STATE)
    assert after is not None
    if state.answer is not None:
        assert_oauth_error(response, *state.answer)
        assert after == before
    elif verdict in (Verdict.ROTATE, Verdict.RETRY):
        assert response.status_code == 200, response.text
        if verdict is Verdict.RETRY:  # the very answer the family's client got
            assert response.json()["refresh_token"] == scene.tokens[1]
        assert after["generation"] == before["generation"] + (verdict is Verdict.ROTATE)
        assert not after["revoked"]
    else:
        error = "invalid_scope" if verdict is Verdict.WIDER_SCOPE else "invalid_grant"
        assert_oauth_error(response, 400, error)
        assert after["generation"] == before["generation"]
        assert after["revoked"] is (verdict in (Verdict.REUSE, Verdict.REVOKED))
