"""Authorization server metadata (OIDC Discovery 1.0 §3, RFC 8414 §2): what idp supports."""

from __future__ import annotations

from typing import Any

from idp.oauth.acr import ACR_VALUES
from idp.oauth.authorize import PROMPTS
from idp.oauth.client_auth import AUTH_METHODS
from idp.oauth.grants import GRANTS
from idp.settings import SIGNING_ALGS, Settings

SCOPES = ["openid", "profile", "email", "roles"]
CLAIMS = [
    "iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "azp", "sid", "at_hash",
    "name", "email", "email_verified", "roles", "amr", "acr",
]  # fmt: skip


REGISTRATION_PATH = "/oauth2/register"


def provider_metadata(settings: Settings) -> dict[str, Any]:
    issuer = settings.issuer
    metadata = {
        "issuer": issuer,
        "authorization_endpoint": f"{issuer}/authorize",
        "token_endpoint": f"{issuer}/token",
        "userinfo_endpoint": f"{issuer}/userinfo",
        "jwks_uri": f"{issuer}/jwks.json",
        "end_session_endpoint": f"{issuer}/logout",
        "revocation_endpoint": f"{issuer}/revoke",
        "revocation_endpoint_auth_methods_supported": [*AUTH_METHODS, "none"],
        "introspection_endpoint": f"{issuer}/introspect",
        "introspection_endpoint_auth_methods_supported": list(AUTH_METHODS),
        "scopes_supported": SCOPES,
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": list(GRANTS),
        "subject_types_supported": ["public"],
        # RS256 first: OIDC Discovery §3 requires it, and verifiers pin it.
        "id_token_signing_alg_values_supported": list(SIGNING_ALGS),
        "token_endpoint_auth_methods_supported": [*AUTH_METHODS, "none"],
        "code_challenge_methods_supported": ["S256"],
        "claims_supported": CLAIMS,
        "acr_values_supported": ACR_VALUES,
        "prompt_values_supported": list(PROMPTS),
        "authorization_response_iss_parameter_supported": True,  # RFC 9207
        "request_parameter_supported": False,
        "request_uri_parameter_supported": False,
        "claims_parameter_supported": True,
    }
    if settings.dcr != "closed":  # RFC 8414 §2: only when registration is open to someone
        metadata["registration_endpoint"] = issuer + REGISTRATION_PATH
    if settings.cimd:  # draft-ietf-oauth-client-id-metadata-document §4
        metadata["client_id_metadata_document_supported"] = True
    return metadata
