"""RFC 7662 token introspection, for routes that must see a revocation at once: idp is asked
about every token (its ``/introspect``), with a small cache in front.

The cache (``cache_ttl``, default 30 s; ``timedelta(0)`` turns it off):

- bounded: at most ``cache_size`` entries, the least recently used evicted first;
- an entry lives at most ``cache_ttl`` and never past the token's ``exp``; so a revocation is
  seen at most ``cache_ttl`` late (0: at once, one request to idp per API call);
- keyed by the SHA-256 of the token: the token itself is kept in no key and no log;
- only active answers are cached. An inactive token is refused anyway, and caching the answers
  to random tokens would let a flood of them evict every live entry;
- concurrent requests with one token share one call to idp (like JwksCache's one fetch), unless
  ``cache_ttl`` is 0: then each request asks for itself, so none is answered by a call that
  started before it arrived. At most one call per distinct token is in flight.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
from collections import OrderedDict
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

import httpx

from idp_rp.clock import Clock, SystemClock
from idp_rp.errors import InvalidTokenError
from idp_rp.verifier import VerifiedToken

# RFC 7662 §2.2: members that describe the answer, not the token.
_RESPONSE_ONLY = ("active", "token_type")


class IntrospectionError(Exception):
    """The introspection endpoint did not give an answer (down, 5xx, not JSON, refused our
    credentials): nothing is known about the token."""


class Introspector:
    """``await introspector.verify(token)`` -> VerifiedToken, like TokenVerifier's, or
    InvalidTokenError when idp says the token is not active (revoked, expired, unknown) or it is
    not for this resource server. Authenticates as ``client_id`` with client_secret_basic
    (RFC 6749 §2.3.1); at idp, register that client with ``--introspect-audience AUDIENCE``."""

    def __init__(
        self,
        endpoint: str,
        *,
        client_id: str,
        client_secret: str,
        issuer: str,
        audience: str,
        http: httpx.AsyncClient | None = None,
        clock: Clock | None = None,
        cache_ttl: timedelta = timedelta(seconds=30),
        cache_size: int = 1000,
    ) -> None:
        if cache_ttl < timedelta(0) or cache_size < 1:
            raise ValueError("cache_ttl must be >= 0 and cache_size >= 1")
        self.endpoint = endpoint
        self.issuer = issuer
        self.audience = audience
        self.cache_ttl = cache_ttl
        self.cache_size = cache_size
        # RFC 6749 §2.3.1: id and secret are form-urlencoded before the Basic encoding.
        self._auth = httpx.BasicAuth(quote(client_id, safe=""), quote(client_secret, safe=""))
        self._owned = http is None
        self._http = http or httpx.AsyncClient(timeout=10)
        self._clock: Clock = clock or SystemClock()
        self._cache: OrderedDict[bytes, tuple[datetime, VerifiedToken]] = OrderedDict()
        self._in_flight: dict[bytes, asyncio.Task[VerifiedToken]] = {}
        self.requests = 0  # how many times idp was asked (the cache's effect, for tests/metrics)

    @classmethod
    async def from_issuer(
        cls,
        issuer: str,
        audience: str,
        *,
        client_id: str,
        client_secret: str,
        http: httpx.AsyncClient | None = None,
        clock: Clock | None = None,
        cache_ttl: timedelta = timedelta(seconds=30),
        cache_size: int = 1000,
    ) -> Introspector:
        """The endpoint from discovery (RFC 8414 §2 ``introspection_endpoint``)."""
        client = http or httpx.AsyncClient(timeout=10)
        try:
            response = await client.get(issuer.rstrip("/") + "/.well-known/openid-configuration")
            response.raise_for_status()
            metadata = response.json()
            if not isinstance(metadata, dict) or metadata.get("issuer") != issuer:
                raise ValueError(f"the discovery document at {issuer} names another issuer")
            endpoint = metadata.get("introspection_endpoint")
            if not isinstance(endpoint, str):
                raise ValueError(f"{issuer} publishes no introspection_endpoint")
        except BaseException:
            if http is None:
                await client.aclose()
            raise
        introspector = cls(
            endpoint,
            client_id=client_id,
            client_secret=client_secret,
            issuer=issuer,
            audience=audience,
            http=client,
            clock=clock,
            cache_ttl=cache_ttl,
            cache_size=cache_size,
        )
        introspector._owned = http is None
        return introspector

    async def aclose(self) -> None:
        if self._owned:
            await self._http.aclose()

    async def __aenter__(self) -> Introspector:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    def __len__(self) -> int:
        """Entries in the cache (expired ones included until they are met or evicted)."""
        return len(self._cache)

    async def verify(self, token: str) -> VerifiedToken:
        key = hashlib.sha256(token.encode()).digest()
        now = self._clock.now()
        cached = self._cache.get(key)
        if cached is not None:
            until, verified = cached
            if now < until:
                self._cache.move_to_end(key)
                return verified
            del self._cache[key]
        if not self.cache_ttl:
            return await self._ask(key, token, now)
        call = self._in_flight.get(key)
        if call is None:
            call = asyncio.ensure_future(self._ask(key, token, now))
            call.add_done_callback(functools.partial(self._landed, key))
            self._in_flight[key] = call
        # shield: a caller that goes away (its client disconnected) does not cancel the others'
        return await asyncio.shield(call)

    async def _ask(self, key: bytes, token: str, now: datetime) -> VerifiedToken:
        """idp's answer, checked, and cached when active."""
        verified, expires = self._check(await self._introspect(token), now)
        until = min(now + self.cache_ttl, expires)
        if until > now:
            self._cache[key] = (until, verified)
            if len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return verified

    async def _introspect(self, token: str) -> Mapping[str, Any]:
        """RFC 7662 §2.1: POST ``token`` (and the hint) form-encoded, authenticated."""
        self.requests += 1
        try:
            response = await self._http.post(
                self.endpoint,
                data={"token": token, "token_type_hint": "access_token"},
                auth=self._auth,
                headers={"Accept": "application/json"},
            )
        except httpx.HTTPError as error:
            raise IntrospectionError(f"introspection failed: {type(error).__name__}") from error
        if response.status_code != 200:
            raise IntrospectionError(f"the introspection endpoint answered {response.status_code}")
        try:
            body = response.json()
        except ValueError as error:
            raise IntrospectionError("the introspection answer is not JSON") from error
        if not isinstance(body, dict):
            raise IntrospectionError("the introspection answer is not a JSON object")
        return body

    def _landed(self, key: bytes, call: asyncio.Task[VerifiedToken]) -> None:
        """A shared call ended (answered, failed, or cancelled before it ran): it is in flight no
        more, before any of its callers resumes. Its failure is marked as seen, for when every
        caller went away first (asyncio would log "exception was never retrieved")."""
        if self._in_flight.get(key) is call:
            del self._in_flight[key]
        if not call.cancelled():
            call.exception()

    def _check(self, body: Mapping[str, Any], now: datetime) -> tuple[VerifiedToken, datetime]:
        """RFC 7662 §2.2 ``active``; §4: the resource server still checks that the token is
        its own (iss, aud) and not expired, whatever the endpoint says. Returns the token and its
        expiry."""
        if body.get("active") is not True:
            raise InvalidTokenError("the token is not active")
        claims = {name: value for name, value in body.items() if name not in _RESPONSE_ONLY}
        token_type = body.get("token_type", "Bearer")
        if not isinstance(token_type, str) or token_type.lower() != "bearer":
            raise InvalidTokenError("not an access token")  # a refresh token, say
        if claims.get("iss") != self.issuer:
            raise InvalidTokenError("wrong issuer")
        audience = claims.get("aud")
        audiences = [audience] if isinstance(audience, str) else audience
        if not isinstance(audiences, list) or self.audience not in audiences:
            raise InvalidTokenError("the token is not for this audience")
        exp = claims.get("exp")
        if isinstance(exp, bool) or not isinstance(exp, int | float):
            raise InvalidTokenError("the introspection answer has no exp")
        try:  # NaN, Infinity (Python's JSON reads them) or past year 9999: not a time
            expires = datetime.fromtimestamp(exp, now.tzinfo)
        except (OverflowError, ValueError, OSError):
            raise InvalidTokenError("the introspection answer's exp is not a time") from None
        if now >= expires:
            raise InvalidTokenError("the token has expired")
        for name in ("sub", "client_id"):
            if not isinstance(claims.get(name), str):
                raise InvalidTokenError(f"the introspection answer has no {name}")
        return VerifiedToken(claims), expires
