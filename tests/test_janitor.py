"""Housekeeping: the janitor deletes expired rows and nothing else, in batches of bounded size,
once however many janitors run at the same time."""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import datetime, timedelta

import asyncpg
import pytest

from idp.clock import FrozenClock
from idp.db.pool import create_pool
from idp.janitor import JANITOR_LOCK_ID, JanitorScheduler, sweep
from idp.settings import Settings
from tests.factories import make_client, make_user

RETENTION = timedelta(days=7)
GRACE = timedelta(seconds=30)
DAY = timedelta(days=1)
# Of each kind, 10 rows are expired and 5 are not (some of them expired, but recently).
EXPIRED = {
    "authorization_requests": 10,
    "authorization_codes": 10,
    "sessions": 10,
    "revoked_access_tokens": 10,
    "login_failures": 10,
    "successor_responses": 10,
    "refresh_families": 10,
    "mail_outbox": 10,
    "mail_tokens": 10,
    "rate_limits": 10,
    "webauthn_challenges": 10,
    "initial_access_tokens": 10,
    "metadata_document_clients": 10,
}
# Where each kind's rows carry their "keep:" or "drop:" label.
LABELS = {
    "authorization_requests": "params->>'label'",
    "authorization_codes": "sid",
    "sessions": "sid",
    "revoked_access_tokens": "jti",
    "login_failures": "key",
    "refresh_families": "sid",
    "mail_outbox": "recipient",
    "mail_tokens": "email",
    "rate_limits": "key",
    "webauthn_challenges": "convert_from(challenge_hash, 'UTF8')",
    "initial_access_tokens": "created_by",
}


@pytest.fixture
def grace_settings(settings: Settings) -> Settings:
    return replace(settings, refresh_reuse_grace=GRACE)


async def seed(pool: asyncpg.Pool, settings: Settings, now: datetime) -> None:
    """10 expired and 5 live rows of every kind the janitor sweeps."""
    client, _ = await make_client(pool, settings)
    user = await make_user(pool)
    cid, uid = client.client_id, user.id
    old = now - RETENTION - timedelta(hours=1)  # past the retention window

    requests = [("drop", now - timedelta(seconds=i + 1)) for i in range(10)]
    requests += [("keep", now + timedelta(minutes=i + 1)) for i in range(5)]
    await pool.executemany(
        "INSERT INTO authorization_requests (id, client_id, params, created_at, expires_at) "
        "VALUES ($1, $2, $3::jsonb, $4, $5)",
        [
            (secrets.token_bytes(32), cid, f'{{"label": "{label}:{i}"}}', now - DAY, expires)
            for i, (label, expires) in enumerate(requests)
        ],
    )

    codes = [("drop", old - timedelta(minutes=i)) for i in range(10)]
    codes += [("keep", now - DAY)] * 3 + [("keep", now + timedelta(seconds=60))] * 2
    await pool.executemany(
        "INSERT INTO authorization_codes (code_hash, client_id, user_id, sid, redirect_uri, "
        "scopes, audience, code_challenge, auth_time, created_at, expires_at) "
        "VALUES ($1, $2, $3, $4, 'https://app.example/cb', '{openid}', '{}', 'x', $5, $5, $6)",
        [
            (secrets.token_bytes(32), cid, uid, f"{label}:{i}", expires - DAY, expires)
            for i, (label, expires) in enumerate(codes)
        ],
    )

    # (label, expires_at, ended_at)
    sessions: list[tuple[str, datetime, datetime | None]] = [("drop", old, None)] * 5
    sessions += [("drop", now - 6 * DAY, old)] * 5  # ended long ago, expired recently
    sessions += [("keep", now + timedelta(hours=1), None)] * 2
    sessions += [("keep", now + timedelta(hours=1), now - DAY), ("keep", now - DAY, None)]
    sessions += [("keep", now - DAY, now - 2 * DAY)]
    await pool.executemany(
        "INSERT INTO sessions (id_hash, sid, user_id, auth_time, created_at, expires_at, ended_at)"
        " VALUES ($1, $2, $3, $4, $4, $5, $6)",
        [
            (secrets.token_bytes(32), f"{label}:{i}", uid, expires - DAY, expires, ended)
            for i, (label, expires, ended) in enumerate(sessions)
        ],
    )

    denied = [("drop", now - timedelta(seconds=i + 1)) for i in range(10)]
    denied += [("keep", now + timedelta(minutes=i + 1)) for i in range(5)]
    await pool.executemany(
        "INSERT INTO revoked_access_tokens (jti, expires_at) VALUES ($1, $2)",
        [(f"{label}:{i}", expires) for i, (label, expires) in enumerate(denied)],
    )

    # (label, last_failure_at, locked_until)
    failures: list[tuple[str, datetime, datetime | None]] = [
        ("drop", now - timedelta(minutes=16), None)
    ] * 5
    failures += [("drop", now - timedelta(minutes=20), now - timedelta(minutes=1))] * 5
    failures += [("keep", now - timedelta(minutes=1), None)] * 2  # still counting
    failures += [("keep", now - timedelta(minutes=20), now + timedelta(minutes=10))] * 3  # locked
    await pool.executemany(
        "INSERT INTO login_failures (key, failures, last_failure_at, locked_until) "
        "VALUES ($1, 7, $2, $3)",
        [(f"{label}:{i}", last, locked) for i, (label, last, locked) in enumerate(failures)],
    )

    # (label, expires_at, revoked_at)
    families: list[tuple[str, datetime, datetime | None]] = [("drop", old, None)] * 5
    families += [("drop", now + 20 * DAY, old)] * 5
    families += [("keep", now + 20 * DAY, None)] * 2
    families += [("keep", now + 20 * DAY, now - DAY)] * 2 + [("keep", now - DAY, None)]
    # The dead families hold answers sealed past the grace, the live ones within it.
    await insert_families(
        pool,
        [
            (
                uuid.uuid4(), cid, uid, f"{label}:{i}", now - 10 * DAY, expires, revoked,
                secrets.token_bytes(32), now - timedelta(seconds=i + 1) - grace, b"sealed",
            )
            for i, (label, expires, revoked) in enumerate(families)
            for grace in [GRACE if label == "drop" else timedelta(0)]
        ],
    )  # fmt: skip
    await seed_mail(pool, uid, now, old)
    # Metadata document clients holding nothing: 10 whose document expired more than a day
    # ago; kept, 3 that expired less than a day ago and 2 disabled.
    documents = [("drop", now - DAY - timedelta(minutes=i + 1), False) for i in range(10)]
    documents += [("keep", now - DAY + timedelta(minutes=i + 1), False) for i in range(3)]
    documents += [("keep", now - 30 * DAY, True)] * 2
    await insert_document_clients(
        pool,
        [(f"https://{label}{i}.example/client.json", expires, disabled)
         for i, (label, expires, disabled) in enumerate(documents)],
    )  # fmt: skip


