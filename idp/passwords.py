"""argon2id password hashing (RFC 9106), off the event loop in a bounded worker pool."""

from __future__ import annotations

import asyncio
import os
import secrets
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from idp.settings import Argon2Profile


@dataclass(frozen=True)
class Argon2Parameters:
    time_cost: int
    memory_cost: int  # KiB
    parallelism: int


PROFILES: dict[Argon2Profile, Argon2Parameters] = {
    # RFC 9106 §4, second recommended option: t=3, 64 MiB, p=4 (~115 ms, ~1.65 cores a hash).
    "rfc9106-low-memory": Argon2Parameters(time_cost=3, memory_cost=64 * 1024, parallelism=4),
    # For test suites that create many users; never for production.
    "test": Argon2Parameters(time_cost=1, memory_cost=1024, parallelism=1),
}


@dataclass(frozen=True)
class Verification:
    ok: bool
    new_hash: str | None = None  # set when the stored hash used other parameters: store it


class Passwords:
    """Hash and verify in threads (argon2-cffi releases the GIL), at most one per core at once."""

    def __init__(self, profile: Argon2Profile = "rfc9106-low-memory") -> None:
        parameters = PROFILES[profile]
        self._hasher = PasswordHasher(
            time_cost=parameters.time_cost,
            memory_cost=parameters.memory_cost,
            parallelism=parameters.parallelism,
            type=Type.ID,
        )
        self._pool = ThreadPoolExecutor(
            max_workers=os.cpu_count() or 2, thread_name_prefix="argon2"
        )
        self._dummy: str | None = None

    def hash_sync(self, password: str) -> str:
        return self._hasher.hash(password)

    async def hash(self, password: str) -> str:
        return await asyncio.get_running_loop().run_in_executor(
            self._pool, self.hash_sync, password
        )

    def _dummy_hash(self) -> str:
        """Verified against when the email is unknown, so both cases cost the same. Made on
        first use: a CLI that only hashes should not pay for it."""
        if self._dummy is None:
            self._dummy = self._hasher.hash(secrets.token_urlsafe(16))
        return self._dummy

    def verify_sync(self, stored: str | None, password: str) -> Verification:
        try:
            self._hasher.verify(stored or self._dummy_hash(), password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return Verification(ok=False)
        if stored is None:
            return Verification(ok=False)
        if self._hasher.check_needs_rehash(stored):
            return Verification(ok=True, new_hash=self._hasher.hash(password))
        return Verification(ok=True)

    async def verify(self, stored: str | None, password: str) -> Verification:
        """``stored`` None (no such user) does the same work and fails."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self.verify_sync, stored, password)

    def close(self) -> None:
        self._pool.shutdown(wait=False)
