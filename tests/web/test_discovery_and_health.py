"""Discovery, health, readiness, and JSON errors for paths and methods that do not exist."""

from __future__ import annotations

import asyncpg

from idp.settings import Settings
from tests.conftest import InstanceFactory
from tests.factories import assert_oauth_error, assert_security_headers, make_client


async def test_discovery_documents_name_the_issuer_and_jwks(
    app_instance: InstanceFactory,
) -> None:
    async with app_instance() as instance:
        for path in (
            "/.well-known/openid-configuration",
            "/.well-known/oauth-authorization-server",
        ):
            response = await instance.client.get(path)
            assert response.status_code == 200
            assert response.headers["access-control-allow-origin"] == "*"
            metadata = response.json()
            assert metadata["issuer"] == "http://idp.test"
            assert metadata["jwks_uri"] == "http://idp.test/jwks.json"
            assert metadata["id_token_signing_alg_values_supported"][0] == "RS256"
            assert metadata["response_types_supported"] == ["code"]
            assert metadata["subject_types_supported"] == ["public"]


async def test_healthz_and_readyz_report_ready_with_database_and_keys(
    app_instance: InstanceFactory,
) -> None:
    async with app_instance() as instance:
        assert (await instance.client.get("/healthz")).json() == {"status": "ok"}
        ready = await instance.client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "checks": {"database": "ok", "keyring": "ok"}}


async def test_readyz_reports_not_ready_when_the_database_is_unreachable(
    app_instance: InstanceFactory,
) -> None:
    async with app_instance() as instance:
        await instance.state["pool"].close()  # as good as a database that went away
        ready = await instance.client.get("/readyz")
        jwks = await instance.client.get("/jwks.json")
    assert ready.status_code == 503
    assert ready.json()["checks"]["database"] == "unreachable"
    assert jwks.status_code == 200, "the JWKS is served from memory"


async def test_unknown_paths_and_wrong_methods_get_json_errors(
    app_instance: InstanceFactory,
) -> None:
    async with app_instance() as instance:
        assert_oauth_error(await instance.client.get("/nope"), 404, "not_found")
        wrong = await instance.client.post("/jwks.json", content=b"{")
        assert_oauth_error(wrong, 405, "method_not_allowed")
        assert "GET" in wrong.headers["allow"]
        assert_oauth_error(await instance.client.delete("/healthz"), 405, "method_not_allowed")


async def test_endpoints_that_need_the_database_answer_503_with_retry_after_when_it_is_gone(
    app_instance: InstanceFactory, pool: asyncpg.Pool, settings: Settings
) -> None:
    machine, secret = await make_client(pool, settings)
    async with app_instance() as instance:
        await instance.state["pool"].close()  # as good as a database that went away
        token = await instance.client.post(
            "/token", auth=(machine.client_id, secret), data={"grant_type": "client_credentials"}
        )
        page = await instance.client.get(
            "/login", params={"request": "anything"}, headers={"Accept": "text/html"}
        )  # a browser's Accept: the readable page
        jwks = await instance.client.get("/jwks.json")
    assert_oauth_error(token, 503, "temporarily_unavailable")
    assert token.headers["retry-after"] == "5"
    assert page.status_code == 503
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["retry-after"] == "5"
    assert_security_headers(page)
    assert jwks.status_code == 200