async def insert_document_clients(
    pool: asyncpg.Pool, rows: list[tuple[str, datetime, bool]]
) -> None:
    """(client_id, metadata_expires_at, disabled) of metadata document clients."""
    await pool.executemany(
        "INSERT INTO clients (client_id, name, redirect_uris, grant_types, scopes, created_at, "
        "registration, metadata_expires_at, updated_at, disabled) "
        "VALUES ($1, 'Doc', '{http://127.0.0.1/cb}', '{authorization_code}', '{openid}', "
        "$2::timestamptz - interval '5 minutes', 'metadata_document', $2, $2, $3)",
        rows,
    )


async def seed_mail(pool: asyncpg.Pool, uid: uuid.UUID, now: datetime, old: datetime) -> None:
    """Outbox rows, mail tokens, rate-limit counters and spent WebAuthn challenges: 10 past
    the retention (or expiry), 5 not."""
    # (label, created_at, sent_at, given_up_at): a waiting mail is kept, however old.
    mails: list[tuple[str, datetime, datetime | None, datetime | None]] = [
        ("drop", old - DAY, old, None)
    ] * 5
    mails += [("drop", old - DAY, None, old)] * 5
    mails += [("keep", now - DAY, now - DAY, None), ("keep", now - 2 * DAY, None, now - DAY)]
    mails += [("keep", old - DAY, None, None)] * 3  # never sent, never given up: waiting
    await pool.executemany(
        "INSERT INTO mail_outbox (recipient, template, sealed, created_at, next_attempt_at, "
        "sent_at, given_up_at) VALUES ($1, 'test', NULL, $2, $2, $3, $4)",
        [(f"{label}:{i}", created, sent, given_up) for i, (label, created, sent, given_up)
         in enumerate(mails)],
    )  # fmt: skip

    # (label, expires_at, used_at)
    tokens: list[tuple[str, datetime, datetime | None]] = [("drop", old, None)] * 5
    tokens += [("drop", now + DAY, old)] * 5  # used long ago
    tokens += [("keep", now + DAY, None)] * 2 + [("keep", now - DAY, None)]
    tokens += [("keep", now + DAY, now - DAY)] * 2
    await pool.executemany(
        "INSERT INTO mail_tokens (token_hash, purpose, user_id, email, created_at, expires_at, "
        "used_at) VALUES ($1, 'reset_password', $2, $3, $4, $4, $5)",
        [(secrets.token_bytes(32), uid, f"{label}:{i}", expires, used)
         for i, (label, expires, used) in enumerate(tokens)],
    )  # fmt: skip

    windows = [("drop", old - timedelta(minutes=i)) for i in range(10)]
    windows += [("keep", now - timedelta(hours=i)) for i in range(5)]
    await pool.executemany(
        "INSERT INTO rate_limits (key, window_start, hits) VALUES ($1, $2, 3)",
        [(f"{label}:{i}", start) for i, (label, start) in enumerate(windows)],
    )

    spent = [("drop", now - timedelta(seconds=i + 1)) for i in range(10)]
    spent += [("keep", now + timedelta(minutes=i + 1)) for i in range(5)]
    await pool.executemany(
        "INSERT INTO webauthn_challenges (challenge_hash, expires_at) VALUES ($1, $2)",
        [(f"{label}:{i}".encode(), expires) for i, (label, expires) in enumerate(spent)],
    )

    # Expired, or used up; kept: live with uses left or unlimited.
    initial: list[tuple[str, datetime, int | None]]
    initial = [("drop", now - timedelta(seconds=i + 1), 3) for i in range(5)]
    initial += [("drop", now + DAY, 0) for _ in range(5)]
    initial += [("keep", now + DAY, 1), ("keep", now + DAY, None)] * 2
    initial += [("keep", now + timedelta(seconds=1), 2)]
    await pool.executemany(
        "INSERT INTO initial_access_tokens (token_hash, created_at, expires_at, uses_left, "
        "created_by) VALUES ($1, $2, $3, $4, $5)",
        [(secrets.token_bytes(32), now - DAY, expires, uses, f"{label}:{i}")
         for i, (label, expires, uses) in enumerate(initial)],
    )  # fmt: skip


