"""Authorization server metadata (OIDC Discovery 1.0 §3, RFC 8414 §2)."""

from __future__ import annotations

from typing import TypedDict

from idp.settings import SIGNING_ALGS, Settings


class ProviderMetadata(TypedDict):
    issuer: str
    jwks_uri: str
    response_types_supported: list[str]
    subject_types_supported: list[str]
    id_token_signing_alg_values_supported: list[str]


def provider_metadata(settings: Settings) -> ProviderMetadata:
    """What exists so far; each endpoint adds itself here as it is built."""
    return {
        "issuer": settings.issuer,
        "jwks_uri": f"{settings.issuer}/jwks.json",
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        # RS256 first: OIDC Discovery §3 requires it, and verifiers pin it.
        "id_token_signing_alg_values_supported": list(SIGNING_ALGS),
    }
