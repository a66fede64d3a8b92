"""Adding and removing passkeys on ``/account/security`` through the running app, with the
software authenticator (WebAuthn L2 §7.1): the options the page shows, what is stored, the audit
and the owner's notice (NIST SP 800-63B §6.1.2.3), refusals that store nothing, and recovery
codes backed by a passkey alone."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest

from idp.clock import FrozenClock
from idp.db import passkeys, second_factors
from idp.db.users import User
from idp.mfa.passkeys import CHALLENGE_TTL, EXPIRED, TAKEN
from tests.conftest import Instance, InstanceFactory
from tests.factories import PASSWORD, make_user, queued_mail
from tests.oauth.flow import hidden_fields
from tests.passkey_pages import (
    ADD,
    REMOVE,
    SECURITY,
    account_sign_in,
    add_passkey,
    authenticator,
    form_of,
    only_credential,
)
from tests.softkey import b64url, b64url_decode

EMAIL = "alice@example.com"


@pytest.fixture
async def user(pool: asyncpg.Pool) -> User:
    return await make_user(pool, EMAIL)


@pytest.fixture
async def app(app_instance: InstanceFactory, user: User) -> AsyncIterator[Instance]:
    """Alice signed in on a running app (password only: she has no second factor)."""
    async with app_instance() as instance:
        signed = await account_sign_in(instance.client, EMAIL)
        assert signed.headers["location"] == "/account", signed.text
        yield instance


def added(answer: httpx.Response) -> None:
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == f"{SECURITY}?done=passkey"


async def mfa_actions(pool: asyncpg.Pool) -> list[str]:
    rows = await pool.fetch("SELECT action FROM audit_log WHERE action LIKE 'mfa.%' ORDER BY id")
    return [row["action"] for row in rows]


async def test_the_options_ask_a_discoverable_verified_passkey_for_a_random_handle(
    app: Instance, user: User, pool: asyncpg.Pool
) -> None:
    form = await form_of(app.client, SECURITY)
    options = form.options
    assert options["rp"]["id"] == "idp.test"
    assert options["user"]["name"] == EMAIL
    handle = b64url_decode(options["user"]["id"])
    assert len(handle) == 32
    assert EMAIL.encode() not in handle
    assert options["authenticatorSelection"]["residentKey"] == "required"
    assert options["authenticatorSelection"]["userVerification"] == "required"
    assert options["excludeCredentials"] == []
    assert await passkeys.handle_of(pool, user.id) is None  # a GET stores nothing
    second = (await form_of(app.client, SECURITY)).options
    assert b64url_decode(second["user"]["id"]) != handle  # none kept until a passkey is
    key = authenticator()
    credential = key.register(options)
    data = {**form.fields, "credential": json.dumps(credential), "name": "Laptop"}
    added(await app.client.post(ADD, data=data))
    # Once registered, the handle is kept and the passkey is excluded from the next options.
    again = (await form_of(app.client, SECURITY)).options
    assert await passkeys.handle_of(pool, user.id) == handle
    assert b64url_decode(again["user"]["id"]) == handle
    assert [entry["id"] for entry in again["excludeCredentials"]] == [b64url(only_credential(key))]


async def test_a_new_passkey_is_stored_with_its_counter_and_flags_audited_and_mailed(
    app: Instance, user: User, pool: asyncpg.Pool
) -> None:
    key = authenticator(backup_eligible=True, counter_start=7)
    added(await add_passkey(app.client, key, "Phone"))
    (stored,) = await passkeys.of_user(pool, user.id)
    assert stored.credential_id == only_credential(key)
    assert stored.sign_count == 7
    assert (stored.backup_eligible, stored.backed_up) == (True, True)
    assert stored.name == "Phone"
    assert stored.transports == ["internal"]
    assert stored.last_used_at is None
    assert await mfa_actions(pool) == ["mfa.passkey_added"]
    mails = await queued_mail(pool, app.state["mailing"].outbox)
    assert [(mail.to, mail.template) for mail in mails] == [(EMAIL, "mfa_changed")]
    assert "A passkey was added to your account" in mails[0].text
    shown = await app.client.get(f"{SECURITY}?done=passkey")
    assert "Phone" in shown.text


async def test_the_same_credential_registered_twice_is_refused(
    app: Instance, user: User, pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    fixed = b"\x01" * 32
    monkeypatch.setattr("tests.softkey.os.urandom", lambda n: fixed[:n])
    added(await add_passkey(app.client, authenticator()))
    form = await form_of(app.client, SECURITY)
    # A second authenticator makes a credential of the same id (it ignores excludeCredentials).
    credential = authenticator().register({**form.options, "excludeCredentials": []})
    data = {**form.fields, "credential": json.dumps(credential), "name": "Again"}
    refused = await app.client.post(ADD, data=data)
    assert refused.status_code == 400, refused.text
    assert TAKEN in refused.text
    assert [p.name for p in await passkeys.of_user(pool, user.id)] == ["Laptop"]
    assert await mfa_actions(pool) == ["mfa.passkey_added"]


async def test_an_answer_posted_twice_registers_once(
    app: Instance, user: User, pool: asyncpg.Pool
) -> None:
    form = await form_of(app.client, SECURITY)
    data = {**form.fields, "credential": json.dumps(authenticator().register(form.options))}
    added(await app.client.post(ADD, data=data))
    again = await app.client.post(ADD, data=data)
    assert again.status_code == 400, again.text
    assert EXPIRED in again.text
    assert len(await passkeys.of_user(pool, user.id)) == 1


async def test_registration_options_expire(
    app: Instance, user: User, pool: asyncpg.Pool, clock: FrozenClock
) -> None:
    form = await form_of(app.client, SECURITY)
    data = {**form.fields, "credential": json.dumps(authenticator().register(form.options))}
    clock.advance(CHALLENGE_TTL)
    clock.advance(CHALLENGE_TTL / 300)
    refused = await app.client.post(ADD, data=data)
    assert refused.status_code == 400, refused.text
    assert EXPIRED in refused.text
    assert await passkeys.of_user(pool, user.id) == []


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("  Work\x00 laptop\x1b[31m \u202e\n", "Work laptop[31m"),
        ("x" * 5000, "x" * 64),
        ("", "Passkey 1"),
        ("\t\r\n", "Passkey 1"),
    ],
    ids=["control-characters", "huge", "empty", "blank"],
)
async def test_the_name_is_cleaned_and_bounded(
    app: Instance, user: User, pool: asyncpg.Pool, given: str, stored: str
) -> None:
    added(await add_passkey(app.client, authenticator(), given))
    (passkey,) = await passkeys.of_user(pool, user.id)
    assert passkey.name == stored


async def test_removing_a_passkey_needs_the_current_password_and_is_audited_and_mailed(
    app: Instance, user: User, pool: asyncpg.Pool
) -> None:
    key = authenticator()
    added(await add_passkey(app.client, key))
    form = await form_of(app.client, SECURITY)
    credential_id = b64url(only_credential(key))
    fields = {"csrf_token": form.fields["csrf_token"], "credential_id": credential_id}
    wrong = await app.client.post(REMOVE, data={**fields, "password": "not-the-password"})
    assert wrong.status_code == 400, wrong.text
    assert len(await passkeys.of_user(pool, user.id)) == 1
    done = await app.client.post(REMOVE, data={**fields, "password": PASSWORD})
    assert done.status_code == 303, done.text
    assert done.headers["location"] == f"{SECURITY}?done=passkey-removed"
    assert await passkeys.of_user(pool, user.id) == []
    assert await mfa_actions(pool) == ["mfa.passkey_added", "mfa.passkey_removed"]
    mails = await queued_mail(pool, app.state["mailing"].outbox)
    assert "A passkey was removed from your account" in mails[-1].text
    gone = await app.client.post(REMOVE, data={**fields, "password": PASSWORD})
    assert gone.status_code == 404, gone.text


async def test_recovery_codes_back_up_a_passkey_alone_and_go_with_the_last_one(
    app: Instance, user: User, pool: asyncpg.Pool
) -> None:
    csrf = (await form_of(app.client, SECURITY)).fields["csrf_token"]
    codes = {"csrf_token": csrf, "password": PASSWORD}
    refused = await app.client.post(f"{SECURITY}/recovery-codes", data=codes)
    assert refused.status_code == 409, refused.text  # no factor yet
    key = authenticator()
    added(await add_passkey(app.client, key))
    made = await app.client.post(f"{SECURITY}/recovery-codes", data=codes)
    assert made.status_code == 200, made.text
    assert await second_factors.recovery_counts(pool, user.id) == (10, 10)
    assert await second_factors.totp_of(pool, user.id) is None
    removal = {**codes, "credential_id": b64url(only_credential(key))}
    assert (await app.client.post(REMOVE, data=removal)).status_code == 303
    assert await second_factors.recovery_counts(pool, user.id) == (0, 0)
    details = await pool.fetchval(
        "SELECT details FROM audit_log WHERE action = 'mfa.passkey_removed'"
    )
    assert json.loads(details)["recovery_codes_removed"] == 10


async def test_a_tampered_or_another_sessions_token_registers_nothing(
    app: Instance, user: User, pool: asyncpg.Pool, clock: FrozenClock
) -> None:
    form = await form_of(app.client, SECURITY)
    token = form.fields["challenge"]
    tampered = token[:-2] + ("AA" if token[-2:] != "AA" else "BB")
    keys = app.state["passkeys"]
    assert keys is not None
    # Options made for another session (another browser of Alice's, or a thief's page).
    other = await keys.registration(pool, user.id, EMAIL, None, "another-session", clock.now())
    for challenge, options in ((tampered, form.options), (other.token, other.options)):
        credential = authenticator().register(options)
        data = {**form.fields, "challenge": challenge, "credential": json.dumps(credential)}
        refused = await app.client.post(ADD, data=data)
        assert refused.status_code == 400, refused.text
        assert EXPIRED in refused.text
    assert await passkeys.of_user(pool, user.id) == []
    assert await pool.fetchval("SELECT count(*) FROM webauthn_challenges") == 0
    assert hidden_fields(refused.text)["csrf_token"]
