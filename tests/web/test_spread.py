"""Keep-alive connections spread evenly over ``idp serve --workers N``'s workers
(``idp.web.spread``): the counts the workers share, the rule, and two real workers."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from idp.web.spread import Spread, SpreadError, prepare
from tests.helpers import free_port
from tests.processes import Processes, idp_environ

CONNECTIONS = 24
ROUNDS = 20
MOST_CONNECTS = 500


def test_a_replacement_finds_a_slot_while_the_old_worker_runs_and_dead_counts_are_cleared(
    tmp_path: Path,
) -> None:
    """uvicorn starts a worker's replacement before it stops the old one: 2N slots. A worker
    that died without giving its slot back (SIGKILL) leaves a count, cleared by the next one."""
    prepare(str(tmp_path), 2)
    first, second = Spread(str(tmp_path), 2), Spread(str(tmp_path), 2)
    for _ in range(3):
        first.opened()
    second.opened()
    replacement = Spread(str(tmp_path), 2)  # while both still run
    assert replacement.total() == 4
    fourth = Spread(str(tmp_path), 2)
    with pytest.raises(SpreadError):
        Spread(str(tmp_path), 2)
    os.close(first._lock)  # first is killed: its lock goes, its count of 3 stays
    assert fourth.total() == 4
    after = Spread(str(tmp_path), 2)
    assert after.total() == 1  # only second's connection
    for spread in (second, replacement, fourth, after):
        spread.close()


def test_a_worker_over_its_share_closes_one_connection_at_a_time(tmp_path: Path) -> None:
    prepare(str(tmp_path), 2)
    heavy, light = Spread(str(tmp_path), 2), Spread(str(tmp_path), 2)
    for _ in range(6):
        heavy.opened()
    light.opened()
    assert not light.should_close()
    assert heavy.should_close()  # 6 of 7: the share is 3.5
    assert not heavy.should_close()  # until that connection has gone
    heavy.closed()
    assert heavy.should_close()  # 5 of 6
    heavy.closed()
    light.opened()
    assert not heavy.should_close()  # 4 of 6: within one of the share
    heavy.close()
    light.close()


@dataclass
class Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    worker: str = ""


async def connect(port: int) -> Connection:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    return Connection(reader, writer)


async def get(connection: Connection) -> bool:
    """GET /healthz on the connection; True if the answer closes it. The worker is known by
    its request ids, whose first 8 characters are the worker's own."""
    connection.writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    head = (await connection.reader.readuntil(b"\r\n\r\n")).decode().lower()
    headers = dict(line.split(": ", 1) for line in head.split("\r\n")[1:] if ": " in line)
    await connection.reader.readexactly(int(headers["content-length"]))
    connection.worker = headers["x-request-id"][:8]
    if headers.get("connection") == "close":
        connection.writer.close()
        return True
    return False


def by_worker(connections: list[Connection]) -> dict[str, list[Connection]]:
    found: dict[str, list[Connection]] = {}
    for connection in connections:
        found.setdefault(connection.worker, []).append(connection)
    return found


@pytest.mark.usefixtures("pool")  # for its TRUNCATE: idp starts on an empty database
async def test_a_worker_holding_more_than_its_share_closes_connections_until_they_are_even(
    processes: Processes, migrated: str, kek: bytes
) -> None:
    port = free_port()
    await processes.serve(idp_environ(migrated, kek, f"http://127.0.0.1:{port}"), port, workers=2)
    for _ in range(5):  # upgrade requests: idp serves no WebSockets, and counts them all out
        upgrade = await connect(port)
        upgrade.writer.write(
            b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\n"
            b"Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        )
        assert (await upgrade.reader.readline()).startswith(b"HTTP/1.1 200")
        upgrade.writer.close()
        await upgrade.writer.wait_closed()
    connections: list[Connection] = []
    for _ in range(MOST_CONNECTS):
        if len(by_worker(connections)) == 2 and len(connections) >= CONNECTIONS:
            break
        connection = await connect(port)
        if not await get(connection):
            connections.append(connection)
    assert len(by_worker(connections)) == 2, "every connection went to one worker"
    # Make it uneven: all but one of one worker's connections go.
    workers = by_worker(connections)
    heavy, light = sorted(workers, key=lambda worker: len(workers[worker]), reverse=True)
    for connection in workers[light][1:]:
        connection.writer.close()
        await connection.writer.wait_closed()
    connections = [*workers[heavy], workers[light][0]]
    await asyncio.sleep(0.2)  # for the worker to see them go

    closed_by_heavy = [await get(connection) for connection in workers[heavy]]
    assert any(closed_by_heavy), f"{len(workers[heavy])} to 1, and no connection was closed"

    closes = sum(closed_by_heavy)
    for _ in range(ROUNDS):
        if not closes:
            break
        open_now = [connection for connection in connections if not connection.writer.is_closing()]
        while len(open_now) < len(connections):  # the client reconnects, as wrk or a proxy does
            open_now.append(await connect(port))
        connections = open_now
        closes = sum([await get(connection) for connection in connections])
    counts = sorted(len(group) for group in by_worker(connections).values())
    assert closes == 0, f"still closing after {ROUNDS} rounds: {counts}"
    assert len(counts) == 2, counts
    assert counts[1] - counts[0] <= 2, counts
    for connection in connections:
        connection.writer.close()
