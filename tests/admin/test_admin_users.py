"""``/admin/v1/users``: operators' changes to users through the management API, each audited
with the caller, refused as RFC 9457 problems when the input or the precondition is wrong."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import pyotp
import pytest

from idp.db import passkeys, second_factors
from idp.db.passkeys import Passkey
from idp.passwords import Passwords
from idp.settings import Settings
from tests.admin_api import (
    PREFIX,
    admin_caller,
    audit_of,
    bearer,
    problem,
    user_admin_token,
)
from tests.conftest import Instance, InstanceFactory
from tests.factories import enrol_totp, make_user, queued_mail
from tests.oauth.flow import app_with_refresh

NEW_PASSWORD = "correct horse battery staple 42"


@dataclass
class Api:
    """An app with the management API on, and an admin client's token (``idp:admin``)."""

    instance: Instance
    http: httpx.AsyncClient
    pool: asyncpg.Pool
    token: str
    actor: str

    async def call(
        self,
        method: str,
        path: str,
        *,
        etag: str | None = None,
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        sent = bearer(self.token, **(headers or {}))
        if etag is not None:
            sent["If-Match"] = etag
        return await self.http.request(method, PREFIX + path, headers=sent, **kwargs)

    async def etag(self, user_id: object) -> str:
        answer = await self.call("GET", f"/users/{user_id}")
        assert answer.status_code == 200, answer.text
        return answer.headers["etag"]

    async def mail(self) -> list[tuple[str, str]]:
        found = await queued_mail(self.pool, self.instance.state["mailing"].outbox)
        return [(mail.to, mail.template) for mail in found]


async def operator_events(api: Api, subject: object) -> list[tuple[str, str]]:
    """The audit events about ``subject`` but the user's own sign-ins."""
    events = await audit_of(api.pool, subject)
    return [(actor, action) for actor, action in events if not action.startswith("login.")]


@pytest.fixture
async def api(app_instance: InstanceFactory, settings: Settings) -> AsyncIterator[Api]:
    async with app_instance(admin_api=True) as instance:
        pool = instance.state["pool"]
        token, actor = await admin_caller(instance.client, pool, settings)
        yield Api(instance, instance.client, pool, token, actor)


async def test_patch_changes_name_email_and_roles_and_is_audited_with_the_client(
    api: Api,
) -> None:
    user = await make_user(api.pool, "bob@example.com", roles=("staff",))
    await api.pool.execute("UPDATE users SET email_verified = true WHERE id = $1", user.id)
    etag = await api.etag(user.id)

    answer = await api.call(
        "PATCH",
        f"/users/{user.id}",
        etag=etag,
        json={"name": "Robert", "email": "robert@example.com", "roles": ["ops", "admin", "ops"]},
    )

    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["name"], body["email"], body["roles"]) == (
        "Robert",
        "robert@example.com",
        ["admin", "ops"],
    )
    assert body["email_verified"] is False  # a new address is unproven
    assert answer.headers["etag"] != etag
    assert answer.headers["etag"] == await api.etag(user.id)
    assert (api.actor, "user.updated") in await audit_of(api.pool, user.id)
    details = await api.pool.fetchval(
        "SELECT details FROM audit_log WHERE action = 'user.updated' AND subject = $1",
        str(user.id),
    )
    assert json.loads(details) == {"changed": ["email", "name", "roles", "email_verified"]}


async def test_patch_with_null_name_clears_it_and_leaves_the_rest(api: Api) -> None:
    user = await make_user(api.pool, "bob@example.com", roles=("staff",))
    answer = await api.call(
        "PATCH", f"/users/{user.id}", etag=await api.etag(user.id), json={"name": None}
    )
    assert answer.status_code == 200, answer.text
    assert (answer.json()["name"], answer.json()["roles"]) == (None, ["staff"])


async def test_a_new_address_voids_the_links_mailed_to_the_old_one(api: Api) -> None:
    user = await make_user(api.pool, "bob@example.com")
    sent = await api.call("POST", f"/users/{user.id}/reset-mail")
    assert sent.status_code == 202, sent.text
    answer = await api.call(
        "PATCH",
        f"/users/{user.id}",
        etag=await api.etag(user.id),
        json={"email": "robert@example.com"},
    )
    assert answer.status_code == 200, answer.text
    live = await api.pool.fetchval(
        "SELECT count(*) FROM mail_tokens WHERE user_id = $1 AND used_at IS NULL", user.id
    )
    assert live == 0


