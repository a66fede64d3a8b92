"""``/admin/v1/audit``: the audit log filtered by time, actor, action and subject, newest first,
paged by cursor."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx

from idp.settings import Settings
from tests.admin_api import PREFIX, admin_caller, bearer, problem
from tests.conftest import InstanceFactory

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Seeded:
    id: int
    at: datetime
    actor: str
    action: str
    subject: str | None


async def _seed(pool: asyncpg.Pool, count: int = 24) -> list[Seeded]:
    """Events an hour apart, by three actors, of five actions, on four subjects."""
    actors = ["cli:root", "client:deploy", "user:7"]
    actions = ["user.created", "user.disabled", "key.rotated", "client.created", "userx.odd"]
    seeded = []
    for index in range(count):
        event = (
            T0 + timedelta(hours=index),
            actors[index % 3],
            actions[index % 5],
            f"s{index % 4}" if index % 7 else None,
        )
        event_id = await pool.fetchval(
            "INSERT INTO audit_log (at, actor, action, subject) VALUES ($1, $2, $3, $4) "
            "RETURNING id",
            *event,
        )
        seeded.append(Seeded(event_id, *event))
    return seeded


async def _walk(http: httpx.AsyncClient, token: str, **query: Any) -> list[dict[str, Any]]:
    """Every page of a listing, following next_cursor."""
    events: list[dict[str, Any]] = []
    params = dict(query)
    for _ in range(100):
        answer = await http.get(f"{PREFIX}/audit", params=params, headers=bearer(token))
        assert answer.status_code == 200, answer.text
        page = answer.json()
        assert len(page["items"]) <= int(params.get("limit", 50))
        events += page["items"]
        if page["next_cursor"] is None:
            return events
        params["cursor"] = page["next_cursor"]
    raise AssertionError("the cursor walk did not end")


def _ids(events: list[dict[str, Any]]) -> list[int]:
    return [event["id"] for event in events]


async def test_each_filter_selects_exactly_the_matching_events_newest_first(
    app_instance: InstanceFactory, settings: Settings
) -> None:
    async with app_instance(admin_api=True) as instance:
        seeded = await _seed(instance.state["pool"])
        token, _ = await admin_caller(instance.client, instance.state["pool"], settings)
        since, until = T0 + timedelta(hours=5), T0 + timedelta(hours=17)
        cases: list[tuple[dict[str, Any], list[Seeded]]] = [
            ({"actor": "user:7"}, [e for e in seeded if e.actor == "user:7"]),
            ({"action": "user.created"}, [e for e in seeded if e.action == "user.created"]),
            ({"action": "user."}, [e for e in seeded if e.action.startswith("user.")]),
            ({"action": "user"}, []),  # exact unless it ends in "."
            ({"subject": "s1"}, [e for e in seeded if e.subject == "s1"]),
            (
                {"since": since.isoformat(), "until": until.isoformat()},
                [e for e in seeded if since <= e.at < until],
            ),
            (
                {"since": "2026-03-01T17:00:00Z", "actor": "cli:root", "action": "user."},
                [
                    e
                    for e in seeded
                    if e.at >= since and e.actor == "cli:root" and e.action.startswith("user.")
                ],
            ),
        ]
        for query, expected in cases:
            assert expected or query == {"action": "user"}
            found = await _walk(instance.client, token, limit=4, **query)
            assert _ids(found) == sorted((e.id for e in expected), reverse=True), query


async def test_a_cursor_walk_shows_each_event_once_even_while_events_are_written(
    app_instance: InstanceFactory, settings: Settings
) -> None:
    async with app_instance(admin_api=True) as instance:
        pool = instance.state["pool"]
        seeded = await _seed(pool, 23)
        token, _ = await admin_caller(instance.client, instance.state["pool"], settings)
        seen: list[dict[str, Any]] = []
        params: dict[str, Any] = {"limit": 5, "since": T0.isoformat()}  # the seeded events
        while True:
            answer = await instance.client.get(
                f"{PREFIX}/audit", params=params, headers=bearer(token)
            )
            page = answer.json()
            seen += page["items"]
            await pool.execute(  # a new event between pages shifts nothing
                "INSERT INTO audit_log (at, actor, action) VALUES ($1, 'cli:root', 'user.created')",
                T0 + timedelta(days=100),  # newest of all, and matching the filter
            )
            if page["next_cursor"] is None:
                break
            params["cursor"] = page["next_cursor"]
    assert _ids(seen) == sorted((e.id for e in seeded), reverse=True)
    assert datetime.fromisoformat(seen[-1]["at"]) == T0


async def test_writes_through_the_api_are_audited_with_the_callers_actor(
    app_instance: InstanceFactory, settings: Settings
) -> None:
    async with app_instance(admin_api=True) as instance:
        token, actor = await admin_caller(instance.client, instance.state["pool"], settings)
        created = await instance.client.post(
            f"{PREFIX}/users", json={"email": "carol@example.com"}, headers=bearer(token)
        )
        assert created.status_code == 201, created.text
        answer = await instance.client.get(
            f"{PREFIX}/audit", params={"actor": actor}, headers=bearer(token)
        )
    assert [(e["action"], e["subject"]) for e in answer.json()["items"]] == [
        ("user.created", created.json()["id"])
    ]


async def test_bad_times_cursors_and_parameters_are_400_problems(
    app_instance: InstanceFactory, settings: Settings
) -> None:
    def cursor(value: object) -> str:
        return base64.urlsafe_b64encode(str(value).encode()).decode().rstrip("=")

    async with app_instance(admin_api=True) as instance:
        token, _ = await admin_caller(instance.client, instance.state["pool"], settings)
        for params in (
            {"since": "yesterday"},
            {"since": "2026-03-01T12:00:00"},  # no offset: which zone?
            {"until": "2026-13-01T00:00:00Z"},
            {"since": "1"},  # a number of seconds is not RFC 3339
            {"since": "0001-01-01T00:00:00+14:00"},  # in year 0
            {"until": "9999-12-31T23:59:59-14:00"},  # in year 10000
            {"cursor": "!!"},
            {"cursor": "bm90IGpzb24"},  # "not json"
            {"cursor": cursor('["abc"]')},
            {"cursor": cursor("[99999999999999999999999]")},
            {"cursor": cursor("[1,2]")},
            {"limit": "0"},
            {"offset": "10"},
        ):
            answer = await instance.client.get(
                f"{PREFIX}/audit", params=params, headers=bearer(token)
            )
            problem(answer, 400)
