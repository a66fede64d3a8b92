"""The management API record: a users page over 100,000 users, the first and the 1,000th, and
dynamic client registrations per second.

    scripts/bench --admin [--duration 10s] [--out FILE]

idp runs as ``idp serve --workers 2`` on a fresh embedded PostgreSQL with ``IDP_ADMIN_API=on``
and ``IDP_DCR=token``. The users are inserted by one ``INSERT ... SELECT generate_series`` (no
argon2: they have no password). Page 1,000's cursor is reached by walking the pages first; then
wrk loads each page's URL with an admin client's token at 16 connections. The page query's plans
(EXPLAIN ANALYZE, custom and generic, as a prepared statement runs after five executions) go in
the record too. Registrations (RFC 7591) are measured with one initial access token of
unlimited uses (``IDP_DCR=open`` would stop the bench at its 20 an hour per IP); when the
endpoint answers 404 that part is skipped with a line saying so. Writes bench/results/admin.md.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import httpx
import wrk
from baseline import this_checkout
from config import BENCH, REDIRECT, RESULTS, Config, NotMeasured, log
from providers import IdpCli, start_idp
from servers import CpuMeter, Lab, postgres_socket_dir

from idp.admin import cursors
from idp.db import users

USERS = 100_000
PAGE_SIZE = 50
FAR_PAGE = 1_000
CONNECTIONS = 16
TARGET_P99_MS = 20.0
REGISTRATION = {"redirect_uris": [REDIRECT], "client_name": "bench"}

INSERT_USERS = f"""
INSERT INTO users (id, email, name, password_hash, roles, created_at, updated_at, email_verified)
SELECT gen_random_uuid(), 'user' || lpad(n::text, 6, '0') || '@bench.example', 'User ' || n,
       NULL, '{{}}', now(), now(), true
