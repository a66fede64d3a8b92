"""``idp serve --workers N`` keeps the key-encryption key, the database URL and the metrics
token out of its workers' environment (``idp.server``): read from ``/proc/<pid>/environ``, no
process it starts holds any of them, though this deployment passes them to ``idp serve`` in its
environment; and the workers, which get their settings another way, sign tokens."""

from __future__ import annotations

import secrets
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import pytest

from idp.keys.crypto import b64url
from idp.settings import Settings
from tests.factories import make_client, verify
from tests.helpers import free_port
from tests.processes import Processes, idp_environ

WORKERS = 2
MOST_CONNECTS = 200


def with_password(url: str) -> tuple[str, str]:
    """``url`` and its password, given one if it has none (the embedded server trusts local
    connections, and ignores it)."""
    parts = urlsplit(url)
    if parts.password:
        return url, parts.password
    password = secrets.token_urlsafe(16)
    host = parts.netloc.rpartition("@")[2]
    netloc = f"{parts.username or 'postgres'}:{password}@{host}"
    return urlunsplit(parts._replace(netloc=netloc)), password


def descendants(pid: int) -> list[int]:
    """Every process started by ``pid``, and by those, found through /proc."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue  # gone meanwhile
        parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, pending = [], [pid]
    while pending:
        children = parents.get(pending.pop(), [])
        found += children
        pending += children
    return found


def is_worker(pid: int) -> bool:
    return b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()


def environ_of(pid: int) -> bytes:
    return Path(f"/proc/{pid}/environ").read_bytes()


@pytest.mark.usefixtures("pool")  # for its TRUNCATE: idp starts on an empty database
async def test_workers_hold_neither_the_key_encryption_key_nor_the_database_url_and_sign(
    processes: Processes, pool: asyncpg.Pool, settings: Settings, migrated: str, kek: bytes
) -> None:
    database_url, password = with_password(migrated)
    client, secret = await make_client(pool, settings)
    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    metrics_token = secrets.token_urlsafe(24)
    given = idp_environ(database_url, kek, issuer) | {"IDP_METRICS_TOKEN": metrics_token}
    served = await processes.serve(given, port, workers=WORKERS)

    started = descendants(served.pid)
    workers = [pid for pid in started if is_worker(pid)]
    assert len(workers) == WORKERS, started
    for pid in started:
        environ = environ_of(pid)
        assert b64url(kek).encode() not in environ, f"process {pid} holds the KEK"
        assert database_url.encode() not in environ, f"process {pid} holds the database URL"
        assert password.encode() not in environ, f"process {pid} holds the database password"
        assert b"IDP_KEY_ENCRYPTION_KEY=" not in environ
        assert b"IDP_DATABASE_URL=" not in environ
        assert metrics_token.encode() not in environ, f"process {pid} holds the metrics token"

    # Each worker signs: new connections until both have answered (known by their request ids,
    # whose first 8 characters are the worker's own).
    signed_by: set[str] = set()
    async with httpx.AsyncClient(base_url=served.url, timeout=10) as http:
        jwks = (await http.get("/jwks.json")).content
        bearer = {"Authorization": f"Bearer {metrics_token}"}
        assert (await http.get("/metrics")).status_code == 401
        assert (await http.get("/metrics", headers=bearer)).status_code == 200
        for _ in range(MOST_CONNECTS):
            answer = await http.post(
                "/token",
                auth=(client.client_id, secret),
                data={"grant_type": "client_credentials"},
                headers={"Connection": "close"},
            )
            assert answer.status_code == 200, answer.text
            assert verify(answer.json()["access_token"], jwks, ["RS256"])["iss"] == issuer
            signed_by.add(answer.headers["x-request-id"][:8])
            if len(signed_by) == WORKERS:
                break
    assert len(signed_by) == WORKERS, "one worker answered every connection"
