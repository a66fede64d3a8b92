"""Starlette glue: a middleware that verifies the Bearer token of every request, and
``requires_token`` for the endpoints that need one.

    app = Starlette(
        routes=[Route("/api/report", report)],
        middleware=[Middleware(BearerTokenMiddleware, verifier=lambda: state.verifier)],
    )

    @requires_token(roles=["admin"])
    async def report(request: Request) -> Response:
        token = verified_token(request)

The middleware never refuses a request: an anonymous one (or one with a bad token) reaches the
app, which decides (a public route ignores the token). ``requires_token`` answers 401 with the
challenge when there is no token or it is invalid, 403 when scopes or roles are missing, 400
for a malformed header; the bodies are ``{"error", "error_description"}`` (idp_rp.bearer).
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from idp_rp.bearer import (
    BearerError,
    Challenge,
    MissingTokenError,
    Requirement,
    VerifierSource,
    authenticate,
    resolve,
)
from idp_rp.verifier import VerifiedToken

SCOPE_KEY = "idp_rp.authentication"

Endpoint = Callable[[Request], Awaitable[Response]]


@dataclass(frozen=True)
class Authentication:
    """What the middleware learnt of a request: the token, or why there is none."""

    token: VerifiedToken | None
    error: BearerError
    challenge: Challenge


class BearerTokenMiddleware:
    """Verifies a presented Bearer token and puts the result in the request scope.

    ``verifier`` is a TokenVerifier, an Introspector, or a getter of one (for a verifier made in
    the lifespan). ``realm`` and ``resource_metadata`` (the RFC 9728 document's URL,
    ``protected_resource.metadata_url(resource)``) go into every challenge."""

    def __init__(
        self,
        app: ASGIApp,
        verifier: VerifierSource,
        *,
        realm: str | None = None,
        resource_metadata: str | None = None,
    ) -> None:
        self.app = app
        self.verifier = verifier
        self.challenge = Challenge(realm, resource_metadata)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            connection = HTTPConnection(scope)
            scope[SCOPE_KEY] = await authentication_of(connection, self.verifier, self.challenge)
        await self.app(scope, receive, send)


async def authentication_of(
    connection: HTTPConnection, verifier: VerifierSource, challenge: Challenge
) -> Authentication:
    """What ``verifier`` makes of the connection's Bearer token (the middleware's answer, and a
    route's own verifier's)."""
    try:
        token = await authenticate(resolve(verifier), connection.headers.getlist("authorization"))
    except BearerError as error:
        return Authentication(None, error, challenge)
    return Authentication(token, MissingTokenError(), challenge)


def token_of(connection: HTTPConnection) -> VerifiedToken | None:
    """The request's verified token, or None (anonymous, or the token was refused)."""
    authentication = connection.scope.get(SCOPE_KEY)
    if not isinstance(authentication, Authentication):
        raise RuntimeError("BearerTokenMiddleware is not installed on this app")
    return authentication.token


def verified_token(connection: HTTPConnection) -> VerifiedToken:
    """The token inside an endpoint wrapped by ``requires_token`` (which guarantees one)."""
    token = token_of(connection)
    if token is None:
        raise RuntimeError("the endpoint is not wrapped by requires_token")
    return token


def refusal(error: BearerError, challenge: Challenge | None = None) -> JSONResponse:
    """The answer to a refused request: status, JSON body, WWW-Authenticate (RFC 6750 §3)."""
    return JSONResponse(
        error.body(), status_code=error.status, headers=error.headers(challenge or Challenge())
    )


def requires_token(
    scopes: Iterable[str] = (),
    roles: Iterable[str] = (),
    *,
    verifier: VerifierSource | None = None,
) -> Callable[[Endpoint], Endpoint]:
    """Wraps an endpoint ``async def endpoint(request) -> Response``: it runs only with a valid
    token holding every scope and role; ``verified_token(request)`` gives it the token.

    ``verifier`` overrides the middleware's for this route, e.g. an Introspector for a route that
    must see a revocation at once while the rest of the API trusts JWTs offline."""
    requirement = Requirement.of(scopes, roles)

    def decorate(endpoint: Endpoint) -> Endpoint:
        @functools.wraps(endpoint)
        async def guarded(request: Request) -> Response:
            authentication = request.scope.get(SCOPE_KEY)
            if verifier is not None:
                challenge = (
                    authentication.challenge
                    if isinstance(authentication, Authentication)
                    else Challenge()
                )
                authentication = await authentication_of(request, verifier, challenge)
                request.scope[SCOPE_KEY] = authentication
            elif not isinstance(authentication, Authentication):
                raise RuntimeError("BearerTokenMiddleware is not installed on this app")
            if authentication.token is None:
                return refusal(authentication.error, authentication.challenge)
            try:
                requirement.check(authentication.token)
            except BearerError as error:
                return refusal(error, authentication.challenge)
            return await endpoint(request)

        return guarded

    return decorate
