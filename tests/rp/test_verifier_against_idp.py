"""idp_rp.TokenVerifier against a real idp served over HTTP (uvicorn, real keys, real JWKS)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from idp.clock import FrozenClock
from idp.keys.keyring import Keyring
from idp.keys.manager import KeyManager
from idp.settings import Settings
from idp_rp import InvalidTokenError, TokenVerifier
from tests.conftest import Served, serving
from tests.factories import kids, make_client
from tests.rp.glue_stack import API, http, verifier

__all__ = ["http", "verifier"]  # fixtures; idp is this module's own

SERVED_MAX_AGE = timedelta(seconds=120)  # below PyJWKClient's fixed 300 s lifespan
PROPAGATION_DEADLINE = 5.0


@pytest.fixture
async def idp(settings: Settings, clock: FrozenClock, pool: asyncpg.Pool) -> AsyncIterator[Served]:
    """idp on 127.0.0.1 on the test's frozen clock, set to the wall time (PyJWT checks exp
    against the system clock), serving the JWKS with ``max-age`` 120."""
    clock.set(datetime.now(UTC).replace(microsecond=0))
    async with serving(replace(settings, jwks_max_age=SERVED_MAX_AGE), clock=clock) as served:
        yield served


@pytest.fixture
async def issue(
    idp: Served, pool: asyncpg.Pool, settings: Settings, http: httpx.AsyncClient
) -> Any:
    """``await issue()``: a fresh client_credentials access token for API from idp."""
    client, secret = await make_client(pool, settings, audiences=(API,), scopes=("read",))

    async def token() -> str:
        response = await http.post(
            "/token",
            data={"grant_type": "client_credentials", "scope": "read"},
            auth=(client.client_id, secret),
        )
        assert response.status_code == 200, response.text
        return str(response.json()["access_token"])

    return token


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def parts(token: str) -> tuple[dict[str, Any], dict[str, Any], str]:
    header, payload, signature = token.split(".")
    return (
        json.loads(base64.urlsafe_b64decode(header + "==")),
        json.loads(base64.urlsafe_b64decode(payload + "==")),
        signature,
    )


async def published_pem(http: httpx.AsyncClient, kid: str) -> bytes:
    """The published public key of ``kid``, as the PEM an HS256 confusion attack would use."""
    jwk = next(key for key in (await http.get("/jwks.json")).json()["keys"] if key["kid"] == kid)
    public_key = jwt.PyJWK(jwk).key
    return bytes(
        public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


async def until_jwks(http: httpx.AsyncClient, published: bool, kid: str) -> None:
    """idp's own processes learn of a key change by LISTEN/NOTIFY; wait for the served app."""
    start = time.monotonic()
    while time.monotonic() - start < PROPAGATION_DEADLINE:
        if (kid in kids((await http.get("/jwks.json")).content)) == published:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{kid} {'not ' if published else 'still '}published")


async def until_signed_by(issue: Any, kid: str) -> str:
    """A token idp's served app signed with ``kid`` once its keyring has heard of the change."""
    start = time.monotonic()
    while time.monotonic() - start < PROPAGATION_DEADLINE:
        token = str(await issue())
        if parts(token)[0]["kid"] == kid:
            return token
        await asyncio.sleep(0.01)
    raise AssertionError(f"idp does not sign with {kid}")


async def test_a_fresh_client_credentials_token_is_accepted(
    verifier: TokenVerifier, issue: Any
) -> None:
    verified = await verifier.verify(await issue())
    assert verified.scopes == {"read"}
    assert verified.subject == verified.client_id


async def test_a_tampered_signature_is_refused(verifier: TokenVerifier, issue: Any) -> None:
    header, payload, signature = (await issue()).split(".")
    raw = bytearray(base64.urlsafe_b64decode(signature + "=="))
    raw[-1] ^= 1
    with pytest.raises(InvalidTokenError, match="bad signature"):
        await verifier.verify(f"{header}.{payload}.{b64(bytes(raw))}")


async def test_alg_none_is_refused(verifier: TokenVerifier, issue: Any) -> None:
    """RFC 8725 §3.1: idp's own claims, the header rewritten to ``none``, no signature."""
    header, claims, _ = parts(await issue())
    unsigned = (
        f"{b64(json.dumps({**header, 'alg': 'none'}).encode())}.{b64(json.dumps(claims).encode())}."
    )
    with pytest.raises(InvalidTokenError, match="algorithm 'none'"):
        await verifier.verify(unsigned)


async def test_hs256_signed_with_idps_public_key_is_refused(
    verifier: TokenVerifier, issue: Any, http: httpx.AsyncClient
) -> None:
    """RFC 8725 §2.1 algorithm confusion: the published RSA key used as an HMAC secret."""
    header, claims, _ = parts(await issue())
    pem = await published_pem(http, header["kid"])
    signing_input = (
        f"{b64(json.dumps({**header, 'alg': 'HS256'}).encode())}.{b64(json.dumps(claims).encode())}"
    )
    mac = b64(hmac.new(pem, signing_input.encode(), hashlib.sha256).digest())
    with pytest.raises(InvalidTokenError, match="algorithm 'HS256'"):
        await verifier.verify(f"{signing_input}.{mac}")