async def test_a_stale_etag_gets_412_and_the_row_is_unchanged(api: Api) -> None:
    user = await make_user(api.pool, "bob@example.com")
    stale = await api.etag(user.id)
    first = await api.call("PATCH", f"/users/{user.id}", etag=stale, json={"name": "Bobby"})
    assert first.status_code == 200, first.text

    second = await api.call("PATCH", f"/users/{user.id}", etag=stale, json={"name": "Rob"})

    problem(second, 412)
    assert await api.pool.fetchval("SELECT name FROM users WHERE id = $1", user.id) == "Bobby"
    assert [action for _, action in await audit_of(api.pool, user.id)] == ["user.updated"]


async def test_two_patches_from_the_same_etag_at_once_one_wins_the_other_gets_412(
    api: Api,
) -> None:
    user = await make_user(api.pool, "bob@example.com")
    etag = await api.etag(user.id)
    answers = await asyncio.gather(
        *(
            api.call("PATCH", f"/users/{user.id}", etag=etag, json={"name": name})
            for name in ("Rob", "Bobby")
        )
    )
    assert sorted(answer.status_code for answer in answers) == [200, 412]
    [won] = [answer for answer in answers if answer.status_code == 200]
    name = await api.pool.fetchval("SELECT name FROM users WHERE id = $1", user.id)
    assert name == won.json()["name"]


async def test_a_patch_without_if_match_gets_428_and_changes_nothing(api: Api) -> None:
    user = await make_user(api.pool, "bob@example.com")
    answer = await api.call("PATCH", f"/users/{user.id}", json={"name": "Rob"})
    problem(answer, 428)
    assert await api.pool.fetchval("SELECT name FROM users WHERE id = $1", user.id) == "Alice"


async def test_an_address_another_user_has_gets_409(api: Api) -> None:
    await make_user(api.pool, "carol@example.com")
    user = await make_user(api.pool, "bob@example.com")
    answer = await api.call(
        "PATCH",
        f"/users/{user.id}",
        etag=await api.etag(user.id),
        json={"email": "CAROL@example.com"},
    )
    problem(answer, 409)
    assert await api.pool.fetchval("SELECT email FROM users WHERE id = $1", user.id) == (
        "bob@example.com"
    )


async def test_disable_ends_sessions_and_refresh_tokens_and_enable_lets_the_user_back(
    api: Api, settings: Settings
) -> None:
    app = await app_with_refresh(api.instance, api.pool, settings)
    tokens = await app.sign_in()
    user_id = await api.pool.fetchval("SELECT id FROM users WHERE email = $1", app.email)

    disabled = await api.call("POST", f"/users/{user_id}/disable")

    assert disabled.status_code == 200, disabled.text
    assert disabled.json()["disabled"] is True
    assert disabled.headers["etag"] == await api.etag(user_id)
    assert (await app.refresh(tokens["refresh_token"])).status_code == 400
    live = await api.pool.fetchval(
        "SELECT count(*) FROM sessions WHERE user_id = $1 AND ended_at IS NULL", user_id
    )
    assert live == 0
    denied = await api.pool.fetchval("SELECT count(*) FROM revoked_access_tokens")
    assert denied >= 1
    enabled = await api.call("POST", f"/users/{user_id}/enable")
    assert enabled.status_code == 200, enabled.text
    assert enabled.json()["disabled"] is False
    assert await operator_events(api, user_id) == [
        (api.actor, "user.disabled"),
        (api.actor, "sessions.revoked"),
        (api.actor, "user.enabled"),
    ]


async def test_set_password_applies_the_policy_ends_sessions_and_tells_the_owner(
    api: Api, settings: Settings
) -> None:
    app = await app_with_refresh(api.instance, api.pool, settings)
    tokens = await app.sign_in()
    user_id = await api.pool.fetchval("SELECT id FROM users WHERE email = $1", app.email)

    weak = await api.call("POST", f"/users/{user_id}/password", json={"password": "short"})
    body = problem(weak, 422)
    assert "Use at least" in body["detail"]
    assert body["errors"]

    answer = await api.call("POST", f"/users/{user_id}/password", json={"password": NEW_PASSWORD})

    assert answer.status_code == 200, answer.text
    assert answer.json()["sessions"] == 1
    assert answer.json()["refresh_families"] == 1
    hashed = await api.pool.fetchval("SELECT password_hash FROM users WHERE id = $1", user_id)
    assert Passwords("test").verify_sync(hashed, NEW_PASSWORD).ok
    assert (await app.refresh(tokens["refresh_token"])).status_code == 400
    assert (app.email, "password_changed") in await api.mail()
    assert await operator_events(api, user_id) == [
        (api.actor, "user.password_set"),
        (api.actor, "sessions.revoked"),
    ]


