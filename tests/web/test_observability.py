"""Observability: /metrics in Prometheus text format with counters that move, one JSON log line
per request and per event with its request id, and no secret in any log line."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import asyncpg
import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Receive, Scope, Send

from idp.db.clients import Client
from idp.db.users import User
from idp.keys.crypto import b64url
from idp.logs import REQUEST_LINES, JsonFormatter
from idp.settings import Settings
from tests.conftest import Instance, InstanceFactory
from tests.factories import assert_oauth_error, make_client, make_user
from tests.oauth.flow import Authorization, authorize_code, exchange_code, hidden_fields, sign_in

pytestmark = pytest.mark.usefixtures("real_time")

REDIRECT = "https://app.example/callback"
PASSWORD = "correct horse battery"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture
def captured_logs() -> Iterator[io.StringIO]:
    """Every log line of every logger, formatted as idp formats them in production, except the
    test's own HTTP client's (httpx logs the URLs it requests; idp does not use it)."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(lambda record: not record.name.startswith(("httpx", "httpcore")))
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    previous, REQUEST_LINES.write = REQUEST_LINES.write, buffer.write  # their own fast path
    try:
        yield buffer
    finally:
        REQUEST_LINES.flush()
        REQUEST_LINES.write = previous
        root.removeHandler(handler)
        root.setLevel(level)


async def parties(
    pool: asyncpg.Pool, settings: Settings
) -> tuple[tuple[Client, str], tuple[Client, str], User]:
    """A machine client (also a resource server for the web app's API, so that it may
    introspect the web app's tokens), a web app with refresh tokens, and a user who signs in."""
    machine = await make_client(
        pool, settings, name="machine", introspect_audiences=("https://api.example",)
    )
    web = await make_client(
        pool, settings, name="web", grant_types=("authorization_code", "refresh_token"),
        redirect_uris=(REDIRECT,), scopes=("openid", "email"), first_party=True,
        audiences=("https://api.example",),
    )  # fmt: skip
    return machine, web, await make_user(pool, password=PASSWORD)


async def scrape(instance: Instance) -> Samples:
    response = await instance.client.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def code_flow(
    instance: Instance, client_id: str, secret: str, email: str
) -> tuple[Authorization, str, dict[str, str]]:
    auth = Authorization(client_id, REDIRECT, scope="openid email")
    code = await authorize_code(instance.client, auth, email, PASSWORD)
    response = await exchange_code(instance.client, client_id, secret, code, auth)
    assert response.status_code == 200, response.text
    return auth, code, response.json()


async def test_metrics_parse_and_their_counters_follow_what_happened(
    app_instance: InstanceFactory, pool: asyncpg.Pool, settings: Settings
) -> None:
    async with app_instance() as instance:
        (machine, machine_secret), (web, web_secret), user = await parties(pool, settings)
        before = await scrape(instance)

        for _ in range(3):
            granted = await instance.client.post(
                "/token",
                auth=(machine.client_id, machine_secret),
                data={"grant_type": "client_credentials"},
            )
            assert granted.status_code == 200, granted.text
        _, _, tokens = await code_flow(instance, web.client_id, web_secret, user.email)
        refresh = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
        first = await instance.client.post("/token", auth=(web.client_id, web_secret), data=refresh)
        assert first.status_code == 200, first.text
        reused = await instance.client.post(
            "/token", auth=(web.client_id, web_secret), data=refresh
        )
        assert_oauth_error(reused, 400, "invalid_grant")
        instance.client.cookies.clear()
        location = await instance.client.get(
            Authorization(web.client_id, REDIRECT, scope="openid").url()
        )
        wrong = await sign_in(instance.client, location.headers["location"], user.email, "nope")
        assert wrong.status_code == 401  # the login page again, with the generic error

        after = await scrape(instance)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("idp_tokens_issued_total", grant_type="client_credentials") == 3
    assert moved("idp_tokens_issued_total", grant_type="authorization_code") == 1
    assert moved("idp_tokens_issued_total", grant_type="refresh_token") == 1
    assert moved("idp_http_requests_total", route="/token", method="POST", status="200") == 5
    assert moved("idp_http_requests_total", route="/token", method="POST", status="400") == 1
    assert moved("idp_http_request_duration_seconds_count", route="/token") == 6
    assert moved("idp_http_request_duration_seconds_sum", route="/token") > 0
    under_10s = value(after, "idp_http_request_duration_seconds_bucket", route="/token", le="10.0")
    assert under_10s == value(after, "idp_http_request_duration_seconds_count", route="/token")
    assert moved("idp_login_failures_total") == 1
    assert moved("idp_refresh_reuse_detected_total") == 1
    assert moved("idp_audit_events_total", action="refresh.reuse_detected") == 1
    # The gauges read when scraped.
    assert value(after, "idp_signing_key_age_seconds") >= 0
    assert value(after, "idp_signing_key_next_change_seconds") > 0
    pools = {dict(labels)["state"]: v for (name, labels), v in after.items()
             if name == "idp_db_pool_connections"}  # fmt: skip
    assert pools["max"] == 10
    assert pools["in_use"] + pools["idle"] >= 1


