"""The in-memory keyring: the active signer and the serialized JWKS with its ETag.

Signing, the JWKS and discovery read only this. It is reloaded when any process announces a
key change (``NOTIFY idp_keys``, on a dedicated LISTEN connection that reconnects by itself)
and, as a safety net, every half ``key_check_interval``. A failed reload keeps the last good
keys, so the JWKS keeps answering while PostgreSQL is away; signing stops once a whole
``key_check_interval`` has passed without a reload (``KeyringStaleError``).
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import logging
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, get_args

import asyncpg
from joserfc.errors import SecurityWarning
from joserfc.jwa import JWSAlgModel
from joserfc.jwk import KeySet
from joserfc.jws import JWSRegistry

from idp.clock import Clock
from idp.db import signing_keys
from idp.db.listener import Subscription
from idp.db.pool import Executor
from idp.db.signing_keys import KeyRecord
from idp.keys import crypto
from idp.keys.lifecycle import jwks_max_age, next_change
from idp.settings import Settings, SigningAlg
from idp.tasks import cancel, woken

# RFC 9864 deprecates the name "EdDSA" in favour of "Ed25519", but verifiers in the field still
# know only "EdDSA"; joserfc warns on every use.
warnings.filterwarnings("ignore", message="EdDSA is deprecated", category=SecurityWarning)

log = logging.getLogger(__name__)

CHANNEL = "idp_keys"
_PUBLISHED_MEMBERS = ("kid", "alg", "use", "x5c", "x5t#S256")
_STATE_ORDER = {"active": 0, "pending": 1, "retiring": 2}


class KeyringNotLoadedError(RuntimeError):
    """No key has been loaded yet (the database was never reachable)."""


class KeyringStaleError(RuntimeError):
    """The keys were last loaded too long ago to sign with.

    Key retirement allows a process to go on signing with a demoted key for one
    ``key_check_interval`` at most (``lifecycle.retire_at``); a process that could not reload
    for longer might sign with a key about to leave the JWKS, or with a revoked one. Answered
    503 temporarily_unavailable (idp.web.errors).
    """


@dataclass(frozen=True)
class Signer:
    kid: str
    alg: SigningAlg
    key: crypto.JoseKey
    activated_at: datetime

    def sign(self, claims: dict[str, Any], typ: str) -> str:
        """The JWS compact serialization (RFC 7515 §7.1) of ``claims``, signed by joserfc's
        implementation of the key's algorithm. The protected header is the same for every token
        of a typ, so it is encoded once, not checked and encoded again for every token as
        ``jwt.encode`` would.
        Verifiers decode these with joserfc, PyJWT and Authlib in the tests."""
        signing_input = f"{_header_segment(self.alg, self.kid, typ)}.{_segment(claims)}"
        signature = _algorithm(self.alg).sign(signing_input.encode("ascii"), self.key)
        return f"{signing_input}.{crypto.b64url(signature)}"


@functools.cache
def _algorithm(alg: str) -> JWSAlgModel:
    return JWSRegistry(algorithms=list(get_args(SigningAlg))).get_alg(alg)


def _segment(value: dict[str, Any]) -> str:
    return crypto.b64url(json.dumps(value, separators=(",", ":"), allow_nan=False).encode())


@functools.lru_cache(maxsize=64)
def _header_segment(alg: str, kid: str, typ: str) -> str:
    return _segment({"alg": alg, "kid": kid, "typ": typ})


@dataclass(frozen=True)
class Snapshot:
    """Everything the hot paths need, swapped whole on reload."""

    signer: Signer
    jwks_body: bytes
    etag: str
    next_change_at: datetime
    kids: frozenset[str]
    verification_keys: KeySet  # the published public keys, for verifying our own tokens


def public_jwk(jwk: dict[str, Any]) -> dict[str, Any]:
    """Only public members, whatever the stored JSON holds: a JWKS never carries a private one."""
    allowed = (*crypto.PUBLIC_MEMBERS[jwk["kty"]], *_PUBLISHED_MEMBERS)
    return {name: jwk[name] for name in allowed if name in jwk}


def build_jwks(published: list[signing_keys.PublishedKey]) -> bytes:
    ordered = sorted(published, key=lambda key: _STATE_ORDER[key.record.state])
    body = {"keys": [public_jwk(key.public_jwk) for key in ordered]}
    return json.dumps(body, separators=(",", ":")).encode()


class Keyring:
    def __init__(
        self,
        settings: Settings,
        clock: Clock,
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if settings.key_encryption_key is None:
            raise ValueError("Keyring needs settings.key_encryption_key")
        self._settings = settings
        self._kek = settings.key_encryption_key
        self._clock = clock
        self._snapshot: Snapshot | None = None
        self._parsed: dict[str, crypto.JoseKey] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._monotonic = monotonic  # real elapsed time, whatever the (possibly frozen) clock
        self._loaded_at = 0.0  # monotonic() of the last successful load
        self._max_staleness = settings.key_check_interval.total_seconds()

    # -- reading (hot paths: no I/O) -------------------------------------------------------
    @property
    def loaded(self) -> bool:
        return self._snapshot is not None

    @property
    def fresh(self) -> bool:
        """Loaded recently enough to sign (see KeyringStaleError)."""
        return self.loaded and self._monotonic() - self._loaded_at <= self._max_staleness

    @property
    def snapshot(self) -> Snapshot:
        if self._snapshot is None:
            raise KeyringNotLoadedError("no signing keys loaded")
        return self._snapshot

    def sign(self, claims: dict[str, Any], *, typ: str = "JWT") -> str:
        """Sign with the active key only, naming it by ``kid`` (never the whole key set)."""
        if self._monotonic() - self._loaded_at > self._max_staleness:
            raise KeyringStaleError("signing keys not reloaded for too long; database down?")
        return self.snapshot.signer.sign(claims, typ)

    def key_times(self) -> tuple[datetime, datetime] | None:
        """When the signing key became active and when the key set next changes on schedule
        (the key gauges of idp.metrics); None before the first load."""
        if self._snapshot is None:
            return None
        return self._snapshot.signer.activated_at, self._snapshot.next_change_at

    def verification_keys(self) -> KeySet:
        return self.snapshot.verification_keys

    def jwks_max_age(self, now: datetime) -> int:
        """``IDP_JWKS_MAX_AGE``, but never past the next scheduled key change."""
        return jwks_max_age(self.snapshot.next_change_at, now, self._settings)

    # -- loading ---------------------------------------------------------------------------
    async def load(self, db: Executor) -> None:
        published = await signing_keys.fetch_published(db)
        active = next((key for key in published if key.record.state == "active"), None)
        if active is None:
            raise KeyringNotLoadedError("no active signing key in the database")
        self._parsed = {
            key.record.kid: self._parsed[key.record.kid]
            for key in published
            if key.record.kid in self._parsed
        }
        if active.record.kid not in self._parsed:
            der = crypto.decrypt_private_key(self._kek, active.record.kid, active.private_key_enc)
            self._parsed[active.record.kid] = crypto.load_signing_key(der)
        body = build_jwks(published)
        records: list[KeyRecord] = [key.record for key in published]
        self._snapshot = Snapshot(
            signer=Signer(
                active.record.kid,
                active.record.alg,
                self._parsed[active.record.kid],
                active.record.activated_at or active.record.created_at,
            ),
            jwks_body=body,
            etag='"' + hashlib.sha256(body).hexdigest()[:32] + '"',
            next_change_at=next_change(records, self._clock.now(), self._settings),
            kids=frozenset(record.kid for record in records),
            verification_keys=KeySet.import_key_set(json.loads(body)),
        )
        self._loaded_at = self._monotonic()

    # -- staying fresh ---------------------------------------------------------------------
    def subscription(self) -> Subscription:
        """Reload on NOTIFY idp_keys, and after every (re)connection of the listener."""
        return Subscription(CHANNEL, lambda payload: self._wake.set(), self._wake.set)

    async def start(self, pool: asyncpg.Pool) -> None:
        """Load now, then reload when woken and, as a safety net, every half key_check_interval."""
        await self.load(pool)
        self._task = asyncio.create_task(self._reload_loop(pool), name="keyring-reload")

    async def stop(self) -> None:
        await cancel(self._task)  # the loop itself never ends with another error
        self._task = None

    def request_reload(self) -> None:
        self._wake.set()

    async def _reload_loop(self, pool: asyncpg.Pool) -> None:
        # Twice per staleness budget, so that one slow or failed reload does not stop signing.
        interval = self._max_staleness / 2
        while True:
            await woken(self._wake, interval)
            try:
                await self.load(pool)
            except Exception:  # the loop must outlive any failure; the error is logged
                log.warning("keyring reload failed; keeping the last loaded keys", exc_info=True)
