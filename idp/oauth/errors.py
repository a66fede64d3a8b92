"""OAuth errors, one class per spec error code idp answers, each with its HTTP status.

::

    OAuthError
    ├── InvalidRequestError            400 invalid_request
    ├── InvalidClientError             401 invalid_client     (WWW-Authenticate: Basic)
    ├── InvalidGrantError              400 invalid_grant
    ├── UnauthorizedClientError        400 unauthorized_client
    ├── UnsupportedGrantTypeError      400 unsupported_grant_type
    ├── InvalidScopeError              400 invalid_scope
    ├── InvalidTargetError             400 invalid_target     (RFC 8707 §2)
    ├── InvalidTokenError              401 invalid_token      (WWW-Authenticate: Bearer)
    ├── InsufficientScopeError         403 insufficient_scope (WWW-Authenticate: Bearer)
    ├── TemporarilyUnavailableError    503 temporarily_unavailable (Retry-After)
    ├── ServerError                    500 server_error
    └── authorization responses only, redirected to the client with 303:
        ├── AccessDeniedError              access_denied
        ├── UnsupportedResponseTypeError   unsupported_response_type
        ├── LoginRequiredError             login_required
        ├── InteractionRequiredError       interaction_required
        ├── UnmetAuthenticationRequirementsError  unmet_authentication_requirements
        ├── ConsentRequiredError           consent_required
        ├── RequestNotSupportedError       request_not_supported
        └── RequestUriNotSupportedError    request_uri_not_supported

Token, revocation and introspection errors are RFC 6749 §5.2's; bearer errors RFC 6750 §3.1's;
authorization errors RFC 6749 §4.1.2.1's and OIDC Core §3.1.2.6's. Whether an authorization
error may go back to the client or must be shown on a page is decided by the wrapper it travels
in (``idp.oauth.authorize``: ``AuthorizeRedirectError`` or ``AuthorizePageError``). How each is
answered over HTTP: ``idp.web.errors``.
"""

from __future__ import annotations


class OAuthError(Exception):
    error = "server_error"
    status_code = 400
    retry_after: int | None = None  # seconds: sent as Retry-After

    def __init__(self, description: str | None = None) -> None:
        super().__init__(description or self.error)
        self.description = description

    def body(self) -> dict[str, str]:
        if self.description is None:
            return {"error": self.error}
        return {"error": self.error, "error_description": self.description}


class InvalidRequestError(OAuthError):
    error = "invalid_request"


class InvalidClientError(OAuthError):
    """RFC 6749 §5.2: 401, and WWW-Authenticate naming the scheme the client may use."""

    error = "invalid_client"
    status_code = 401


class InvalidGrantError(OAuthError):
    error = "invalid_grant"


class UnauthorizedClientError(OAuthError):
    error = "unauthorized_client"


class UnsupportedGrantTypeError(OAuthError):
    error = "unsupported_grant_type"


class InvalidScopeError(OAuthError):
    error = "invalid_scope"


class InvalidTargetError(OAuthError):
    error = "invalid_target"


class InvalidTokenError(OAuthError):
    """RFC 6750 §3.1: the access token is expired, revoked, malformed or not meant for this
    server: 401 with a Bearer challenge carrying the code and the description. The description
    goes into the challenge's quoted string (§3: no ``"`` or ``\\``), so it is plain text that is
    safe to show."""

    error = "invalid_token"
    status_code = 401


class InsufficientScopeError(OAuthError):
    """RFC 6750 §3.1: the token is sound but lacks a scope the resource needs: 403."""

    error = "insufficient_scope"
    status_code = 403


class TooManyRequestsError(OAuthError):
    """RFC 6585 §4: 429 with Retry-After; what the client asked would make idp do more than it
    allows anyone in a while (fetch a metadata document, idp.oauth.document_clients)."""

    error = "too_many_requests"
    status_code = 429

    def __init__(self, description: str, retry_after: int) -> None:
        super().__init__(description)
        self.retry_after = retry_after


class TemporarilyUnavailableError(OAuthError):
    """RFC 6749 §4.1.2.1 (also answered as JSON elsewhere): what idp needs is away for a moment,
    its database or fresh signing keys; 503 with Retry-After."""

    error = "temporarily_unavailable"
    status_code = 503


class ServerError(OAuthError):
    """RFC 6749 §4.1.2.1: an unexpected condition; 500."""

    error = "server_error"
    status_code = 500


class AccessDeniedError(OAuthError):
    """The user declined the consent (RFC 6749 §4.1.2.1)."""

    error = "access_denied"


class UnsupportedResponseTypeError(OAuthError):
    error = "unsupported_response_type"


class LoginRequiredError(OAuthError):
    """prompt=none, and the user must sign in (OIDC Core §3.1.2.6)."""

    error = "login_required"


class InteractionRequiredError(OAuthError):
    """prompt=none, and the user must interact in some other way, such as give a second factor
    for ``acr_values`` (OIDC Core §3.1.2.6)."""

    error = "interaction_required"


class UnmetAuthenticationRequirementsError(OAuthError):
    """The essential ``acr`` the request asks for (OIDC Core §5.5.1.1, or the client's own
    requirement) is one the user cannot reach: OpenID Connect Core Unmet Authentication
    Requirements 1.0 §2."""

    error = "unmet_authentication_requirements"


class ConsentRequiredError(OAuthError):
    """prompt=none, and the user must consent (OIDC Core §3.1.2.6)."""

    error = "consent_required"


class RequestNotSupportedError(OAuthError):
    """A request object (OIDC Core §6.1), which idp does not take (§3.1.2.6)."""

    error = "request_not_supported"


class RequestUriNotSupportedError(OAuthError):
    """A request object by reference (OIDC Core §6.2), which idp does not take (§3.1.2.6)."""

    error = "request_uri_not_supported"
