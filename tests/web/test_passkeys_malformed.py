"""Hostile and malformed passkey answers (WebAuthn L2 §7.1, §7.2) to the three passkey forms:
passwordless sign-in (``/login/passkey``), the second factor (``/login/second-factor/passkey``)
and registration (``/account/security/passkeys``). Each is refused with a clear 4xx page and
changes nothing: no counter moved, no last use, no session, no challenge spent (the real answer
to the same options is still accepted afterwards), no passkey stored. The table's driver and its
language: ``tests/web/malformed.py``; forged answers are named values (``{uv_cleared}``)."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import asyncpg
import pytest

from idp.clock import FrozenClock
from idp.db import passkeys
from idp.db.users import User
from idp.mfa.passkeys import CHALLENGE_TTL, EXPIRED, REFUSED, UNKNOWN
from idp.web.account_session import INVALID
from idp.web.forms import MAX_BODY_BYTES
from idp.web.login import FORGED
from tests.conftest import Instance, InstanceFactory
from tests.factories import make_user
from tests.passkey_pages import (
    ADD,
    LOGIN,
    RP_ID,
    SECOND_FACTOR,
    SECOND_FACTOR_PASSKEY,
    SECURITY,
    PasskeyForm,
    account_sign_in,
    authenticator,
    enrol_passkey,
    form_of,
    only_credential,
    traces,
)
from tests.softkey import SoftAuthenticator, b64url
from tests.web.malformed import FORM, Context, Endpoint, Page, Step, run, wait

EMAIL, OTHER = "alice@example.com", "bob@example.com"
COUNT = 5  # Alice's authenticator starts there: an answer may go backwards
STRANGER = "http://evil.test"


@dataclass
class Passkeys(Context):
    """A browser on a running app where Alice and Bob have a passkey each; ``form`` is the
    passkey form of the page the row's endpoint belongs to, loaded once."""

    pool: asyncpg.Pool
    instance: Instance
    alice: User
    alice_key: SoftAuthenticator
    bob_key: SoftAuthenticator
    path: str = ""
    form: PasskeyForm | None = None
    registering: bool = False
    forged: dict[str, str] = field(default_factory=dict)

    async def page(self) -> PasskeyForm:
        """The form of this row's endpoint, its user signed in as far as it needs."""
        if self.form is not None:
            return self.form
        if self.path == SECOND_FACTOR_PASSKEY:
            signed = await account_sign_in(self.http, EMAIL)
            assert signed.headers["location"] == SECOND_FACTOR, signed.text
            self.form = await form_of(self.http, SECOND_FACTOR)
        elif self.path == ADD:
            signed = await account_sign_in(self.http, EMAIL)
            assert signed.headers["location"] == SECOND_FACTOR, signed.text  # she has a passkey
            pass_with = await form_of(self.http, SECOND_FACTOR)
            done = await self.http.post(
                SECOND_FACTOR_PASSKEY, data=pass_with.answered(self.alice_key)
            )
            assert done.headers["location"] == "/account", done.text
            self.form = await form_of(self.http, SECURITY)
            self.registering = True
        else:
            self.form = await form_of(self.http, "/account/sign-in")
        return self.form

    def real(self, form: PasskeyForm) -> str:
        """The honest answer to ``form``'s options."""
        if self.registering:
            return json.dumps(authenticator().register(form.options))
        return form.answered(self.alice_key)["credential"]

    def forge(self, **changes: Any) -> str:
        assert self.form is not None
        if self.registering:
            return json.dumps(authenticator().register(self.form.options, **changes))
        return json.dumps(self.alice_key.authenticate(self.form.options, **changes))

    async def value(self, name: str) -> str:
        form = await self.page()
        keys = self.instance.state["passkeys"]
        assert keys is not None
        now = self.clock.now()
        match name:
            case "csrf" | "challenge":
                return form.fields["csrf_token" if name == "csrf" else "challenge"]
            case "wrong_challenge":
                return self.forge(challenge=os.urandom(32))
            case "wrong_origin":
                return self.forge(origin=STRANGER)
            case "wrong_rp_id":
                return self.forge(rp_id="evil.test")
            case "uv_cleared":
                return self.forge(user_verified=False)
            case "wrong_type":
                kind = "webauthn.get" if self.registering else "webauthn.create"
                return self.forge(client_data_type=kind)
            case "counter_backwards":
                return self.forge(sign_count=COUNT - 2)
            case "bobs_credential":
                answer = self.bob_key.authenticate(
                    form.options, credential_id=only_credential(self.bob_key)
                )
                return json.dumps(answer)
            case "other_handle" | "no_handle":
                answer = json.loads(self.forge())
                bobs = self.bob_key.credentials[only_credential(self.bob_key)].user_handle
                answer["response"]["userHandle"] = b64url(bobs) if name == "other_handle" else None
                return json.dumps(answer)
            case "unknown":
                stranger = authenticator()
                stranger.register({"rp": {"id": RP_ID}, "user": {"id": b64url(os.urandom(32))},
                                   "challenge": b64url(os.urandom(32))})  # fmt: skip
                answer = stranger.authenticate(
                    form.options, credential_id=only_credential(stranger)
                )
                return json.dumps(answer)
            case "junk_in_id":
                answer = json.loads(self.forge())
                answer["id"] = answer["rawId"] = answer["rawId"] + "!"
                return json.dumps(answer)
            case "oversized":
                answer = json.loads(self.real(form))
                answer["clientExtensionResults"] = {
                    "pad": "x" * MAX_BODY_BYTES
                }  # past the form's cap
                return json.dumps(answer)
            case "tampered":
                token = form.fields["challenge"]
                return token[:-3] + ("AAA" if token[-3:] != "AAA" else "BBB")
            case "register_token" | "register_answer":
                made = await keys.registration(self.pool, self.alice.id, EMAIL, None, "", now)
                if name == "register_token":
                    self.forged["answer"] = json.dumps(self.alice_key.authenticate(
                        {"rpId": RP_ID, "challenge": made.options["challenge"]}
                    ))  # fmt: skip
                    return made.token
                return self.forged["answer"]
            case "signin_token" | "signin_answer":
                if name == "signin_token":
                    made = keys.sign_in(now)
                    self.forged["answer"] = json.dumps(self.alice_key.authenticate(made.options))
                    return made.token
                return self.forged["answer"]
            case "another_session_token" | "another_session_answer":
                if name == "another_session_token":
                    made = await keys.registration(
                        self.pool, self.alice.id, EMAIL, None, "another-session", now
                    )
                    self.forged["answer"] = json.dumps(authenticator().register(made.options))
                    return made.token
                return self.forged["answer"]
        raise KeyError(name)


