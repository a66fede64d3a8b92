"""Access-token verification for resource servers (RFC 9068 JWT access tokens).

The hot path: a resource server verifies a token on every request, so ``verify`` parses the
compact JWS once (RFC 7515 §7.1: three base64url segments), makes its header checks, and then
calls joserfc's algorithm (``JWSRegistry.algorithms[alg].verify``: for RS256 ``cryptography``'s
PKCS#1 v1.5 verification) on the signing input directly. joserfc's general deserializer, which
re-parses the header and rebuilds its registry for every token, is not in the loop; its key
checks (``check_key``: the key's ``use``, type and ``alg`` fit the algorithm) run once per key
and algorithm, remembered until the JWKS serves another key under the kid. Keys are still
imported by joserfc (``idp_rp.jwks``). bench/verifier.py measures this beside a bare
``cryptography`` ceiling and PyJWT (bench/results/verifier.md).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from joserfc.errors import JoseError
from joserfc.jwk import Key
from joserfc.jws import JWSRegistry

from idp_rp.clock import Clock, SystemClock
from idp_rp.errors import InvalidTokenError
from idp_rp.jwks import JwksCache

# RFC 9068 §4: "at+jwt", with or without the "application/" prefix (RFC 7515 §4.1.9);
# media types compare case-insensitively (RFC 2045 §5.1).
ACCESS_TOKEN_TYPES = frozenset({"at+jwt", "application/at+jwt"})
# RFC 9068 §2.2: claims every JWT access token carries.
REQUIRED_CLAIMS = ("iss", "exp", "aud", "sub", "client_id", "iat", "jti")
# RFC 7515 §2 / RFC 4648 §5: base64url without padding; anything else is not a segment (a
# lenient decoder would accept a signature with junk appended: the same token, spelled twice).
_SEGMENT = re.compile(r"[A-Za-z0-9_-]*")


@dataclass(frozen=True)
class VerifiedToken:
    """The claims of a token that passed every check."""

    claims: Mapping[str, Any]

    @property
    def subject(self) -> str:
        return str(self.claims["sub"])

    @property
    def client_id(self) -> str:
        return str(self.claims["client_id"])

    @property
    def scopes(self) -> frozenset[str]:
        """RFC 9068 §2.2.3: ``scope``, space-separated (RFC 6749 §3.3)."""
        scope = self.claims.get("scope")
        return frozenset(scope.split()) if isinstance(scope, str) else frozenset()

    @property
    def roles(self) -> frozenset[str]:
        """RFC 9068 §2.2.3.1: ``roles`` (a list, or one space-separated string)."""
        roles = self.claims.get("roles")
        if isinstance(roles, str):
            return frozenset(roles.split())
        if isinstance(roles, list):
            return frozenset(role for role in roles if isinstance(role, str))
        return frozenset()

    @property
    def acr(self) -> str | None:
        acr = self.claims.get("acr")
        return acr if isinstance(acr, str) else None

    @property
    def auth_time(self) -> datetime | None:
        value = self.claims.get("auth_time")
        if isinstance(value, int | float) and not isinstance(value, bool):
            return datetime.fromtimestamp(value, UTC)
        return None


class TokenVerifier:
    def __init__(
        self,
        *,
        issuer: str,
        audience: str,
        jwks: JwksCache,
        algorithms: Sequence[str] = ("RS256",),
        leeway: timedelta = timedelta(seconds=60),
        clock: Clock | None = None,
        owned_http: httpx.AsyncClient | None = None,
    ) -> None:
        pinned = tuple(algorithms)
        if not pinned or any(alg.lower() == "none" or alg.startswith("HS") for alg in pinned):
            # RFC 8725 §3.1/§3.2: "none" and shared-secret algorithms never verify a token
            # signed by an issuer's published (public) key.
            raise ValueError(f"algorithms must be asymmetric signature algorithms: {pinned}")
        unknown = [alg for alg in pinned if alg not in JWSRegistry.algorithms]
        if unknown:
            raise ValueError(f"unknown JWS algorithms: {unknown}")
        self.issuer = issuer
        self.audience = audience
        self.jwks = jwks
        self.algorithms = frozenset(pinned)
        self.leeway = leeway
        self._clock: Clock = clock or SystemClock()
        self._owned_http = owned_http
        # (kid, alg) -> the key that passed joserfc's check_key for alg (see the module doc).
        self._checked_keys: dict[tuple[str, str], Key] = {}

    @classmethod
    def from_jwks_uri(
        cls,
        jwks_uri: str,
        *,
        issuer: str,
        audience: str,
        algorithms: Sequence[str] = ("RS256",),
        leeway: timedelta = timedelta(seconds=60),
        unknown_kid_refetches_per_minute: int = 10,
        clock: Clock | None = None,
        http: httpx.AsyncClient | None = None,
    ) -> TokenVerifier:
        owned = None if http is not None else httpx.AsyncClient(timeout=10)
        client = http if http is not None else owned
        assert client is not None
        jwks = JwksCache(
            jwks_uri,
            http=client,
            clock=clock,
            unknown_kid_refetches_per_minute=unknown_kid_refetches_per_minute,
        )
        return cls(
            issuer=issuer,
            audience=audience,
            jwks=jwks,
            algorithms=algorithms,
            leeway=leeway,
            clock=clock,
            owned_http=owned,
        )

    @classmethod
    async def from_issuer(
        cls,
        issuer: str,
        audience: str,
        *,
        algorithms: Sequence[str] = ("RS256",),
        leeway: timedelta = timedelta(seconds=60),
        unknown_kid_refetches_per_minute: int = 10,
        clock: Clock | None = None,
        http: httpx.AsyncClient | None = None,
    ) -> TokenVerifier:
        """Discovery (OpenID Connect Discovery 1.0 §4; RFC 8414 §3) gives ``jwks_uri``; the
        document's ``issuer`` must be exactly ``issuer`` (§4.3)."""
        client = http or httpx.AsyncClient(timeout=10)
        try:
            response = await client.get(issuer.rstrip("/") + "/.well-known/openid-configuration")
            response.raise_for_status()
            metadata = response.json()
        except BaseException:
            if http is None:
                await client.aclose()
            raise
        if not isinstance(metadata, dict) or metadata.get("issuer") != issuer:
            if http is None:
                await client.aclose()
            raise ValueError(f"the discovery document at {issuer} names another issuer")
        verifier = cls.from_jwks_uri(
            str(metadata["jwks_uri"]),
            issuer=issuer,
            audience=audience,
            algorithms=algorithms,
            leeway=leeway,
            unknown_kid_refetches_per_minute=unknown_kid_refetches_per_minute,
            clock=clock,
            http=client,
        )
        verifier._owned_http = None if http is not None else client
        return verifier

    async def aclose(self) -> None:
        if self._owned_http is not None:
            await self._owned_http.aclose()

    async def __aenter__(self) -> TokenVerifier:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def verify(self, token: str) -> VerifiedToken:
        """The claims of ``token``, or InvalidTokenError (RFC 6750 §3.1 ``invalid_token``)."""
        header_segment, payload_segment, signature_segment = _segments(token)
        header = _header(header_segment)
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self.algorithms:
            # RFC 8725 §3.1: the algorithm is pinned, never taken from the token
            # ("none", or HS256 "signed" with the issuer's public key, end here).
            raise InvalidTokenError(f"algorithm {alg!r} is not accepted")
        typ = header.get("typ")
        if not isinstance(typ, str) or typ.lower() not in ACCESS_TOKEN_TYPES:
            # RFC 9068 §4: reject anything not typed as an access token (an ID token, say).
            raise InvalidTokenError(f"typ {typ!r} is not an access token (at+jwt)")
        if "crit" in header:
            raise InvalidTokenError("unsupported critical header parameters")  # RFC 7515 §4.1.11
        kid = header.get("kid")
        if not isinstance(kid, str):
            raise InvalidTokenError("no kid in the token header")
        key = await self.jwks.key(kid)
        self._check_key(kid, key, alg)
        try:
            signing_input = f"{header_segment}.{payload_segment}".encode("ascii")
            signature = _decode_segment(signature_segment)
            valid = JWSRegistry.algorithms[alg].verify(signing_input, signature, key)
        except (JoseError, ValueError) as error:
            raise InvalidTokenError("bad signature") from error
        if not valid:
            raise InvalidTokenError("bad signature")
        try:
            claims = json.loads(_decode_segment(payload_segment))
        except ValueError as error:
            raise InvalidTokenError("the payload is not JSON") from error
        if not isinstance(claims, dict):
            raise InvalidTokenError("the payload is not a JSON object")
        self._check_claims(claims)
        return VerifiedToken(claims)

    def _check_key(self, kid: str, key: Key, alg: str) -> None:
        """joserfc's checks that ``key`` may verify ``alg`` (RFC 7517 §4.2 ``use``, §4.4
        ``alg``, the key type), once per key: a kid served with new key material is checked
        anew."""
        if self._checked_keys.get((kid, alg)) is key:
            return
        try:
            JWSRegistry.algorithms[alg].check_key(key)
        except JoseError as error:
            raise InvalidTokenError(f"key {kid!r} cannot verify {alg}: {error}") from error
        if len(self._checked_keys) >= 64:  # kids rotated away: forget them all now and then
            self._checked_keys.clear()
        self._checked_keys[(kid, alg)] = key

    def _check_claims(self, claims: dict[str, Any]) -> None:
        """RFC 9068 §4 / RFC 7519 §4.1: iss, aud, exp, nbf with leeway, required claims."""
        missing = [name for name in REQUIRED_CLAIMS if name not in claims]
        if missing:
            raise InvalidTokenError(f"missing claims: {', '.join(missing)}")
        if claims["iss"] != self.issuer:
            raise InvalidTokenError("wrong issuer")
        audience = claims["aud"]
        audiences = [audience] if isinstance(audience, str) else audience
        if not isinstance(audiences, list) or self.audience not in audiences:
            raise InvalidTokenError("the token is not for this audience")
        now = self._clock.now().timestamp()
        leeway = self.leeway.total_seconds()
        exp = _number(claims, "exp")
        if now >= exp + leeway:  # RFC 7519 §4.1.4: on or after exp it must not be accepted
            raise InvalidTokenError("the token has expired")
        if "nbf" in claims and now < _number(claims, "nbf") - leeway:  # RFC 7519 §4.1.5
            raise InvalidTokenError("the token is not valid yet")
        if now < _number(claims, "iat") - leeway:
            raise InvalidTokenError("the token was issued in the future")
        for name in ("sub", "client_id", "jti"):
            if not isinstance(claims[name], str):
                raise InvalidTokenError(f"{name} is not a string")


def _number(claims: Mapping[str, Any], name: str) -> float:
    value = claims[name]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidTokenError(f"{name} is not a NumericDate")
    return float(value)


def _segments(token: str) -> tuple[str, str, str]:
    """A compact JWS's three segments (RFC 7515 §7.1); a JWE (5 parts) is not a JWS."""
    parts = token.split(".")
    if len(parts) != 3:
        raise InvalidTokenError("not a compact JWS")
    return parts[0], parts[1], parts[2]


def _decode_segment(segment: str) -> bytes:
    """base64url without padding (RFC 7515 §2), strictly; ValueError otherwise."""
    if not _SEGMENT.fullmatch(segment):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def _header(segment: str) -> dict[str, Any]:
    """The JOSE header (RFC 7515 §4): a JSON object."""
    try:
        header = json.loads(_decode_segment(segment))
    except (ValueError, binascii.Error) as error:
        raise InvalidTokenError("malformed header") from error
    if not isinstance(header, dict):
        raise InvalidTokenError("malformed header")
    return header
