"""The keyring refuses to sign with keys it could not refresh for too long."""

from __future__ import annotations

import asyncpg
import pytest

from idp.clock import FrozenClock
from idp.keys.keyring import Keyring, KeyringStaleError
from idp.keys.manager import KeyManager
from idp.settings import Settings


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_keyring_stops_signing_when_not_reloaded_for_a_check_interval(
    pool: asyncpg.Pool, settings: Settings, clock: FrozenClock
) -> None:
    await KeyManager(pool, settings, clock).tick()
    elapsed = FakeMonotonic()
    keyring = Keyring(settings, clock, monotonic=elapsed)
    await keyring.load(pool)
    interval = settings.key_check_interval.total_seconds()

    elapsed.now += interval  # exactly the budget: still fine
    assert keyring.sign({"sub": "a"})
    assert keyring.fresh

    elapsed.now += 1  # a retiring key may be about to leave every JWKS: stop signing
    with pytest.raises(KeyringStaleError):
        keyring.sign({"sub": "a"})
    assert not keyring.fresh
    assert keyring.snapshot.jwks_body, "the JWKS is still served from memory"

    await keyring.load(pool)
    assert keyring.sign({"sub": "a"})