async def filled(ctx: Passkeys) -> dict[str, str]:
    form = await ctx.page()
    return {**form.fields, "credential": ctx.real(form), "name": "Laptop"}


def post(path: str) -> Endpoint[Passkeys]:
    return Endpoint[Passkeys]("POST", path, {}, None, FORM, filled)


SIGN_IN = post(LOGIN)
SECOND = post(SECOND_FACTOR_PASSKEY)
REGISTER = post(ADD)

REFUSED_PAGE = Page(401, (REFUSED,))
STALE = Page(401, (EXPIRED,))
FORM_FORGED = Page(400, (FORGED[0],))
BAD_FORM = Page(400, ("The sign-in form was not sent correctly.",))
LATER: Step[Passkeys] = wait(CHALLENGE_TTL + timedelta(seconds=1))
NON_UTF8 = b"csrf_token={csrf}&challenge={challenge}&credential=%7B%22id%22%3A%22%FF%FE%22%7D"
NOT_BASE64 = json.dumps({"id": "*!*", "rawId": "*!*", "type": "public-key", "response": {}})
NOT_ID = json.dumps({"id": "AAAA", "rawId": "AAAB", "type": "public-key", "response": {}})

SIGN_IN_ROWS = [
    SIGN_IN("wrong-challenge", REFUSED_PAGE, credential="{wrong_challenge}"),
    SIGN_IN(
        "registration-token", STALE, challenge="{register_token}", credential="{register_answer}"
    ),
    SIGN_IN("tampered-token", STALE, challenge="{tampered}"),
    SIGN_IN("expired", STALE, steps=[LATER]),
    SIGN_IN("raw-id-not-id", REFUSED_PAGE, credential=NOT_ID),
    SIGN_IN("raw-id-with-junk", REFUSED_PAGE, credential="{junk_in_id}"),
    SIGN_IN("wrong-origin", REFUSED_PAGE, credential="{wrong_origin}"),
    SIGN_IN("wrong-rp-id", REFUSED_PAGE, credential="{wrong_rp_id}"),
    SIGN_IN("wrong-client-data-type", REFUSED_PAGE, credential="{wrong_type}"),
    SIGN_IN("unknown-credential", Page(401, (UNKNOWN,)), credential="{unknown}"),
    SIGN_IN("counter-backwards", REFUSED_PAGE, credential="{counter_backwards}"),
    SIGN_IN("uv-cleared", REFUSED_PAGE, credential="{uv_cleared}"),
    SIGN_IN("user-handle-of-another", REFUSED_PAGE, credential="{other_handle}"),
    SIGN_IN("user-handle-missing", REFUSED_PAGE, credential="{no_handle}"),
    SIGN_IN("malformed-json", REFUSED_PAGE, credential='{"id": '),
    SIGN_IN("json-not-an-object", REFUSED_PAGE, credential='["id", "rawId"]'),
    SIGN_IN("json-null", REFUSED_PAGE, credential="null"),
    SIGN_IN("raw-id-not-base64url", REFUSED_PAGE, credential=NOT_BASE64),
    SIGN_IN("credential-missing", REFUSED_PAGE, credential=None),
    SIGN_IN("credential-twice", BAD_FORM, credential=["{wrong_origin}", "{wrong_rp_id}"]),
    SIGN_IN("challenge-missing", STALE, challenge=None),
    SIGN_IN("oversized", BAD_FORM, credential="{oversized}"),
    SIGN_IN("forged-csrf", FORM_FORGED, csrf_token="0" * 64),
    SIGN_IN("no-csrf", FORM_FORGED, csrf_token=None),
    SIGN_IN("not-utf8", Page(400), body=NON_UTF8),
]
SECOND_ROWS = [
    SECOND("wrong-challenge", REFUSED_PAGE, credential="{wrong_challenge}"),
    SECOND("sign-in-token", STALE, challenge="{signin_token}", credential="{signin_answer}"),
    SECOND("wrong-origin", REFUSED_PAGE, credential="{wrong_origin}"),
    SECOND("wrong-rp-id", REFUSED_PAGE, credential="{wrong_rp_id}"),
    SECOND("another-users-credential", REFUSED_PAGE, credential="{bobs_credential}"),
    SECOND("unknown-credential", Page(401, (UNKNOWN,)), credential="{unknown}"),
    SECOND("counter-backwards", REFUSED_PAGE, credential="{counter_backwards}"),
    SECOND("uv-cleared", REFUSED_PAGE, credential="{uv_cleared}"),
    SECOND("user-handle-of-another", REFUSED_PAGE, credential="{other_handle}"),
    SECOND("malformed-json", REFUSED_PAGE, credential="{"),
    SECOND("json-not-an-object", REFUSED_PAGE, credential='"a string"'),
    SECOND("raw-id-not-base64url", REFUSED_PAGE, credential=NOT_BASE64),
    SECOND("raw-id-with-junk", REFUSED_PAGE, credential="{junk_in_id}"),
    SECOND("oversized", Page(400, ("The form was not sent correctly.",)), credential="{oversized}"),
    SECOND("forged-csrf", FORM_FORGED, csrf_token="0" * 64),
    SECOND("not-utf8", Page(400), body=NON_UTF8),
]
ADD_ROWS = [
    REGISTER("tampered-token", Page(400, (EXPIRED,)), challenge="{tampered}"),
    REGISTER(
        "another-sessions-token",
        Page(400, (EXPIRED,)),
        challenge="{another_session_token}",
        credential="{another_session_answer}",
    ),
    REGISTER("sign-in-token", Page(400, (EXPIRED,)), challenge="{signin_token}"),
    REGISTER("wrong-challenge", Page(400, (REFUSED,)), credential="{wrong_challenge}"),
    REGISTER("wrong-origin", Page(400, (REFUSED,)), credential="{wrong_origin}"),
    REGISTER("wrong-rp-id", Page(400, (REFUSED,)), credential="{wrong_rp_id}"),
    REGISTER("wrong-client-data-type", Page(400, (REFUSED,)), credential="{wrong_type}"),
    REGISTER("uv-cleared", Page(400, (REFUSED,)), credential="{uv_cleared}"),
    REGISTER("malformed-json", Page(400, (REFUSED,)), credential="[{"),
    REGISTER("json-not-an-object", Page(400, (REFUSED,)), credential="42"),
    REGISTER("oversized", Page(400, (INVALID[1],)), credential="{oversized}"),
    REGISTER("forged-csrf", Page(400), csrf_token="0" * 64),
    REGISTER("not-utf8", Page(400), body=NON_UTF8),
]


