"""Invitations end to end: ``idp users invite`` as an operator runs it, the mail it queues, the
``/accept-invitation`` page, and the invitee signing in to a relying app."""

from __future__ import annotations

import re
from datetime import timedelta

import asyncpg
import httpx
import pytest

from idp.clock import FrozenClock
from idp.mail.message import Mail
from idp.settings import Settings
from tests.conftest import InstanceFactory
from tests.factories import make_client, make_user, queued_mail
from tests.helpers import assert_one_line_error, idp
from tests.oauth.flow import (
    REDIRECT,
    Authorization,
    authorize_code,
    exchange_code,
    hidden_fields,
    sign_in,
)
from tests.web.malformed import part

pytestmark = pytest.mark.usefixtures("real_time")  # the CLI runs on the system clock
EMAIL = "bob@example.com"
PASSWORD = "a passphrase of my own"


@pytest.fixture
def operator_env(cli_env: dict[str, str], settings: Settings) -> dict[str, str]:
    """The operator's shell, for the issuer the app runs as (the links in mail name it)."""
    return cli_env | {"IDP_ISSUER": settings.issuer}


def invitation_path(mail: Mail) -> str:
    assert mail.template == "invitation"
    found = re.search(r"http://idp\.test(/accept-invitation\?token=[A-Za-z0-9_-]+)", mail.text)
    assert found is not None, mail.text
    assert found[0] in mail.html
    return found[1]


async def invite(env: dict[str, str], *extra: str, email: str = EMAIL) -> str:
    result = await idp(env, "users", "invite", email, *extra)
    assert result.returncode == 0, result.stderr
    return result.stdout


async def accept(http: httpx.AsyncClient, path: str, **fields: str) -> httpx.Response:
    page = await http.get(path)
    assert page.status_code == 200, page.text
    return await http.post("/accept-invitation", data={**hidden_fields(page.text), **fields})


def assert_invitation_refused(response: httpx.Response) -> None:
    assert response.status_code == 400, response.text
    assert "This invitation no longer works" in response.text


async def test_an_invitee_sets_a_password_from_the_mail_and_signs_in_to_an_app(
    app_instance: InstanceFactory,
    pool: asyncpg.Pool,
    settings: Settings,
    operator_env: dict[str, str],
) -> None:
    client, secret = await make_client(
        pool,
        settings,
        grant_types=("authorization_code",),
        redirect_uris=(REDIRECT,),
        scopes=("openid", "email", "profile", "roles"),
        first_party=True,
    )
    stdout = await invite(operator_env, "--name", "Bob", "--role", "staff")
    row = await pool.fetchrow(
        "SELECT id, name, roles, password_hash, email_verified, must_verify_email FROM users"
    )
    assert row is not None
    assert stdout == f"{EMAIL}: invitation queued; its link works for 72 hours\n"
    assert (row["name"], list(row["roles"]), row["password_hash"]) == ("Bob", ["staff"], None)
    assert (row["email_verified"], row["must_verify_email"]) == (False, False)
    auth = Authorization(client.client_id, REDIRECT, scope="openid email profile roles")
    async with app_instance() as instance:
        http = instance.client
        [mail] = await queued_mail(pool, instance.state["mailing"].outbox)
        assert (mail.to, mail.subject) == (EMAIL, "You are invited to set up your account")
        assert "72 hours" in mail.text
        # Before accepting, no password at all signs Bob in.
        start = await http.get(auth.url())
        refused = await sign_in(http, start.headers["location"], EMAIL, "any password at all")
        assert refused.status_code == 401
        page = await http.get(invitation_path(mail))
        assert 'value="Bob"' in page.text
        accepted = await http.post(
            "/accept-invitation",
            data={**hidden_fields(page.text), "name": "Bob Builder", "password": PASSWORD},
        )
        assert accepted.status_code == 200, accepted.text
        assert "You can now sign in" in accepted.text
        code = await authorize_code(http, auth, EMAIL, PASSWORD)
        tokens = await exchange_code(http, client.client_id, secret, code, auth)
        assert tokens.status_code == 200, tokens.text
        mails = await queued_mail(pool, instance.state["mailing"].outbox)

    claims = part(tokens.json()["id_token"], 1)
    assert (claims["email"], claims["email_verified"]) == (EMAIL, True)
    assert (claims["name"], claims["roles"]) == ("Bob Builder", ["staff"])
    assert [m.template for m in mails] == ["invitation"]  # no "password changed" for a first one
    actions = await pool.fetch("SELECT action, subject FROM audit_log ORDER BY id")
    assert ("user.invited", str(row["id"])) in [(a["action"], a["subject"]) for a in actions]
    assert ("invitation.accepted", str(row["id"])) in [(a["action"], a["subject"]) for a in actions]


