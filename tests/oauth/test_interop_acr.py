"""Interop: a relying app on Authlib (its Starlette OpenID client, over real HTTP) asks for
``acr_values=urn:idp:acr:mfa`` (OIDC Core §3.1.2.1) and has Authlib itself check the ID token's
``acr`` as an essential claim with the one accepted value (OIDC Core §5.5.1.1): the second factor
satisfies it, a password-only sign-in does not and Authlib refuses that token; a password-only
session is stepped up with the code alone."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import pyotp
import pytest
from authlib.integrations.starlette_client import OAuth, StarletteOAuth2App
from joserfc.errors import InvalidClaimError

from idp.db.users import User
from idp.settings import Settings
from tests.conftest import Served
from tests.factories import PASSWORD, enrol_totp, make_user
from tests.oauth.flow import hidden_fields, query_of
from tests.signin_flow import MFA, REDIRECT, SECOND_FACTOR, SECRET, first_party_client


@dataclass
class RelyingApp:
    """Authlib's client of the served idp, and the browser of its user (cookies kept)."""

    oauth: StarletteOAuth2App
    browser: httpx.AsyncClient
    issuer: str
    user: User

    async def authorization(self, **extra: str) -> dict[str, Any]:
        """Authlib's authorization request: its URL, state, nonce and PKCE verifier."""
        request: dict[str, Any] = await self.oauth.create_authorization_url(REDIRECT, **extra)
        return request

    async def id_token(self, request: dict[str, Any], location: str, **checks: Any) -> Any:
        """Authlib's code exchange and ID token validation, with ``checks`` as claims options."""
        assert location.startswith(REDIRECT), location
        query = query_of(location)
        assert query["state"] == request["state"]
        token = await self.oauth.fetch_access_token(
            redirect_uri=REDIRECT, code=query["code"], code_verifier=request["code_verifier"]
        )
        options = {"iss": {"essential": True, "values": [self.issuer]}, **checks}
        return await self.oauth.parse_id_token(token, request["nonce"], claims_options=options)

    async def password(self, url: str) -> httpx.Response:
        """The user follows ``url`` to the login page and types the password."""
        started = await self.browser.get(url)
        assert started.headers["location"].startswith("/login?"), started.text
        page = await self.browser.get(started.headers["location"])
        form = {**hidden_fields(page.text), "email": self.user.email, "password": PASSWORD}
        return await self.browser.post("/login", data=form)

    async def code(self) -> httpx.Response:
        """The user types the authenticator app's current code on the second-factor page."""
        page = await self.browser.get(SECOND_FACTOR)
        assert page.status_code == 200, page.text
        assert 'name="password"' not in page.text
        code = pyotp.TOTP(SECRET).now()  # the served app runs on the real clock
        return await self.browser.post(
            SECOND_FACTOR, data={**hidden_fields(page.text), "code": code}
        )


ACR_MFA = {"acr": {"essential": True, "values": [MFA]}}


@pytest.fixture
async def relying_app(
    served: Served, pool: asyncpg.Pool, settings: Settings
) -> AsyncIterator[RelyingApp]:
    registered, secret = await first_party_client(pool, settings)
    user = await make_user(pool)
    oauth = OAuth().register(
        "idp",
        client_id=registered.client_id,
        client_secret=secret,
        server_metadata_url=f"{served.base_url}/.well-known/openid-configuration",
        client_kwargs={"scope": "openid email", "code_challenge_method": "S256"},
    )
    assert isinstance(oauth, StarletteOAuth2App)
    async with httpx.AsyncClient(base_url=served.base_url) as browser:
        yield RelyingApp(oauth, browser, served.base_url, user)


async def test_authlib_asks_for_mfa_and_validates_acr_after_password_and_code(
    relying_app: RelyingApp, pool: asyncpg.Pool, kek: bytes
) -> None:
    await enrol_totp(pool, kek, relying_app.user.id, SECRET, relying_app.user.created_at)
    request = await relying_app.authorization(acr_values=MFA)
    assert query_of(request["url"])["acr_values"] == MFA  # built by Authlib
    asked = await relying_app.password(request["url"])
    assert asked.headers["location"] == SECOND_FACTOR, asked.text
    done = await relying_app.code()
    assert done.status_code == 303, done.text
    claims = await relying_app.id_token(request, done.headers["location"], **ACR_MFA)
    assert claims["acr"] == MFA
    assert {"pwd", "otp"} <= set(claims["amr"])


async def test_authlib_rejects_the_password_class_when_mfa_is_essential(
    relying_app: RelyingApp,
) -> None:
    """A user without a second factor: acr_values is voluntary, so idp answers with what it has,
    urn:idp:acr:pwd (OIDC Core §3.1.2.1), and the relying app's Authlib refuses the token."""
    request = await relying_app.authorization(acr_values=MFA)
    done = await relying_app.password(request["url"])
    assert done.status_code == 303, done.text
    with pytest.raises(InvalidClaimError) as refused:
        await relying_app.id_token(request, done.headers["location"], **ACR_MFA)
    assert refused.value.claim == "acr"
    # The very same validation without the acr check accepts the password class: only acr failed.
    again = await relying_app.authorization(acr_values=MFA)
    direct = await relying_app.browser.get(again["url"])  # the session signs in at once
    claims = await relying_app.id_token(again, direct.headers["location"])
    assert claims["acr"] == "urn:idp:acr:pwd"


async def test_authlib_steps_a_password_session_up_with_the_code_alone(
    relying_app: RelyingApp, pool: asyncpg.Pool, kek: bytes
) -> None:
    first = await relying_app.authorization()
    signed_in = await relying_app.password(first["url"])
    claims = await relying_app.id_token(first, signed_in.headers["location"])
    assert claims["acr"] == "urn:idp:acr:pwd"
    await enrol_totp(pool, kek, relying_app.user.id, SECRET, relying_app.user.created_at)

    step_up = await relying_app.authorization(acr_values=MFA)
    asked = await relying_app.browser.get(step_up["url"])
    assert asked.status_code == 303, asked.text
    assert asked.headers["location"] == SECOND_FACTOR  # no password form: the code only
    done = await relying_app.code()
    assert done.status_code == 303, done.text
    claims = await relying_app.id_token(step_up, done.headers["location"], **ACR_MFA)
    assert claims["acr"] == MFA