@pytest.fixture
async def ctx(
    app_instance: InstanceFactory, pool: asyncpg.Pool, clock: FrozenClock
) -> AsyncIterator[Passkeys]:
    alice = await make_user(pool, EMAIL)
    await make_user(pool, OTHER)
    async with app_instance() as instance:
        alice_key, bob_key = authenticator(counter_start=COUNT), authenticator()
        await enrol_passkey(instance.client, EMAIL, alice_key)
        await enrol_passkey(instance.client, OTHER, bob_key)
        yield Passkeys(instance.client, clock, pool, instance, alice, alice_key, bob_key)


async def refused_and_nothing_changed(ctx: Passkeys, case: Any, honest_after: bool) -> None:
    ctx.path = case.endpoint.path
    form = await ctx.page()
    before = await traces(ctx.pool)
    stored = await passkeys.of_user(ctx.pool, ctx.alice.id)
    await run(ctx, case)
    assert await traces(ctx.pool) == before
    assert await passkeys.of_user(ctx.pool, ctx.alice.id) == stored
    if honest_after:  # the options' challenge was not spent: their real answer still works
        data = {**form.fields, "credential": ctx.real(form), "name": "Laptop"}
        accepted = await ctx.http.post(ctx.path, data=data)
        assert accepted.status_code == 303, accepted.text


