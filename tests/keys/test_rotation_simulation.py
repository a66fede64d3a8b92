"""Rotation simulated on the real database with a frozen clock advanced tick by tick.

A relying service that caches the JWKS for exactly the ``max-age`` it was served with, and never
re-fetches early, must verify every token until its ``exp`` plus skew, across several rotations.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

import asyncpg

from idp.clock import FrozenClock
from idp.keys.keyring import Keyring
from idp.keys.manager import KeyManager
from idp.settings import Settings
from tests.factories import PRIVATE_JWK_MEMBERS, kids, sign_token, verify

STEP = timedelta(minutes=1)
ALL_ALGS = ["RS256", "PS256", "ES256", "EdDSA"]


@dataclass
class CachingVerifier:
    """Fetches the JWKS only when its cached copy has outlived the served max-age."""

    body: bytes = b""
    expires: datetime | None = None
    fetches: int = 0

    def jwks(self, keyring: Keyring, now: datetime) -> bytes:
        if self.expires is None or now >= self.expires:
            self.body = keyring.snapshot.jwks_body
            self.expires = now + timedelta(seconds=keyring.jwks_max_age(now))
            self.fetches += 1
        return self.body


@dataclass
class Simulation:
    settings: Settings
    clock: FrozenClock
    pool: asyncpg.Pool
    first_published: dict[str, datetime] = field(default_factory=dict)
    signers: list[str] = field(default_factory=list)
    tokens: list[tuple[str, datetime]] = field(default_factory=list)  # token, exp
    history: list[tuple[datetime, frozenset[str], int]] = field(default_factory=list)
    verifier: CachingVerifier = field(default_factory=CachingVerifier)

    async def run(self, duration: timedelta) -> Keyring:
        manager = KeyManager(self.pool, self.settings, self.clock)
        keyring = Keyring(self.settings, self.clock)
        end = self.clock.now() + duration
        while self.clock.now() < end:
            now = self.clock.now()
            await manager.tick()
            await keyring.load(self.pool)
            self.check_instant(keyring, now)
            self.clock.advance(STEP)
        return keyring

    def check_instant(self, keyring: Keyring, now: datetime) -> None:
        served = keyring.snapshot.jwks_body
        published = kids(served)
        for kid in published:
            self.first_published.setdefault(kid, now)
        for key in json.loads(served)["keys"]:
            assert not PRIVATE_JWK_MEMBERS & key.keys(), key
        self.history.append((now, frozenset(published), keyring.jwks_max_age(now)))

        signer = keyring.snapshot.signer.kid
        if not self.signers or self.signers[-1] != signer:
            self.signers.append(signer)
        if signer != self.signers[0]:  # the bootstrap key signs at once: no token exists yet
            assert now - self.first_published[signer] >= self.settings.key_prepublish, (
                f"{signer} signs {now - self.first_published[signer]} after being published"
            )
        # The longest-lived token a client may get: the worst case for key retirement.
        token = sign_token(keyring, now, self.settings.longest_token_ttl)
        self.tokens.append((token, now + self.settings.longest_token_ttl))

        cached = self.verifier.jwks(keyring, now)
        for token, exp in self.tokens:
            if now <= exp + self.settings.clock_skew:
                verify(token, cached, ALL_ALGS)  # raises if the cached JWKS lacks its key

    def assert_max_age_never_outlives_the_jwks(self) -> None:
        for index, (at, published, max_age) in enumerate(self.history):
            for later, later_published, _ in self.history[index + 1 :]:
                if later >= at + timedelta(seconds=max_age):
                    break
                assert later_published == published, f"JWKS changed within max-age served at {at}"


def short_schedule(settings: Settings) -> Settings:
    return replace(
        settings,
        key_rotation_interval=timedelta(hours=2),
        key_prepublish=timedelta(minutes=10),
        jwks_max_age=timedelta(minutes=5),
        clock_skew=timedelta(minutes=1),
        key_check_interval=STEP,
        access_token_ttl=timedelta(minutes=10),
        max_access_token_ttl=timedelta(minutes=20),
    )


async def test_three_rotations_never_strand_a_caching_verifier(
    pool: asyncpg.Pool, settings: Settings, clock: FrozenClock
) -> None:
    simulation = Simulation(short_schedule(settings), clock, pool)
    await simulation.run(timedelta(hours=7))

    assert len(simulation.signers) >= 4, "expected at least three rotations"
    simulation.assert_max_age_never_outlives_the_jwks()
    rows = await pool.fetch("SELECT kid, state, private_key_enc FROM signing_keys")
    retired = {row["kid"] for row in rows if row["state"] == "retired"}
    assert set(simulation.signers[:-1]) <= retired, "every former signer has been retired"
    assert all(row["private_key_enc"] is None for row in rows if row["kid"] in retired)
    assert not retired & simulation.history[-1][1], "retired keys have left the JWKS"


async def test_signing_alg_change_takes_effect_at_next_rotation_with_both_published(
    pool: asyncpg.Pool, settings: Settings, clock: FrozenClock
) -> None:
    rs256 = short_schedule(settings)
    first = Simulation(rs256, clock, pool)
    await first.run(timedelta(minutes=30))
    es256 = replace(rs256, signing_alg="ES256")
    second = Simulation(es256, clock, pool)
    second.tokens = first.tokens  # tokens signed before the change must keep verifying
    second.first_published = first.first_published
    second.signers = first.signers
    await second.run(timedelta(hours=4))

    second.assert_max_age_never_outlives_the_jwks()
    algs = {row["kid"]: row["alg"] for row in await pool.fetch("SELECT kid, alg FROM signing_keys")}
    assert [algs[kid] for kid in second.signers[:1]] == ["RS256"]
    assert algs[second.signers[-1]] == "ES256"
    overlap = [
        published
        for _, published, _ in second.history
        if {algs[kid] for kid in published} == {"RS256", "ES256"}
    ]
    assert overlap, "both algorithms should be published while the switch is pending"


async def test_a_successor_published_late_signs_only_after_prepublish(
    pool: asyncpg.Pool, settings: Settings, clock: FrozenClock
) -> None:
    """The next key is revoked five minutes before the rotation is due: its replacement is
    younger than IDP_KEY_PREPUBLISH when the rotation comes, so the old key signs longer."""
    schedule = short_schedule(settings)
    simulation = Simulation(schedule, clock, pool)
    keyring = await simulation.run(schedule.key_rotation_interval - timedelta(minutes=5))
    pending = await pool.fetchval("SELECT kid FROM signing_keys WHERE state = 'pending'")
    await KeyManager(pool, schedule, clock).revoke(pending, "test", actor="test")
    await keyring.load(pool)
    signer_at_due = keyring.snapshot.signer.kid

    await simulation.run(timedelta(hours=1))  # check_instant asserts the prepublish rule

    activated = await pool.fetchval("SELECT activated_at FROM signing_keys WHERE state = 'active'")
    due = simulation.history[0][0] + schedule.key_rotation_interval
    assert activated > due, "the rotation waited for the late successor"
    assert len(simulation.signers) == 2, "exactly one rotation, from the first key"
    assert simulation.signers[0] == signer_at_due
