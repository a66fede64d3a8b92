"""``/admin/v1/keys``: list, rotate and revoke the signing keys as ``idp keys`` does."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import httpx

from idp.clock import FrozenClock
from idp.keys.lifecycle import FORCED_ROTATION
from idp.settings import Settings
from tests.admin_api import PREFIX, admin_caller, bearer, problem
from tests.conftest import InstanceFactory
from tests.helpers import idp, key_states


async def _jwks_kids(http: httpx.AsyncClient) -> set[str]:
    answer = await http.get("/jwks.json")
    assert answer.status_code == 200
    return {key["kid"] for key in answer.json()["keys"]}


async def _served_kids_become(http: httpx.AsyncClient, wanted: set[str]) -> set[str]:
    """The JWKS once the keyring has reloaded on the change's NOTIFY (bounded wait)."""
    async with asyncio.timeout(10):
        # The keyring reloads in its own task, on the NOTIFY the change sent
        while (kids := await _jwks_kids(http)) != wanted:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
    return kids


async def _published(pool: asyncpg.Pool) -> set[str]:
    return {
        kid
        for kid, state in (await key_states(pool)).items()
        if state != "retired" and state != "revoked"
    }


async def _audited(pool: asyncpg.Pool, action: str) -> list[dict[str, Any]]:
    rows = await pool.fetch(
        "SELECT actor, subject, reason FROM audit_log WHERE action = $1 ORDER BY id", action
    )
    return [dict(row) for row in rows]


