"""Bearer tokens at a resource server (RFC 6750), with no web framework: read the token from the
``Authorization`` header, check what a route requires, and shape the refusal (status, JSON body,
``WWW-Authenticate`` challenge). The Starlette and FastAPI glue both call only this module.

Refusals, one class per RFC 6750 §3.1 code::

    BearerError                      status, error, description, body(), challenge()
    ├── InvalidRequestError          400 invalid_request (a malformed header, two credentials)
    ├── MissingTokenError            401, no error attributes (§3.1: no token was sent)
    ├── TokenRefusedError            401 invalid_token (the verifier said no)
    ├── InsufficientScopeError       403 insufficient_scope, with the scope needed
    │   └── MissingRoleError         403 insufficient_scope too (see its docstring)
    └── VerifierUnavailableError     503 (the introspection endpoint did not answer)
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from idp_rp.errors import InvalidTokenError, JwksUnavailableError
from idp_rp.introspection import IntrospectionError
from idp_rp.verifier import VerifiedToken


@runtime_checkable
class Verifier(Protocol):
    """What the glue needs: TokenVerifier (JWTs, offline) or Introspector (RFC 7662, online)."""

    async def verify(self, token: str) -> VerifiedToken: ...


# A verifier, or a getter of one: a verifier made in the app's lifespan is not there yet when
# the app's routes and middleware are declared, so they may take ``lambda: state.verifier``.
VerifierSource = Verifier | Callable[[], Verifier]


def resolve(source: VerifierSource) -> Verifier:
    return source if isinstance(source, Verifier) else source()


# RFC 6750 §2.1: b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
_B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
# RFC 6750 §3: error_description and scope values are %x20-21 / %x23-5B / %x5D-7E (no quote, no
# backslash, nothing outside printable ASCII). Descriptions can echo a token's header (a kid),
# so anything else is replaced rather than trusted.
_NOT_QCHAR = re.compile(r"[^\x20\x21\x23-\x5b\x5d-\x7e]")


@dataclass(frozen=True)
class Challenge:
    """The parameters every challenge of one resource server carries."""

    realm: str | None = None
    resource_metadata: str | None = None  # RFC 9728 §5.1: the metadata document's URL


class BearerError(Exception):
    status = 401
    error: str | None = None
    challenged = True  # answered with a WWW-Authenticate challenge

    def __init__(self, description: str | None = None, *, scope: Iterable[str] = ()) -> None:
        super().__init__(description or self.error or "authentication required")
        self.description = description
        self.scope = " ".join(sorted(scope))

    def body(self) -> dict[str, str]:
        """The JSON body: ``{"error", "error_description"}`` (the fields RFC 6749 §5.2 uses);
        RFC 6750 names no code for a request without a token, so that one says ``unauthorized``
        in the body only, never in the challenge (§3.1)."""
        if self.error is None:
            return {"error": "unauthorized", "error_description": "a Bearer token is required"}
        body = {"error": self.error}
        if self.description:
            body["error_description"] = self.description
        return body

    def challenge(self, settings: Challenge = Challenge()) -> str:
        """The ``WWW-Authenticate`` value (RFC 6750 §3), e.g.
        ``Bearer realm="api", error="invalid_token", error_description="..."``."""
        params: list[tuple[str, str]] = []
        if settings.realm is not None:
            params.append(("realm", settings.realm))
        if self.error is not None:  # §3.1: no error attributes when no token was sent
            params.append(("error", self.error))
            if self.description:
                params.append(("error_description", self.description))
            if self.scope:
                params.append(("scope", self.scope))
        if settings.resource_metadata is not None:
            params.append(("resource_metadata", settings.resource_metadata))
        if not params:
            return "Bearer"
        return "Bearer " + ", ".join(
            f'{name}="{_NOT_QCHAR.sub("?", value)}"' for name, value in params
        )

    def headers(self, settings: Challenge = Challenge()) -> dict[str, str]:
        """RFC 6750 §3: a request that "does not contain an access token that enables access"
        MUST get the challenge: 401, 403 and the 400 of a malformed header alike."""
        if self.challenged:
            return {"WWW-Authenticate": self.challenge(settings)}
        return {}


class InvalidRequestError(BearerError):
    status = 400
    error = "invalid_request"


class MissingTokenError(BearerError):
    status = 401


class TokenRefusedError(BearerError):
    status = 401
    error = "invalid_token"


class InsufficientScopeError(BearerError):
    status = 403
    error = "insufficient_scope"


class MissingRoleError(InsufficientScopeError):
    """A valid token whose user lacks a role: 403 ``insufficient_scope``.

    RFC 6750 has no error code for roles (RFC 9068 §2.2.3.1 only defines the claim), and the
    token is valid, so 401 would tell the client to get a new one for nothing; Keycloak and Auth0
    answer 403 too. The challenge names no ``scope``: no scope the client could ask for helps."""


class VerifierUnavailableError(BearerError):
    """The verifier could not decide (the introspection endpoint or the JWKS is down): not the
    token's fault, so no ``invalid_token`` that would send the client to sign in again."""

    status = 503
    error = "temporarily_unavailable"
    challenged = False  # no credentials would help: nothing to challenge for