FROM generate_series(1, {USERS}) AS n
"""


async def _on_database(data: Path, statements: list[str]) -> list[list[str]]:
    """Each statement's rows' first values, on one connection."""
    url = f"postgresql://postgres:@/postgres?host={postgres_socket_dir(data)}"
    connection = await asyncpg.connect(url)
    try:
        return [
            [str(row[0]) for row in await connection.fetch(statement)] for statement in statements
        ]
    finally:
        await connection.close()


def _plans(data: Path, after: str | None) -> tuple[str, str]:
    """EXPLAIN ANALYZE of the page after ``after`` (idp.db.users.SELECT_PAGE, filters unset),
    planned for its values (custom), then as a generic plan."""
    literal = "NULL" if after is None else "'" + after.replace("'", "''") + "'"
    explain = (
        f"EXPLAIN (ANALYZE, BUFFERS) EXECUTE page({literal}, {PAGE_SIZE + 1}, NULL, NULL, NULL)"
    )
    found = asyncio.run(
        _on_database(
            data,
            [
                "PREPARE page(text, int, text, text, boolean) AS " + users.SELECT_PAGE,
                "SET plan_cache_mode = force_custom_plan",
                explain,
                "SET plan_cache_mode = force_generic_plan",
                explain,
            ],
        )
    )
    return "\n".join(found[2]), "\n".join(found[4])


def _admin_token(cli: IdpCli, base: str) -> str:
    client_id, secret = cli.client(
        "bench-admin", "--grant-type", "client_credentials", "--admin", "--access-token-ttl", "1h"
    )
    answer = httpx.post(
        base + "/token",
        data={"grant_type": "client_credentials", "scope": "idp:admin"},
        auth=(client_id, secret),
        timeout=10,
    )
    if answer.status_code != httpx.codes.OK:
        raise SystemExit(f"bench: no admin token: {answer.status_code} {answer.text[:200]}")
    token: str = answer.json()["access_token"]
    return token


def _far_cursor(base: str, token: str) -> str:
    """The cursor of page ``FAR_PAGE``, by walking there."""
    cursor: str | None = None
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}) as client:
        for _ in range(FAR_PAGE - 1):
            params = {"limit": str(PAGE_SIZE)} | ({"cursor": cursor} if cursor else {})
            answer = client.get("/admin/v1/users", params=params, timeout=10)
            answer.raise_for_status()
            cursor = str(answer.json()["next_cursor"] or "")
            assert cursor, "fewer pages than the bench needs"
    assert cursor is not None
    return cursor


def main(config: Config, out: Path | None) -> int:
    config = dataclasses.replace(config, connections=CONNECTIONS, threads=min(config.threads, 16))
    lab = Lab()
    lab.env |= {"IDP_ADMIN_API": "on", "IDP_DCR": "token"}
    rows: list[str] = []
    plans: list[str] = []
    met = True
    try:
        code = this_checkout()
        idp = start_idp(lab, code, "idp", 0, 0, 0)
        assert idp.data is not None
        cli = IdpCli("idp", code, idp.server.env)
        log(f"inserting {USERS} users")
        # VACUUM now, not when autovacuum would (a minute later, in the middle of a run).
        asyncio.run(_on_database(idp.data, [INSERT_USERS, "VACUUM (ANALYZE) users"]))
        token = _admin_token(cli, idp.base)
        log(f"walking to page {FAR_PAGE}")
        far = _far_cursor(idp.base, token)
        meter = CpuMeter(idp.server, idp.data)
        bearer = f"Authorization: Bearer {token}"
        first_url = f"{idp.base}/admin/v1/users?limit={PAGE_SIZE}"
        for label, url in (
            ("page 1", first_url),
            (f"page {FAR_PAGE:,}", f"{first_url}&cursor={far}"),
        ):
            check = wrk.Check("GET", url, {"Authorization": f"Bearer {token}"})
            job = wrk.Job(url, headers=[bearer], checks=[check])
            result = wrk.measure(config, lab.env, f"users {label}", job, meter)
            ok = result.p99_ms <= TARGET_P99_MS and not result.problems
            met = met and ok
            rows.append(
                f"| GET /admin/v1/users?limit={PAGE_SIZE}, {label} | {result.rps:.0f}/s | "
                f"{result.p50_ms:.2f} ms | {result.p99_ms:.2f} ms | "
                f"{'met' if ok else 'NOT met'} {result.problems} |"
            )
        # The floor of this set-up (wrk, two workers and PostgreSQL sharing two cores): the
        # JWKS, answered from memory, at the same 16 connections.
        jwks = f"{idp.base}/jwks.json"
        floor = wrk.measure(config, lab.env, "jwks", wrk.Job(jwks), meter)
        rows.append(
            f"| GET /jwks.json (the set-up's floor: from memory) | {floor.rps:.0f}/s | "
            f"{floor.p50_ms:.2f} ms | {floor.p99_ms:.2f} ms | |"
        )
        after = str(cursors.decode(far, arity=1)[0])
        for label, key in (("page 1", None), (f"page {FAR_PAGE:,}", after)):
            custom, generic = _plans(idp.data, key)
            plans += [f"### {label}, custom plan", "", "```", custom, "```", ""]
            plans += [f"### {label}, generic plan", "", "```", generic, "```", ""]
        register = f"{idp.base}/oauth2/register"
        initial = json.loads(cli.run("clients", "initial-token", "--expires", "1h", "--json"))
        authorization = f"Authorization: Bearer {initial['token']}"
        probe = httpx.post(
            register,
            json=REGISTRATION,
            headers={"Authorization": f"Bearer {initial['token']}"},
            timeout=10,
        )
        if probe.status_code == httpx.codes.NOT_FOUND:
            print("bench: dynamic registration skipped: POST /oauth2/register answered 404")
            rows.append("| POST /oauth2/register | skipped: it answered 404 | | | |")
        else:
            job = wrk.Job(
                register,
                BENCH / "post_json.lua",
                headers=[authorization],
                env={"BENCH_JSON": json.dumps(REGISTRATION)},
            )
            try:
                if probe.status_code != httpx.codes.CREATED:
                    raise NotMeasured(f"it answered {probe.status_code}: {probe.text[:200]}")
                result = wrk.measure(config, lab.env, "registrations", job, meter)
                rows.append(
                    f"| POST /oauth2/register (IDP_DCR=token) | {result.rps:.0f}/s | "
                    f"{result.p50_ms:.2f} ms | {result.p99_ms:.2f} ms | {result.problems} |"
                )
            except NotMeasured as error:
                rows.append(f"| POST /oauth2/register | not measured: {error} | | | |")
    finally:
        lab.close()
    lines = [
        f"# Management API benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        "",
        f"`idp serve --workers 2` at {code.commit}, embedded PostgreSQL, {USERS:,} users, "
        f"wrk -t{config.threads} -c{CONNECTIONS} -d{config.duration} --latency after a warm-up; "
        f"an admin client's bearer token. Target: p99 at most {TARGET_P99_MS:.0f} ms for both "
        "pages.",
        "",
        "| measurement | rate | p50 | p99 | target |",
        "|---|---|---|---|---|",
        *rows,
        "",
        "## The page query's plans",
        "",
        "Custom: planned for the values given. Generic: as a prepared statement may run after "
        "its fifth execution (asyncpg prepares every statement).",
        "",
        *plans,
    ]
    text = "\n".join(lines)
    print(text)
    (out or RESULTS / "admin.md").write_text(text)
    return 0 if met else 1
