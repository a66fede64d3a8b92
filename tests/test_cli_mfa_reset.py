"""``idp users mfa-reset``: for a user who lost their authenticator and recovery codes, every
second factor goes, every session ends, the owner is told, and it is audited."""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg
import pyotp
import pytest

from idp.db import passkeys, second_factors, sessions
from idp.db.passkeys import Passkey
from idp.hashing import digest
from idp.mfa.recovery import RecoveryHasher, new_codes
from idp.settings import Settings
from tests.conftest import InstanceFactory
from tests.factories import enrol_totp, make_user, queued_mail
from tests.helpers import assert_one_line_error, idp

pytestmark = pytest.mark.usefixtures("real_time")  # the CLI runs on the system clock


async def test_mfa_reset_removes_every_factor_ends_the_sessions_and_tells_the_owner(
    pool: asyncpg.Pool,
    kek: bytes,
    settings: Settings,
    cli_env: dict[str, str],
    app_instance: InstanceFactory,
) -> None:
    user = await make_user(pool)
    now = datetime.now(UTC)
    await enrol_totp(pool, kek, user.id, pyotp.random_base32(), now)
    hasher = RecoveryHasher(kek)
    await second_factors.replace_recovery_codes(
        pool, user.id, [h for h in map(hasher.hash, new_codes()) if h is not None], now
    )
    await sessions.insert(
        pool, id_hash=digest("cookie"), sid="sid-1", user_id=user.id, now=now,
        expires_at=datetime(2100, 1, 1, tzinfo=UTC),
    )  # fmt: skip
    assert await passkeys.ensure_handle(pool, user.id, b"h" * 32) == b"h" * 32
    passkey = Passkey(
        b"c" * 32, user.id, b"cose", 0, "Laptop", [], False, False, "0" * 32, now, None
    )
    assert await passkeys.insert(pool, passkey)
    assert await second_factors.has_second_factor(pool, user.id)

    result = await idp(cli_env, "users", "mfa-reset", user.email)

    assert result.returncode == 0, result.stderr
    assert "second factors removed; 1 sessions ended" in result.stdout
    assert not await second_factors.has_second_factor(pool, user.id)
    assert await second_factors.totp_of(pool, user.id) is None
    assert await second_factors.recovery_counts(pool, user.id) == (0, 0)
    assert await passkeys.of_user(pool, user.id) == []
    assert await sessions.live(pool, digest("cookie"), datetime.now(UTC)) is None
    actions = await pool.fetch("SELECT action, subject FROM audit_log ORDER BY id")
    assert ("mfa.reset", str(user.id)) in [(row["action"], row["subject"]) for row in actions]
    async with app_instance() as instance:
        [notice] = await queued_mail(pool, instance.state["mailing"].outbox)
    assert (notice.to, notice.template) == (user.email, "mfa_changed")
    assert "removed every second factor" in notice.text


async def test_mfa_reset_of_an_unknown_user_exits_1_with_one_line(cli_env: dict[str, str]) -> None:
    result = await idp(cli_env, "users", "mfa-reset", "nobody@example.com")
    assert "no user with email nobody@example.com" in assert_one_line_error(result)
