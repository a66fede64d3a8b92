"""``/admin/v1/clients``: create (the secret shown once), list, get, change with If-Match, rotate
the secret, disable, enable and delete; each audited with its actor."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from idp.clock import FrozenClock
from idp.db import clients, consents
from idp.settings import Settings
from tests.admin_api import PREFIX, bearer, client_token, problem
from tests.admin_operator import Operator, audit, operator
from tests.conftest import Instance, InstanceFactory
from tests.factories import make_client
from tests.oauth.flow import REDIRECT, Authorization, app_with_refresh

NEW_REDIRECT = "https://app.example/new-callback"
WEB_APP = {
    "name": "Web app",
    "grant_types": ["authorization_code", "refresh_token"],
    "redirect_uris": [REDIRECT],
    "scopes": ["openid", "email", "offline_access"],
}


async def secret_works(http: httpx.AsyncClient, client_id: str, secret: str) -> bool:
    answer = await http.post(
        "/token", data={"grant_type": "client_credentials"}, auth=(client_id, secret)
    )
    assert answer.status_code in (200, 401), answer.text
    return answer.status_code == 200


async def created(op: Operator, body: dict[str, Any]) -> dict[str, Any]:
    answer = await op.post("/clients", body)
    assert answer.status_code == 201, answer.text
    result: dict[str, Any] = answer.json()
    return result


# -- create, get, list ------------------------------------------------------------------------
async def test_create_answers_201_with_location_and_the_secret_once_storing_only_its_digest(
    app_instance: InstanceFactory, settings: Settings
) -> None:
    async with app_instance(admin_api=True) as instance:
        pool = instance.state["pool"]
        op = await operator(instance, settings)
        answer = await op.post(
            "/clients", {"name": "Billing", "grant_types": ["client_credentials"]}
        )
        body = answer.json()
        client_id, secret = body["client_id"], body["client_secret"]
        read = await op.get(f"/clients/{client_id}")
        works = await secret_works(instance.client, client_id, secret)
        stored = await pool.fetchval(
            "SELECT secret_hash FROM clients WHERE client_id = $1", client_id
        )
        events = await audit(pool)
    assert answer.status_code == 201, answer.text
    assert answer.headers["location"] == f"/admin/v1/clients/{client_id}"
    assert answer.headers["etag"] == read.headers["etag"]
    assert (body["name"], body["public"], body["registration"]) == ("Billing", False, "operator")
    assert read.status_code == 200
    assert "client_secret" not in read.json()
    assert secret not in read.text
    assert stored == hashlib.sha256(secret.encode()).digest()
    assert works
    assert events == [("client.created", op.actor, client_id)]


async def test_an_operator_may_create_an_admin_client_which_gets_the_admin_scopes(
    app_instance: InstanceFactory, settings: Settings
) -> None:
    async with app_instance(admin_api=True) as instance:
        op = await operator(instance, settings)
        body = await created(
            op, {"name": "ci", "grant_types": ["client_credentials"], "admin": True, "scopes": []}
        )
    assert body["admin"] is True
    assert {"idp:admin", "idp:admin.read"} <= set(body["scopes"])
    assert settings.admin_audience in body["audiences"]


async def test_list_pages_through_every_client_by_cursor_without_repeats(
    app_instance: InstanceFactory, settings: Settings, clock: FrozenClock
) -> None:
    async with app_instance(admin_api=True) as instance:
        op = await operator(instance, settings)
        for number in range(4):  # two at the same instant: the client_id breaks the tie
            clock.advance(timedelta(seconds=number % 2))
            await created(op, {"name": f"app {number}", "grant_types": ["client_credentials"]})
        seen: list[str] = []
        cursor = None
        pages = 0
        while True:
            query = "/clients?limit=2" + (f"&cursor={cursor}" if cursor else "")
            page = (await op.get(query)).json()
            pages += 1
            assert pages <= 5, "the cursor does not move on"
            seen += [item["name"] for item in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        bad = await op.get("/clients?cursor=bm90LWEta2V5")
    assert sorted(seen) == sorted(["deploy", *(f"app {n}" for n in range(4))])
    assert len(seen) == len(set(seen))
    assert pages == 3
    order = {name: index for index, name in enumerate(seen)}  # by creation time, then id
    assert order["app 0"] < min(order["app 1"], order["app 2"]) < order["app 3"]
    problem(bad, 400)


async def test_an_unknown_client_is_404(app_instance: InstanceFactory, settings: Settings) -> None:
    async with app_instance(admin_api=True) as instance:
        op = await operator(instance, settings)
        missing = await op.get("/clients/no-such-client")
        nul = await op.get("/clients/a%00b")
        disabling = await op.post("/clients/no-such-client/disable")
    problem(missing, 404)
    problem(nul, 404)
    problem(disabling, 404)


# -- update -----------------------------------------------------------------------------------
async def test_update_with_the_current_etag_changes_the_client_and_is_audited(
    app_instance: InstanceFactory, settings: Settings, clock: FrozenClock
) -> None:
    async with app_instance(admin_api=True) as instance:
        pool = instance.state["pool"]
        op = await operator(instance, settings)
        client = await created(op, WEB_APP)
        path = f"/clients/{client['client_id']}"
        etag = (await op.get(path)).headers["etag"]
        clock.advance(timedelta(minutes=1))
        answer = await op.patch(
            path,
            {"name": "Renamed", "require_mfa": True, "access_token_ttl": 300},
            **{"If-Match": etag},
        )
        after = (await op.get(path)).json()
        events = await audit(pool, "client.updated")
    assert answer.status_code == 200, answer.text
    assert answer.headers["etag"] != etag
    assert (after["name"], after["require_mfa"], after["access_token_ttl"]) == (
        "Renamed",
        True,
        300,
    )
    assert after["redirect_uris"] == [REDIRECT]  # unnamed members stay
    assert after["updated_at"] > client["updated_at"]
    assert events == [("client.updated", op.actor, client["client_id"])]


async def test_a_stale_if_match_gets_412_and_changes_nothing(
    app_instance: InstanceFactory, settings: Settings
) -> None:
    async with app_instance(admin_api=True) as instance:
        pool = instance.state["pool"]
        op = await operator(instance, settings)
        client = await created(op, WEB_APP)
        path = f"/clients/{client['client_id']}"
        stale = (await op.get(path)).headers["etag"]
        first = await op.patch(path, {"name": "First"}, **{"If-Match": stale})
        before = await clients.by_id(pool, client["client_id"])
        second = await op.patch(path, {"name": "Second"}, **{"If-Match": stale})
        without = await op.patch(path, {"name": "Third"})
        after = await clients.by_id(pool, client["client_id"])
        events = await audit(pool, "client.updated")
    assert first.status_code == 200, first.text
    problem(second, 412)
    problem(without, 428)
    assert after == before
    assert after is not None
    assert after.name == "First"
    assert len(events) == 1


async def test_an_updated_redirect_uri_takes_effect_at_authorize_at_once(
    app_instance: InstanceFactory, settings: Settings
) -> None:
    async with app_instance(admin_api=True) as instance:
        op = await operator(instance, settings)
        client = await created(op, WEB_APP)
        auth = Authorization(client["client_id"], NEW_REDIRECT, scope="openid email")
        refused = await instance.client.get(auth.url())  # the registry caches the client now
        path = f"/clients/{client['client_id']}"
        etag = (await op.get(path)).headers["etag"]
        changed = await op.patch(path, {"redirect_uris": [NEW_REDIRECT]}, **{"If-Match": etag})
        accepted = await instance.client.get(auth.url())  # at once: no wait for the NOTIFY
        old = await instance.client.get(
            Authorization(client["client_id"], REDIRECT, scope="openid email").url()
        )
    assert refused.status_code == 400
    assert changed.status_code == 200, changed.text
    assert accepted.status_code == 303
    assert accepted.headers["location"].startswith("/login")
    assert old.status_code == 400


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"nmae": "typo"}, 400),
        ({"name": "bad\x00name"}, 400),
        ({"name": None}, 400),
        ({"first_party": "yes"}, 400),
        ({"redirect_uris": ["javascript:alert(1)"]}, 422),
        ({"redirect_uris": ["data:text/html,hi"]}, 422),
        ({"redirect_uris": ["http://localhost:33418/callback"]}, 422),  # it has a secret
        ({"redirect_uris": ["https://app.example/cb\x00"]}, 400),
        ({"redirect_uris": []}, 422),  # authorization_code needs one
        ({"scopes": ["idp:admin"]}, 422),
        ({"access_token_ttl": 10**9}, 400),
        ({"access_token_ttl": 0}, 400),
        ([], 400),
    ],
    ids=[
        "unknown-member",
        "nul-in-name",
        "null-name",
        "bool-as-text",
        "javascript-uri",
        "data-uri",
        "localhost-with-a-secret",
        "nul-in-uri",
        "no-redirect-uri",
        "admin-scope",
        "ttl-too-long",
        "ttl-zero",
        "not-an-object",
    ],
)
async def test_a_malformed_or_refused_update_is_a_problem_and_changes_nothing(
    body: Any, status: int, app_instance: InstanceFactory, settings: Settings
) -> None:
    async with app_instance(admin_api=True) as instance:
        pool = instance.state["pool"]
        op = await operator(instance, settings)
        client = await created(op, WEB_APP)
        path = f"/clients/{client['client_id']}"
        etag = (await op.get(path)).headers["etag"]
        before = await clients.by_id(pool, client["client_id"])
        answer = await op.patch(path, body, **{"If-Match": etag})
        after = await clients.by_id(pool, client["client_id"])
        events = await audit(pool, "client.updated")
    problem(answer, status)
    assert after == before
    assert events == []


@pytest.mark.parametrize(
    "body",
    [
        {"name": "x", "grant_types": ["authorization_code"], "redirect_uris": ["javascript:x"]},
        {"name": "x", "grant_types": ["client_credentials"], "public": True},
        {"name": "x", "grant_types": ["password"]},
        {"name": "x\x00", "grant_types": ["client_credentials"]},
        {"name": "x", "grant_types": ["client_credentials"], "secret": "mine"},
        {"name": "x", "grant_types": ["client_credentials"], "admin": True, "public": True},
    ],
    ids=["javascript-uri", "public-client-credentials", "password", "nul", "unknown", "admin-pub"],
)
async def test_a_refused_creation_is_a_problem_and_stores_nothing(
    body: dict[str, Any], app_instance: InstanceFactory, settings: Settings
) -> None:
    async with app_instance(admin_api=True) as instance:
        pool = instance.state["pool"]
        op = await operator(instance, settings)
        answer = await op.post("/clients", body)
        count = await pool.fetchval("SELECT count(*) FROM clients")
        events = await audit(pool)
    assert answer.status_code in (400, 422), answer.text
    problem(answer, answer.status_code)
    assert count == 1
    assert events == []


async def test_only_a_client_without_a_secret_may_have_a_localhost_redirect_uri(
    app_instance: InstanceFactory, settings: Settings
) -> None:
    """RFC 8252 §8.3's ``localhost`` is for native apps (idp.oauth.redirect_uris)."""
    localhost = {"redirect_uris": ["http://localhost:33418/callback"]}
    async with app_instance(admin_api=True) as instance:
        op = await operator(instance, settings)
        native = await op.post("/clients", {**WEB_APP, **localhost, "public": True})
        web = await op.post("/clients", {**WEB_APP, **localhost})
    assert native.status_code == 201, native.text
    assert native.json()["redirect_uris"] == localhost["redirect_uris"]
    assert "native apps without a secret" in problem(web, 422)["detail"]


