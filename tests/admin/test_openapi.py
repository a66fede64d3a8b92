"""``/admin/v1/openapi.json``: a valid OpenAPI 3.1 document naming exactly the routes there are,
and that the API keeps: schemathesis sends what the document allows (and what it does not),
and every answer is one the document describes."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx
import openapi_spec_validator
import schemathesis
import schemathesis.checks
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from hypothesis.errors import Unsatisfiable
from schemathesis.core.result import Err, Ok
from schemathesis.errors import InvalidSchema
from schemathesis.generation import GenerationMode
from schemathesis.schemas import APIOperation
from starlette.routing import Route

from idp.admin import initial_tokens, resources
from idp.settings import Settings
from idp.web.admin.routes import admin_routes
from tests.admin_api import PREFIX, bearer, client_token
from tests.conftest import Instance, InstanceFactory
from tests.factories import make_client, make_user
from tests.helpers import key_states

EXAMPLES_PER_OPERATION = 10  # per strategy: bounded, the whole run stays well under 60 s
# Reads first and deletions last: the seeded items are still there for every other operation.
METHOD_ORDER = {"GET": 0, "POST": 1, "PUT": 2, "PATCH": 3, "DELETE": 4}
# Revoking every signing key ends every token idp signed, the fuzzer's own: it runs last.
LAST = f"{PREFIX}/keys/revoke"
CHECKS = [
    schemathesis.checks.not_a_server_error,
    schemathesis.checks.status_code_conformance,
    schemathesis.checks.content_type_conformance,
    schemathesis.checks.response_schema_conformance,
]


async def _document(instance: Instance) -> dict[str, Any]:
    answer = await instance.client.get(f"{PREFIX}/openapi.json")
    assert answer.status_code == 200
    document: dict[str, Any] = answer.json()
    return document


def _template(path: str) -> str:
    """Starlette's {name:convertor} and OpenAPI's {name} alike, as {}."""
    return re.sub(r"{[^}]*}", "{}", path)


async def test_the_document_is_valid_openapi_3_1(app_instance: InstanceFactory) -> None:
    async with app_instance(admin_api=True) as instance:
        document = await _document(instance)
    assert document["openapi"].startswith("3.1")
    openapi_spec_validator.validate(document)


async def test_the_document_names_every_route_and_only_those(
    app_instance: InstanceFactory,
) -> None:
    async with app_instance(admin_api=True) as instance:
        document = await _document(instance)
    documented = {
        (method.upper(), _template(path))
        for path, item in document["paths"].items()
        for method in item
    }
    routed = {
        (method, _template(route.path))
        for route in admin_routes
        if isinstance(route, Route) and route.path != f"{PREFIX}/openapi.json"
        for method in route.methods or ()
        if method != "HEAD"
    }
    assert documented == routed


async def _seeded_path_parameters(instance: Instance, settings: Settings) -> dict[str, str]:
    """Path parameters that name things that exist, so that operations on one item run past
    their 404. Never the caller's own client: deleting or disabling it would end the run."""
    pool = instance.state["pool"]
    # The only admin user: deleting or disabling them, or taking the role, is the documented
    # 409 (urn:idp:problem:last-admin), and they stay for the operations after.
    user = await make_user(pool, "seeded@example.com", roles=("admin",))
    client, _ = await make_client(pool, settings, name="seeded")
    # The pending key: the admin token was signed by the active one, and still verifies.
    (pending,) = [kid for kid, state in (await key_states(pool)).items() if state == "pending"]
    now = instance.state["clock"].now()
    resource = await resources.add(pool, "https://seeded.example/api", now=now, actor="test")
    token = await initial_tokens.issue(pool, now=now, ttl=timedelta(days=1), uses=None, actor="t")
    return {
        "user_id": str(user.id),
        "client_id": client.client_id,
        "kid": pending,
        "resource_id": str(resource.id),
        "token_id": str(token.record.id),
    }


def _send(
    instance: Instance, loop: asyncio.AbstractEventLoop, token: str
) -> Callable[[Any], httpx.Response]:
    """Send a case through the app on the test's event loop, from hypothesis' thread."""

    def send(case: Any) -> httpx.Response:
        request = case.as_transport_kwargs(base_url=instance.client.base_url.join("/").__str__())
        body: dict[str, Any] = {}
        if "json" in request:
            body["json"] = request["json"]
        elif "data" in request:
            body["content"] = request["data"]
        call = instance.client.request(
            request["method"],
            request["url"],
            params=request.get("params"),
            headers={**request["headers"], **bearer(token)},
            **body,
        )
        return asyncio.run_coroutine_threadsafe(call, loop).result(timeout=30)

    return send


async def test_every_operation_answers_as_the_document_says(
    app_instance: InstanceFactory, settings: Settings
) -> None:
    """Each operation the document lists (whoever added it): no 5xx, and every status, media
    type and body the document's. Seeded, bounded, without hypothesis' deadline."""
    async with app_instance(admin_api=True) as instance:
        document = await _document(instance)
        schema = schemathesis.openapi.from_dict(document)
        seeded = await _seeded_path_parameters(instance, settings)
        admin, secret = await make_client(
            instance.state["pool"], settings, name="fuzzer", scopes=(), admin=True
        )
        token = await client_token(instance.client, admin.client_id, secret, scope="idp:admin")
        send = _send(instance, asyncio.get_running_loop(), token)
        operations = sorted(
            (_loaded(result) for result in schema.get_all_operations()),
            key=lambda operation: (
                operation.path == LAST,
                METHOD_ORDER.get(operation.method.upper(), 1),
            ),
        )
        assert len(operations) == sum(len(item) for item in document["paths"].values())

        statuses: dict[str, list[int]] = {}

        def fuzz() -> None:
            for operation in operations:
                pinned = {
                    name: seeded[name]
                    for name in _path_parameters(operation.path)
                    if name in seeded
                }
                seen = statuses.setdefault(operation.label, [])
                _run(operation.as_strategy(GenerationMode.POSITIVE), send, seen)
                if pinned:
                    _run(operation.as_strategy(path_parameters=pinned), send, seen)
                # Unsatisfiable: nothing it takes can be wrong (GET /keys)
                with contextlib.suppress(Unsatisfiable):
                    _run(operation.as_strategy(GenerationMode.NEGATIVE), send, seen)

        await asyncio.to_thread(fuzz)
    for operation in operations:  # the run got past the refusals where it could
        if operation.method.upper() == "GET" and set(_path_parameters(operation.path)) <= set(
            seeded
        ):
            assert any(200 <= status < 300 for status in statuses[operation.label]), (
                operation.label,
                statuses[operation.label],
            )


def _loaded(result: Ok[APIOperation[Any, Any, Any, Any]] | Err[InvalidSchema]) -> Any:
    """An operation schemathesis could read: one it could not is a broken document."""
    assert isinstance(result, Ok), result.err()
    return result.ok()


def _path_parameters(path: str) -> list[str]:
    return re.findall(r"{(\w+)}", path)


def _run(strategy: Any, send: Callable[[Any], httpx.Response], statuses: list[int]) -> None:
    @hypothesis_settings(
        max_examples=EXAMPLES_PER_OPERATION,
        derandomize=True,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def answers_as_documented(case: Any) -> None:
        response = send(case)
        statuses.append(response.status_code)
        case.validate_response(response, checks=CHECKS)

    answers_as_documented()
