"""Audit events are logged and counted once their transaction has committed, never before:
a rolled-back event left no row, so it must leave no log line and no count either. The same
holds for the effects that wait for the commit (``after_commit``)."""

from __future__ import annotations

import logging

import asyncpg
import pytest
from prometheus_client import REGISTRY

from idp.audit_trail import audited
from idp.clock import FrozenClock
from tests.faults import audited_commits_fail


class Abandoned(Exception):
    """What rolls the test's transaction back."""


def counted(action: str) -> float:
    return REGISTRY.get_sample_value("idp_audit_events_total", {"action": action}) or 0.0


def logged(caplog: pytest.LogCaptureFixture, action: str) -> list[logging.LogRecord]:
    return [
        record
        for record in caplog.records
        if record.name == "idp.event" and getattr(record, "event", None) == action
    ]


async def rows(pool: asyncpg.Pool, action: str) -> int:
    count: int = await pool.fetchval("SELECT count(*) FROM audit_log WHERE action = $1", action)
    return count


async def test_a_rolled_back_audit_event_is_neither_logged_nor_counted(
    pool: asyncpg.Pool, clock: FrozenClock, caplog: pytest.LogCaptureFixture
) -> None:
    action = "test.rolled_back"
    before = counted(action)

    async def record_then_fail() -> None:
        async with pool.acquire() as connection, audited(connection) as trail:
            await trail.record(now=clock.now(), actor="test", action=action, subject="s")
            written = "SELECT count(*) FROM audit_log WHERE action = $1"
            assert await connection.fetchval(written, action) == 1, "written in the transaction"
            raise Abandoned

    with caplog.at_level(logging.INFO, logger="idp.event"), pytest.raises(Abandoned):
        await record_then_fail()

    assert await rows(pool, action) == 0
    assert logged(caplog, action) == []
    assert counted(action) == before


async def test_a_committed_audit_event_is_logged_and_counted_once(
    pool: asyncpg.Pool, clock: FrozenClock, caplog: pytest.LogCaptureFixture
) -> None:
    action = "test.committed"
    before = counted(action)

    with caplog.at_level(logging.INFO, logger="idp.event"):
        async with pool.acquire() as connection, audited(connection) as trail:
            await trail.record(
                now=clock.now(), actor="test", action=action, subject="s", details={"n": 1}
            )
            assert logged(caplog, action) == [], "not logged before the commit"

    assert await rows(pool, action) == 1
    (line,) = logged(caplog, action)
    assert (line.actor, line.subject, line.details) == ("test", "s", {"n": 1})  # type: ignore[attr-defined]
    assert counted(action) == before + 1


async def test_effects_wait_for_the_commit_and_a_failed_commit_runs_none(
    pool: asyncpg.Pool, clock: FrozenClock
) -> None:
    """``after_commit`` effects run once the transaction commits, never before and never if it
    fails, here at its COMMIT (a deferred constraint: every statement had succeeded)."""
    ran: list[str] = []

    async def record(action: str) -> None:
        async with pool.acquire() as connection, audited(connection) as trail:
            await trail.record(now=clock.now(), actor="test", action=action, subject="s")
            trail.after_commit(lambda: ran.append(action))
            assert ran == [], "not before the commit"

    async with audited_commits_fail(pool):
        with pytest.raises(asyncpg.ForeignKeyViolationError):
            await record("test.failed_commit")
    assert ran == []
    assert await rows(pool, "test.failed_commit") == 0

    await record("test.committed")
    assert ran == ["test.committed"]