async def test_a_self_registered_client_is_never_made_first_party(
    app_instance: InstanceFactory, settings: Settings
) -> None:
    async with app_instance(admin_api=True) as instance:
        pool = instance.state["pool"]
        op = await operator(instance, settings)
        client, _ = await make_client(
            pool, settings, grant_types=("authorization_code",), redirect_uris=(REDIRECT,)
        )
        await pool.execute(
            "UPDATE clients SET registration = 'dynamic' WHERE client_id = $1", client.client_id
        )
        path = f"/clients/{client.client_id}"
        read = await op.get(path)
        answer = await op.patch(path, {"first_party": True}, **{"If-Match": read.headers["etag"]})
        after = await clients.by_id(pool, client.client_id)
    assert read.json()["registration"] == "dynamic"
    assert "first-party" in problem(answer, 422)["detail"]
    assert after is not None
    assert after.first_party is False


# -- secret, disable, enable ------------------------------------------------------------------
async def test_a_rotated_secret_replaces_the_old_one_at_once(
    app_instance: InstanceFactory, settings: Settings
) -> None:
    async with app_instance(admin_api=True) as instance:
        pool = instance.state["pool"]
        op = await operator(instance, settings)
        client, old = await make_client(pool, settings)
        assert await secret_works(instance.client, client.client_id, old)  # cached now
        answer = await op.post(f"/clients/{client.client_id}/secret")
        new = answer.json()["client_secret"]
        old_works = await secret_works(instance.client, client.client_id, old)
        new_works = await secret_works(instance.client, client.client_id, new)
        events = await audit(pool, "client.secret")
    assert answer.status_code == 200, answer.text
    assert new
    assert new != old
    assert not old_works
    assert new_works
    assert events == [("client.secret_rotated", op.actor, client.client_id)]