def _honest_after(case: Any) -> bool:
    return not case.steps


@pytest.mark.parametrize("case", SIGN_IN_ROWS)
async def test_a_hostile_passkey_sign_in_is_refused_and_changes_nothing(
    ctx: Passkeys, case: Any
) -> None:
    await refused_and_nothing_changed(ctx, case, _honest_after(case))


@pytest.mark.parametrize("case", SECOND_ROWS)
async def test_a_hostile_second_factor_passkey_is_refused_and_changes_nothing(
    ctx: Passkeys, case: Any
) -> None:
    await refused_and_nothing_changed(ctx, case, _honest_after(case))


@pytest.mark.parametrize("case", ADD_ROWS)
async def test_a_hostile_registration_is_refused_and_stores_nothing(
    ctx: Passkeys, case: Any
) -> None:
    await refused_and_nothing_changed(ctx, case, _honest_after(case))


@pytest.mark.parametrize("counting", [True, False], ids=["counting", "always-zero"])
async def test_a_replayed_assertion_is_refused(
    app_instance: InstanceFactory, pool: asyncpg.Pool, counting: bool
) -> None:
    """The same answer twice: the second is refused, by the spent challenge (§7.2 step 12:
    the challenge is single-use) even where the counter cannot tell (always 0)."""
    user = await make_user(pool, EMAIL)
    async with app_instance() as app:
        key = authenticator(counting=counting)
        await enrol_passkey(app.client, EMAIL, key)
        form = await form_of(app.client, "/account/sign-in")
        data = form.answered(key)
        cookies = dict(app.client.cookies)
        first = await app.client.post(LOGIN, data=data)
        assert first.headers["location"] == "/account", first.text
        app.client.cookies.clear()
        for name, value in cookies.items():  # the very same request again
            app.client.cookies.set(name, value)
        before = await traces(pool)
        again = await app.client.post(LOGIN, data=data)
    assert again.status_code == 401, again.text
    assert EXPIRED in again.text or REFUSED in again.text
    assert await traces(pool) == before
    (stored,) = await passkeys.of_user(pool, user.id)
    assert stored.sign_count == (1 if counting else 0)
