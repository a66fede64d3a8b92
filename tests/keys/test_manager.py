"""Key changes on the real database: once per cluster, revocation, encryption at rest."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from datetime import timedelta

import asyncpg
import pytest
from cryptography.hazmat.primitives import serialization

from idp.clock import FrozenClock
from idp.db.pool import create_pool
from idp.keys import crypto
from idp.keys.keyring import Keyring
from idp.keys.lifecycle import Demote, Promote
from idp.keys.manager import KeyManager
from idp.settings import SIGNING_ALGS, Settings
from tests.factories import PRIVATE_JWK_MEMBERS, kids, rfc7638_thumbprint


async def states(pool: asyncpg.Pool) -> dict[str, str]:
    return {
        row["kid"]: row["state"] for row in await pool.fetch("SELECT kid, state FROM signing_keys")
    }


async def bootstrapped(
    pool: asyncpg.Pool, settings: Settings, clock: FrozenClock
) -> tuple[KeyManager, Keyring]:
    """A manager that has created the first keys, and a keyring that has loaded them."""
    manager, keyring = KeyManager(pool, settings, clock), Keyring(settings, clock)
    await manager.tick()
    await keyring.load(pool)
    return manager, keyring


async def test_two_schedulers_ticking_at_the_same_instant_rotate_once(
    pool: asyncpg.Pool, settings: Settings, clock: FrozenClock
) -> None:
    # Two "processes": separate pools, separate managers, one database, one clock instant.
    other_pool = await create_pool(settings.database_url or "", min_size=1, max_size=2)
    try:
        first, second = KeyManager(pool, settings, clock), KeyManager(other_pool, settings, clock)
        await first.tick()
        for _ in range(3):
            clock.advance(settings.key_rotation_interval)
            results = await asyncio.gather(first.tick(), second.tick())
            applied = [item for result in results for item in result]
            assert sum(isinstance(item.transition, Promote) for item in applied) == 1
            assert sum(isinstance(item.transition, Demote) for item in applied) == 1
            assert [s for s in (await states(pool)).values()].count("active") == 1
            assert [s for s in (await states(pool)).values()].count("pending") == 1
    finally:
        await other_pool.close()
    activations = await pool.fetchval(
        "SELECT count(*) FROM audit_log WHERE action = 'key.activated'"
    )
    assert activations == 3


async def test_revoking_the_active_key_switches_to_a_key_already_published(
    pool: asyncpg.Pool, settings: Settings, clock: FrozenClock
) -> None:
    manager, keyring = await bootstrapped(pool, settings, clock)
    before = kids(keyring.snapshot.jwks_body)
    compromised = keyring.snapshot.signer.kid

    await manager.revoke(compromised, "laptop stolen", actor="test")
    await keyring.load(pool)

    after = kids(keyring.snapshot.jwks_body)
    assert compromised not in after
    assert keyring.snapshot.signer.kid in before, "the next signer was already published"
    new_pending = [kid for kid, state in (await states(pool)).items() if state == "pending"]
    assert len(new_pending) == 1
    assert new_pending[0] not in before
    assert new_pending[0] in after
    row = await pool.fetchrow(
        "SELECT state, private_key_enc, revoked_reason FROM signing_keys WHERE kid = $1",
        compromised,
    )
    assert row is not None
    assert (row["state"], row["private_key_enc"], row["revoked_reason"]) == (
        "revoked",
        None,
        "laptop stolen",
    )
    audit = await pool.fetchrow(
        "SELECT actor, reason FROM audit_log WHERE action = 'key.revoked' AND subject = $1",
        compromised,
    )
    assert audit is not None
    assert (audit["actor"], audit["reason"]) == ("test", "laptop stolen")


async def test_two_revocations_in_a_row_still_leave_a_signer_and_a_next_key(
    pool: asyncpg.Pool, settings: Settings, clock: FrozenClock
) -> None:
    manager, keyring = await bootstrapped(pool, settings, clock)
    for _ in range(2):
        await keyring.load(pool)
        await manager.revoke(keyring.snapshot.signer.kid, "incident", actor="test")
    values = list((await states(pool)).values())
    assert (values.count("active"), values.count("pending"), values.count("revoked")) == (1, 1, 2)


async def test_revoke_all_unpublishes_every_key_and_starts_fresh(
    pool: asyncpg.Pool, settings: Settings, clock: FrozenClock
) -> None:
    manager, keyring = await bootstrapped(pool, settings, clock)
    before = kids(keyring.snapshot.jwks_body)
    await manager.revoke(None, "KEK leaked", actor="test")
    await keyring.load(pool)
    assert not before & kids(keyring.snapshot.jwks_body)
    assert len(kids(keyring.snapshot.jwks_body)) == 2


async def test_private_key_column_holds_only_ciphertext(
    pool: asyncpg.Pool, settings: Settings, clock: FrozenClock
) -> None:
    await KeyManager(pool, settings, clock).tick()
    rows = await pool.fetch("SELECT kid, private_key_enc FROM signing_keys")
    assert rows
    for row in rows:
        blob: bytes = row["private_key_enc"]
        assert b"PRIVATE KEY" not in blob
        assert b'"d"' not in blob
        with pytest.raises(ValueError, match="deserialize"):
            serialization.load_der_private_key(blob, password=None)
        der = crypto.decrypt_private_key(settings.key_encryption_key or b"", row["kid"], blob)
        assert serialization.load_der_private_key(der, password=None) is not None
        with pytest.raises(crypto.KeyDecryptionError):
            crypto.decrypt_private_key(b"\x00" * 32, row["kid"], blob)


@pytest.mark.parametrize("alg", SIGNING_ALGS)
async def test_jwks_publishes_only_public_members_for_every_algorithm(
    pool: asyncpg.Pool, settings: Settings, clock: FrozenClock, alg: str
) -> None:
    configured = replace(settings, signing_alg=alg)  # type: ignore[arg-type]
    await KeyManager(pool, configured, clock).tick()
    keyring = Keyring(configured, clock)
    await keyring.load(pool)
    for key in json.loads(keyring.snapshot.jwks_body)["keys"]:
        assert not PRIVATE_JWK_MEMBERS & key.keys()
        assert (key["alg"], key["use"]) == (alg, "sig")
        assert key["kid"] == rfc7638_thumbprint(key)
    stored = await pool.fetch("SELECT public_jwk FROM signing_keys")
    assert all(not PRIVATE_JWK_MEMBERS & json.loads(row["public_jwk"]).keys() for row in stored)


async def test_keyring_refuses_keys_sealed_with_another_kek(
    pool: asyncpg.Pool, settings: Settings, clock: FrozenClock
) -> None:
    await KeyManager(pool, settings, clock).tick()
    stranger = Keyring(replace(settings, key_encryption_key=b"\x01" * 32), clock)
    with pytest.raises(crypto.KeyDecryptionError):
        await stranger.load(pool)


async def test_manager_with_another_kek_changes_nothing(
    pool: asyncpg.Pool, settings: Settings, clock: FrozenClock
) -> None:
    await KeyManager(pool, settings, clock).tick()
    before = await states(pool)
    stranger = KeyManager(pool, replace(settings, key_encryption_key=b"\x01" * 32), clock)
    clock.advance(settings.key_rotation_interval)
    with pytest.raises(crypto.KeyDecryptionError):
        await stranger.rotate(actor="test")
    with pytest.raises(crypto.KeyDecryptionError):
        await stranger.revoke(None, "test", actor="test")
    assert await states(pool) == before


async def test_rotation_keeps_the_old_key_published_until_its_tokens_expire(
    pool: asyncpg.Pool, settings: Settings, clock: FrozenClock
) -> None:
    manager, keyring = await bootstrapped(pool, settings, clock)
    old = keyring.snapshot.signer.kid
    clock.advance(timedelta(hours=1))
    new = (await manager.rotate(actor="test")).kid
    await keyring.load(pool)
    assert keyring.snapshot.signer.kid == new != old
    assert old in kids(keyring.snapshot.jwks_body)
    clock.advance(settings.longest_token_ttl + settings.clock_skew + settings.key_check_interval)
    await manager.tick()
    await keyring.load(pool)
    assert old not in kids(keyring.snapshot.jwks_body)