# (id, client_id, user_id, sid, created_at, expires_at, revoked_at, handle_hash,
# token_issued_at, successor_response)
Family = tuple[
    uuid.UUID, str, uuid.UUID, str, datetime, datetime, datetime | None, bytes, datetime, bytes
]


async def insert_families(pool: asyncpg.Pool, families: list[Family]) -> None:
    await pool.executemany(
        "INSERT INTO refresh_families (id, client_id, user_id, sid, scopes, audience, auth_time, "
        "created_at, expires_at, revoked_at, handle_hash, token_hash, token_issued_at, "
        "idle_expires_at, jti_window_at, successor_response) "
        "VALUES ($1, $2, $3, $4, '{openid}', '{}', $5, $5, $6, $7, $8, $8, $9, $6, $9, $10)",
        families,
    )


async def assert_only_live_rows_remain(pool: asyncpg.Pool) -> None:
    for table, label in LABELS.items():
        left = [row[0] for row in await pool.fetch(f"SELECT {label} FROM {table}")]
        assert len(left) == 5, (table, left)
        assert all(name.startswith("keep:") for name in left), (table, left)
    sealed = "SELECT count(*) FROM refresh_families WHERE successor_response IS NOT NULL"
    assert await pool.fetchval(sealed) == 5
    documents = await pool.fetch(
        "SELECT client_id FROM clients WHERE registration = 'metadata_document'"
    )
    assert len(documents) == 5, documents
    assert all(row[0].startswith("https://keep") for row in documents), documents


# Statement-level triggers record how many rows each DELETE or UPDATE changed.
PROBE = """
CREATE SCHEMA janitor_probe;
CREATE TABLE janitor_probe.statements (id bigserial, name text, op text, rows bigint);
CREATE FUNCTION janitor_probe.record() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO janitor_probe.statements (name, op, rows)
    SELECT TG_TABLE_NAME, TG_OP, count(*) FROM changed;
    RETURN NULL;
END $$;
"""
PROBE_TRIGGER = """
CREATE TRIGGER janitor_probe_{op} AFTER {op} ON {table} REFERENCING OLD TABLE AS changed
FOR EACH STATEMENT EXECUTE FUNCTION janitor_probe.record()
"""
Statements = dict[tuple[str, str], list[int]]


@pytest.fixture
async def probe(pool: asyncpg.Pool) -> AsyncIterator[None]:
    await pool.execute(PROBE)
    try:
        for table in LABELS:
            await pool.execute(PROBE_TRIGGER.format(op="delete", table=table))
        await pool.execute(PROBE_TRIGGER.format(op="update", table="refresh_families"))
        yield
    finally:
        await pool.execute("DROP SCHEMA janitor_probe CASCADE")  # and the triggers with it