async def test_a_whole_session_logs_one_json_line_a_request_and_never_a_secret(
    app_instance: InstanceFactory,
    pool: asyncpg.Pool,
    settings: Settings,
    captured_logs: io.StringIO,
) -> None:
    async with app_instance() as instance:
        (machine, machine_secret), (web, web_secret), user = await parties(pool, settings)
        http = instance.client

        auth, code, tokens = await code_flow(instance, web.client_id, web_secret, user.email)
        cookies = [cookie.value for cookie in http.cookies.jar]
        again = await http.get(
            Authorization(web.client_id, REDIRECT, scope="openid").url(prompt="login")
        )
        login_page = await http.get(again.headers["location"])
        form = hidden_fields(login_page.text)
        wrong = "a wrong password of mine"
        failed = await http.post("/login", data={**form, "email": user.email, "password": wrong})
        assert failed.status_code == 401, failed.text  # the page again, with the generic error
        web_auth = (web.client_id, web_secret)
        refresh = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
        refreshed = (await http.post("/token", auth=web_auth, data=refresh)).json()
        machine_token = (
            await http.post(
                "/token",
                auth=(machine.client_id, machine_secret),
                data={"grant_type": "client_credentials"},
            )
        ).json()["access_token"]
        introspected = await http.post(
            "/introspect",
            auth=(machine.client_id, machine_secret),
            data={"token": refreshed["access_token"]},
        )
        assert introspected.json()["active"] is True
        userinfo = await http.get(
            "/userinfo", headers={"Authorization": f"Bearer {refreshed['access_token']}"}
        )
        assert userinfo.status_code == 200
        replayed = await http.post("/token", auth=web_auth, data=refresh)  # theft detected
        assert_oauth_error(replayed, 400, "invalid_grant")
        revoked = await http.post(
            "/revoke", auth=web_auth, data={"token": refreshed["refresh_token"]}
        )
        assert revoked.status_code == 200
        request_ids = {response.headers["x-request-id"] for response in (revoked, replayed)}

    assert settings.key_encryption_key is not None
    secrets = {
        "password": PASSWORD,
        "wrong password": wrong,
        "client secret": web_secret,
        "machine secret": machine_secret,
        "code": code,
        "code verifier": auth.verifier,
        "access token": tokens["access_token"],
        "id token": tokens["id_token"],
        "refresh token": tokens["refresh_token"],
        "refreshed access token": refreshed["access_token"],
        "refreshed refresh token": refreshed["refresh_token"],
        "machine token": machine_token,
        "key-encryption key": b64url(settings.key_encryption_key),
        **{f"cookie {n}": value for n, value in enumerate(cookies)},
        **{f"form field {name}": value for name, value in form.items() if value},
    }
    assert cookies, "the session must have had a cookie to look for"
    assert form, "the login page must have had a CSRF token to look for"
    text = captured_logs.getvalue()
    lines = [json.loads(line) for line in text.splitlines()]
    leaked = {name for name, secret in secrets.items() if secret in text}
    assert not leaked, f"secrets in the logs: {sorted(leaked)}"

    requests = [line for line in lines if line["logger"] == "idp.request"]
    routes = {line["route"] for line in requests}
    assert {"/authorize", "/login", "/token", "/introspect", "/userinfo", "/revoke"} <= routes
    assert all(line["request_id"] and line["status"] for line in requests)
    assert request_ids <= {line["request_id"] for line in requests}
    events = {line["event"]: line for line in lines if line["logger"] == "idp.event"}
    assert {"login.succeeded", "login.failed", "refresh.reuse_detected"} <= set(events)
    assert events["refresh.reuse_detected"]["request_id"] == replayed.headers["x-request-id"]


