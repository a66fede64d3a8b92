"""examples/node-api (express-jwt + jwks-rsa, real Node.js) against a real idp over HTTP: tokens
from the real /token (a signed-in user through /authorize, or client_credentials), keys rotated
by KeyManager.rotate (what ``idp keys rotate --force`` runs) while node keeps running."""

from __future__ import annotations

import asyncio
import base64
import json
import math
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from idp.clock import FrozenClock
from idp.keys.keyring import Keyring
from idp.keys.manager import KeyManager
from idp.settings import Settings
from tests.conftest import Served, serving
from tests.factories import PASSWORD, kids, make_client, make_user
from tests.helpers import idp as idp_command
from tests.oauth.flow import Authorization, authorize_code, exchange_code
from tests.rp.node_stack import EXAMPLE, node_api, recommended

API = "https://api.example"
REDIRECT = "https://app.example/callback"
PROPAGATION_DEADLINE = 5.0


@dataclass
class Stack:
    """idp served, the example running against it, and a client for each."""

    idp: Served
    idp_http: httpx.AsyncClient
    api: httpx.AsyncClient


@pytest.fixture
async def stack(settings: Settings, clock: FrozenClock, pool: asyncpg.Pool) -> AsyncIterator[Stack]:
    """idp on the test's frozen clock set to the wall time (node checks exp against its own)."""
    clock.set(datetime.now(UTC).replace(microsecond=0))
    async with (
        serving(settings, clock=clock) as served,
        node_api(served.base_url, API) as api_url,
        httpx.AsyncClient(base_url=served.base_url, timeout=10) as idp_http,
        httpx.AsyncClient(base_url=api_url, timeout=10) as api,
    ):
        yield Stack(served, idp_http, api)


async def user_token(stack: Stack, pool: asyncpg.Pool, email: str, roles: tuple[str, ...]) -> str:
    """A user signed in through /authorize and /login; the app's access token for API."""
    client, secret = await make_client(
        pool,
        stack.idp.settings,
        grant_types=("authorization_code",),
        redirect_uris=(REDIRECT,),
        scopes=("openid", "roles"),
        audiences=(API,),
        first_party=True,
    )
    await make_user(pool, email, roles=roles)
    auth = Authorization(client.client_id, REDIRECT, scope="openid roles")
    async with httpx.AsyncClient(base_url=stack.idp.base_url, timeout=10) as browser:
        code = await authorize_code(browser, auth, email, PASSWORD)
        answer = await exchange_code(browser, client.client_id, secret, code, auth)
    assert answer.status_code == 200, answer.text
    return str(answer.json()["access_token"])


async def machine_token(stack: Stack, pool: asyncpg.Pool, audience: str) -> str:
    client, secret = await make_client(
        pool, stack.idp.settings, audiences=(audience,), scopes=("read",)
    )
    answer = await stack.idp_http.post(
        "/token",
        data={"grant_type": "client_credentials", "scope": "read"},
        auth=(client.client_id, secret),
    )
    assert answer.status_code == 200, answer.text
    return str(answer.json()["access_token"])


async def get(stack: Stack, path: str, token: str) -> httpx.Response:
    return await stack.api.get(path, headers={"Authorization": f"Bearer {token}"})


def parts(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """A JWT's header and claims, unverified (to read its kid, typ or sub)."""
    header, payload, _ = token.split(".")
    return (
        json.loads(base64.urlsafe_b64decode(header + "==")),
        json.loads(base64.urlsafe_b64decode(payload + "==")),
    )


def challenge(response: httpx.Response) -> str:
    return response.headers["www-authenticate"]


def default_of(name: str) -> Any:
    return next(field.default for field in fields(Settings) if field.name == name)


async def test_recommended_cache_max_age_draws_no_warning_from_idp_keys_plan(
    cli_env: dict[str, str],
) -> None:
    """The default server.js gives jwks-rsa (``recommended.json``) is what ``idp keys plan
    --verifier-cache`` accepts with idp's default lifecycle settings (cli_env sets no lifecycle
    variable), and no longer than the JWKS max-age idp serves by default; a second longer than
    the retirement window draws the warning, so the first check can fail."""
    source = (EXAMPLE / "server.js").read_text()
    assert "cacheMaxAge: milliseconds('JWKS_CACHE_MAX_AGE_MS', recommended.cacheMaxAge)" in source
    assert "jwksRequestsPerMinute: recommended.jwksRequestsPerMinute" in source
    cache = timedelta(milliseconds=recommended()["cacheMaxAge"])
    assert cache <= default_of("jwks_max_age")

    async def warnings(verifier_cache: timedelta) -> list[str]:
        seconds = f"{math.ceil(verifier_cache.total_seconds())}s"
        result = await idp_command(cli_env, "keys", "plan", "--json", "--verifier-cache", seconds)
        assert result.returncode == 0, result.stderr
        found: list[str] = json.loads(result.stdout)["warnings"]
        return found

    assert await warnings(cache) == []
    window = (
        max(default_of("access_token_ttl"), default_of("max_access_token_ttl"))
        + default_of("clock_skew")
        + default_of("key_check_interval")
    )
    assert "outlasts the retirement window" in "".join(
        await warnings(window + timedelta(seconds=1))
    )


async def test_a_signed_in_users_token_gets_the_greeting(stack: Stack, pool: asyncpg.Pool) -> None:
    token = await user_token(stack, pool, "alice@example.com", ())
    answer = await get(stack, "/api/greeting", token)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"hello": parts(token)[1]["sub"], "roles": []}


async def test_no_token_is_a_bare_bearer_challenge(stack: Stack) -> None:
    """RFC 6750 §3.1: a request without authentication gets no error code in the challenge."""
    answer = await stack.api.get("/api/greeting")
    assert answer.status_code == 401
    assert challenge(answer) == "Bearer"


