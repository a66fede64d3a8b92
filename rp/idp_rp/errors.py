"""The one error a verification raises (RFC 6750 §3.1)."""

from __future__ import annotations


class InvalidTokenError(Exception):
    """The token cannot be trusted. ``error`` is the RFC 6750 §3.1 code for the
    ``WWW-Authenticate`` challenge (always ``invalid_token``: a 401), ``description`` the
    human-readable ``error_description``."""

    error = "invalid_token"

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description
