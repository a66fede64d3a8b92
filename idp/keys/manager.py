"""Applies the lifecycle's transitions to the database, in one transaction per change.

Every change runs under one transaction-level advisory lock and re-reads the keys inside it, so
two processes ticking at the same instant rotate once: the second sees the first's result and
finds nothing to do. Every change is audited and announced with ``NOTIFY idp_keys``, delivered
at commit to every process's keyring.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from idp.audit_trail import AuditTrail, audited
from idp.clock import Clock
from idp.db import signing_keys
from idp.db.pool import Connection
from idp.db.signing_keys import KeyRecord
from idp.keys import crypto
from idp.keys.lifecycle import (
    FORCED_ROTATION,
    CreateKey,
    Demote,
    Promote,
    Retire,
    Revoke,
    Transition,
    plan_revocation,
    plan_rotation,
    tick,
)
from idp.settings import Settings

# pg_advisory_xact_lock key shared by every key change in the cluster.
KEYS_LOCK_ID = 0x1D9_0002

Plan = Callable[[Sequence[KeyRecord], datetime], list[Transition]]


@dataclass(frozen=True)
class Applied:
    transition: Transition
    kid: str


@dataclass(frozen=True)
class Rotation:
    kid: str  # the key that signs from now
    forced: bool  # made although lifecycle.rotation_refusal had a reason to wait


class KeyManager:
    def __init__(self, pool: asyncpg.Pool, settings: Settings, clock: Clock) -> None:
        if settings.key_encryption_key is None:
            raise ValueError("KeyManager needs settings.key_encryption_key")
        self._pool = pool
        self._settings = settings
        self._kek = settings.key_encryption_key
        self._clock = clock

    async def tick(self, actor: str = "scheduler") -> list[Applied]:
        """The scheduled transitions due now (none most of the time)."""
        return await self._change(lambda keys, now: tick(keys, now, self._settings), actor)

    async def rotate(self, actor: str, *, force: bool = False) -> Rotation:
        """A new key signs from now; raises KeyLifecycleError if that is not safe yet, unless
        ``force`` (lifecycle.plan_rotation)."""
        applied = await self._change(
            lambda keys, now: plan_rotation(keys, now, self._settings, force=force), actor
        )
        signer = next(
            item
            for item in applied
            if isinstance(item.transition, Promote)
            or (isinstance(item.transition, CreateKey) and item.transition.state == "active")
        )
        return Rotation(signer.kid, forced=signer.transition.reason == FORCED_ROTATION)

    async def revoke(self, kid: str | None, reason: str, actor: str) -> list[Applied]:
        """Revoke ``kid`` (every key when None); raises KeyLifecycleError for a bad kid."""
        return await self._change(
            lambda keys, now: plan_revocation(keys, kid, reason, self._settings), actor
        )

    async def _change(self, plan: Plan, actor: str) -> list[Applied]:
        async with self._pool.acquire() as connection, audited(connection) as trail:
            await connection.execute("SELECT pg_advisory_xact_lock($1)", KEYS_LOCK_ID)
            now = self._clock.now()
            listings = await signing_keys.fetch_all(connection)
            self._check_kek(listings)
            transitions = plan([listing.record for listing in listings], now)
            applied = [
                await self._apply(connection, trail, item, now, actor) for item in transitions
            ]
            if applied:
                await connection.execute(signing_keys.NOTIFY, "changed")
        return applied

    async def _apply(
        self,
        connection: Connection,
        trail: AuditTrail,
        transition: Transition,
        now: datetime,
        actor: str,
    ) -> Applied:
        match transition:
            case CreateKey(alg=alg, state=state):
                key = await asyncio.to_thread(crypto.generate_key, alg, now=now)
                await signing_keys.insert(
                    connection,
                    kid=key.kid,
                    alg=alg,
                    state=state,
                    public_jwk=key.public_jwk,
                    private_key_enc=crypto.encrypt_private_key(self._kek, key.kid, key.private_der),
                    now=now,
                )
                kid, action, details = key.kid, "key.created", {"alg": alg, "state": state}
            case Promote(kid=kid):
                await self._update(connection, signing_keys.PROMOTE, kid, now)
                action, details = "key.activated", {}
            case Demote(kid=kid):
                await self._update(connection, signing_keys.DEMOTE, kid, now)
                action, details = "key.retiring", {}
            case Retire(kid=kid):
                await self._update(connection, signing_keys.RETIRE, kid, now)
                action, details = "key.retired", {}
            case Revoke(kid=kid, reason=reason):
                await self._update(connection, signing_keys.REVOKE, kid, now, reason)
                action, details = "key.revoked", {}
        await trail.record(
            now=now,
            actor=actor,
            action=action,
            subject=kid,
            reason=transition.reason,
            details=details,
        )
        return Applied(transition, kid)

    def _check_kek(self, listings: Sequence[signing_keys.KeyListing]) -> None:
        """Refuse to add keys sealed with a KEK other than the one the existing keys use.

        Raises KeyDecryptionError: a process started with the wrong IDP_KEY_ENCRYPTION_KEY
        would otherwise publish keys that no other process can sign with.
        """
        for key in listings:
            if key.private_key_enc is not None:
                crypto.decrypt_private_key(self._kek, key.record.kid, key.private_key_enc)
                return

    @staticmethod
    async def _update(connection: Connection, sql: str, *args: object) -> None:
        if not await signing_keys.update_state(connection, sql, *args):
            # Impossible under the advisory lock; raising rolls the whole change back.
            raise RuntimeError(f"signing key {args[0]} was not in the state the plan expected")
