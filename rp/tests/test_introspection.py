"""Introspector (RFC 7662) against a real local introspection endpoint: the answers, the checks
the resource server still makes (§4), and the cache's bounds."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from conftest import AUDIENCE, FrozenClock, asgi_client
from idp_rp import InvalidTokenError
from idp_rp.introspection import IntrospectionError, Introspector
from idp_rp.starlette import BearerTokenMiddleware, requires_token, verified_token
from introspection_server import IntrospectionServer, served


@pytest.fixture
def idp() -> Iterator[IntrospectionServer]:
    with served(IntrospectionServer()) as server:
        yield server


def active(idp: IntrospectionServer, clock: FrozenClock, **overrides: Any) -> dict[str, Any]:
    now = int(clock.now().timestamp())
    body: dict[str, Any] = {
        "active": True,
        "token_type": "Bearer",
        "iss": idp.origin,
        "aud": AUDIENCE,
        "sub": "user-1",
        "client_id": "app",
        "scope": "read",
        "iat": now,
        "exp": now + 3600,
        "jti": "j1",
    }
    body.update(overrides)
    return body


def make(
    idp: IntrospectionServer,
    clock: FrozenClock,
    http: httpx.AsyncClient,
    *,
    ttl: int = 30,
    size: int = 1000,
) -> Introspector:
    return Introspector(
        idp.endpoint,
        client_id=idp.client_id,
        client_secret=idp.client_secret,
        issuer=idp.origin,
        audience=AUDIENCE,
        http=http,
        clock=clock,
        cache_ttl=timedelta(seconds=ttl),
        cache_size=size,
    )


async def test_an_active_token_gives_its_claims_and_is_asked_with_client_credentials(
    idp: IntrospectionServer, clock: FrozenClock, http: httpx.AsyncClient
) -> None:
    """RFC 7662 §2.1: POST token (+ hint), client_secret_basic with the secret form-encoded
    (RFC 6749 §2.3.1: the server refuses anything else)."""
    idp.answers["tok"] = active(idp, clock, roles=["admin"])
    verified = await make(idp, clock, http).verify("tok")
    assert (verified.subject, verified.client_id, verified.scopes) == (
        "user-1",
        "app",
        frozenset({"read"}),
    )
    assert verified.roles == {"admin"}
    assert "active" not in verified.claims
    assert idp.requests == [{"token": "tok", "token_type_hint": "access_token"}]


async def test_the_endpoint_is_found_by_discovery(
    idp: IntrospectionServer, clock: FrozenClock, http: httpx.AsyncClient
) -> None:
    idp.answers["tok"] = active(idp, clock)
    async with await Introspector.from_issuer(
        idp.origin, AUDIENCE, client_id=idp.client_id, client_secret=idp.client_secret, clock=clock
    ) as introspector:
        assert introspector.endpoint == idp.endpoint
        assert (await introspector.verify("tok")).subject == "user-1"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"active": False}, "not active"),
        ({"aud": "https://other.example"}, "not for this audience"),
        ({"iss": "https://evil.example"}, "wrong issuer"),
        ({"exp": 0}, "expired"),
        ({"token_type": "refresh_token"}, "not an access token"),
        ({"sub": None}, "no sub"),
    ],
    ids=["inactive", "other-audience", "other-issuer", "expired", "refresh-token", "no-sub"],
)
async def test_inactive_or_not_ours_is_invalid_token(
    idp: IntrospectionServer,
    clock: FrozenClock,
    http: httpx.AsyncClient,
    overrides: dict[str, Any],
    message: str,
) -> None:
    """RFC 7662 §2.2 ``active``; §4: the resource server checks it is the audience (and the
    issuer and expiry) whatever the endpoint says."""
    idp.answers["tok"] = active(idp, clock, **overrides)
    with pytest.raises(InvalidTokenError, match=message):
        await make(idp, clock, http).verify("tok")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"exp": float("nan")}, "exp is not a time"),
        ({"exp": float("inf")}, "exp is not a time"),
        ({"exp": 1e20}, "exp is not a time"),
        ({"exp": "soon"}, "no exp"),
        ({"token_type": 5}, "not an access token"),
    ],
    ids=["exp-nan", "exp-infinity", "exp-past-year-9999", "exp-string", "token-type-number"],
)
async def test_a_malformed_active_answer_is_invalid_token_not_a_crash(
    idp: IntrospectionServer,
    clock: FrozenClock,
    http: httpx.AsyncClient,
    overrides: dict[str, Any],
    message: str,
) -> None:
    """An answer the glue cannot use fails closed (401), never as a 500 with a traceback."""
    idp.answers["tok"] = active(idp, clock, **overrides)
    with pytest.raises(InvalidTokenError, match=message):
        await make(idp, clock, http).verify("tok")


async def test_an_unknown_token_is_inactive_and_not_cached(
    idp: IntrospectionServer, clock: FrozenClock, http: httpx.AsyncClient
) -> None:
    introspector = make(idp, clock, http)
    for _ in range(2):
        with pytest.raises(InvalidTokenError, match="not active"):
            await introspector.verify("unknown")
    assert len(idp.requests) == 2
    assert len(introspector) == 0


async def test_an_active_answer_is_cached_for_cache_ttl(
    idp: IntrospectionServer, clock: FrozenClock, http: httpx.AsyncClient
) -> None:
    idp.answers["tok"] = active(idp, clock)
    introspector = make(idp, clock, http, ttl=30)
    await introspector.verify("tok")
    del idp.answers["tok"]  # revoked at idp
    clock.advance(timedelta(seconds=29))
    await introspector.verify("tok")  # still cached
    assert len(idp.requests) == 1
    clock.advance(timedelta(seconds=1))
    with pytest.raises(InvalidTokenError, match="not active"):
        await introspector.verify("tok")
    assert len(idp.requests) == 2


async def test_an_entry_never_outlives_the_tokens_exp(
    idp: IntrospectionServer, clock: FrozenClock, http: httpx.AsyncClient
) -> None:
    now = int(clock.now().timestamp())
    idp.answers["tok"] = active(idp, clock, exp=now + 10)
    introspector = make(idp, clock, http, ttl=30)
    await introspector.verify("tok")
    clock.advance(timedelta(seconds=9))
    await introspector.verify("tok")
    assert len(idp.requests) == 1
    clock.advance(timedelta(seconds=1))
    with pytest.raises(InvalidTokenError, match="expired"):
        await introspector.verify("tok")
    assert len(idp.requests) == 2


async def test_cache_ttl_zero_asks_every_time(
    idp: IntrospectionServer, clock: FrozenClock, http: httpx.AsyncClient
) -> None:
    idp.answers["tok"] = active(idp, clock)
    introspector = make(idp, clock, http, ttl=0)
    for _ in range(3):
        await introspector.verify("tok")
    assert (len(idp.requests), len(introspector)) == (3, 0)


async def test_the_cache_holds_at_most_cache_size_evicting_the_least_recently_used(
    idp: IntrospectionServer, clock: FrozenClock, http: httpx.AsyncClient
) -> None:
    for token in ("a", "b", "c"):
        idp.answers[token] = active(idp, clock)
    introspector = make(idp, clock, http, size=2)
    await introspector.verify("a")
    await introspector.verify("b")
    await introspector.verify("a")  # a is now the most recently used
    await introspector.verify("c")  # evicts b
    assert (len(idp.requests), len(introspector)) == (3, 2)
    await introspector.verify("a")
    assert len(idp.requests) == 3
    await introspector.verify("b")
    assert len(idp.requests) == 4


async def test_the_cache_is_keyed_by_the_tokens_hash_not_the_token(
    idp: IntrospectionServer, clock: FrozenClock, http: httpx.AsyncClient
) -> None:
    idp.answers["secret-token"] = active(idp, clock)
    introspector = make(idp, clock, http)
    await introspector.verify("secret-token")
    assert list(introspector._cache) == [hashlib.sha256(b"secret-token").digest()]


async def test_concurrent_requests_with_one_token_share_one_call_to_idp(
    idp: IntrospectionServer, clock: FrozenClock, http: httpx.AsyncClient
) -> None:
    """Like JwksCache's shared fetch: a burst of requests with a token not yet cached costs idp
    one introspection, not one per request."""
    idp.answers["tok"] = active(idp, clock)
    introspector = make(idp, clock, http)
    answers = await asyncio.gather(*(introspector.verify("tok") for _ in range(5)))
    assert {answer.subject for answer in answers} == {"user-1"}
    assert len(idp.requests) == 1
    assert introspector._in_flight == {}


async def test_a_shared_call_that_fails_fails_every_caller_and_is_not_kept(
    idp: IntrospectionServer, clock: FrozenClock, http: httpx.AsyncClient
) -> None:
    introspector = make(idp, clock, http)
    answers = await asyncio.gather(
        *(introspector.verify("unknown") for _ in range(3)), return_exceptions=True
    )
    assert [type(answer) for answer in answers] == [InvalidTokenError] * 3
    assert (len(idp.requests), introspector._in_flight) == (1, {})
    idp.failure = 500
    answers = await asyncio.gather(
        *(introspector.verify("tok") for _ in range(3)), return_exceptions=True
    )
    assert [type(answer) for answer in answers] == [IntrospectionError] * 3
    assert (len(idp.requests), introspector._in_flight) == (2, {})


async def test_a_caller_that_goes_away_does_not_cancel_the_shared_call(
    idp: IntrospectionServer, clock: FrozenClock, http: httpx.AsyncClient
) -> None:
    """The first request's client disconnects (its task is cancelled) while a second request
    waits on the same introspection: the second still gets its answer."""
    idp.answers["tok"] = active(idp, clock)
    introspector = make(idp, clock, http)
    first = asyncio.create_task(introspector.verify("tok"))
    second = asyncio.create_task(introspector.verify("tok"))
    await asyncio.sleep(0)  # one step each: the first starts the call, the second joins it
    first.cancel()
    assert (await second).subject == "user-1"
    assert first.cancelled()
    assert len(idp.requests) == 1


async def test_a_shared_call_cancelled_before_it_ran_is_not_left_in_flight(
    idp: IntrospectionServer, clock: FrozenClock, http: httpx.AsyncClient
) -> None:
    """As at the event loop's shutdown: a later request asks afresh instead of meeting the
    cancelled call (which would raise CancelledError out of verify)."""
    idp.answers["tok"] = active(idp, clock)
    introspector = make(idp, clock, http)
    first = asyncio.create_task(introspector.verify("tok"))
    await asyncio.sleep(0)  # the first made the call; the call has not run a step yet
    (call,) = introspector._in_flight.values()
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    assert introspector._in_flight == {}
    assert (await introspector.verify("tok")).subject == "user-1"


async def test_with_cache_ttl_zero_concurrent_requests_each_ask(
    idp: IntrospectionServer, clock: FrozenClock, http: httpx.AsyncClient
) -> None:
    """No cache means a revocation is seen at once: no request is answered by a call that
    started before it arrived."""
    idp.answers["tok"] = active(idp, clock)
    introspector = make(idp, clock, http, ttl=0)
    await asyncio.gather(*(introspector.verify("tok") for _ in range(3)))
    assert len(idp.requests) == 3


@pytest.mark.parametrize("failure", [500, 401], ids=["server-error", "credentials-refused"])
async def test_an_endpoint_that_does_not_answer_is_an_introspection_error(
    idp: IntrospectionServer, clock: FrozenClock, http: httpx.AsyncClient, failure: int
) -> None:
    idp.failure = failure
    with pytest.raises(IntrospectionError, match=str(failure)):
        await make(idp, clock, http).verify("tok")


@pytest.fixture
async def api(
    idp: IntrospectionServer, clock: FrozenClock, http: httpx.AsyncClient
) -> AsyncIterator[httpx.AsyncClient]:
    introspector = make(idp, clock, http, ttl=0)

    @requires_token(scopes=["read"])
    async def me(request: Request) -> Response:
        return JSONResponse({"subject": verified_token(request).subject})

    app = Starlette(
        routes=[Route("/me", me)],
        middleware=[Middleware(BearerTokenMiddleware, verifier=introspector)],
    )
    async with asgi_client(app) as client:
        yield client


async def test_the_glue_takes_an_introspector_and_answers_503_when_it_cannot_ask(
    api: httpx.AsyncClient, idp: IntrospectionServer, clock: FrozenClock
) -> None:
    """A failed introspection is not the token's fault: no ``invalid_token`` (which would send
    the client to sign in again), but 503."""
    idp.answers["tok"] = active(idp, clock)
    headers = {"Authorization": "Bearer tok"}
    assert (await api.get("/me", headers=headers)).json() == {"subject": "user-1"}
    idp.failure = 500
    answer = await api.get("/me", headers=headers)
    assert answer.status_code == 503
    assert answer.json()["error"] == "temporarily_unavailable"
    assert "www-authenticate" not in answer.headers
