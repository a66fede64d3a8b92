"""Housekeeping: delete the rows nobody can use any more, in small batches.

Each batch is one short transaction that first takes the janitor's transaction-level advisory
lock, so janitors of several processes take turns: none deletes what another already deleted,
and no batch holds row locks on the hot path's tables for long (Ory Hydra's janitor works the
same way). A batch that finds fewer rows than ``batch_size`` ends its step: under the lock, it
saw every row left.

Rows that can still answer a question are kept for ``retention`` after they stop being valid:
a replayed authorization code must still be recognised as consumed (RFC 6749 §4.1.2), a replayed
refresh token as belonging to a revoked family, and an operator may look at recent sessions.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from idp.clock import Clock
from idp.settings import Settings
from idp.signin import WINDOW

log = logging.getLogger(__name__)

# pg_advisory_xact_lock key shared by every janitor batch in the cluster.
JANITOR_LOCK_ID = 0x1D9_0003
SWEEP_INTERVAL = timedelta(minutes=10)
RETENTION = timedelta(days=7)


def _delete(table: str, expired: str) -> str:
    """One batch: ``ctid = ANY(ARRAY(...))`` reads exactly the chosen rows (a TID scan); the
    condition is checked again on them, so a row that changed meanwhile is left alone."""
    # Table and condition are constants of this module, never input.
    return f"""
