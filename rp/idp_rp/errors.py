"""What a verification raises (RFC 6750 §3.1): InvalidTokenError, and its JwksUnavailableError."""

from __future__ import annotations


class InvalidTokenError(Exception):
    """The token cannot be trusted. ``error`` is the RFC 6750 §3.1 code for the
    ``WWW-Authenticate`` challenge (always ``invalid_token``: a 401), ``description`` the
    human-readable ``error_description``."""

    error = "invalid_token"

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description


class JwksUnavailableError(InvalidTokenError):
    """The issuer's keys could not be fetched (and the cached ones are stale): the token is
    refused, fail closed, but through no fault of its own. The glue answers 503
    ``temporarily_unavailable`` rather than a 401 that would send the client to sign in again;
    code that only knows InvalidTokenError still refuses the token."""
