"""Prometheus metrics (``prometheus-client``): what idp counts, and the ``/metrics`` exposition.

Counters and histograms are module-level, as prometheus-client intends. With several worker
processes (``idp serve --workers N``) ``idp serve`` points ``PROMETHEUS_MULTIPROC_DIR`` at a
directory of its own before the workers start, each worker writes its values to files there,
and a scrape of any worker sums them (``MultiProcessCollector``). Gauges (the signing key's age,
the time to the next key change, the connection pool, the mail queue) are computed when scraped,
by the process that answers, never written to those files (no ``multiprocess_mode`` to choose):
the pool's carry its ``pid``; the mail queue's is counted in the database every worker shares,
so whichever worker answers gives the same, current number.
"""

from __future__ import annotations

import bisect
import math
import os
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Protocol

import asyncpg
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import REGISTRY, Collector

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

REQUESTS = Counter(
    "idp_http_requests", "HTTP requests answered, by route, method and status.",
    ["route", "method", "status"],
)  # fmt: skip
_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
LATENCY = Histogram(
    "idp_http_request_duration_seconds",
    "Time from the request's arrival to the end of its response, by route.",
    ["route"],
    buckets=_BUCKETS,
)
TOKENS_ISSUED = Counter(
    "idp_tokens_issued", "Successful /token answers, by grant type.", ["grant_type"]
)
LOGIN_FAILURES = Counter("idp_login_failures", "Failed sign-ins (wrong credentials or locked).")
REFRESH_REUSE = Counter(
    "idp_refresh_reuse_detected",
    "Consumed refresh tokens presented again: each revoked its family (RFC 9700 §4.14.2).",
)
EVENTS = Counter("idp_audit_events", "Audit log events written, by action.", ["action"])
MAIL_SENT = Counter(
    "idp_mail_sent",
    "Mails the SMTP server accepted (in demo mode without SMTP: put in the mailbox).",
)
MAIL_FAILED = Counter(
    "idp_mail_failed_attempts", "Attempts to send a mail that failed; each is retried later."
)
MAIL_GIVEN_UP = Counter(
    "idp_mail_given_up",
    "Mails given up unsent: refused for good (5yz), their link expired, or 24 h after queueing.",
)

# Audit actions that also have a counter of their own.
_ACTION_COUNTERS: dict[str, Counter] = {
    "login.failed": LOGIN_FAILURES,
    "refresh.reuse_detected": REFRESH_REUSE,
    "mail.given_up": MAIL_GIVEN_UP,
}


class RequestTally:
    """Requests counted in plain dictionaries, flushed into REQUESTS and LATENCY every second
    and before each scrape (``flush``).

    A prometheus-client update takes a lock and, with several workers, writes a memory-mapped
    file: too dear for every request of the hot paths. A scrape of another worker sees this
    one's requests at most a second late.
    """

    _BOUNDS = (*_BUCKETS, math.inf)  # the histogram's upper bounds, +Inf last

    def __init__(self) -> None:
        self._requests: dict[tuple[str, str, int], int] = {}
        self._latency: dict[str, list[float]] = {}  # a count per bucket, then the sum

    def record(self, route: str, method: str, status: int, seconds: float) -> None:
        key = (route, method, status)
        self._requests[key] = self._requests.get(key, 0) + 1
        row = self._latency.get(route)
        if row is None:
            row = self._latency[route] = [0.0] * (len(self._BOUNDS) + 1)
        row[bisect.bisect_left(self._BOUNDS, seconds)] += 1  # the first bound >= seconds
        row[-1] += seconds

    def flush(self) -> None:
        requests, self._requests = self._requests, {}
        latency, self._latency = self._latency, {}
        for (route, method, status), count in requests.items():
            REQUESTS.labels(route, method, str(status)).inc(count)
        for route, row in latency.items():
            child = LATENCY.labels(route)
            # Histogram.observe, n observations at once (it has no public call for that):
            # a count per bucket, cumulated when collected, plus the sum.
            for bucket, observed in zip(child._buckets, row[:-1], strict=True):
                if observed:
                    bucket.inc(observed)
            child._sum.inc(row[-1])


TALLY = RequestTally()


def count_event(action: str) -> None:
    EVENTS.labels(action).inc()
    counter = _ACTION_COUNTERS.get(action)
    if counter is not None:
        counter.inc()


class KeySchedule(Protocol):
    """What the key gauges read (``idp.keys.keyring.Keyring`` is one)."""

    def key_times(self) -> tuple[datetime, datetime] | None:
        """When the signing key became active and when the key set next changes on schedule;
        None while no key is loaded."""


class _LiveState(Collector):
    """Gauges read when scraped: key age, time to the next key change, this process's pool."""

    def __init__(self, keys: KeySchedule, pool: asyncpg.Pool, now: Callable[[], datetime]) -> None:
        self._keys, self._pool, self._now = keys, pool, now

    def collect(self) -> Iterator[Metric]:
        pid = str(os.getpid())
        times = self._keys.key_times()
        if times is not None:
            (activated_at, next_change_at), now = times, self._now()
            age = GaugeMetricFamily(
                "idp_signing_key_age_seconds", "Seconds since the signing key became active."
            )
            age.add_metric([], (now - activated_at).total_seconds())
            yield age
            change = GaugeMetricFamily(
                "idp_signing_key_next_change_seconds",
                "Seconds until the next scheduled key change (rotation or retirement).",
            )
            change.add_metric([], max(0.0, (next_change_at - now).total_seconds()))
            yield change
        pool = GaugeMetricFamily(
            "idp_db_pool_connections",
            "Database connections of the answering process's pool, by state.",
            labels=["pid", "state"],
        )
        size, idle = self._pool.get_size(), self._pool.get_idle_size()
        pool.add_metric([pid, "in_use"], size - idle)
        pool.add_metric([pid, "idle"], idle)
        pool.add_metric([pid, "max"], self._pool.get_max_size())
        yield pool


class _MailQueue(Collector):
    def __init__(self, waiting: int) -> None:
        self._waiting = waiting

    def collect(self) -> Iterator[Metric]:
        queue = GaugeMetricFamily(
            "idp_mail_queue_depth",
            "Mails waiting in the outbox (not sent, not given up), counted when scraped.",
        )
        queue.add_metric([], self._waiting)
        yield queue


class Exposition:
    """The ``/metrics`` body for one app: the shared counters plus its live gauges."""

    def __init__(self, keys: KeySchedule, pool: asyncpg.Pool, now: Callable[[], datetime]) -> None:
        self._live = CollectorRegistry(auto_describe=False)
        self._live.register(_LiveState(keys, pool, now))

    def render(self, *, mail_waiting: int | None = None) -> bytes:
        """``mail_waiting``: the outbox's count the scrape just read; None (no gauge) when the
        database did not answer in time: the rest is still worth scraping then."""
        live = generate_latest(self._live)
        if mail_waiting is not None:
            queue = CollectorRegistry(auto_describe=False)
            queue.register(_MailQueue(mail_waiting))
            live += generate_latest(queue)
        directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        if directory:
            shared = CollectorRegistry()
            MultiProcessCollector(shared, path=directory)  # type: ignore[no-untyped-call]
            return generate_latest(shared) + live
        return generate_latest(REGISTRY) + live
