"""What the BFF asks of idp: discovery, the token endpoint (as a confidential client,
``client_secret_basic``), ID-token verification, and the end-session URL.

Errors::

    ProviderError            idp unreachable or an answer the BFF cannot use (502)
    ├── CodeRefusedError     idp refused the authorization code (400)
    └── IdTokenError         the ID token fails OIDC Core §3.1.3.7 (the sign-in is refused)
        └── KeysUnavailableError   it could not be checked: idp's JWKS is down (502 at sign-in)
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hmac
import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

import httpx
from joserfc import jws
from joserfc.errors import JoseError

from idp_rp.bff.config import BffConfig
from idp_rp.clock import Clock
from idp_rp.errors import InvalidTokenError, JwksUnavailableError
from idp_rp.jwks import JwksCache


class ProviderError(Exception):
    """idp could not be reached or answered something unusable."""


class IdTokenError(ProviderError):
    """The ID token is not one this BFF may accept."""


class KeysUnavailableError(IdTokenError):
    """The ID token could not be checked: idp's keys could not be fetched. At sign-in that is
    idp's outage (502, try again); after a refresh it is still an ID token this BFF cannot
    accept, and the session ends like for any other IdTokenError (the new refresh token is
    revoked: a retry with the spent one would be reuse at idp)."""


class CodeRefusedError(ProviderError):
    """idp refused the authorization code (RFC 6749 §5.2 invalid_grant: used, expired, not
    this client's): the browser's doing, not idp's failure."""


@dataclass(frozen=True)
class TokenAnswer:
    """A successful token response (RFC 6749 §5.1), ``expires_at`` by the BFF's clock."""

    access_token: str = field(repr=False)
    expires_at: float
    refresh_token: str | None = field(repr=False)
    id_token: str | None = field(repr=False)


class Provider:
    def __init__(self, config: BffConfig, http: httpx.AsyncClient, clock: Clock) -> None:
        self.config = config
        self._http = http
        self._clock = clock
        self._metadata: dict[str, Any] | None = None
        self._jwks: JwksCache | None = None
        self._lock = asyncio.Lock()

    async def metadata(self) -> dict[str, Any]:
        """OpenID Connect Discovery 1.0 §4, fetched once; its ``issuer`` must be the configured
        one exactly (§4.3)."""
        async with self._lock:
            if self._metadata is None:
                url = self.config.issuer.rstrip("/") + "/.well-known/openid-configuration"
                try:
                    response = await self._http.get(url)
                    document = response.json() if response.status_code == 200 else None
                except (httpx.HTTPError, ValueError) as error:
                    raise ProviderError(f"discovery failed: {type(error).__name__}") from error
                if not isinstance(document, dict) or document.get("issuer") != self.config.issuer:
                    raise ProviderError("the discovery document is missing or names another issuer")
                for needed in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
                    if not isinstance(document.get(needed), str):  # §3: REQUIRED
                        raise ProviderError(f"the discovery document has no {needed}")
                self._metadata = document
                self._jwks = JwksCache(
                    str(document["jwks_uri"]), http=self._http, clock=self._clock
                )
            return self._metadata

    async def authorization_url(self, state: str, nonce: str, challenge: str) -> str:
        """OIDC Core §3.1.2.1 with PKCE (RFC 7636 §4.3, S256 only)."""
        endpoint = str((await self.metadata())["authorization_endpoint"])
        query = {
            "response_type": "code",
            "client_id": self.config.client_id,
            "redirect_uri": self.config.redirect_uri,
            "scope": self.config.scope,
            "state": state,
            "nonce": nonce,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            **({"resource": self.config.resource} if self.config.resource else {}),
            **self.config.extra_authorize_params,
        }
        return f"{endpoint}?{urlencode(query)}"

    async def exchange_code(self, code: str, verifier: str) -> TokenAnswer:
        """RFC 6749 §4.1.3 with the PKCE verifier (RFC 7636 §4.5)."""
        fields = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self.config.redirect_uri,
            "code_verifier": verifier,
        }
        answer = await self._token_request(fields)
        if answer is None:
            raise CodeRefusedError("idp refused the authorization code: sign in again")
        if answer.id_token is None:
            raise IdTokenError("no ID token in the token response (is openid in the scope?)")
        return answer

    async def refresh(self, refresh_token: str) -> TokenAnswer | None:
        """RFC 6749 §6; None when idp refuses the refresh token (RFC 6749 §5.2)."""
        return await self._token_request(
            {"grant_type": "refresh_token", "refresh_token": refresh_token}
        )

    async def _token_request(self, fields: dict[str, str]) -> TokenAnswer | None:
        endpoint = str((await self.metadata())["token_endpoint"])
        now = self._clock.now().timestamp()
        try:
            response = await self._http.post(
                endpoint, data=fields, headers={"authorization": self._basic()}
            )
            body = response.json()
        except (httpx.HTTPError, ValueError) as error:
            raise ProviderError(f"the token endpoint failed: {type(error).__name__}") from error
        if response.status_code in (400, 401) and isinstance(body, dict) and "error" in body:
            return None
        if response.status_code != 200 or not isinstance(body, dict):
            raise ProviderError(f"the token endpoint answered HTTP {response.status_code}")
        access_token, expires_in = body.get("access_token"), body.get("expires_in")
        if not isinstance(access_token, str) or str(body.get("token_type")).lower() != "bearer":
            raise ProviderError("the token response has no bearer access token")
        if not isinstance(expires_in, int) or isinstance(expires_in, bool):
            raise ProviderError("the token response has no expires_in")
        refresh_token, id_token = body.get("refresh_token"), body.get("id_token")
        return TokenAnswer(
            access_token=access_token,
            expires_at=now + expires_in,
            refresh_token=refresh_token if isinstance(refresh_token, str) else None,
            id_token=id_token if isinstance(id_token, str) else None,
        )

    def _basic(self) -> str:
        """RFC 6749 §2.3.1: id and secret form-urlencoded, then HTTP Basic (RFC 7617)."""
        pair = (
            f"{quote(self.config.client_id, safe='')}:{quote(self.config.client_secret, safe='')}"
        )
        return "Basic " + base64.b64encode(pair.encode()).decode("ascii")

    async def verify_id_token(
        self, id_token: str, *, nonce: str | None, original: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """OIDC Core §3.1.3.7: signature with a pinned algorithm and idp's key, ``iss``
        exactly, ``aud`` containing the client (and ``azp`` naming it when there are several),
        ``exp`` not passed, ``nonce`` the one sent (compared in constant time). After a refresh
        (§12.2) there is no nonce to check, and the claims of the ``original`` ID token that
        must not change are checked by ``check_refreshed``."""
        await self.metadata()
        assert self._jwks is not None
        try:
            header = json.loads(_b64(id_token.split(".")[0]))
            alg, kid = header.get("alg"), header.get("kid")
            if alg not in self.config.algorithms or not isinstance(kid, str):
                raise IdTokenError(f"ID token algorithm {alg!r} is not accepted")
            if header.get("typ") == "at+jwt":
                raise IdTokenError("an access token is not an ID token")  # RFC 9068 §4
            key = await self._jwks.key(kid)
            claims = json.loads(jws.deserialize_compact(id_token, key, algorithms=[alg]).payload)
        except JwksUnavailableError as error:
            raise KeysUnavailableError(str(error)) from error
        except InvalidTokenError as error:
            raise IdTokenError(str(error)) from error
        except (JoseError, ValueError, IndexError, AttributeError) as error:
            raise IdTokenError("the ID token's signature or form is invalid") from error
        if not isinstance(claims, dict):
            raise IdTokenError("the ID token is not a JSON object")
        self._check_claims(claims, nonce)
        if original is not None:
            check_refreshed(original, claims)
        return claims

    def _check_claims(self, claims: dict[str, Any], nonce: str | None) -> None:
        if claims.get("iss") != self.config.issuer:
            raise IdTokenError("the ID token's issuer is not idp")
        audience = claims.get("aud")
        audiences = [audience] if isinstance(audience, str) else audience
        if not isinstance(audiences, list) or self.config.client_id not in audiences:
            raise IdTokenError("the ID token is not for this client")
        if len(audiences) > 1 and claims.get("azp") != self.config.client_id:
            raise IdTokenError("the ID token's azp is not this client")
        exp = claims.get("exp")
        now = self._clock.now().timestamp()
        if not isinstance(exp, int | float) or now >= exp + self.config.leeway.total_seconds():
            raise IdTokenError("the ID token has expired")
        if not isinstance(claims.get("sub"), str):
            raise IdTokenError("the ID token has no subject")
        if nonce is not None:
            presented = claims.get("nonce")
            if not isinstance(presented, str) or not hmac.compare_digest(
                presented.encode(), nonce.encode()
            ):
                raise IdTokenError("the ID token's nonce is not the one sent")

    async def end_session_url(self, id_token: str | None) -> str:
        """OIDC RP-Initiated Logout 1.0 §2: ``id_token_hint`` (so idp may end its session
        without asking), ``client_id``, and the registered ``post_logout_redirect_uri``."""
        metadata = await self.metadata()
        endpoint = metadata.get("end_session_endpoint")
        if not isinstance(endpoint, str):
            return self.config.after_logout_uri  # idp offers no logout: only ours happened
        query = {
            "client_id": self.config.client_id,
            "post_logout_redirect_uri": self.config.after_logout_uri,
        }
        if id_token is not None:
            query["id_token_hint"] = id_token
        return f"{endpoint}?{urlencode(query)}"

    async def revoke(self, refresh_token: str) -> None:
        """RFC 7009 §2.1, best effort: a refresh token the browser's cookies no longer hold
        should not stay usable at idp either."""
        endpoint = (await self.metadata()).get("revocation_endpoint")
        if not isinstance(endpoint, str):
            return
        with contextlib.suppress(httpx.HTTPError):  # the browser's session is over anyway
            await self._http.post(
                endpoint,
                data={"token": refresh_token, "token_type_hint": "refresh_token"},
                headers={"authorization": self._basic()},
            )


def check_refreshed(original: dict[str, Any], renewed: dict[str, Any]) -> None:
    """OIDC Core §12.2: a refreshed ID token has the original's ``iss``, ``sub`` and ``aud``,
    its ``azp`` (none if the original had none), and its ``auth_time`` if it has one (the
    time of the original authentication, not of the refresh)."""
    if renewed.get("sub") != original.get("sub"):
        raise IdTokenError("the refreshed ID token names another user")
    if renewed.get("iss") != original.get("iss"):
        raise IdTokenError("the refreshed ID token has another issuer")
    if _audiences(renewed) != _audiences(original):
        raise IdTokenError("the refreshed ID token has other audiences")
    if renewed.get("azp") != original.get("azp"):
        raise IdTokenError("the refreshed ID token has another azp")
    if "auth_time" in renewed and renewed["auth_time"] != original.get("auth_time"):
        raise IdTokenError("the refreshed ID token moves the time of authentication")


def _audiences(claims: dict[str, Any]) -> set[str]:
    audience = claims.get("aud")
    return {audience} if isinstance(audience, str) else set(audience or ())


def _b64(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
