"""TokenVerifier.from_issuer: the JWKS found through discovery (OpenID Connect Discovery 1.0)."""

from __future__ import annotations

import pytest
from joserfc.jwk import RSAKey

from conftest import AUDIENCE, FrozenClock, claims_at, mint
from idp_rp import TokenVerifier
from jwks_server import JwksServer


async def test_from_issuer_finds_the_jwks_uri_and_verifies_with_its_own_http_client(
    jwks: JwksServer, key: RSAKey, clock: FrozenClock
) -> None:
    issuer = jwks.url.removesuffix("/jwks.json")
    async with await TokenVerifier.from_issuer(issuer, AUDIENCE, clock=clock) as verifier:
        assert verifier.jwks.jwks_uri == jwks.url
        token = mint(key, claims_at(clock, iss=issuer))
        assert (await verifier.verify(token)).subject == "user-1"


async def test_a_discovery_document_naming_another_issuer_is_refused(
    jwks: JwksServer, clock: FrozenClock
) -> None:
    """Discovery §4.3: the ``issuer`` in the document must equal the URL it was fetched for
    (else an attacker's document could point the verifier at its own keys)."""
    jwks.discovery_issuer = "https://impostor.example"
    with pytest.raises(ValueError, match="names another issuer"):
        await TokenVerifier.from_issuer(jwks.url.removesuffix("/jwks.json"), AUDIENCE, clock=clock)