async def test_a_plain_request_id_from_a_proxy_is_kept_and_a_hostile_one_replaced(
    app_instance: InstanceFactory,
) -> None:
    async with app_instance() as instance:
        kept = await instance.client.get("/healthz", headers={"X-Request-Id": "edge-1234abcd"})
        replaced = await instance.client.get(
            "/healthz", headers={"X-Request-Id": "bad id\r\ninjected"}
        )
    assert kept.headers["x-request-id"] == "edge-1234abcd"
    assert replaced.headers["x-request-id"] != "bad id\r\ninjected"
    assert len(replaced.headers["x-request-id"]) == 16


async def test_made_up_paths_and_methods_are_labelled_unmatched_and_other(
    app_instance: InstanceFactory, captured_logs: io.StringIO
) -> None:
    async with app_instance() as instance:
        before = await scrape(instance)
        answers = [
            await instance.client.get("/no/such/page"),
            await instance.client.request("BREW", "/token"),
            await instance.client.request("BREW", "/no/such/pot"),
        ]
        after = await scrape(instance)

    assert [answer.status_code for answer in answers] == [404, 405, 404]
    assert all(len(answer.headers["x-request-id"]) == 16 for answer in answers)
    for labels, count in [
        ({"route": "unmatched", "method": "GET", "status": "404"}, 1),
        ({"route": "/token", "method": "other", "status": "405"}, 1),
        ({"route": "unmatched", "method": "other", "status": "404"}, 1),
    ]:
        name = "idp_http_requests_total"
        assert value(after, name, **labels) - value(before, name, **labels) == count, labels
    requests = [json.loads(line) for line in captured_logs.getvalue().splitlines()]
    lines = {line["request_id"]: line for line in requests if line["logger"] == "idp.request"}
    assert [
        (
            lines[answer.headers["x-request-id"]]["route"],
            lines[answer.headers["x-request-id"]]["method"],
        )
        for answer in answers
    ] == [("unmatched", "GET"), ("/token", "other"), ("unmatched", "other")]
    assert "/no/such" not in captured_logs.getvalue()


class FailingHealth:
    """A middleware the app declares, with a bug: /healthz raises."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/healthz":
            raise RuntimeError("a bug")
        await self.app(scope, receive, send)


async def test_an_unhandled_exception_is_counted_and_logged_as_a_500_with_its_request_id(
    app_instance: InstanceFactory, captured_logs: io.StringIO
) -> None:
    async with app_instance(middleware=[Middleware(FailingHealth)]) as instance:
        before = await scrape(instance)
        with pytest.raises(RuntimeError, match="a bug"):  # the server's to log, as uvicorn does
            await instance.client.get("/healthz")
        after = await scrape(instance)

    labels = {"route": "/healthz", "method": "GET", "status": "500"}
    assert (
        value(after, "idp_http_requests_total", **labels)
        - value(before, "idp_http_requests_total", **labels)
        == 1
    )
    lines = [json.loads(line) for line in captured_logs.getvalue().splitlines()]
    (request,) = [line for line in lines if line.get("route") == "/healthz"]
    assert request["status"] == 500
    (error,) = [line for line in lines if "a bug" in line.get("exc", "")]
    assert error["level"] == "error"
    assert error["request_id"] == request["request_id"]
