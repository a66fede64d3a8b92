"""Discovery, health, readiness, and JSON errors for paths and methods that do not exist."""

from __future__ import annotations

from tests.conftest import InstanceFactory
from tests.factories import assert_oauth_error


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