def bearer_token(authorization: Sequence[str]) -> str | None:
    """The token of the ``Authorization`` header values of one request (RFC 6750 §2.1), None when
    no Bearer credentials were sent (no header, or another scheme such as Basic).

    The scheme is case-insensitive (RFC 9110 §11.1). Two headers, or a value that is not one
    b64token, is ``invalid_request`` (§3.1: "uses more than one method", "malformed")."""
    if not authorization:
        return None
    if len(authorization) > 1:
        raise InvalidRequestError("more than one Authorization header")
    scheme, _, credentials = authorization[0].strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    token = credentials.strip()
    if not _B64TOKEN.fullmatch(token):
        raise InvalidRequestError("the Bearer credentials are not one token")
    return token


async def authenticate(verifier: Verifier, authorization: Sequence[str]) -> VerifiedToken:
    """The verified token of a request, or the BearerError to answer."""
    token = bearer_token(authorization)
    if token is None:
        raise MissingTokenError()
    return await verify(verifier, token)


async def verify(verifier: Verifier, token: str) -> VerifiedToken:
    try:
        return await verifier.verify(token)
    except JwksUnavailableError as error:
        raise VerifierUnavailableError("the issuer's keys could not be fetched now") from error
    except InvalidTokenError as error:
        raise TokenRefusedError(error.description) from error
    except IntrospectionError as error:
        raise VerifierUnavailableError("the token could not be checked now") from error


@dataclass(frozen=True)
class Requirement:
    """What a route needs of a verified token: every scope in ``scopes`` (RFC 6750 §3.1) and
    every role in ``roles`` (RFC 9068 §2.2.3.1)."""

    scopes: frozenset[str] = frozenset()
    roles: frozenset[str] = frozenset()

    @classmethod
    def of(cls, scopes: Iterable[str] = (), roles: Iterable[str] = ()) -> Requirement:
        if isinstance(scopes, str) or isinstance(roles, str):
            raise TypeError("scopes and roles are lists of names, not one string")
        return cls(frozenset(scopes), frozenset(roles))

    def check(self, token: VerifiedToken) -> VerifiedToken:
        """``token``, or InsufficientScopeError / MissingRoleError (both 403)."""
        missing_scopes = self.scopes - token.scopes
        if missing_scopes:
            # §3.1: "scope" names the scope necessary to access the resource: all of them.
            raise InsufficientScopeError(
                f"the token lacks the scope {' '.join(sorted(missing_scopes))}", scope=self.scopes
            )
        missing_roles = self.roles - token.roles
        if missing_roles:
            raise MissingRoleError(f"the user lacks the role {' '.join(sorted(missing_roles))}")
        return token
