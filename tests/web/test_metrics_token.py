"""``IDP_METRICS_TOKEN``: when set, /metrics answers only ``Authorization: Bearer <it>``, others
get 401 with a Bearer challenge (RFC 6750 §3); unset, /metrics is open."""

from __future__ import annotations

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from idp.settings import Settings, SettingsError
from tests.conftest import InstanceFactory

TOKEN = "b7c0e4d1a9f2-metrics.scraper_token"


def assert_prometheus_text(response: httpx.Response) -> None:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    names = {family.name for family in text_string_to_metric_families(response.text)}
    assert "idp_http_requests" in names


async def test_without_a_token_setting_metrics_are_open(app_instance: InstanceFactory) -> None:
    async with app_instance() as instance:
        assert_prometheus_text(await instance.client.get("/metrics"))


async def test_with_a_token_setting_metrics_need_that_bearer_token(
    app_instance: InstanceFactory,
) -> None:
    async with app_instance(metrics_token=TOKEN) as instance:
        client = instance.client
        missing = await client.get("/metrics")
        other_scheme = await client.get("/metrics", auth=("prometheus", TOKEN))
        wrong = await client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}x"})
        prefix = await client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN[:-1]}"})
        right = await client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
        any_case = await client.get("/metrics", headers={"Authorization": f"bearer {TOKEN}"})

    for refused in (missing, other_scheme, wrong, prefix):
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"].startswith("Bearer ")
        assert refused.headers["cache-control"] == "no-store"
        assert "idp_http_requests" not in refused.text
    # RFC 6750 §3.1: no error code when no Bearer token was sent; invalid_token for a wrong one.
    assert "error=" not in missing.headers["www-authenticate"]
    assert "error=" not in other_scheme.headers["www-authenticate"]
    assert 'error="invalid_token"' in wrong.headers["www-authenticate"]
    assert 'error="invalid_token"' in prefix.headers["www-authenticate"]
    assert_prometheus_text(right)
    assert_prometheus_text(any_case)  # RFC 9110 §11.1: the scheme is case-insensitive


def test_the_token_is_read_from_the_environment_and_kept_out_of_repr() -> None:
    assert Settings.from_env({}).metrics_token is None
    assert Settings.from_env({"IDP_METRICS_TOKEN": ""}).metrics_token is None
    settings = Settings.from_env({"IDP_METRICS_TOKEN": TOKEN})
    assert settings.metrics_token == TOKEN
    assert TOKEN not in repr(settings)


@pytest.mark.parametrize("token", ["two words", 'quote"d', "semi;colon", "é"])
def test_a_token_that_cannot_follow_bearer_is_refused_without_echoing_it(token: str) -> None:
    with pytest.raises(SettingsError) as refused:
        Settings.from_env({"IDP_METRICS_TOKEN": token})
    assert refused.value.variable == "IDP_METRICS_TOKEN"
    assert token not in str(refused.value)