async def test_a_token_for_another_audience_is_refused(
    idp: Served, clock: FrozenClock, http: httpx.AsyncClient, issue: Any
) -> None:
    async with await TokenVerifier.from_issuer(
        idp.base_url, "https://other.example", clock=clock, http=http
    ) as other_api:
        with pytest.raises(InvalidTokenError, match="not for this audience"):
            await other_api.verify(await issue())


async def test_an_id_token_presented_as_an_access_token_is_refused(
    verifier: TokenVerifier, issue: Any, idp: Served, pool: asyncpg.Pool, clock: FrozenClock
) -> None:
    """RFC 9068 §4: signed by idp's key with idp's ID-token signing call (``typ: JWT``), every
    claim otherwise valid for API: only the type tells it apart."""
    _, claims, _ = parts(await issue())
    keyring = Keyring(idp.settings, clock)
    await keyring.load(pool)
    id_token = keyring.sign(claims)
    assert parts(id_token)[0]["typ"] == "JWT"
    with pytest.raises(InvalidTokenError, match="not an access token"):
        await verifier.verify(id_token)


async def test_an_expired_token_is_refused(
    verifier: TokenVerifier, issue: Any, clock: FrozenClock
) -> None:
    token = await issue()
    expires = datetime.fromtimestamp(parts(token)[1]["exp"], UTC)
    clock.set(expires + verifier.leeway - timedelta(seconds=1))
    await verifier.verify(token)
    clock.advance(timedelta(seconds=1))
    with pytest.raises(InvalidTokenError, match="expired"):
        await verifier.verify(token)


async def test_after_a_rotation_new_kid_tokens_are_accepted_without_a_restart(
    verifier: TokenVerifier,
    issue: Any,
    idp: Served,
    pool: asyncpg.Pool,
    clock: FrozenClock,
    http: httpx.AsyncClient,
) -> None:
    """``idp keys rotate --force`` runs KeyManager.rotate. idp publishes the next signer before
    it signs, so one rotation promotes a kid the verifier has already fetched; a second one
    promotes a kid published after the verifier's fetch, while its JWKS is still fresh: that
    unknown kid triggers the (rate-limited) refetch and is accepted."""
    old = await verifier.verify(await issue())
    seen = kids((await http.get("/jwks.json")).content)
    manager = KeyManager(pool, idp.settings, clock)
    await manager.rotate("test", force=True)
    rotation = await manager.rotate("test", force=True)
    assert rotation.kid not in seen
    token = await until_signed_by(issue, rotation.kid)
    assert (await verifier.verify(token)).client_id == old.client_id
    assert verifier.jwks.fetches == 2


async def test_revoked_kid_refused_by_end_of_served_max_age_while_pyjwkclient_still_accepts(
    verifier: TokenVerifier,
    issue: Any,
    idp: Served,
    pool: asyncpg.Pool,
    clock: FrozenClock,
    http: httpx.AsyncClient,
) -> None:
    """``scripts/revoke-key KID`` runs KeyManager.revoke. Both verifiers fetch the JWKS at the
    same moment, before the revocation; idp serves it with ``max-age=120``.

    idp_rp honours that max-age (RFC 9111 §5.2.2.1): when the injected clock reaches the end of
    it, the set is revalidated, the kid is gone, the token is refused.

    PyJWKClient with default settings (``cache_jwk_set=True, lifespan=300``) ignores
    Cache-Control and keeps the set it fetched for 300 s of its own monotonic clock, which
    cannot be injected. The comparison is still exact: at the moment idp_rp refuses, far less
    than 300 s of real time have passed since PyJWKClient's fetch, and 120 < 300, so on any
    clock PyJWKClient is still inside the lifespan it would keep the revoked key for. Its
    ``jwt.decode`` checks exp against the system clock; the token is valid for an hour and idp's
    frozen clock started at the wall time, so expiry plays no part in either answer.
    """
    token = await issue()
    kid = parts(token)[0]["kid"]
    pyjwk = jwt.PyJWKClient(f"{idp.base_url}/jwks.json")
    await verifier.verify(token)
    await asyncio.to_thread(pyjwk.get_signing_key, kid)  # both caches filled now
    fetched_at = clock.now()
    served = (await http.get("/jwks.json")).headers["cache-control"]
    assert served == "public, max-age=120"

    await KeyManager(pool, idp.settings, clock).revoke(kid, "laptop stolen", actor="test")
    await until_jwks(http, False, kid)

    clock.set(fetched_at + SERVED_MAX_AGE - timedelta(seconds=1))
    await verifier.verify(token)  # within the freshness idp promised: still trusted
    clock.set(fetched_at + SERVED_MAX_AGE)
    with pytest.raises(InvalidTokenError, match=f"no key '{kid}'"):
        await verifier.verify(token)

    def pyjwt_verifies() -> dict[str, Any]:
        signing_key = pyjwk.get_signing_key_from_jwt(token)
        claims: dict[str, Any] = jwt.decode(
            token, signing_key.key, algorithms=["RS256"], audience=API, issuer=idp.base_url
        )
        return claims

    assert (await asyncio.to_thread(pyjwt_verifies))["sub"], "PyJWKClient still trusts the key"