DELETE FROM {table}
WHERE ctid = ANY(ARRAY(SELECT ctid FROM {table} WHERE {expired} LIMIT $1)) AND {expired}
"""


# $1 is always the batch size, $2 (and $3) the times the conditions are measured against.
DELETE_AUTHORIZATION_REQUESTS = _delete("authorization_requests", "expires_at < $2")
DELETE_AUTHORIZATION_CODES = _delete("authorization_codes", "expires_at < $2")
DELETE_SESSIONS = _delete("sessions", "(ended_at < $2 OR expires_at < $2)")
DELETE_REVOKED_ACCESS_TOKENS = _delete("revoked_access_tokens", "expires_at < $2")
DELETE_LOGIN_FAILURES = _delete(
    "login_failures", "last_failure_at < $2 AND (locked_until IS NULL OR locked_until <= $3)"
)
DELETE_REFRESH_FAMILIES = _delete("refresh_families", "(expires_at < $2 OR revoked_at < $2)")
# Sent and given-up mail stays a while for `idp mail queue` (and demo mode's mailbox).
DELETE_MAIL_OUTBOX = _delete("mail_outbox", "(sent_at < $2 OR given_up_at < $2)")
# A used or expired mail token still tells "this link was used" apart from "unknown link".
DELETE_MAIL_TOKENS = _delete("mail_tokens", "(used_at < $2 OR expires_at < $2)")
# Every rate limit's window is far shorter than the retention: these counters count no more.
DELETE_RATE_LIMITS = _delete("rate_limits", "window_start < $2")
# A spent WebAuthn challenge matters only while it could still be answered (idp.mfa.passkeys).
DELETE_WEBAUTHN_CHALLENGES = _delete("webauthn_challenges", "expires_at < $2")
# Expired or used up (RFC 7591 §3): no registration can use them any more.
DELETE_INITIAL_ACCESS_TOKENS = _delete(
    "initial_access_tokens", "(expires_at < $2 OR uses_left = 0)"
)
# A metadata document's client (idp.oauth.document_clients) whose document expired more than
# DOCUMENT_CLIENT_KEPT ago and that holds nothing: no consent, no refresh family (a revoked or
# expired one is swept above first, after the retention), no code and no pending request. One
# that holds any is kept: deleting it would take a user's grant with it (idp.admin.clients's
# delete is the operator's to make). A disabled one is kept too: deleted, its URL would be
# fetched again and the client come back enabled. A client in use is fetched again when its
# document expires, which moves metadata_expires_at on: the condition, checked again on the
# row locked for deletion, leaves it alone. Each process drops its cached copy at the NOTIFY.
DOCUMENT_CLIENT_KEPT = timedelta(days=1)
_UNUSED_DOCUMENT_CLIENT = """registration = 'metadata_document' AND NOT disabled
    AND metadata_expires_at < $2
    AND NOT EXISTS (SELECT 1 FROM consents c WHERE c.client_id = clients.client_id)
    AND NOT EXISTS (SELECT 1 FROM refresh_families f WHERE f.client_id = clients.client_id)
    AND NOT EXISTS (SELECT 1 FROM authorization_codes a WHERE a.client_id = clients.client_id)
    AND NOT EXISTS (
        SELECT 1 FROM authorization_requests r WHERE r.client_id = clients.client_id
    )"""
DELETE_DOCUMENT_CLIENTS = f"""
WITH gone AS ({_delete("clients", _UNUSED_DOCUMENT_CLIENT)} RETURNING client_id)
SELECT count(*) FROM gone, LATERAL (SELECT pg_notify('idp_clients', gone.client_id)) AS told
"""
# The sealed answer for a retry of a family's previous token exists only for the grace (found
# by the partial index refresh_families_sealed).
ERASE_SUCCESSOR_RESPONSES = """
UPDATE refresh_families SET successor_response = NULL
WHERE ctid = ANY(ARRAY(
    SELECT ctid FROM refresh_families
    WHERE successor_response IS NOT NULL AND token_issued_at < $2
    LIMIT $1
)) AND successor_response IS NOT NULL AND token_issued_at < $2
"""


@dataclass(frozen=True)
class Step:
    name: str
    sql: str
    times: tuple[datetime, ...]
    counted: bool = False  # the statement answers how many rows it changed (a SELECT)


def steps(now: datetime, settings: Settings, retention: timedelta) -> list[Step]:
    kept_until, grace_over = now - retention, now - settings.refresh_reuse_grace
    return [
        Step("authorization_requests", DELETE_AUTHORIZATION_REQUESTS, (now,)),
        Step("authorization_codes", DELETE_AUTHORIZATION_CODES, (kept_until,)),
        Step("sessions", DELETE_SESSIONS, (kept_until,)),
        Step("revoked_access_tokens", DELETE_REVOKED_ACCESS_TOKENS, (now,)),
        # Failures older than the window no longer count (idp.signin); a lock must run out.
        Step("login_failures", DELETE_LOGIN_FAILURES, (now - WINDOW, now)),
        Step("successor_responses", ERASE_SUCCESSOR_RESPONSES, (grace_over,)),
        Step("refresh_families", DELETE_REFRESH_FAMILIES, (kept_until,)),
        Step("mail_outbox", DELETE_MAIL_OUTBOX, (kept_until,)),
        Step("mail_tokens", DELETE_MAIL_TOKENS, (kept_until,)),
        Step("rate_limits", DELETE_RATE_LIMITS, (kept_until,)),
        Step("webauthn_challenges", DELETE_WEBAUTHN_CHALLENGES, (now,)),
        Step("initial_access_tokens", DELETE_INITIAL_ACCESS_TOKENS, (now,)),
        # Last: the codes, requests and families swept above no longer hold their client.
        Step(
            "metadata_document_clients",
            DELETE_DOCUMENT_CLIENTS,
            (now - DOCUMENT_CLIENT_KEPT,),
            counted=True,
        ),
    ]


async def sweep(
    pool: asyncpg.Pool,
    clock: Clock,
    settings: Settings,
    *,
    batch_size: int = 1000,
    retention: timedelta = RETENTION,
) -> dict[str, int]:
    """Delete (or erase) what expired; returns how many rows each step changed."""
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    counts: dict[str, int] = {}
    for step in steps(clock.now(), settings, retention):
        counts[step.name] = await _run(pool, step, batch_size)
    return counts


async def _run(pool: asyncpg.Pool, step: Step, batch_size: int) -> int:
    total = 0
    while True:
        async with pool.acquire() as connection, connection.transaction():
            await connection.execute("SELECT pg_advisory_xact_lock($1)", JANITOR_LOCK_ID)
            if step.counted:
                changed = int(await connection.fetchval(step.sql, batch_size, *step.times))
            else:
                status = await connection.execute(step.sql, batch_size, *step.times)
                changed = int(status.split()[-1])  # "DELETE 3", "UPDATE 3"
        total += changed
        if changed < batch_size:
            return total


class JanitorScheduler:
    """Sweeps every ``interval`` in every process; the lock makes each batch happen once."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        clock: Clock,
        settings: Settings,
        *,
        interval: timedelta = SWEEP_INTERVAL,
    ) -> None:
        self._pool = pool
        self._clock = clock
        self._settings = settings
        self._interval = interval
        self._scheduler = AsyncIOScheduler()

    def start(self) -> None:
        """Start sweeping; must be called from within the running event loop."""
        self._scheduler.add_job(
            self.run,
            "interval",
            seconds=self._interval.total_seconds(),
            id="janitor.sweep",
            coalesce=True,  # after an outage, sweep once
            max_instances=1,
            misfire_grace_time=max(1, int(self._interval.total_seconds())),
        )
        self._scheduler.start()

    def shutdown(self) -> None:
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)

    async def run(self) -> None:
        try:
            counts = await sweep(self._pool, self._clock, self._settings)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            log.warning("housekeeping sweep failed; will retry at the next run", exc_info=True)
            return
        done = ", ".join(f"{count} {name}" for name, count in counts.items() if count)
        if done:
            log.info("housekeeping: %s", done)
