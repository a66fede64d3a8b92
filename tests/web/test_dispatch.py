"""One dispatch path: every route of the URL map (``idp.web.routes``) is reached through the
router, behind every middleware the app declares; the in-memory endpoints keep HEAD and 405."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from starlette.middleware import Middleware
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from idp.web.routes import demo_routes, routes
from idp.web.token import token
from tests.conftest import InstanceFactory
from tests.factories import assert_oauth_error

Seen = list[tuple[str, str, Any]]


class Recorder:
    """A pure ASGI middleware noting each request's path and method, and the endpoint the router
    put in the (shared) scope once the request was answered."""

    def __init__(self, app: ASGIApp, seen: Seen) -> None:
        self.app = app
        self.seen = seen

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)
        if scope["type"] == "http":
            self.seen.append((scope["path"], scope["method"], scope.get("endpoint")))


def url_map(demo: bool) -> list[Route]:
    return [*routes, *(demo_routes if demo else [])]


def every_route(demo: bool) -> Iterator[tuple[str, str, Any]]:
    """Each path and method of the URL map (HEAD included where Starlette adds it), with the
    endpoint that serves it."""
    for route in url_map(demo):
        for method in sorted(route.methods or ()):
            yield route.path, method, route.endpoint


@pytest.mark.parametrize("demo", [False, True], ids=["plain", "demo"])
async def test_a_declared_middleware_sees_a_request_to_every_route(
    app_instance: InstanceFactory, demo: bool
) -> None:
    """Derived from the URL map, so that a new route is covered without an edit here."""
    seen: Seen = []
    assert all(isinstance(route, Route) and route.methods for route in url_map(demo))
    expected = set(every_route(demo))
    assert ("/token", "POST", token) in expected
    async with app_instance(middleware=[Middleware(Recorder, seen=seen)], demo=demo) as instance:
        for path, method, _ in sorted(expected, key=lambda row: row[:2]):
            await instance.client.request(method, path)
    assert set(seen) == expected
    assert len(seen) == len(expected)


async def test_an_unknown_path_and_a_wrong_method_also_pass_every_middleware(
    app_instance: InstanceFactory,
) -> None:
    seen: Seen = []
    async with app_instance(middleware=[Middleware(Recorder, seen=seen)]) as instance:
        assert_oauth_error(await instance.client.get("/nope"), 404, "not_found")
        assert_oauth_error(await instance.client.delete("/token"), 405, "method_not_allowed")
    assert [(path, method) for path, method, _ in seen] == [("/nope", "GET"), ("/token", "DELETE")]


@pytest.mark.parametrize("path", ["/jwks.json", "/.well-known/openid-configuration"])
async def test_the_in_memory_endpoints_answer_head_and_refuse_other_methods_with_allow(
    app_instance: InstanceFactory, path: str
) -> None:
    async with app_instance() as instance:
        get = await instance.client.get(path)
        head = await instance.client.head(path)
        post = await instance.client.post(path)
    assert head.status_code == get.status_code == 200
    assert head.content == b""
    for header in ("content-type", "content-length", "cache-control", "etag"):
        assert head.headers.get(header) == get.headers.get(header)
    assert head.headers["x-request-id"] != get.headers["x-request-id"]
    assert_oauth_error(post, 405, "method_not_allowed")
    assert set(post.headers["allow"].split(", ")) == {"GET", "HEAD"}


@pytest.mark.parametrize("path", ["/jwks.json", "/.well-known/openid-configuration"])
@pytest.mark.parametrize("if_none_match", [None, "etag"], ids=["plain", "if-none-match"])
async def test_the_in_memory_routes_answer_as_the_router_would(
    app_instance: InstanceFactory, path: str, if_none_match: str | None
) -> None:
    """``InMemoryRoutes`` only skips work: with the router alone the answer is the same."""
    answers = []
    for in_memory_first in (True, False):
        seen: Seen = []
        recorder = [Middleware(Recorder, seen=seen)]
        async with app_instance(middleware=recorder, in_memory_first=in_memory_first) as instance:
            headers = {}
            if if_none_match is not None:
                headers["If-None-Match"] = (await instance.client.get(path)).headers.get("etag", "")
            answer = await instance.client.get(path, headers=headers)
        assert seen[-1][:2] == (path, "GET")
        without_id = {k: v for k, v in answer.headers.items() if k != "x-request-id"}
        answers.append((answer.status_code, answer.content, without_id, seen[-1][2]))
    assert answers[0] == answers[1]
