"""Interop: the code flow driven by a client library we did not write (Authlib), the tokens
verified by another (PyJWT with PyJWKClient), over real HTTP."""

from __future__ import annotations

import asyncio
import secrets

import asyncpg
import httpx
import jwt as pyjwt
import pytest
from authlib.common.security import generate_token
from authlib.integrations.httpx_client import AsyncOAuth2Client, OAuthError

from idp.oauth.id_token import at_hash
from idp.settings import Settings
from tests.conftest import Served
from tests.factories import make_client, make_user
from tests.oauth.flow import hidden_fields

REDIRECT = "https://app.example/callback"
PASSWORD = "correct horse battery"


async def browser_signs_in(served: Served, url: str, email: str) -> str:
    """The user's browser: follow the authorization URL, sign in, return the final redirect."""
    async with httpx.AsyncClient(base_url=served.base_url) as browser:
        response = await browser.get(url)
        page = await browser.get(response.headers["location"])
        form = {**hidden_fields(page.text), "email": email, "password": PASSWORD}
        done = await browser.post("/login", data=form)
    location: str = done.headers["location"]
    return location


async def test_authlib_code_flow_with_pkce_and_pyjwt_verification(
    served: Served, pool: asyncpg.Pool, settings: Settings
) -> None:
    registered, secret = await make_client(
        pool,
        settings,
        grant_types=("authorization_code",),
        redirect_uris=(REDIRECT,),
        scopes=("openid", "profile", "email"),
        audiences=("https://api.example",),
        first_party=True,
    )
    user = await make_user(pool)
    issuer = served.base_url
    async with httpx.AsyncClient() as http:
        metadata = (await http.get(f"{issuer}/.well-known/openid-configuration")).json()

    nonce = secrets.token_urlsafe(16)
    verifier = generate_token(48)
    async with AsyncOAuth2Client(
        client_id=registered.client_id,
        client_secret=secret,
        scope="openid profile email",
        redirect_uri=REDIRECT,
        code_challenge_method="S256",
        token_endpoint_auth_method="client_secret_basic",
    ) as client:
        url, state = client.create_authorization_url(
            metadata["authorization_endpoint"], code_verifier=verifier, nonce=nonce
        )
        location = await browser_signs_in(served, url, user.email)
        token = await client.fetch_token(
            metadata["token_endpoint"],
            authorization_response=location,
            code_verifier=verifier,
            state=state,
        )

    jwks_client = pyjwt.PyJWKClient(metadata["jwks_uri"])
    for name in ("access_token", "id_token"):
        key = await asyncio.to_thread(jwks_client.get_signing_key_from_jwt, token[name])
        assert key.key_id == pyjwt.get_unverified_header(token[name])["kid"]

    access_key = await asyncio.to_thread(
        jwks_client.get_signing_key_from_jwt, token["access_token"]
    )
    assert pyjwt.get_unverified_header(token["access_token"])["typ"] == "at+jwt"
    access = pyjwt.decode(
        token["access_token"],
        access_key.key,
        algorithms=["RS256"],
        audience="https://api.example",
        issuer=issuer,
        options={"require": ["exp", "iat", "iss", "aud", "sub", "jti"]},
    )
    assert access["sub"] == str(user.id)

    id_key = await asyncio.to_thread(jwks_client.get_signing_key_from_jwt, token["id_token"])
    claims = pyjwt.decode(
        token["id_token"],
        id_key.key,
        algorithms=["RS256"],
        audience=registered.client_id,
        issuer=issuer,
        options={"require": ["exp", "iat", "iss", "aud", "sub", "nonce", "at_hash"]},
    )
    assert claims["nonce"] == nonce
    assert claims["at_hash"] == at_hash(token["access_token"])
    assert claims["email"] == user.email


async def test_authlib_refresh_revoke_and_introspection_end_to_end(
    served: Served, pool: asyncpg.Pool, settings: Settings
) -> None:
    """Code flow, refresh, introspection before and after a revocation, refresh refused."""
    registered, secret = await make_client(
        pool,
        settings,
        grant_types=("authorization_code", "refresh_token"),
        redirect_uris=(REDIRECT,),
        scopes=("openid", "email", "offline_access"),
        audiences=("https://api.example",),
        first_party=True,
    )
    issuer = served.base_url
    # A resource server for the tokens' audience (the client's first registered audience).
    resource_server, rs_secret = await make_client(
        pool, settings, name="api", introspect_audiences=("https://api.example",)
    )
    user = await make_user(pool)
    verifier = generate_token(48)
    async with AsyncOAuth2Client(
        client_id=registered.client_id,
        client_secret=secret,
        scope="openid email offline_access",
        redirect_uri=REDIRECT,
        code_challenge_method="S256",
    ) as client:
        url, state = client.create_authorization_url(f"{issuer}/authorize", code_verifier=verifier)
        location = await browser_signs_in(served, url, user.email)
        first = await client.fetch_token(
            f"{issuer}/token", authorization_response=location, code_verifier=verifier, state=state
        )
        second = await client.refresh_token(f"{issuer}/token", refresh_token=first["refresh_token"])
        assert second["refresh_token"] != first["refresh_token"]

        async with AsyncOAuth2Client(
            client_id=resource_server.client_id, client_secret=rs_secret
        ) as rs:
            before = (
                await rs.introspect_token(f"{issuer}/introspect", token=second["access_token"])
            ).json()
            assert before["active"] is True
            assert before["sub"] == str(user.id)

            revoked = await client.revoke_token(
                f"{issuer}/revoke", token=second["refresh_token"], token_type_hint="refresh_token"
            )
            assert revoked.status_code == 200

            after = (
                await rs.introspect_token(f"{issuer}/introspect", token=second["access_token"])
            ).json()
            assert after == {"active": False}

        with pytest.raises(OAuthError) as refused:
            await client.refresh_token(f"{issuer}/token", refresh_token=second["refresh_token"])
        assert refused.value.error == "invalid_grant"
