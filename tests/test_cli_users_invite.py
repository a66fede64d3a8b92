"""``idp users add --verified``, the password policy in ``users add`` and ``users set-password``,
and what ``users set-password`` now does beside the hash: subprocesses on the test database.
(``idp users invite`` end to end: tests/web/test_invitation_pages.py.)"""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg
import pytest

from idp.accounts import mail_tokens
from idp.accounts.password_policy import HAS_EMAIL, TOO_COMMON
from idp.mail.outbox import Outbox
from idp.settings import Settings
from tests.conftest import InstanceFactory
from tests.factories import PASSWORD as FACTORIES_PASSWORD
from tests.factories import make_client, make_user
from tests.helpers import assert_one_line_error, idp
from tests.oauth.flow import REDIRECT, App
from tests.web.malformed import part

pytestmark = pytest.mark.usefixtures("real_time")  # the CLI runs on the system clock
PASSWORD = "s3cret-Horse-battery"


async def add_user(env: dict[str, str], email: str, *extra: str, password: str = PASSWORD) -> None:
    result = await idp(
        env, "users", "add", email, *extra, "--password-stdin", stdin=f"{password}\n".encode()
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("verified", [True, False], ids=["verified", "not-verified"])
async def test_users_add_verified_is_what_the_id_token_and_userinfo_say(
    verified: bool,
    app_instance: InstanceFactory,
    pool: asyncpg.Pool,
    settings: Settings,
    cli_env: dict[str, str],
) -> None:
    flag = ["--verified"] if verified else []
    await add_user(cli_env, "bob@example.com", *flag, password=FACTORIES_PASSWORD)
    client, secret = await make_client(
        pool,
        settings,
        grant_types=("authorization_code",),
        redirect_uris=(REDIRECT,),
        scopes=("openid", "email"),
        first_party=True,
    )
    async with app_instance() as instance:
        app = App(instance, client.client_id, secret, "bob@example.com")
        tokens = await app.sign_in("openid email")
        userinfo = await instance.client.get(
            "/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"}
        )

    assert part(tokens["id_token"], 1)["email_verified"] is verified
    assert userinfo.json()["email_verified"] is verified


async def test_users_add_with_a_common_short_password_names_each_rule_on_its_own_line(
    cli_env: dict[str, str], pool: asyncpg.Pool
) -> None:
    result = await idp(
        cli_env, "users", "add", "alice@example.com", "--password-stdin", stdin=b"password\n"
    )

    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "idp: Use at least 12 characters.",
        f"idp: {TOO_COMMON}",
    ]
    assert "Traceback" not in result.stderr
    assert await pool.fetchval("SELECT count(*) FROM users") == 0


async def test_users_add_refuses_a_password_holding_the_addresss_name(
    cli_env: dict[str, str], pool: asyncpg.Pool
) -> None:
    result = await idp(
        cli_env,
        *("users", "add", "alice@example.com", "--password-stdin"),
        stdin=b"alice-says-hello-world\n",
    )

    assert assert_one_line_error(result) == f"idp: {HAS_EMAIL}"
    assert await pool.fetchval("SELECT count(*) FROM users") == 0


async def test_users_set_password_applies_the_policy_and_keeps_the_old_hash(
    cli_env: dict[str, str], pool: asyncpg.Pool
) -> None:
    user = await make_user(pool, "alice@example.com")

    result = await idp(
        cli_env,
        *("users", "set-password", "alice@example.com", "--password-stdin"),
        stdin=b"password\n",
    )

    assert result.returncode == 1
    assert len(result.stderr.splitlines()) == 2
    assert await pool.fetchval("SELECT password_hash FROM users") == user.password_hash


async def test_users_set_password_tells_the_owner_and_voids_mailed_reset_links(
    cli_env: dict[str, str], pool: asyncpg.Pool, settings: Settings, kek: bytes
) -> None:
    user = await make_user(pool, "alice@example.com")
    token = await mail_tokens.issue(pool, "reset_password", user.id, user.email, datetime.now(UTC))

    result = await idp(
        cli_env,
        *("users", "set-password", "alice@example.com", "--password-stdin"),
        stdin=f"{PASSWORD}\n".encode(),
    )

    assert result.returncode == 0, result.stderr
    assert await mail_tokens.peek(pool, token, "reset_password", datetime.now(UTC)) is None
    row = await pool.fetchrow("SELECT recipient, template, sealed FROM mail_outbox")
    assert row is not None
    assert (row["recipient"], row["template"]) == ("alice@example.com", "password_changed")
    notice = Outbox(kek).seal.unseal(row["recipient"], row["template"], row["sealed"])
    assert notice.subject == "Your password was changed"
    assert "Alice" in notice.text