async def test_an_invitation_link_works_once(
    app_instance: InstanceFactory, pool: asyncpg.Pool, operator_env: dict[str, str]
) -> None:
    await invite(operator_env)
    async with app_instance() as instance:
        [mail] = await queued_mail(pool, instance.state["mailing"].outbox)
        page = await instance.client.get(invitation_path(mail))
        fields = {**hidden_fields(page.text), "password": PASSWORD}
        first = await instance.client.post("/accept-invitation", data=fields)
        second = await instance.client.post(
            "/accept-invitation", data={**fields, "password": "another fine passphrase"}
        )
        looked_again = await instance.client.get(invitation_path(mail))

    assert first.status_code == 200, first.text
    assert_invitation_refused(second)
    assert_invitation_refused(looked_again)


async def test_an_expired_invitation_is_refused(
    app_instance: InstanceFactory,
    clock: FrozenClock,
    pool: asyncpg.Pool,
    operator_env: dict[str, str],
) -> None:
    await invite(operator_env)
    async with app_instance() as instance:
        [mail] = await queued_mail(pool, instance.state["mailing"].outbox)
        page = await instance.client.get(invitation_path(mail))
        assert page.status_code == 200
        clock.advance(timedelta(hours=72, minutes=1))  # the CLI ran a moment later
        looked = await instance.client.get(invitation_path(mail))
        posted = await instance.client.post(
            "/accept-invitation", data={**hidden_fields(page.text), "password": PASSWORD}
        )

    assert_invitation_refused(looked)
    assert_invitation_refused(posted)
    assert await pool.fetchval("SELECT password_hash FROM users") is None


async def test_inviting_a_pending_invitee_again_voids_the_earlier_link(
    app_instance: InstanceFactory, pool: asyncpg.Pool, operator_env: dict[str, str]
) -> None:
    await invite(operator_env, "--name", "Bob")
    again = await invite(operator_env, "--name", "Robert")

    assert again == (
        f"{EMAIL}: invitation queued again (the earlier link no longer works); "
        "its link works for 72 hours\n"
    )
    assert await pool.fetchval("SELECT count(*) FROM users") == 1
    assert await pool.fetchval("SELECT name FROM users") == "Bob"  # as first given
    async with app_instance() as instance:
        first, second = await queued_mail(pool, instance.state["mailing"].outbox)
        old = await instance.client.get(invitation_path(first))
        accepted = await accept(instance.client, invitation_path(second), password=PASSWORD)

    assert_invitation_refused(old)
    assert accepted.status_code == 200, accepted.text


async def test_inviting_someone_who_has_an_account_exits_1_with_one_line(
    pool: asyncpg.Pool, operator_env: dict[str, str]
) -> None:
    user = await make_user(pool, "Bob@Example.com")

    result = await idp(operator_env, "users", "invite", EMAIL)

    assert "exists already" in assert_one_line_error(result)
    assert await pool.fetchval("SELECT count(*) FROM mail_outbox") == 0
    assert await pool.fetchval("SELECT password_hash FROM users") == user.password_hash


async def test_accepting_with_a_weak_password_names_each_rule_and_keeps_the_link(
    app_instance: InstanceFactory, pool: asyncpg.Pool, operator_env: dict[str, str]
) -> None:
    await invite(operator_env)
    async with app_instance() as instance:
        [mail] = await queued_mail(pool, instance.state["mailing"].outbox)
        weak = await accept(instance.client, invitation_path(mail), password="password")
        fine = await accept(instance.client, invitation_path(mail), password=PASSWORD)

    assert weak.status_code == 400
    assert "Use at least 12 characters." in weak.text
    assert "one of the most common" in weak.text
    assert fine.status_code == 200, fine.text
