"""FastAPI glue: a dependency that gives a route the verified token, or refuses the request.

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with await TokenVerifier.from_issuer(ISSUER, AUDIENCE) as verifier:
            app.state.verifier = verifier
            yield

    app = FastAPI(lifespan=lifespan)
    install_error_handler(app)
    admin = TokenDependency(lambda: app.state.verifier, roles=["admin"])

    @app.get("/report")
    async def report(token: VerifiedToken = Depends(admin)) -> dict[str, str]: ...

``verifier`` is a TokenVerifier or Introspector, or (as above) a getter called on each request,
so the verifier can be made in the lifespan, after the routes are declared.

A refusal is an ``HTTPException`` with RFC 6750's status and ``WWW-Authenticate``; with
``install_error_handler(app)`` its body is ``{"error", "error_description"}`` like the Starlette
glue's (FastAPI's default handler would answer ``{"detail": ...}``). The dependency declares
the HTTP Bearer scheme, so the OpenAPI document and its "Authorize" button know about it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated

from fastapi import FastAPI, HTTPException, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.responses import JSONResponse, Response

from idp_rp.bearer import BearerError, Challenge, Requirement, VerifierSource, authenticate, resolve
from idp_rp.verifier import VerifiedToken

# Declared for OpenAPI only: the header is parsed by idp_rp.bearer (two credentials, a
# malformed header), so auto_error is off and the parsed value is not used.
_SCHEME = HTTPBearer(auto_error=False, scheme_name="Bearer")


class BearerHTTPException(HTTPException):
    """An RFC 6750 refusal as FastAPI raises it."""

    def __init__(self, error: BearerError, challenge: Challenge) -> None:
        super().__init__(error.status, error.description, headers=error.headers(challenge))
        self.bearer_error = error


class TokenDependency:
    """``Depends(TokenDependency(verifier, scopes=[...], roles=[...]))`` -> VerifiedToken."""

    def __init__(
        self,
        verifier: VerifierSource,
        *,
        scopes: Iterable[str] = (),
        roles: Iterable[str] = (),
        realm: str | None = None,
        resource_metadata: str | None = None,
    ) -> None:
        self.verifier = verifier
        self.requirement = Requirement.of(scopes, roles)
        self.challenge = Challenge(realm, resource_metadata)

    async def __call__(
        self,
        request: Request,
        _: Annotated[HTTPAuthorizationCredentials | None, Security(_SCHEME)],
    ) -> VerifiedToken:
        try:
            token = await authenticate(
                resolve(self.verifier), request.headers.getlist("authorization")
            )
            return self.requirement.check(token)
        except BearerError as error:
            raise BearerHTTPException(error, self.challenge) from None


async def bearer_error_handler(_: Request, exception: Exception) -> Response:
    assert isinstance(exception, BearerHTTPException)
    return JSONResponse(
        exception.bearer_error.body(),
        status_code=exception.status_code,
        headers=exception.headers,
    )


def install_error_handler(app: FastAPI) -> None:
    """Refusals answer ``{"error", "error_description"}`` (RFC 6750 §3.1 codes)."""
    app.add_exception_handler(BearerHTTPException, bearer_error_handler)