async def test_reset_mail_queues_a_reset_link_but_not_for_a_disabled_user(api: Api) -> None:
    user = await make_user(api.pool, "bob@example.com")
    answer = await api.call("POST", f"/users/{user.id}/reset-mail")
    assert answer.status_code == 202, answer.text
    assert await api.mail() == [("bob@example.com", "reset_password")]
    assert await audit_of(api.pool, user.id) == [(api.actor, "password.reset_requested")]

    await api.call("POST", f"/users/{user.id}/disable")
    refused = await api.call("POST", f"/users/{user.id}/reset-mail")
    problem(refused, 422)
    assert len(await api.mail()) == 1


async def test_invitation_is_mailed_again_to_an_invitee_but_not_to_a_user_with_a_password(
    api: Api,
) -> None:
    created = await api.call("POST", "/users", json={"email": "dan@example.com"})
    assert created.status_code == 201, created.text
    invitee = created.json()["id"]

    answer = await api.call("POST", f"/users/{invitee}/invitation")
    again = await api.call("POST", f"/users/{invitee}/invitation")

    assert (answer.status_code, again.status_code) == (202, 202)
    assert await api.mail() == [("dan@example.com", "invitation")] * 2
    live = await api.pool.fetchval(
        "SELECT count(*) FROM mail_tokens WHERE user_id = $1 AND used_at IS NULL",
        uuid.UUID(invitee),
    )
    assert live == 1  # the second link voided the first
    assert (api.actor, "user.invited") in await audit_of(api.pool, invitee)
    user = await make_user(api.pool, "bob@example.com")
    refused = problem(await api.call("POST", f"/users/{user.id}/invitation"), 409)
    assert "has a password" in refused["detail"]


async def test_mfa_reset_removes_every_second_factor_and_tells_the_owner(
    api: Api, kek: bytes
) -> None:
    user = await make_user(api.pool, "bob@example.com")
    now = datetime.now(UTC)
    await enrol_totp(api.pool, kek, user.id, pyotp.random_base32(), now)
    assert await passkeys.ensure_handle(api.pool, user.id, b"h" * 32) == b"h" * 32
    passkey = Passkey(
        b"c" * 32, user.id, b"cose", 0, "Laptop", [], False, False, "0" * 32, now, None
    )
    assert await passkeys.insert(api.pool, passkey)

    answer = await api.call("POST", f"/users/{user.id}/mfa-reset")

    assert answer.status_code == 200, answer.text
    assert not await second_factors.has_second_factor(api.pool, user.id)
    assert await passkeys.of_user(api.pool, user.id) == []
    assert await api.mail() == [("bob@example.com", "mfa_changed")]
    assert await audit_of(api.pool, user.id) == [(api.actor, "mfa.reset")]


async def test_delete_takes_what_the_user_held_and_deny_lists_their_access_tokens(
    api: Api, settings: Settings, kek: bytes
) -> None:
    app = await app_with_refresh(api.instance, api.pool, settings)
    tokens = await app.sign_in()
    user_id = await api.pool.fetchval("SELECT id FROM users WHERE email = $1", app.email)
    await enrol_totp(api.pool, kek, user_id, pyotp.random_base32(), datetime.now(UTC))
    await api.pool.execute(
        "INSERT INTO consents (user_id, client_id, scopes, granted_at)"
        " VALUES ($1, $2, '{openid}', now())",
        user_id,
        app.client_id,
    )
    await api.call("POST", f"/users/{user_id}/reset-mail")

    answer = await api.call("DELETE", f"/users/{user_id}")

    assert answer.status_code == 204, answer.text
    assert answer.content == b""
    problem(await api.call("GET", f"/users/{user_id}"), 404)
    for table in (
        "sessions",
        "consents",
        "authorization_codes",
        "refresh_families",
        "mail_tokens",
        "totp_credentials",
        "passkey_users",
    ):
        left = await api.pool.fetchval(f"SELECT count(*) FROM {table} WHERE user_id = $1", user_id)
        assert left == 0, table
    assert (await app.refresh(tokens["refresh_token"])).status_code == 400
    assert await app.userinfo_status(tokens["access_token"]) == 401
    assert await api.pool.fetchval("SELECT count(*) FROM revoked_access_tokens") >= 1
    assert (api.actor, "user.deleted") in await audit_of(api.pool, user_id)
    problem(await api.call("DELETE", f"/users/{user_id}"), 404)