async def statements(pool: asyncpg.Pool) -> Statements:
    """Rows changed by each statement that changed any, per (table, operation), in order."""
    found: Statements = {}
    rows = await pool.fetch(
        "SELECT name, op, rows FROM janitor_probe.statements WHERE rows > 0 ORDER BY id"
    )
    for row in rows:
        found.setdefault((row["name"], row["op"]), []).append(row["rows"])
    return found


@pytest.mark.usefixtures("probe")
async def test_sweep_deletes_only_expired_rows_in_batches_of_bounded_size(
    pool: asyncpg.Pool, grace_settings: Settings, clock: FrozenClock
) -> None:
    await seed(pool, grace_settings, clock.now())

    counts = await sweep(pool, clock, grace_settings, batch_size=3, retention=RETENTION)

    assert counts == EXPIRED
    await assert_only_live_rows_remain(pool)
    batches = [3, 3, 3, 1]  # each batch its own statement, none larger than batch_size
    assert await statements(pool) == {
        **{(table, "DELETE"): batches for table in LABELS},
        ("refresh_families", "UPDATE"): batches,  # the sealed answers, before the families
    }


@pytest.mark.usefixtures("probe")
async def test_two_janitors_at_once_delete_each_row_once(
    pool: asyncpg.Pool, migrated: str, grace_settings: Settings, clock: FrozenClock
) -> None:
    await seed(pool, grace_settings, clock.now())
    other = await create_pool(migrated, min_size=1, max_size=4)  # another process's pool
    try:
        first, second = await asyncio.gather(
            sweep(pool, clock, grace_settings, batch_size=3),
            sweep(other, clock, grace_settings, batch_size=3),
        )
    finally:
        await other.close()

    assert {name: first[name] + second[name] for name in EXPIRED} == EXPIRED
    await assert_only_live_rows_remain(pool)
    changed = {key: sum(rows) for key, rows in (await statements(pool)).items()}
    assert changed[("sessions", "DELETE")] == EXPIRED["sessions"]
    assert changed[("refresh_families", "DELETE")] == EXPIRED["refresh_families"]
    assert changed[("refresh_families", "UPDATE")] == EXPIRED["successor_responses"]


async def test_a_sweep_waits_while_another_janitor_holds_the_lock(
    pool: asyncpg.Pool, grace_settings: Settings, clock: FrozenClock
) -> None:
    await seed(pool, grace_settings, clock.now())
    async with pool.acquire() as holder:
        transaction = holder.transaction()
        await transaction.start()
        await holder.execute("SELECT pg_advisory_xact_lock($1)", JANITOR_LOCK_ID)
        waiting = asyncio.create_task(sweep(pool, clock, grace_settings, batch_size=3))
        await asyncio.sleep(0.3)
        assert not waiting.done()
        assert await pool.fetchval("SELECT count(*) FROM authorization_requests") == 15
        await transaction.commit()
    assert await waiting == EXPIRED


async def test_successor_responses_are_erased_only_past_the_grace(
    pool: asyncpg.Pool, grace_settings: Settings, clock: FrozenClock
) -> None:
    client, _ = await make_client(pool, grace_settings)
    user = await make_user(pool)
    now = clock.now()
    ages = {b"past": GRACE + timedelta(seconds=1), b"at": GRACE, b"within": timedelta(seconds=5)}
    await insert_families(
        pool,
        [
            (
                uuid.uuid4(), client.client_id, user.id, "s", now - DAY, now + DAY, None, name,
                now - age, name,
            )
            for name, age in ages.items()
        ],
    )  # fmt: skip

    counts = await sweep(pool, clock, grace_settings)

    assert counts["successor_responses"] == 1
    rows = await pool.fetch("SELECT handle_hash, successor_response FROM refresh_families")
    kept = {row["handle_hash"]: row["successor_response"] for row in rows}
    assert kept == {b"past": None, b"at": b"at", b"within": b"within"}  # the families stay


async def test_rows_expire_by_the_injected_clock(
    pool: asyncpg.Pool, grace_settings: Settings, clock: FrozenClock
) -> None:
    await seed(pool, grace_settings, clock.now())
    assert await sweep(pool, clock, grace_settings) == EXPIRED

    clock.advance(RETENTION + 2 * DAY)  # every live row above is now past its retention...
    counts = await sweep(pool, clock, grace_settings)

    assert counts["sessions"] == counts["authorization_codes"] == 5
    assert counts["login_failures"] == counts["revoked_access_tokens"] == 5
    assert counts["refresh_families"] == 3  # ...but the families that have 20 days to live
    assert counts["mail_outbox"] == 2  # ...and mail still waiting to be sent
    assert counts["mail_tokens"] == counts["rate_limits"] == 5
    assert counts["metadata_document_clients"] == 3  # ...but not the disabled ones
    assert await pool.fetchval("SELECT array_agg(sid ORDER BY sid) FROM refresh_families") == [
        "keep:10",
        "keep:11",
    ]


