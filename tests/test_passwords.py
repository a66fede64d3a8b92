"""idp.passwords: argon2id hashing and verification, off the event loop, with rehash on new
parameters and the same work for an unknown user."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator

import pytest
from argon2 import PasswordHasher, Type, extract_parameters

from idp.passwords import Passwords, Verification

PASSWORD = "correct horse battery staple"
WAIT_SECONDS = 10.0


@pytest.fixture
def passwords() -> Iterator[Passwords]:
    passwords = Passwords("test")
    try:
        yield passwords
    finally:
        passwords.close()


def profile_of(password_hash: str) -> tuple[Type, int, int, int]:
    """(type, m, t, p) of a PHC string, read by argon2-cffi itself."""
    parameters = extract_parameters(password_hash)
    return (
        parameters.type,
        parameters.memory_cost,
        parameters.time_cost,
        parameters.parallelism,
    )


class VerifySpy:
    """Records every hash PasswordHasher.verify is asked to check, and on which thread; runs
    ``before`` (if set) first, in the verifying thread."""

    def __init__(self) -> None:
        self.hashes: list[str] = []
        self.threads: list[int] = []
        self.before: Callable[[], None] | None = None

    def record(self, hash: str | bytes) -> None:
        self.hashes.append(hash if isinstance(hash, str) else hash.decode())
        self.threads.append(threading.get_ident())
        if self.before is not None:
            self.before()


@pytest.fixture
def verify_spy(monkeypatch: pytest.MonkeyPatch) -> VerifySpy:
    spy = VerifySpy()
    original = PasswordHasher.verify

    def verify(hasher: PasswordHasher, hash: str | bytes, password: str | bytes) -> bool:
        spy.record(hash)
        return original(hasher, hash, password)

    monkeypatch.setattr(PasswordHasher, "verify", verify)
    return spy


async def test_verify_accepts_the_password_that_was_hashed(passwords: Passwords) -> None:
    stored = await passwords.hash(PASSWORD)

    assert stored.startswith("$argon2id$")
    assert await passwords.verify(stored, PASSWORD) == Verification(ok=True, new_hash=None)


async def test_verify_rejects_another_password(passwords: Passwords) -> None:
    stored = await passwords.hash(PASSWORD)

    assert await passwords.verify(stored, PASSWORD + " ") == Verification(ok=False)
    assert await passwords.verify(stored, "") == Verification(ok=False)


async def test_verify_rejects_a_stored_value_that_is_not_an_argon2_hash(
    passwords: Passwords,
) -> None:
    assert await passwords.verify("not a hash", PASSWORD) == Verification(ok=False)


async def test_unknown_user_fails_exactly_like_a_wrong_password(passwords: Passwords) -> None:
    someone_else = await passwords.hash("another user's password")

    unknown = await passwords.verify(None, PASSWORD)
    wrong = await passwords.verify(someone_else, PASSWORD)

    assert unknown == wrong == Verification(ok=False, new_hash=None)


async def test_unknown_user_still_verifies_against_a_dummy_hash_of_the_same_profile(
    passwords: Passwords, verify_spy: VerifySpy
) -> None:
    real = await passwords.hash("another user's password")

    await passwords.verify(real, PASSWORD)
    await passwords.verify(None, PASSWORD)

    # Both cases run one argon2 verification, with the same parameters: the same work.
    assert len(verify_spy.hashes) == 2
    checked_real, checked_dummy = verify_spy.hashes
    assert checked_real == real
    assert checked_dummy != real
    assert checked_dummy.startswith("$argon2id$")
    assert profile_of(checked_dummy) == profile_of(real)


async def test_hash_from_another_profile_verifies_and_is_rehashed_with_current_parameters() -> None:
    old = Passwords("test")
    current = Passwords("rfc9106-low-memory")
    try:
        stored = await old.hash(PASSWORD)

        result = await current.verify(stored, PASSWORD)
    finally:
        old.close()
        current.close()

    assert result.ok
    assert result.new_hash is not None
    assert result.new_hash != stored
    assert "$m=65536,t=3,p=4$" in result.new_hash
    assert profile_of(result.new_hash) == (Type.ID, 65536, 3, 4)
    assert PasswordHasher().verify(result.new_hash, PASSWORD)


async def test_wrong_password_on_an_old_hash_is_not_rehashed() -> None:
    old = Passwords("test")
    current = Passwords("rfc9106-low-memory")
    try:
        stored = await old.hash(PASSWORD)

        result = await current.verify(stored, "not the password")
    finally:
        old.close()
        current.close()

    assert result == Verification(ok=False, new_hash=None)


async def test_verifications_run_off_the_event_loop_while_it_keeps_running(
    passwords: Passwords, verify_spy: VerifySpy
) -> None:
    stored = await passwords.hash(PASSWORD)
    loop_thread = threading.get_ident()
    ticks = 0
    loop_ticked = threading.Event()

    async def counter() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            if ticks >= 3:
                loop_ticked.set()
            await asyncio.sleep(0)

    def wait_for_the_loop() -> None:
        # Blocks the verifying thread only: had verification run on the event loop, the
        # counter could not tick and the wait would time out.
        if not loop_ticked.wait(WAIT_SECONDS):
            loop_ticked.set()  # fail once, not once per verification
            raise AssertionError("the event loop did not run while verifying")

    verify_spy.before = wait_for_the_loop
    ticking = asyncio.create_task(counter())
    try:
        async with asyncio.timeout(2 * WAIT_SECONDS):
            results = await asyncio.gather(
                *(passwords.verify(stored, PASSWORD) for _ in range(3)),
                passwords.verify(stored, "wrong password"),
            )
    finally:
        ticking.cancel()

    assert [result.ok for result in results] == [True, True, True, False]
    assert ticks >= 3
    assert len(verify_spy.threads) == 4
    assert loop_thread not in verify_spy.threads


async def test_production_profile_hashes_and_verifies_end_to_end() -> None:
    passwords = Passwords("rfc9106-low-memory")
    try:
        stored = await passwords.hash(PASSWORD)
        right = await passwords.verify(stored, PASSWORD)
        wrong = await passwords.verify(stored, PASSWORD.upper())
        unknown = await passwords.verify(None, PASSWORD)
    finally:
        passwords.close()

    assert profile_of(stored) == (Type.ID, 65536, 3, 4)
    assert right == Verification(ok=True, new_hash=None)  # current parameters: no rehash
    assert wrong == Verification(ok=False)
    assert unknown == Verification(ok=False)