async def test_a_user_token_needs_the_admin_role(api: Api, settings: Settings) -> None:
    await make_user(api.pool, "root@example.com", roles=("admin",))
    await make_user(api.pool, "eve@example.com")
    admin = await user_admin_token(api.http, api.pool, settings, "root@example.com")
    other = await user_admin_token(api.http, api.pool, settings, "eve@example.com")

    allowed = await api.http.get(f"{PREFIX}/users", headers=bearer(admin))
    refused = await api.http.get(f"{PREFIX}/users", headers=bearer(other))

    assert allowed.status_code == 200, allowed.text
    assert "admin role" in problem(refused, 403)["detail"]


async def test_a_user_with_the_admin_role_is_the_audited_actor(
    api: Api, settings: Settings
) -> None:
    root = await make_user(api.pool, "root@example.com", roles=("admin",))
    bob = await make_user(api.pool, "bob@example.com")
    token = await user_admin_token(api.http, api.pool, settings, "root@example.com")
    answer = await api.http.post(f"{PREFIX}/users/{bob.id}/disable", headers=bearer(token))
    assert answer.status_code == 200, answer.text
    assert await audit_of(api.pool, bob.id) == [(f"user:{root.id}", "user.disabled")]


async def _walk(api: Api, query: str) -> list[str]:
    seen: list[str] = []
    cursor = ""
    for _ in range(20):
        answer = await api.call("GET", f"/users?{query}{cursor}")
        assert answer.status_code == 200, answer.text
        page = answer.json()
        assert len(page["items"]) <= 3
        seen += [item["email"] for item in page["items"]]
        if page["next_cursor"] is None:
            return seen
        cursor = f"&cursor={page['next_cursor']}"
    raise AssertionError("the cursor never ended")


async def test_the_cursor_walks_every_user_exactly_once_and_filters_apply(api: Api) -> None:
    emails = [f"user{n}@example.com" for n in range(8)] + ["Zed@Example.com", "ops@other.org"]
    for n, email in enumerate(emails):
        await make_user(api.pool, email, roles=("ops",) if n % 3 == 0 else ())
    await api.pool.execute("UPDATE users SET disabled = true WHERE email = 'user1@example.com'")

    assert await _walk(api, "limit=3") == sorted(emails, key=str.lower)
    assert await _walk(api, "limit=3&email_prefix=USER") == emails[:8]
    assert await _walk(api, "limit=3&role=ops") == sorted(
        (email for n, email in enumerate(emails) if n % 3 == 0), key=str.lower
    )
    assert await _walk(api, "limit=3&disabled=true") == ["user1@example.com"]
    assert len(await _walk(api, "limit=3&disabled=false")) == len(emails) - 1


@pytest.mark.parametrize(
    "query",
    [
        "limit=0",
        "limit=201",
        "limit=ten",
        "cursor=garbage!",
        "cursor=Z2FyYmFnZQ",  # base64url of "garbage": not one this API gave
        "cursor=WzEsMl0",  # [1,2]: the wrong shape
        "disabled=maybe",
        "sort=email",
        "limit=1&limit=2",
    ],
)
async def test_a_bad_list_query_gets_400(api: Api, query: str) -> None:
    problem(await api.call("GET", f"/users?{query}"), 400)


