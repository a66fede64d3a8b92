"""Keeping ``idp serve --workers N``'s keep-alive connections evenly spread over its workers.

uvicorn's workers share one listening socket, and whichever is first to accept takes the
connection. Persistent connections opened together (a proxy's pool, a load generator) end up
unevenly spread: measured with 64 at once, 39 on one worker and 25 on the other, so that the
first worker's requests waited 1.5 times as long (refresh p99 97 ms, node-oidc-provider's
cluster, which deals connections out round-robin from its primary: 73 ms).

Each worker counts its open connections in a small file the workers share (one 8-byte slot
each). A worker holding more than its share, and more than one over it, ends its next response
with ``Connection: close`` (RFC 9112 §9.6). The client opens a new connection, which the other
worker, being less loaded, is the likelier to accept, so the spread evens out after a few such
closes, and no connection is closed while it is even.
"""

from __future__ import annotations

import asyncio
import fcntl
import functools
import mmap
import os
import struct

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

# Set by ``idp serve --workers N`` for its workers: "<directory>:<N>". The directory holds the
# counts (one 8-byte slot a worker) and a lock file a slot.
ENV = "IDP_WORKER_CONNECTIONS"
COUNTS = "connections"
SLOT = struct.Struct("=q")


class Spread:
    """This worker's slot in the shared file, and the rule."""

    def __init__(self, directory: str, workers: int) -> None:
        self.workers = workers
        self._all = struct.Struct(f"={workers}q")
        self._slot, self._lock = self._claim(directory)
        with open(os.path.join(directory, COUNTS), "r+b") as file:
            self._map = mmap.mmap(file.fileno(), self._all.size)
        self._count = 0
        self._publish()

    def _claim(self, directory: str) -> tuple[int, int]:
        """The first slot that no live worker holds. Its lock (flock) ends with the process
        that holds it, so a restarted worker takes over the slot of the one it replaces."""
        for slot in range(self.workers):
            fd = os.open(os.path.join(directory, f"slot-{slot}"), os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                continue
            return slot, fd
        raise SpreadError("every worker's slot is taken")

    def close(self) -> None:
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
        self._publish()

    def over_share(self) -> bool:
        total: int = sum(self._all.unpack_from(self._map))
        return self._count > 1 + total / self.workers


class SpreadError(Exception):
    pass


def prepare(directory: str, workers: int) -> str:
    """The shared counts of ``workers`` workers in ``directory``, all 0; the value for ``ENV``."""
    with open(os.path.join(directory, COUNTS), "wb") as file:
        file.write(bytes(SLOT.size * workers))
    return f"{directory}:{workers}"


@functools.cache
def spread() -> Spread | None:
    """This worker's ``Spread`` when serving as one of several workers, else None (also when
    no slot is free: a worker started before the one it replaces has quite gone serves on,
    unspread)."""
    if ENV not in os.environ:
        return None
    directory, _, workers = os.environ[ENV].rpartition(":")
    try:
        return Spread(directory, int(workers))
    except SpreadError:
        return None


class CountingHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's HTTP/1.1 protocol, counting this worker's open connections."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        counter = spread()
        if counter is not None:
            counter.opened()
        super().connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        counter = spread()
        if counter is not None:
            counter.closed()
        super().connection_lost(exc)
