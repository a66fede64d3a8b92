"""Authorization server metadata (OIDC Discovery 1.0 §3, RFC 8414 §2)."""

from __future__ import annotations

from typing import TypedDict

from idp.oauth.client_auth import AUTH_METHODS
from idp.oauth.token_endpoint import GRANTS
from idp.settings import SIGNING_ALGS, Settings


class ProviderMetadata(TypedDict):
    issuer: str
    jwks_uri: str
    token_endpoint: str
    grant_types_supported: list[str]
    token_endpoint_auth_methods_supported: list[str]
    response_types_supported: list[str]
    subject_types_supported: list[str]
    id_token_signing_alg_values_supported: list[str]


def provider_metadata(settings: Settings) -> ProviderMetadata:
    """What exists so far; each endpoint adds itself here as it is built."""
    return {
        "issuer": settings.issuer,
        "jwks_uri": f"{settings.issuer}/jwks.json",
        "token_endpoint": f"{settings.issuer}/token",
        "grant_types_supported": list(GRANTS),
        "token_endpoint_auth_methods_supported": list(AUTH_METHODS),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        # RS256 first: OIDC Discovery §3 requires it, and verifiers pin it.
        "id_token_signing_alg_values_supported": list(SIGNING_ALGS),
    }