@pytest.mark.parametrize(
    "body",
    [
        {"nickname": "Bob"},
        {"name": 7},
        {"email": None},
        {"roles": None},
        {"email_verified": "yes"},
        {"roles": "admin"},
        {"roles": ["two words"]},
        {"name": "Bob\x00"},
        {"name": "Bob\x1b[31m"},
        {"email": "bob\x00@example.com"},
        {"name": "x" * 201},
        {"name": "\ud800"},  # a lone surrogate: not text PostgreSQL can hold
        {"name": "x" * 70_000},  # larger than any body the API reads
        {"roles": ["r"] * 33},
        ["name"],
        "name",
    ],
)
async def test_a_malformed_patch_gets_400_and_changes_nothing(api: Api, body: object) -> None:
    user = await make_user(api.pool, "bob@example.com")
    etag = await api.etag(user.id)
    answer = await api.call(
        "PATCH",
        f"/users/{user.id}",
        etag=etag,
        content=json.dumps(body).encode(),  # ASCII: a lone surrogate goes as \ud800
        headers={"content-type": "application/json"},
    )
    problem(answer, 400)
    assert await api.etag(user.id) == etag


@pytest.mark.parametrize(
    "content",
    [
        b'{"password": "correct horse battery staple\\u0000"}',
        b'{"password": "correct horse battery \\u0007 staple"}',
        b'{"password": 12345678901234}',
        b'{"password": "correct horse battery staple", "force": true}',
        b'{"password": "' + b"x" * 70_000 + b'"}',
        b'{"password": "' + b"x" * 2000 + b'"}',
        b"{not json",
        b"\xff\xfe",
        b"",
    ],
)
async def test_a_malformed_password_body_gets_400_and_sets_nothing(
    api: Api, content: bytes
) -> None:
    user = await make_user(api.pool, "bob@example.com")
    answer = await api.call(
        "POST",
        f"/users/{user.id}/password",
        content=content,
        headers={"content-type": "application/json"},
    )
    problem(answer, 400)
    assert await audit_of(api.pool, user.id) == []


async def test_a_body_that_is_not_json_gets_400(api: Api) -> None:
    user = await make_user(api.pool, "bob@example.com")
    answer = await api.http.post(
        f"{PREFIX}/users/{user.id}/password",
        content=b"password=x",
        headers=bearer(api.token, **{"content-type": "application/x-www-form-urlencoded"}),
    )
    problem(answer, 400)


OPERATIONS = [
    ("GET", "", None),
    ("PATCH", "", {"name": "x"}),
    ("DELETE", "", None),
    ("POST", "/disable", None),
    ("POST", "/enable", None),
    ("POST", "/password", {"password": NEW_PASSWORD}),
    ("POST", "/reset-mail", None),
    ("POST", "/invitation", None),
    ("POST", "/mfa-reset", None),
]


@pytest.mark.parametrize(("method", "suffix", "body"), OPERATIONS)
@pytest.mark.parametrize(
    "user_id", ["6f2a4c1e-0b7d-4e53-9a61-3c8d2f0e9b14", "not-a-uuid", "%00", "1"]
)
async def test_an_unknown_or_garbage_user_id_gets_404(
    api: Api, method: str, suffix: str, body: object, user_id: str
) -> None:
    answer = await api.call(method, f"/users/{user_id}{suffix}", etag='"whatever"', json=body)
    problem(answer, 404)


@pytest.mark.parametrize(("method", "suffix", "body"), OPERATIONS[1:])
async def test_a_read_only_token_cannot_change_a_user(
    api: Api, settings: Settings, method: str, suffix: str, body: object
) -> None:
    user = await make_user(api.pool, "bob@example.com")
    token, _ = await admin_caller(api.http, api.pool, settings, scope="idp:admin.read")
    answer = await api.http.request(
        method,
        f"{PREFIX}/users/{user.id}{suffix}",
        headers=bearer(token, **{"If-Match": await api.etag(user.id)}),
        json=body,
    )
    problem(answer, 403)
    assert await audit_of(api.pool, user.id) == []


async def test_the_openapi_document_describes_the_user_operations_and_is_valid(api: Api) -> None:
    from openapi_spec_validator import validate

    answer = await api.http.get(f"{PREFIX}/openapi.json")
    assert answer.status_code == 200
    document = answer.json()
    validate(document)
    item = document["paths"][f"{PREFIX}/users/{{user_id}}"]
    assert {"get", "patch", "delete"} <= set(item)
    assert any(p["name"] == "If-Match" and p["required"] for p in item["patch"]["parameters"])
    assert {"412", "428", "409"} <= set(item["patch"]["responses"])
    for action in ("disable", "enable", "password", "reset-mail", "invitation", "mfa-reset"):
        assert "post" in document["paths"][f"{PREFIX}/users/{{user_id}}/{action}"]