async def test_the_scheduled_janitor_sweeps_and_logs_a_failed_run(
    pool: asyncpg.Pool,
    migrated: str,
    grace_settings: Settings,
    clock: FrozenClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await seed(pool, grace_settings, clock.now())
    janitor = JanitorScheduler(pool, clock, grace_settings, interval=timedelta(seconds=0.1))
    janitor.start()
    try:
        deadline = time.monotonic() + 5
        while await pool.fetchval("SELECT count(*) FROM revoked_access_tokens") > 5:
            assert time.monotonic() < deadline, "no sweep within 5 s"
            await asyncio.sleep(0.05)
    finally:
        janitor.shutdown()

    closed = await create_pool(migrated, min_size=1, max_size=1)
    await closed.close()
    with caplog.at_level(logging.WARNING, logger="idp.janitor"):
        await JanitorScheduler(closed, clock, grace_settings).run()  # must not raise
    assert "will retry at the next run" in caplog.text


async def test_metadata_document_clients_are_deleted_only_when_long_expired_and_holding_nothing(
    pool: asyncpg.Pool, migrated: str, settings: Settings, clock: FrozenClock
) -> None:
    """A document client's row is the cached document (idp.oauth.document_clients): one for
    every URL ever named. The janitor deletes those whose document expired more than a day ago,
    unless a consent, a refresh family, a code or a pending request still holds them; each
    deleted one is announced on idp_clients so every process drops its copy."""
    now = clock.now()
    user = await make_user(pool)
    long_ago = now - 2 * DAY
    names = ["unused", "old-family", "consent", "live-family", "code", "pending"]
    urls = {name: f"https://{name}.example/client.json" for name in names}
    await insert_document_clients(pool, [(url, long_ago, False) for url in urls.values()])
    await pool.execute(
        "INSERT INTO consents (user_id, client_id, scopes, granted_at) VALUES ($1, $2, '{}', $3)",
        user.id,
        urls["consent"],
        long_ago,
    )
    families: list[Family] = [
        # Revoked past the retention: swept first in the same run, then its client.
        (uuid.uuid4(), urls["old-family"], user.id, "old", now - 30 * DAY, now + DAY,
         now - RETENTION - DAY, secrets.token_bytes(32), now - 30 * DAY, b""),
        (uuid.uuid4(), urls["live-family"], user.id, "live", long_ago, now + 20 * DAY, None,
         secrets.token_bytes(32), long_ago, b""),
    ]  # fmt: skip
    await insert_families(pool, families)
    await pool.execute(
        "INSERT INTO authorization_codes (code_hash, client_id, user_id, sid, redirect_uri, "
        "scopes, audience, code_challenge, auth_time, created_at, expires_at) "
        "VALUES ($1, $2, $3, 's', 'http://127.0.0.1/cb', '{openid}', '{}', 'x', $4, $4, $5)",
        secrets.token_bytes(32),
        urls["code"],
        user.id,
        now - timedelta(minutes=1),
        now + timedelta(minutes=1),
    )
    await pool.execute(
        "INSERT INTO authorization_requests (id, client_id, params, created_at, expires_at) "
        "VALUES ($1, $2, '{}'::jsonb, $3, $4)",
        secrets.token_bytes(32),
        urls["pending"],
        now - timedelta(minutes=1),
        now + timedelta(minutes=5),
    )
    operator, _ = await make_client(pool, settings)  # no document: never swept
    heard: list[str] = []
    listener = await asyncpg.connect(migrated)
    try:
        await listener.add_listener("idp_clients", lambda *args: heard.append(args[3]))

        counts = await sweep(pool, clock, settings, batch_size=1)

        assert counts["metadata_document_clients"] == 2
        assert counts["refresh_families"] == 1
        left = await pool.fetch("SELECT client_id FROM clients ORDER BY client_id")
        assert {row[0] for row in left} == {
            operator.client_id,
            *(urls[name] for name in ("consent", "live-family", "code", "pending")),
        }
        await listener.execute("SELECT 1")  # the notifications arrive before this answer
        assert sorted(heard) == sorted([urls["unused"], urls["old-family"]])
    finally:
        await listener.close()
