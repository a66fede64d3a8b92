"""The account page's rules without HTTP: what a name and a new address may be, how a browser
is named in the list of sessions, what a session keeps of its browser, and when its last use is
written."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta

import asyncpg
import pytest

from idp.accounts.account_sessions import SEEN_EVERY, browser_label
from idp.accounts.profile import (
    EMAIL_INVALID,
    NAME_TOO_LONG,
    NAME_UNPRINTABLE,
    ProfileError,
    clean_email,
    clean_name,
)
from idp.clock import FrozenClock
from idp.db import sessions
from idp.hashing import digest
from idp.signin import USER_AGENT_MAX, start_session
from tests.factories import make_user


@pytest.mark.parametrize(
    ("raw", "kept"),
    [
        ("Alice", "Alice"),
        ("  Alice \t Liddell\n", "Alice Liddell"),
        ("", None),
        (None, None),
        ("   ", None),
        ("Zoë 李", "Zoë 李"),
        ("<b>Alice</b>", "<b>Alice</b>"),  # shown escaped, stored as given
        ("a" * 100, "a" * 100),
    ],
)
def test_a_name_is_trimmed_and_may_be_left_empty(raw: str | None, kept: str | None) -> None:
    assert clean_name(raw) == kept


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("a" * 101, NAME_TOO_LONG),
        ("Al\x00ice", NAME_UNPRINTABLE),
        ("\u202eecilA", NAME_UNPRINTABLE),
    ],
)
def test_a_name_too_long_or_unprintable_is_refused(raw: str, message: str) -> None:
    with pytest.raises(ProfileError) as refused:
        clean_name(raw)
    assert refused.value.messages == [message]


@pytest.mark.parametrize(
    "raw",
    ["", None, "alice", "alice@", "@example.com", "a@b@example.com", "a b@example.com",
     "a@example", "a\x00@example.com", "a@example.com\r\nBcc: x@example.com",
     "a" * 250 + "@example.com"],
)  # fmt: skip
def test_an_address_that_is_not_one_is_refused(raw: str | None) -> None:
    with pytest.raises(ProfileError) as refused:
        clean_email(raw)
    assert refused.value.messages == [EMAIL_INVALID]


def test_an_address_is_kept_as_typed_less_surrounding_spaces() -> None:
    assert clean_email("  Alice.Liddell+idp@Example.COM ") == "Alice.Liddell+idp@Example.COM"


CHROME_WINDOWS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)


@pytest.mark.parametrize(
    ("user_agent", "label"),
    [
        ("Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
         "Firefox on Linux"),
        (CHROME_WINDOWS, "Chrome on Windows"),
        (CHROME_WINDOWS + " Edg/131.0.0.0", "Edge on Windows"),
        (CHROME_WINDOWS + " OPR/114.0.0.0", "Opera on Windows"),
        ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like "
         "Gecko) Version/18.1 Safari/605.1.15", "Safari on macOS"),
        ("Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, "
         "like Gecko) Version/18.1 Mobile/15E148 Safari/604.1", "Safari on iOS"),
        ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
         "Chrome/131.0.0.0 Mobile Safari/537.36", "Chrome on Android"),
        ("Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) "
         "Chrome/131.0.0.0 Safari/537.36", "Chrome on ChromeOS"),
        ("curl/8.5.0", "curl"),
        ("Mozilla/5.0 (X11; Linux x86_64) SomeBrowser/1.0", "A browser on Linux"),
        ("python-httpx/0.28.1", "python-httpx/0.28.1"),
        ("x" * 200, "x" * 59 + "…"),
        (None, "Unknown browser"),
        ("", "Unknown browser"),
    ],
)  # fmt: skip
def test_a_browser_is_named_by_its_user_agent(user_agent: str | None, label: str) -> None:
    assert browser_label(user_agent) == label


async def test_a_session_keeps_a_printable_bounded_user_agent_and_its_address(
    pool: asyncpg.Pool, clock: FrozenClock
) -> None:
    user = await make_user(pool)
    agent = "Firefox/133.0 \x00\x1b[31m" + "z" * 1000
    started = await start_session(
        pool, user, now=clock.now(), ttl=timedelta(hours=1), user_agent=agent, ip="2001:db8::1"
    )
    row = await pool.fetchrow("SELECT user_agent, ip, last_seen_at FROM sessions")
    assert row is not None
    assert row["user_agent"] == ("Firefox/133.0 [31m" + "z" * 1000)[:USER_AGENT_MAX]
    assert (row["ip"], row["last_seen_at"]) == ("2001:db8::1", clock.now())
    [listed] = await sessions.of_user(pool, user.id, clock.now())
    assert listed.sid == started.sid


COUNT_UPDATES = """
CREATE TABLE test_session_writes (at timestamptz);
CREATE FUNCTION test_count_session_write() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN INSERT INTO test_session_writes VALUES (NEW.last_seen_at); RETURN NULL; END $$;
CREATE TRIGGER test_count_session_write AFTER UPDATE ON sessions
    FOR EACH ROW EXECUTE FUNCTION test_count_session_write();
"""
STOP_COUNTING = """
DROP TRIGGER test_count_session_write ON sessions;
DROP FUNCTION test_count_session_write();
DROP TABLE test_session_writes;
"""


@pytest.fixture
async def session_writes(pool: asyncpg.Pool) -> AsyncIterator[Callable[[], Awaitable[int]]]:
    """How many times the sessions table's rows were written (a trigger counts, for this test
    only)."""
    await pool.execute(COUNT_UPDATES)

    async def count() -> int:
        written: int = await pool.fetchval("SELECT count(*) FROM test_session_writes")
        return written

    try:
        yield count
    finally:
        await pool.execute(STOP_COUNTING)


async def test_last_seen_is_written_once_per_interval_even_by_uses_at_once(
    pool: asyncpg.Pool, clock: FrozenClock, session_writes: Callable[[], Awaitable[int]]
) -> None:
    """The live read moves last_seen_at in the same statement, only when it is stale: of
    concurrent uses past the interval, one writes the row (the others' condition, rechecked on
    the row it wrote, no longer holds)."""
    user = await make_user(pool)
    started = await start_session(pool, user, now=clock.now(), ttl=timedelta(hours=1))
    id_hash = digest(started.cookie)

    async def uses_at_once() -> None:
        found = await asyncio.gather(
            *(sessions.live_and_seen(pool, id_hash, clock.now(), SEEN_EVERY) for _ in range(8))
        )
        assert all(session is not None and session.sid == started.sid for session in found)

    clock.advance(SEEN_EVERY - timedelta(seconds=1))
    await uses_at_once()
    assert await session_writes() == 0
    clock.advance(timedelta(seconds=1))
    await uses_at_once()
    assert await session_writes() == 1
    assert await pool.fetchval("SELECT last_seen_at FROM sessions") == clock.now()
    assert await sessions.live_and_seen(pool, id_hash, clock.now(), SEEN_EVERY) is not None
    assert await session_writes() == 1