async def test_a_public_client_has_no_secret_to_rotate(
    app_instance: InstanceFactory, settings: Settings
) -> None:
    async with app_instance(admin_api=True) as instance:
        op = await operator(instance, settings)
        client, _ = await make_client(
            instance.state["pool"],
            settings,
            grant_types=("authorization_code",),
            redirect_uris=(REDIRECT,),
            public=True,
        )
        answer = await op.post(f"/clients/{client.client_id}/secret")
    problem(answer, 409)


async def test_disable_refuses_the_client_and_enable_accepts_it_again_both_audited(
    app_instance: InstanceFactory, settings: Settings
) -> None:
    async with app_instance(admin_api=True) as instance:
        pool = instance.state["pool"]
        op = await operator(instance, settings)
        client, secret = await make_client(pool, settings)
        path = f"/clients/{client.client_id}"
        disabled = await op.post(path + "/disable")
        again = await op.post(path + "/disable")  # already: nothing changes, nothing recorded
        refused = await secret_works(instance.client, client.client_id, secret)
        enabled = await op.post(path + "/enable")
        works = await secret_works(instance.client, client.client_id, secret)
        events = await audit(pool)
    assert disabled.json()["disabled"] is True
    assert again.status_code == 200
    assert not refused
    assert enabled.json()["disabled"] is False
    assert works
    assert events == [
        ("client.disabled", op.actor, client.client_id),
        ("client.enabled", op.actor, client.client_id),
    ]


