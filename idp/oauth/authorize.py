"""The authorization request (RFC 6749 §4.1.1, OIDC Core §3.1.2.1), checked by an ordered list
of small functions in spec order, each raising the spec error (idp.oauth.errors) of what it
checks. Errors about the client or the redirect URI are shown on an error page and never
redirected (RFC 6749 §4.1.2.1): the redirect URI is not trusted yet (``AuthorizePageError``).
Every later error goes back to the client with ``error``, ``state`` and ``iss`` (RFC 9207)
(``AuthorizeRedirectError``)."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from idp.db.clients import Client
from idp.oauth import acr
from idp.oauth.access_token import resolve_audience
from idp.oauth.errors import (
    InvalidRequestError,
    InvalidScopeError,
    OAuthError,
    RequestNotSupportedError,
    RequestUriNotSupportedError,
    UnauthorizedClientError,
    UnsupportedResponseTypeError,
)
from idp.oauth.params import Params, parse_scope
from idp.oauth.pkce import valid_challenge
from idp.oauth.redirect_uris import redirect_uri_matches

MAX_STATE_LENGTH = 1024
MAX_NONCE_LENGTH = 512
MAX_ACR_VALUES_LENGTH = 512
MAX_CLAIMS_LENGTH = 2048
# OIDC Core §3.1.2.1; discovery advertises these (prompt_values_supported), in this order.
PROMPTS = ("none", "login", "consent")
# RFC 6749 Appendix A.5: state = 1*VSCHAR (%x20-7E); nonces are held to the same.
_VSCHARS = re.compile(r"^[\x20-\x7e]+$")
_DIGITS = re.compile(r"^[0-9]{1,9}$")


class AuthorizePageError(Exception):
    """Shown to the user; never sent to the (untrusted) redirect URI."""

    def __init__(
        self, title: str, detail: str, *, status_code: int = 400, retry_after: int | None = None
    ) -> None:
        super().__init__(detail)
        self.title = title
        self.detail = detail
        self.status_code = status_code
        self.retry_after = retry_after  # seconds, sent as Retry-After (RFC 6585 §4, a 429)


class AuthorizeRedirectError(Exception):
    """``oauth_error``, sent back to the redirect URI of ``request`` (RFC 6749 §4.1.2.1), which
    the checks found registered."""

    def __init__(self, oauth_error: OAuthError, request: AuthorizationRequest) -> None:
        super().__init__(str(oauth_error))
        self.oauth_error = oauth_error
        self.request = request


@dataclass
class AuthorizationRequest:
    """What the checks establish, field by field, in order."""

    client: Client | None = None
    redirect_uri: str = ""
    state: str | None = None
    scopes: list[str] = field(default_factory=list)
    nonce: str | None = None
    code_challenge: str = ""
    prompt: str | None = None
    max_age: int | None = None
    audience: list[str] = field(default_factory=list)
    acr_values: list[str] | None = None  # OIDC Core §3.1.2.1, in the order of preference
    # OIDC Core §5.5.1.1: the acr values the claims parameter asks for as essential.
    essential_acr: list[str] | None = None
    # RFC 8707 resources a client registered by a program may name (never parked: checked once)
    resources: frozenset[str] = frozenset()

    @property
    def wanted_acr(self) -> str | None:
        """The strongest class idp knows among the (voluntary) ``acr_values``; None if none."""
        return None if self.acr_values is None else acr.strongest(self.acr_values)

    def to_json(self) -> dict[str, Any]:
        assert self.client is not None
        return {
            "client_id": self.client.client_id,
            "redirect_uri": self.redirect_uri,
            "state": self.state,
            "scopes": self.scopes,
            "nonce": self.nonce,
            "code_challenge": self.code_challenge,
            "prompt": self.prompt,
            "max_age": self.max_age,
            "audience": self.audience,
            "acr_values": self.acr_values,
            "essential_acr": self.essential_acr,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], client: Client) -> AuthorizationRequest:
        return cls(
            client=client,
            redirect_uri=data["redirect_uri"],
            state=data["state"],
            scopes=list(data["scopes"]),
            nonce=data["nonce"],
            code_challenge=data["code_challenge"],
            prompt=data["prompt"],
            max_age=data["max_age"],
            audience=list(data["audience"]),
            # absent from requests parked before them
            acr_values=data.get("acr_values"),
            essential_acr=data.get("essential_acr"),
        )

    def required_acr(self, *, mfa_required: bool) -> list[str] | None:
        """The classes one of which the sign-in must reach, None if nothing is required: the
        essential ``acr`` values of the claims parameter (OIDC Core §5.5.1.1), each raised to
        ``urn:idp:acr:mfa`` when the client requires two factors (``--require-mfa``) or
        ``mfa_required`` (IDP_MFA=required) does: one requirement, however it was asked."""
        assert self.client is not None
        if not (self.client.require_mfa or mfa_required):
            return self.essential_acr
        return acr.at_least(self.essential_acr or [acr.ACR_MFA], acr.ACR_MFA)


FindClient = Callable[[str], Awaitable[Client | None]]
Check = Callable[[Params, AuthorizationRequest, str], None]
# OIDC Core §3.1.2.6: request objects, by value or by reference, are refused by name.
_UNSUPPORTED = {"request": RequestNotSupportedError, "request_uri": RequestUriNotSupportedError}


def check_redirect_uri(params: Params, request: AuthorizationRequest, issuer: str) -> None:
    """The presented URI must match a registered one (idp.oauth.redirect_uris). The code then
    remembers the URI as presented, port included: the token request must repeat it exactly
    (RFC 6749 §4.1.3)."""
    assert request.client is not None
    uri = params.get("redirect_uri")
    if uri is None:
        raise AuthorizePageError("Missing redirect URI", "The request names no redirect_uri.")
    if not any(
        redirect_uri_matches(registered, uri, public=request.client.public)
        for registered in request.client.redirect_uris
    ):
        raise AuthorizePageError(
            "Unknown redirect URI",
            "The redirect_uri is not registered for this application, so idp will not send you "
            "there.",
        )
    request.redirect_uri = uri


def check_state(params: Params, request: AuthorizationRequest, issuer: str) -> None:
    """RFC 6749 §4.1.1: ``state`` is returned as given; VSCHAR only (Appendix A.5), bounded."""
    state = params.get("state")
    if state is not None and (len(state) > MAX_STATE_LENGTH or not _VSCHARS.match(state)):
        raise InvalidRequestError("state must be at most 1024 visible characters")
    request.state = state


def check_response_type(params: Params, request: AuthorizationRequest, issuer: str) -> None:
    assert request.client is not None
    response_type = params.get("response_type")
    if response_type is None:
        raise InvalidRequestError("response_type is required")
    if response_type != "code":
        raise UnsupportedResponseTypeError("only response_type=code is supported")
    if "authorization_code" not in request.client.grant_types:
        raise UnauthorizedClientError("this client may not use the code flow")
    response_mode = params.get("response_mode")
    if response_mode not in (None, "query"):
        raise InvalidRequestError("only response_mode=query is supported")
    for name, unsupported in _UNSUPPORTED.items():
        if params.get(name) is not None:
            raise unsupported(f"{name} is not supported")


def check_pkce(params: Params, request: AuthorizationRequest, issuer: str) -> None:
    """PKCE is required of every client (RFC 9700 §2.1.1), with S256 (``plain`` is refused)."""
    challenge = params.get("code_challenge")
    method = params.get("code_challenge_method")
    if challenge is None:
        raise InvalidRequestError("code_challenge is required (PKCE, S256)")
    if method != "S256":
        raise InvalidRequestError("code_challenge_method must be S256")
    if not valid_challenge(challenge):
        raise InvalidRequestError("code_challenge is not a S256 challenge")
    request.code_challenge = challenge


def check_scope(params: Params, request: AuthorizationRequest, issuer: str) -> None:
    assert request.client is not None
    try:
        scopes = parse_scope(params.get("scope"))
    except OAuthError as error:
        raise InvalidScopeError(error.description or "bad scope") from None
    if not scopes:
        raise InvalidScopeError("scope is required")
    refused = [scope for scope in scopes if scope not in request.client.scopes]
    if refused:
        raise InvalidScopeError(f"not allowed for this client: {' '.join(refused)}")
    request.scopes = scopes
    request.audience = resolve_audience(  # invalid_target (RFC 8707 §2)
        request.client,
        [*params.all("resource"), *params.all("audience")],
        issuer=issuer,
        scopes=scopes,
        resources=request.resources,
    )


def check_nonce(params: Params, request: AuthorizationRequest, issuer: str) -> None:
    nonce = params.get("nonce")
    if nonce is not None and (len(nonce) > MAX_NONCE_LENGTH or not _VSCHARS.match(nonce)):
        raise InvalidRequestError("nonce must be at most 512 visible characters")
    request.nonce = nonce


def check_prompt(params: Params, request: AuthorizationRequest, issuer: str) -> None:
    prompt = params.get("prompt")
    if prompt is not None:
        values = set(prompt.split())
        if not values <= set(PROMPTS) or ("none" in values and len(values) > 1):
            # §3.1.2.1: none with any other value is an error.
            raise InvalidRequestError("prompt must be none, or login and/or consent")
        request.prompt = prompt


def check_max_age(params: Params, request: AuthorizationRequest, issuer: str) -> None:
    max_age = params.get("max_age")
    if max_age is not None:
        if not _DIGITS.match(max_age):
            raise InvalidRequestError("max_age must be a number of seconds")
        request.max_age = int(max_age)


def check_acr_values(params: Params, request: AuthorizationRequest, issuer: str) -> None:
    """OIDC Core §3.1.2.1: ``acr_values``, space-separated, is a voluntary claim: values idp does
    not know are kept but never met (the ID token's ``acr`` says what was achieved, §2). Bounded
    and visible characters only, like ``state``."""
    acr_values = params.get("acr_values")
    if acr_values is not None:
        if len(acr_values) > MAX_ACR_VALUES_LENGTH or not _VSCHARS.match(acr_values):
            raise InvalidRequestError("acr_values must be at most 512 visible characters")
        request.acr_values = acr_values.split()


def _essential_acr(claims: Any) -> list[str] | None:
    """The essential acr values of a parsed ``claims`` object (OIDC Core §5.5.1, §5.5.1.1);
    None if acr is not essential or names no value."""
    if not isinstance(claims, dict):
        raise InvalidRequestError("claims must be a JSON object")
    id_token = claims.get("id_token")
    if id_token is None:
        return None
    if not isinstance(id_token, dict):
        raise InvalidRequestError("claims.id_token must be a JSON object")
    wanted = id_token.get("acr")
    if wanted is None:
        return None
    if not isinstance(wanted, dict):
        raise InvalidRequestError("claims.id_token.acr must be null or a JSON object")
    essential = wanted.get("essential", False)
    if not isinstance(essential, bool):
        raise InvalidRequestError("claims.id_token.acr.essential must be true or false")
    values = wanted.get("values", [])
    if "value" in wanted:
        values = [wanted["value"], *values] if isinstance(values, list) else values
    if (
        not isinstance(values, list)
        or ("values" in wanted and not wanted["values"])
        or not all(isinstance(value, str) and _VSCHARS.match(value) for value in values)
    ):
        raise InvalidRequestError("claims.id_token.acr values must be a list of acr strings")
    return list(dict.fromkeys(values)) if essential and values else None


def check_claims(params: Params, request: AuthorizationRequest, issuer: str) -> None:
    """OIDC Core §5.5: the ``claims`` parameter, a bounded JSON object. Only an essential
    ``acr`` (§5.5.1.1: ``{"id_token": {"acr": {"essential": true, "values": [...]}}}``, or
    ``"value"``) changes anything: the sign-in must reach one of its values, or the answer is
    ``unmet_authentication_requirements``. A voluntary ``acr`` is ignored (the ID token always
    carries ``acr``; ``acr_values`` is the voluntary request), and so are the other claims
    asked for, in the ID token or at userinfo: idp returns the claims of the granted scopes
    (§5.4), which §5.5 allows, as requested claims are not guaranteed."""
    claims = params.get("claims")
    if claims is None:
        return
    if len(claims) > MAX_CLAIMS_LENGTH:
        raise InvalidRequestError("claims must be at most 2048 characters")
    try:
        parsed = json.loads(claims)
    except (ValueError, RecursionError):
        raise InvalidRequestError("claims must be a JSON object") from None
    request.essential_acr = _essential_acr(parsed)


CHECKS: tuple[Check, ...] = (
    check_redirect_uri,
    check_state,
    check_response_type,
    check_pkce,
    check_scope,
    check_nonce,
    check_prompt,
    check_max_age,
    check_acr_values,
    check_claims,
)


async def check_request(
    params: Params,
    find_client: FindClient,
    issuer: str,
    resources: Callable[[], Awaitable[frozenset[str]]] | None = None,
) -> AuthorizationRequest:
    """Run the checks in order; the first failure decides the error, redirected once the
    redirect URI is known to be registered. ``resources``: the allow-list of RFC 8707
    resources, read only for a client registered by a program."""
    request = AuthorizationRequest()
    try:
        client_id = params.get("client_id")
    except OAuthError:
        raise AuthorizePageError("Invalid request", "client_id is repeated or not UTF-8.") from None
    client = None if client_id is None else await find_client(client_id)
    if client is None or client.disabled:
        raise AuthorizePageError(
            "Unknown application", "The application that sent you here is not registered."
        )
    request.client = client
    if client.unverified and resources is not None:
        request.resources = await resources()
    for check in CHECKS:
        try:
            check(params, request, issuer)
        except OAuthError as error:
            if not request.redirect_uri:  # repeated redirect_uri: nowhere safe to send it
                raise AuthorizePageError("Invalid request", error.description or "") from None
            raise AuthorizeRedirectError(error, request) from None
    return request
