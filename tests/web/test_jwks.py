"""``/jwks.json``: public keys from memory, cacheable exactly as long as they stay valid."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import time
from collections.abc import AsyncIterator
from datetime import timedelta

import asyncpg
import jwt as pyjwt
import pytest
import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa

from idp.app import create_app
from idp.clock import FrozenClock, SystemClock
from idp.keys.keyring import Keyring
from idp.settings import Settings
from tests.conftest import InstanceFactory
from tests.factories import PRIVATE_JWK_MEMBERS


async def test_jwks_lists_active_and_pending_keys_with_public_members_only(
    app_instance: InstanceFactory,
) -> None:
    async with app_instance() as instance:
        response = await instance.client.get("/jwks.json")
        same = await instance.client.get("/.well-known/jwks.json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.headers["access-control-allow-origin"] == "*"
    assert same.content == response.content
    keys = response.json()["keys"]
    assert len(keys) == 2
    assert keys[0]["kid"] == instance.state["keyring"].snapshot.signer.kid  # the signer first
    for key in keys:
        assert not PRIVATE_JWK_MEMBERS & key.keys()
        assert {"kid", "kty", "alg", "use", "n", "e", "x5c", "x5t#S256"} <= key.keys()
        assert (key["kty"], key["alg"], key["use"]) == ("RSA", "RS256", "sig")


async def test_rsa_keys_carry_a_self_signed_certificate_of_the_same_key(
    app_instance: InstanceFactory,
) -> None:
    async with app_instance() as instance:
        keys = (await instance.client.get("/jwks.json")).json()["keys"]
    for key in keys:
        der = base64.b64decode(key["x5c"][0])
        thumbprint = base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=")
        assert key["x5t#S256"] == thumbprint.decode()
        public = x509.load_der_x509_certificate(der).public_key()
        assert isinstance(public, rsa.RSAPublicKey)
        n = int.from_bytes(base64.urlsafe_b64decode(key["n"] + "=="), "big")
        assert public.public_numbers().n == n


async def test_max_age_never_reaches_past_the_next_key_change(
    app_instance: InstanceFactory, clock: FrozenClock, settings: Settings
) -> None:
    async with app_instance() as instance:
        fresh = await instance.client.get("/jwks.json")
        assert fresh.headers["cache-control"] == "public, max-age=300"  # IDP_JWKS_MAX_AGE
        clock.advance(settings.key_rotation_interval - timedelta(seconds=100))
        near = await instance.client.get("/jwks.json")
        assert near.headers["cache-control"] == "public, max-age=100"
        clock.advance(timedelta(seconds=150))  # rotation overdue, not yet ticked
        overdue = await instance.client.get("/jwks.json")
        assert overdue.headers["cache-control"] == "public, max-age=0"


async def test_if_none_match_gives_304_and_a_changed_set_a_new_etag(
    app_instance: InstanceFactory,
) -> None:
    async with app_instance() as instance:
        client = instance.client
        first = await client.get("/jwks.json")
        etag = first.headers["etag"]
        assert etag.startswith('"')
        assert not etag.startswith("W/")
        for header in (etag, f"W/{etag}", f'"other", {etag}', "*"):
            cached = await client.get("/jwks.json", headers={"If-None-Match": header})
            assert cached.status_code == 304, header
            assert cached.content == b""
            assert cached.headers["etag"] == etag
        stale = await client.get("/jwks.json", headers={"If-None-Match": '"stale"'})
        assert stale.status_code == 200

        signer = instance.state["keyring"].snapshot.signer.kid
        await instance.state["keys"].revoke(signer, "test", actor="test")
        await instance.state["keyring"].load(instance.state["pool"])
        changed = await client.get("/jwks.json", headers={"If-None-Match": etag})
        assert changed.status_code == 200
        assert changed.headers["etag"] != etag


@pytest.fixture
async def served_issuer(settings: Settings, pool: asyncpg.Pool) -> AsyncIterator[str]:
    """idp served over real HTTP on a free port (PyJWKClient fetches with urllib)."""
    app = create_app(settings, clock=SystemClock(), run_scheduler=False)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
    )
    task = asyncio.create_task(server.serve())
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


async def test_pyjwt_jwks_client_verifies_a_token_signed_by_the_keyring(
    served_issuer: str, settings: Settings, pool: asyncpg.Pool
) -> None:
    keyring = Keyring(settings, SystemClock())
    await keyring.load(pool)
    now = int(time.time())
    token = keyring.sign(
        {"iss": settings.issuer, "sub": "alice", "aud": "api", "iat": now, "exp": now + 600},
        typ="at+jwt",
    )

    client = pyjwt.PyJWKClient(f"{served_issuer}/jwks.json")
    signing_key = await asyncio.to_thread(client.get_signing_key_from_jwt, token)
    claims = pyjwt.decode(
        token, signing_key.key, algorithms=["RS256"], audience="api", issuer=settings.issuer
    )
    assert claims["sub"] == "alice"
    assert pyjwt.get_unverified_header(token)["kid"] == keyring.snapshot.signer.kid
    assert json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))["typ"] == "at+jwt"