# -- delete -----------------------------------------------------------------------------------
HELD = {
    "authorization_codes": "SELECT count(*) FROM authorization_codes WHERE client_id = $1",
    "authorization_requests": "SELECT count(*) FROM authorization_requests WHERE client_id = $1",
    "consents": "SELECT count(*) FROM consents WHERE client_id = $1",
    "refresh_families": "SELECT count(*) FROM refresh_families WHERE client_id = $1",
    "clients": "SELECT count(*) FROM clients WHERE client_id = $1",
}


async def held(pool: asyncpg.Pool, client_id: str) -> dict[str, int]:
    return {table: await pool.fetchval(sql, client_id) for table, sql in HELD.items()}


async def signed_in_app(instance: Instance, settings: Settings) -> tuple[Any, dict[str, str]]:
    """A client holding one of everything: a consumed code, a refresh family, a consent and a
    pending authorization request."""
    pool = instance.state["pool"]
    app = await app_with_refresh(instance, pool, settings)
    tokens = await app.sign_in("openid email offline_access")
    user_id = await pool.fetchval("SELECT id FROM users WHERE email = $1", app.email)
    await consents.grant(pool, user_id, app.client_id, ["openid"], instance.state["clock"].now())
    auth = Authorization(app.client_id, REDIRECT, scope="openid email")
    pending = await instance.client.get(auth.url(prompt="login"))
    assert pending.headers["location"].startswith("/login"), pending.headers["location"]
    return app, tokens