async def test_the_admin_report_needs_the_admin_role(stack: Stack, pool: asyncpg.Pool) -> None:
    """RFC 6750 §3.1: a valid token without the role is 403 insufficient_scope, not 401."""
    alice = await user_token(stack, pool, "alice@example.com", ())
    refused = await get(stack, "/api/admin/report", alice)
    assert refused.status_code == 403, refused.text
    assert refused.json()["error"] == "insufficient_scope"
    assert challenge(refused).startswith('Bearer error="insufficient_scope"')
    root = await user_token(stack, pool, "root@example.com", ("admin",))
    allowed = await get(stack, "/api/admin/report", root)
    assert allowed.status_code == 200, allowed.text
    assert allowed.json()["by"] == parts(root)[1]["sub"]


async def test_a_token_for_another_audience_is_refused(stack: Stack, pool: asyncpg.Pool) -> None:
    """RFC 6750 §3.1 invalid_token; the same kind of token for API passes (the control)."""
    assert (await get(stack, "/api/greeting", await machine_token(stack, pool, API))).is_success
    answer = await get(
        stack, "/api/greeting", await machine_token(stack, pool, "https://other.example")
    )
    assert answer.status_code == 401, answer.text
    assert answer.json()["error"] == "invalid_token"
    assert challenge(answer).startswith('Bearer error="invalid_token"')
    assert "audience" in answer.json()["error_description"]


async def test_an_id_token_with_an_access_tokens_claims_is_refused(
    stack: Stack, pool: asyncpg.Pool, clock: FrozenClock
) -> None:
    """RFC 9068 §4: signed with idp's key by its ID-token signing call (``typ: JWT``), every claim
    that of a valid access token for API: only the type tells them apart."""
    access_token = await user_token(stack, pool, "alice@example.com", ())
    assert (await get(stack, "/api/greeting", access_token)).status_code == 200
    keyring = Keyring(stack.idp.settings, clock)
    await keyring.load(pool)
    id_token = keyring.sign(parts(access_token)[1])
    assert parts(id_token)[0]["typ"] == "JWT"
    answer = await get(stack, "/api/greeting", id_token)
    assert answer.status_code == 401, answer.text
    assert answer.json() == {
        "error": "invalid_token",
        "error_description": "not an access token (typ)",
    }


async def test_after_a_rotation_a_new_kid_is_accepted_without_restarting_node(
    stack: Stack, pool: asyncpg.Pool, clock: FrozenClock
) -> None:
    """Two forced rotations (``idp keys rotate --force``): the second promotes a kid published
    after node fetched the JWKS, well inside its cacheMaxAge; jwks-rsa refetches on it."""
    assert (await get(stack, "/api/greeting", await machine_token(stack, pool, API))).is_success
    fetched = kids((await stack.idp_http.get("/jwks.json")).content)
    manager = KeyManager(pool, stack.idp.settings, clock)
    await manager.rotate("test", force=True)
    rotation = await manager.rotate("test", force=True)
    assert rotation.kid not in fetched
    start = time.monotonic()
    token = await machine_token(stack, pool, API)
    while parts(token)[0]["kid"] != rotation.kid:  # idp's keyring hears of it by NOTIFY
        assert time.monotonic() - start < PROPAGATION_DEADLINE, "idp does not sign with it"
        await asyncio.sleep(0.01)
        token = await machine_token(stack, pool, API)
    answer = await get(stack, "/api/greeting", token)
    assert answer.status_code == 200, answer.text


async def test_a_malformed_authorization_header_is_invalid_request(stack: Stack) -> None:
    """RFC 6750 §3.1: a malformed request is 400 invalid_request, not 401."""
    answer = await stack.api.get("/api/greeting", headers={"Authorization": "Bearer a b"})
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"] == "invalid_request"
    assert challenge(answer).startswith('Bearer error="invalid_request"')


async def test_another_scheme_is_401_with_a_bare_challenge(stack: Stack) -> None:
    """RFC 6750 §3.1: a client that "attempted using an unsupported authentication method"
    gets no error code, as one that sent nothing (the Python glue answers the same)."""
    answer = await stack.api.get("/api/greeting", headers={"Authorization": "Basic abc"})
    assert answer.status_code == 401, answer.text
    assert challenge(answer) == "Bearer"


async def test_an_expired_token_is_refused(
    stack: Stack, pool: asyncpg.Pool, clock: FrozenClock
) -> None:
    """idp's clock set back so that the token it signs expired a minute ago by node's clock (the
    example allows no leeway); the same token signed a minute earlier than expiry passes."""
    wall = clock.now()
    ttl = stack.idp.settings.access_token_ttl
    clock.set(wall - ttl + timedelta(minutes=1))
    assert (await get(stack, "/api/greeting", await machine_token(stack, pool, API))).is_success
    clock.set(wall - ttl - timedelta(minutes=1))
    answer = await get(stack, "/api/greeting", await machine_token(stack, pool, API))
    assert answer.status_code == 401, answer.text
    assert answer.json() == {"error": "invalid_token", "error_description": "jwt expired"}


async def test_an_unsigned_token_with_alg_none_is_refused(stack: Stack, pool: asyncpg.Pool) -> None:
    """RFC 8725 §3.1: idp's own header and claims, ``alg`` rewritten to ``none``, no signature."""
    header, claims = parts(await machine_token(stack, pool, API))

    def b64(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    answer = await get(stack, "/api/greeting", f"{b64({**header, 'alg': 'none'})}.{b64(claims)}.")
    assert answer.status_code == 401, answer.text
    assert answer.json()["error"] == "invalid_token"
