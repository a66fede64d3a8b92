"""Keeping ``idp serve --workers N``'s keep-alive connections evenly spread over its workers.

uvicorn's workers share one listening socket, and whichever is first to accept takes the
connection. Persistent connections opened together (a proxy's pool, a load generator) end up
unevenly spread: measured with 64 at once, 39 on one worker and 25 on the other, so that the
first worker's requests waited 1.5 times as long. Refresh p99 was 89 ms, against 65 to 77 ms
for node-oidc-provider, whose cluster primary deals connections out round-robin.

Each worker counts its open connections in a small file the workers share (one 8-byte slot
each, twice as many slots as workers: uvicorn starts a worker's replacement before it stops the
old one). A worker holding more than its share, and more than one over it, ends its next
response with ``Connection: close`` (RFC 9112 §9.6), one such close at a time: its count only
drops once that connection has gone. The client opens a new connection, which the other worker,
being less loaded, is the likelier to accept, so the spread evens out after a few such closes,
and no connection is closed while it is even.
"""

from __future__ import annotations

import asyncio
import atexit
import fcntl
import math
import mmap
import os
import struct
import time

from idp.web.head_limits import HeadLimitedHttpToolsProtocol

# Set by ``idp serve --workers N`` for its workers: "<directory>:<N>". The directory holds the
# counts (2N 8-byte slots) and a lock file a slot.
ENV = "IDP_WORKER_CONNECTIONS"
COUNTS = "connections"
SLOT = struct.Struct("=q")
RETRY_SECONDS = 1.0


class SpreadError(Exception):
    pass


class Spread:
    """This worker's slot in the shared counts, and the rule."""

    def __init__(self, directory: str, workers: int) -> None:
        self.workers = workers
        self._all = struct.Struct(f"={2 * workers}q")
        with open(os.path.join(directory, COUNTS), "r+b") as file:
            self._map = mmap.mmap(file.fileno(), self._all.size)
        self._slot, self._lock = self._claim(directory)
        self._count = 0
        self._closing = False
        self._publish()

    def _claim(self, directory: str) -> tuple[int, int]:
        """The first slot that no live worker holds; the slots of workers that died without
        giving theirs back are set to 0 on the way. A slot is held by a lock (flock), which
        ends with the process that holds it."""
        claimed: tuple[int, int] | None = None
        for slot in range(2 * self.workers):
            fd = os.open(os.path.join(directory, f"slot-{slot}"), os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)  # a live worker's
                continue
            SLOT.pack_into(self._map, slot * SLOT.size, 0)
            if claimed is None:
                claimed = slot, fd
            else:
                os.close(fd)
        if claimed is None:
            self._map.close()
            raise SpreadError("every slot is taken")
        return claimed

    def close(self) -> None:
        """Give the slot back (at exit)."""
        self._count = 0
        self._publish()
        self._map.close()
        os.close(self._lock)

    def _publish(self) -> None:
        SLOT.pack_into(self._map, self._slot * SLOT.size, self._count)

    def opened(self) -> None:
        self._count += 1
        self._publish()

    def closed(self) -> None:
        self._count -= 1
        self._closing = False
        self._publish()

    def total(self) -> int:
        """Open connections over all workers."""
        total: int = sum(self._all.unpack_from(self._map))
        return total

    def should_close(self) -> bool:
        """Whether to close the connection now answered: this worker holds more than one over
        its share, and no close it asked for is still pending."""
        if self._closing or self._count <= 1 + self.total() / self.workers:
            return False
        self._closing = True
        return True


def prepare(directory: str, workers: int) -> str:
    """The shared counts of ``workers`` workers in ``directory``, all 0; the value for ``ENV``."""
    with open(os.path.join(directory, COUNTS), "wb") as file:
        file.write(bytes(SLOT.size * 2 * workers))
    return f"{directory}:{workers}"


_spread: Spread | None = None
_failed_at = -math.inf


def spread() -> Spread | None:
    """This worker's ``Spread`` when serving as one of several workers, else None. A worker
    that finds no free slot (or no shared file) serves unspread, and tries again a second on."""
    global _spread, _failed_at
    if _spread is not None or ENV not in os.environ:
        return _spread
    if time.monotonic() - _failed_at < RETRY_SECONDS:
        return None
    directory, _, workers = os.environ[ENV].rpartition(":")
    try:
        _spread = Spread(directory, int(workers))
    except (SpreadError, OSError, ValueError):
        _failed_at = time.monotonic()
        return None
    atexit.register(_spread.close)
    return _spread


class CountingHttpToolsProtocol(HeadLimitedHttpToolsProtocol):
    """idp's HTTP/1.1 protocol (uvicorn's, with bounds on request heads), counting this worker's
    open connections (``idp serve`` turns WebSockets off: an upgraded connection would leave
    this protocol uncounted)."""

    counted_in: Spread | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self.counted_in = spread()
        if self.counted_in is not None:
            self.counted_in.opened()
        super().connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.counted_in is not None:
            self.counted_in.closed()
            self.counted_in = None
        super().connection_lost(exc)
