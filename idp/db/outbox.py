"""SQL of ``mail_outbox``: mail waiting to be sent, sealed (idp.mail.message).

Senders claim due rows with ``FOR UPDATE SKIP LOCKED`` and lease them (``next_attempt_at`` moves
past the send's deadline) in one short statement, so several processes never send one mail
twice and no transaction stays open while SMTP talks."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from idp.db.pool import Executor

INSERT = """
INSERT INTO mail_outbox
    (recipient, template, sealed, created_at, next_attempt_at, link_expires_at)
VALUES ($1, $2, $3, $4, $4, $5)
"""


@dataclass(frozen=True)
class Queued:
    recipient: str
    template: str
    sealed: bytes
    link_expires_at: datetime | None = None  # the mail is useless after it; None: no link


async def enqueue(db: Executor, queued: Queued, now: datetime) -> None:
    """Run it in the transaction that made what the mail carries: both happen, or neither."""
    await db.execute(
        INSERT, queued.recipient, queued.template, queued.sealed, now, queued.link_expires_at
    )


# Rows still to send: neither sent nor given up (the partial index mail_outbox_due).
_PENDING = "sent_at IS NULL AND given_up_at IS NULL"


def _worth_sending(now: str, oldest: str) -> str:
    """Still worth sending at ``now``: a mail with a link until its link expires, one without
    if queued after ``oldest`` (the sender's MAX_AGE ago)."""
    return f"coalesce(link_expires_at > {now}, created_at > {oldest})"


# $1 now, $2 the lease's end, $3 the batch size, $4 the oldest created_at still worth a try
# for mail without a link.
# SKIP LOCKED: another sender's claim in progress is left to it; a row it has just leased is
# re-checked by FOR UPDATE and fails "next_attempt_at <= $1".
CLAIM = f"""
UPDATE mail_outbox SET next_attempt_at = $2
WHERE id IN (
    SELECT id FROM mail_outbox
    WHERE {_PENDING} AND next_attempt_at <= $1 AND {_worth_sending("$1", "$4")}
    ORDER BY next_attempt_at
    LIMIT $3
    FOR UPDATE SKIP LOCKED
)
RETURNING id, recipient, template, sealed, created_at, attempts
"""
# $3: keep the bodies (demo mode's mailbox shows them); otherwise they go, tokens and all.
MARK_SENT = """
UPDATE mail_outbox
SET sent_at = $2, last_error = NULL, sealed = CASE WHEN $3 THEN sealed END
WHERE id = ANY($1::bigint[]) AND sent_at IS NULL
"""
# A retry is never due after the mail's link expires: that is when it is given up.
RECORD_FAILURES = """
UPDATE mail_outbox AS o
SET attempts = o.attempts + 1, last_error = f.error,
    next_attempt_at = least(f.next_attempt_at, o.link_expires_at)
FROM unnest($1::bigint[], $2::text[], $3::timestamptz[]) AS f (id, error, next_attempt_at)
WHERE o.id = f.id AND o.sent_at IS NULL
"""
# A leased row (next_attempt_at in the future) is being sent: it is not given up under way.
# $2: mail without a link queued before it is given up.
GIVE_UP = f"""
UPDATE mail_outbox
SET given_up_at = $1, last_error = coalesce(last_error, 'never sent')
WHERE {_PENDING} AND NOT {_worth_sending("$1", "$2")} AND next_attempt_at <= $1
RETURNING id, recipient, template, attempts, last_error, link_expires_at, given_up_at
"""
# A permanent refusal (RFC 5321 §4.2.1, 5yz): given up at once, with the server's reply.
GIVE_UP_REFUSED = """
UPDATE mail_outbox AS o
SET given_up_at = $3, attempts = o.attempts + 1, last_error = f.error
FROM unnest($1::bigint[], $2::text[]) AS f (id, error)
WHERE o.id = f.id AND o.sent_at IS NULL AND o.given_up_at IS NULL
RETURNING o.id, o.recipient, o.template, o.attempts, o.last_error, o.link_expires_at,
    o.given_up_at
"""
# A deleted account gets no more mail: what still waits for its address goes, bodies and all.
DELETE_UNSENT_TO = f"""
DELETE FROM mail_outbox WHERE lower(recipient) = lower($1) AND {_PENDING}
"""
SELECT_PENDING_SUMMARY = f"""
SELECT count(*) AS waiting, min(next_attempt_at) AS next_due FROM mail_outbox WHERE {_PENDING}
"""
SELECT_WAITING = f"""
SELECT id, recipient, template, created_at, attempts, next_attempt_at, last_error
FROM mail_outbox WHERE {_PENDING}
ORDER BY id
LIMIT $1
"""
SELECT_TOTALS = f"""
SELECT count(*) FILTER (WHERE {_PENDING}) AS waiting,
       count(*) FILTER (WHERE sent_at > $1) AS sent,
       count(*) FILTER (WHERE given_up_at IS NOT NULL) AS given_up
FROM mail_outbox
"""
SELECT_WITH_BODIES = """
SELECT id, recipient, template, sealed, created_at, sent_at
FROM mail_outbox WHERE sealed IS NOT NULL
ORDER BY id DESC
LIMIT $1
"""


@dataclass(frozen=True)
class Claimed:
    id: int
    recipient: str
    template: str
    sealed: bytes
    created_at: datetime
    attempts: int


@dataclass(frozen=True)
class Failure:
    id: int
    error: str  # one line, no secret
    next_attempt_at: datetime


@dataclass(frozen=True)
class GivenUp:
    id: int
    recipient: str
    template: str
    attempts: int
    last_error: str
    link_expires_at: datetime | None
    given_up_at: datetime


@dataclass(frozen=True)
class Waiting:
    id: int
    recipient: str
    template: str
    created_at: datetime
    attempts: int
    next_attempt_at: datetime
    last_error: str | None


@dataclass(frozen=True)
class Totals:
    waiting: int
    sent: int  # since the time asked about
    given_up: int  # still kept (the janitor deletes them after its retention)


@dataclass(frozen=True)
class Stored:
    """A row that still has its bodies: waiting, or sent in demo mode (the mailbox)."""

    id: int
    recipient: str
    template: str
    sealed: bytes
    created_at: datetime
    sent_at: datetime | None


async def claim(
    db: Executor, now: datetime, lease_until: datetime, limit: int, created_after: datetime
) -> list[Claimed]:
    """Take up to ``limit`` due rows for this sender until ``lease_until``, in one statement:
    no transaction stays open while SMTP talks, and a sender that dies mid-send leaves its rows
    to the others once the lease is over."""
    rows = await db.fetch(CLAIM, now, lease_until, limit, created_after)
    return [Claimed(**dict(row)) for row in rows]


async def mark_sent(db: Executor, ids: list[int], now: datetime, *, keep_bodies: bool) -> None:
    await db.execute(MARK_SENT, ids, now, keep_bodies)


async def record_failures(db: Executor, failures: list[Failure]) -> None:
    await db.execute(
        RECORD_FAILURES,
        [failure.id for failure in failures],
        [failure.error for failure in failures],
        [failure.next_attempt_at for failure in failures],
    )


async def give_up(db: Executor, now: datetime, created_before: datetime) -> list[GivenUp]:
    """Give up the unsent rows whose link has expired by ``now``, and those without a link
    queued before ``created_before``."""
    return [GivenUp(**dict(row)) for row in await db.fetch(GIVE_UP, now, created_before)]


async def give_up_refused(db: Executor, refused: list[Failure], now: datetime) -> list[GivenUp]:
    """Give up the rows a server refused for good (their ``next_attempt_at`` is not used)."""
    rows = await db.fetch(
        GIVE_UP_REFUSED, [one.id for one in refused], [one.error for one in refused], now
    )
    return [GivenUp(**dict(row)) for row in rows]


async def delete_unsent_to(db: Executor, recipient: str) -> None:
    """Drop the mail still waiting for ``recipient``; run it in the transaction that deletes
    the account. A mail a sender is sending at that moment may still go."""
    await db.execute(DELETE_UNSENT_TO, recipient)


async def pending_summary(db: Executor) -> tuple[int, datetime | None]:
    """How many rows wait, and when the earliest of them is due."""
    row = await db.fetchrow(SELECT_PENDING_SUMMARY)
    assert row is not None
    return row["waiting"], row["next_due"]


async def waiting(db: Executor, limit: int) -> list[Waiting]:
    return [Waiting(**dict(row)) for row in await db.fetch(SELECT_WAITING, limit)]


async def totals(db: Executor, sent_since: datetime) -> Totals:
    row = await db.fetchrow(SELECT_TOTALS, sent_since)
    assert row is not None
    return Totals(**dict(row))


async def with_bodies(db: Executor, limit: int) -> list[Stored]:
    """Newest first."""
    return [Stored(**dict(row)) for row in await db.fetch(SELECT_WITH_BODIES, limit)]