async def test_delete_removes_the_client_and_everything_it_holds_and_ends_its_tokens(
    app_instance: InstanceFactory, settings: Settings
) -> None:
    async with app_instance(admin_api=True) as instance:
        pool = instance.state["pool"]
        op = await operator(instance, settings)
        app, tokens = await signed_in_app(instance, settings)
        before = await held(pool, app.client_id)
        answer = await op.delete(f"/clients/{app.client_id}")
        after = await held(pool, app.client_id)
        gone = await op.get(f"/clients/{app.client_id}")
        refreshed = await app.refresh(tokens["refresh_token"])
        denied = await pool.fetchval(
            "SELECT count(*) FROM revoked_access_tokens WHERE jti = $1",
            await jti_of(tokens["access_token"]),
        )
        details = await pool.fetchval(
            "SELECT details FROM audit_log WHERE action = 'client.deleted'"
        )
        events = await audit(pool, "client.deleted")
    assert all(before.values()), before  # the test deletes something of each kind
    assert answer.status_code == 204, answer.text
    assert after == dict.fromkeys(HELD, 0)
    problem(gone, 404)
    assert refreshed.status_code == 401  # the client is gone: invalid_client
    assert denied == 1  # the access token it held is deny-listed
    assert events == [("client.deleted", op.actor, app.client_id)]
    assert '"refresh_families": 1' in details
    assert '"consents": 1' in details


async def jti_of(token: str) -> str:
    """The jti of a JWT, read without checking it (the app signed it a moment ago)."""
    payload = token.split(".")[1]
    return str(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["jti"])


async def test_a_delete_with_a_stale_if_match_is_refused_and_deletes_nothing(
    app_instance: InstanceFactory, settings: Settings
) -> None:
    async with app_instance(admin_api=True) as instance:
        pool = instance.state["pool"]
        op = await operator(instance, settings)
        app, _ = await signed_in_app(instance, settings)
        path = f"/clients/{app.client_id}"
        stale = (await op.get(path)).headers["etag"]
        await op.post(path + "/disable")
        before = await held(pool, app.client_id)
        answer = await op.delete(path, **{"If-Match": stale})
        after = await held(pool, app.client_id)
        events = await audit(pool, "client.deleted")
    problem(answer, 412)
    assert after == before
    assert events == []


async def test_delete_of_an_unknown_client_is_404(
    app_instance: InstanceFactory, settings: Settings
) -> None:
    async with app_instance(admin_api=True) as instance:
        op = await operator(instance, settings)
        answer = await op.delete("/clients/no-such-client")
    problem(answer, 404)


async def test_a_read_only_token_reads_clients_but_changes_none(
    app_instance: InstanceFactory, settings: Settings
) -> None:
    async with app_instance(admin_api=True) as instance:
        pool = instance.state["pool"]
        admin, secret = await make_client(pool, settings, name="ro", scopes=(), admin=True)
        token = await client_token(instance.client, admin.client_id, secret, scope="idp:admin.read")
        client, _ = await make_client(pool, settings)
        read = await instance.client.get(
            f"{PREFIX}/clients/{client.client_id}", headers=bearer(token)
        )
        write = await instance.client.delete(
            f"{PREFIX}/clients/{client.client_id}", headers=bearer(token)
        )
        still = await clients.by_id(pool, client.client_id)
    assert read.status_code == 200
    problem(write, 403)
    assert still is not None
