"""OAuth errors, one class per spec error code (RFC 6749 §5.2, §4.1.2.1; RFC 8707 §2).

::

    OAuthError
    ├── InvalidRequestError        400 invalid_request
    ├── InvalidClientError         401 invalid_client (with WWW-Authenticate)
    ├── InvalidGrantError          400 invalid_grant
    ├── UnauthorizedClientError    400 unauthorized_client
    ├── UnsupportedGrantTypeError  400 unsupported_grant_type
    ├── InvalidScopeError          400 invalid_scope
    └── InvalidTargetError         400 invalid_target
"""

from __future__ import annotations


class OAuthError(Exception):
    error = "server_error"
    status_code = 400

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