async def test_keys_list_shows_what_the_cli_lists(
    app_instance: InstanceFactory, settings: Settings, cli_env: dict[str, str]
) -> None:
    async with app_instance(admin_api=True) as instance:
        token, _ = await admin_caller(instance.client, instance.state["pool"], settings)
        answer = await instance.client.get(f"{PREFIX}/keys", headers=bearer(token))
    assert answer.status_code == 200, answer.text
    listed = await idp(cli_env, "keys", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    by_cli = json.loads(listed.stdout)
    by_api = answer.json()["items"]
    assert [key["kid"] for key in by_api] == [key["kid"] for key in by_cli]
    for api_key, cli_key in zip(by_api, by_cli, strict=True):
        assert set(api_key) == set(cli_key)
        for name, value in cli_key.items():
            if name.endswith("_at") and value is not None:
                assert datetime.fromisoformat(api_key[name]) == datetime.fromisoformat(value)
            else:
                assert api_key[name] == value, name
    assert {key["state"] for key in by_api} == {"active", "pending"}


async def test_rotation_through_the_api_changes_the_signer_and_the_jwks_and_is_audited(
    app_instance: InstanceFactory, settings: Settings, clock: FrozenClock
) -> None:
    async with app_instance(admin_api=True) as instance:
        pool = instance.state["pool"]
        before = await _jwks_kids(instance.client)
        old_signer = instance.state["keyring"].snapshot.signer.kid
        clock.advance(settings.min_publication + timedelta(minutes=1))
        token, actor = await admin_caller(instance.client, instance.state["pool"], settings)
        answer = await instance.client.post(
            f"{PREFIX}/keys/rotate", json={"force": False}, headers=bearer(token)
        )
        assert answer.status_code == 200, answer.text
        rotated = answer.json()
        assert rotated["forced"] is False
        assert rotated["kid"] != old_signer
        served = await _served_kids_become(instance.client, await _published(pool))
        assert served != before
        assert old_signer in served  # the old key stays published, retiring
        assert instance.state["keyring"].snapshot.signer.kid == rotated["kid"]
        audited = await _audited(pool, "key.activated")
    assert audited[-1]["actor"] == actor
    assert audited[-1]["subject"] == rotated["kid"]


async def test_a_rotation_too_soon_is_a_409_saying_when_it_will_work_unless_forced(
    app_instance: InstanceFactory, settings: Settings, clock: FrozenClock
) -> None:
    async with app_instance(admin_api=True) as instance:
        pool = instance.state["pool"]
        states = await key_states(pool)
        token, actor = await admin_caller(instance.client, instance.state["pool"], settings)
        refused = await instance.client.post(
            f"{PREFIX}/keys/rotate", json={"force": False}, headers=bearer(token)
        )
        body = problem(refused, 409)
        assert "rotate again in" in body["detail"]
        retry_at = datetime.fromisoformat(body["retry_at"])
        assert retry_at > clock.now()
        assert await key_states(pool) == states  # nothing changed

        clock.set(retry_at)
        token, actor = await admin_caller(instance.client, instance.state["pool"], settings)
        ready = await instance.client.post(
            f"{PREFIX}/keys/rotate", json={"force": False}, headers=bearer(token)
        )
        assert ready.status_code == 200, ready.text
        early = await instance.client.post(
            f"{PREFIX}/keys/rotate", json={"force": True}, headers=bearer(token)
        )
        assert early.status_code == 200, early.text
        assert early.json()["forced"] is True
        reasons = await _audited(pool, "key.activated")
    assert reasons[-1] == {
        "actor": actor,
        "subject": early.json()["kid"],
        "reason": FORCED_ROTATION,
    }


async def test_revocation_through_the_api_unpublishes_the_key_and_is_audited(
    app_instance: InstanceFactory, settings: Settings
) -> None:
    async with app_instance(admin_api=True) as instance:
        pool = instance.state["pool"]
        signer = instance.state["keyring"].snapshot.signer.kid
        token, actor = await admin_caller(instance.client, instance.state["pool"], settings)
        answer = await instance.client.post(
            f"{PREFIX}/keys/{signer}/revoke",
            json={"reason": "laptop stolen"},
            headers=bearer(token),
        )
        assert answer.status_code == 200, answer.text
        assert {"change": "revoke", "kid": signer} in answer.json()["changes"]
        served = await _served_kids_become(instance.client, await _published(pool))
        assert signer not in served
        assert instance.state["keyring"].snapshot.signer.kid != signer
        audited = await _audited(pool, "key.revoked")
    assert audited == [{"actor": actor, "subject": signer, "reason": "laptop stolen"}]


async def test_revoking_an_unknown_or_revoked_key_or_without_a_reason_is_refused(
    app_instance: InstanceFactory, settings: Settings
) -> None:
    async with app_instance(admin_api=True) as instance:
        pool = instance.state["pool"]
        token, _ = await admin_caller(instance.client, instance.state["pool"], settings)
        # The pending key: revoking the pending would also end the token these calls carry
        # (signed by it), once this process's keyring hears of the revocation.
        pending = next(kid for kid, state in (await key_states(pool)).items() if state == "pending")
        unknown = await instance.client.post(
            f"{PREFIX}/keys/nope/revoke", json={"reason": "x"}, headers=bearer(token)
        )
        unstorable = await instance.client.post(  # NUL: no text column can hold it
            f"{PREFIX}/keys/a%00b/revoke", json={"reason": "x"}, headers=bearer(token)
        )
        blank = await instance.client.post(
            f"{PREFIX}/keys/{pending}/revoke", json={"reason": "   "}, headers=bearer(token)
        )
        missing = await instance.client.post(
            f"{PREFIX}/keys/{pending}/revoke", json={}, headers=bearer(token)
        )
        states = await key_states(pool)
        first = await instance.client.post(
            f"{PREFIX}/keys/{pending}/revoke", json={"reason": "leak"}, headers=bearer(token)
        )
        again = await instance.client.post(
            f"{PREFIX}/keys/{pending}/revoke", json={"reason": "leak"}, headers=bearer(token)
        )
    assert "no signing key with kid 'nope'" in problem(unknown, 404)["detail"]
    problem(unstorable, 404)
    problem(blank, 422)
    problem(missing, 400)
    assert states[pending] == "pending"  # the refusals changed nothing
    assert first.status_code == 200
    assert f"key {pending} is already revoked" in problem(again, 409)["detail"]


async def test_a_read_only_token_lists_keys_but_may_not_rotate_or_revoke(
    app_instance: InstanceFactory, settings: Settings
) -> None:
    async with app_instance(admin_api=True) as instance:
        token, _ = await admin_caller(
            instance.client, instance.state["pool"], settings, scope="idp:admin.read"
        )
        signer = instance.state["keyring"].snapshot.signer.kid
        listed = await instance.client.get(f"{PREFIX}/keys", headers=bearer(token))
        rotate = await instance.client.post(
            f"{PREFIX}/keys/rotate", json={"force": True}, headers=bearer(token)
        )
        revoke = await instance.client.post(
            f"{PREFIX}/keys/{signer}/revoke", json={"reason": "x"}, headers=bearer(token)
        )
    assert listed.status_code == 200
    problem(rotate, 403)
    problem(revoke, 403)


async def test_a_refused_rotation_tells_the_api_caller_to_send_force_true_not_the_cli_flag(
    app_instance: InstanceFactory, settings: Settings
) -> None:
    async with app_instance(admin_api=True) as instance:
        token, _ = await admin_caller(instance.client, instance.state["pool"], settings)
        refused = await instance.client.post(
            f"{PREFIX}/keys/rotate", json={"force": False}, headers=bearer(token)
        )
    detail = problem(refused, 409)["detail"]
    assert detail.endswith('or now with "force": true'), detail
    assert "--force" not in detail


async def test_a_blank_reason_is_refused_without_naming_the_cli_option(
    app_instance: InstanceFactory, settings: Settings
) -> None:
    async with app_instance(admin_api=True) as instance:
        token, _ = await admin_caller(instance.client, instance.state["pool"], settings)
        signer = instance.state["keyring"].snapshot.signer.kid
        blank = await instance.client.post(
            f"{PREFIX}/keys/{signer}/revoke", json={"reason": " "}, headers=bearer(token)
        )
    detail = problem(blank, 422)["detail"]
    assert "reason" in detail
    assert "--reason" not in detail


async def test_revoking_every_key_unpublishes_them_all_signs_with_a_new_key_and_ends_every_token(
    app_instance: InstanceFactory, settings: Settings
) -> None:
    """``idp keys revoke --all`` through the API: the pending key goes too (in the incident it is
    for, every stored key may be known), and the caller's own token stops working."""
    async with app_instance(admin_api=True) as instance:
        pool = instance.state["pool"]
        before = await _published(pool)
        token, actor = await admin_caller(instance.client, pool, settings)
        answer = await instance.client.post(
            f"{PREFIX}/keys/revoke",
            json={"all": True, "reason": "key-encryption key leaked"},
            headers=bearer(token),
        )
        assert answer.status_code == 200, answer.text
        changes = answer.json()["changes"]
        assert {change["kid"] for change in changes if change["change"] == "revoke"} == before
        assert [change["change"] for change in changes].count("createkey") == 2
        after = await _published(pool)
        served = await _served_kids_become(instance.client, after)
        assert not served & before
        assert instance.state["keyring"].snapshot.signer.kid in after
        ended = await instance.client.get(f"{PREFIX}/keys", headers=bearer(token))
        fresh, _ = await admin_caller(instance.client, pool, settings)
        listed = await instance.client.get(f"{PREFIX}/keys", headers=bearer(fresh))
        audited = await _audited(pool, "key.revoked")
    problem(ended, 401)
    assert listed.status_code == 200
    assert sorted(row["subject"] for row in audited) == sorted(before)
    assert {(row["actor"], row["reason"]) for row in audited} == {
        (actor, "key-encryption key leaked")
    }


async def test_revoking_every_key_needs_all_true_and_a_reason_and_a_write_token(
    app_instance: InstanceFactory, settings: Settings
) -> None:
    async with app_instance(admin_api=True) as instance:
        pool = instance.state["pool"]
        states = await key_states(pool)
        token, _ = await admin_caller(instance.client, pool, settings)
        reader, _ = await admin_caller(instance.client, pool, settings, scope="idp:admin.read")
        url = f"{PREFIX}/keys/revoke"
        bodies: list[dict[str, object]] = [
            {},
            {"reason": "x"},
            {"all": False, "reason": "x"},
            {"all": "true", "reason": "x"},
            {"all": 1, "reason": "x"},
            {"all": True},
            {"all": True, "reason": "x", "y": 1},
        ]
        refused = [
            await instance.client.post(url, json=body, headers=bearer(token)) for body in bodies
        ]
        blank = await instance.client.post(
            url, json={"all": True, "reason": "  "}, headers=bearer(token)
        )
        read_only = await instance.client.post(
            url, json={"all": True, "reason": "x"}, headers=bearer(reader)
        )
        after = await key_states(pool)
        audited = await _audited(pool, "key.revoked")
    for answer in refused:
        problem(answer, 400)
    problem(blank, 422)
    problem(read_only, 403)
    assert after == states
    assert audited == []
