"""The JWKS cache: keys by ``kid``, trusted no longer than the ``max-age`` they were served with.

Rules (RFC 9111 caching applied to RFC 7517 key sets):

* A fetched key set is fresh for ``max-age`` minus ``Age`` (RFC 9111 §5.2.2.1, §4.2.3);
  ``no-store`` / ``no-cache`` (§5.2.2.5, §5.2.2.4) or no ``max-age`` at all make it stale at
  once, so it is revalidated before every use.
* A stale key set is never used: it is revalidated first, with ``If-None-Match`` when an ETag was
  served (RFC 9110 §13.1.2); a 304 keeps the keys and renews their freshness from the 304's own
  ``Cache-Control`` (RFC 9111 §4.3.4). So a key the issuer stops publishing is gone no later
  than the ``max-age`` it was last served with.
* A ``kid`` the fresh set does not hold triggers a refetch, at most ``unknown_kid_refetches``
  times per minute: a flood of tokens with made-up kids cannot make the cache hammer the issuer.
* Concurrent callers share one fetch. A failed fetch while the set is stale fails closed
  (:class:`InvalidTokenError`), never with an unhandled exception, and never falls back on the
  stale keys.
* After a failed fetch the cache backs off: no request is sent for 1 s, then 2, 4, ... up to
  60 s after each further failure (on the injected clock); meanwhile a verification that needs
  the issuer fails closed at once, so an outage of the issuer's JWKS does not turn every
  incoming request into a request to the issuer. The first success ends the backoff.
"""

from __future__ import annotations

import asyncio
import re
from collections import deque
from datetime import datetime, timedelta
from typing import Any

import httpx
from joserfc.errors import JoseError
from joserfc.jwk import Key, KeySet

from idp_rp.clock import Clock, SystemClock
from idp_rp.errors import InvalidTokenError, JwksUnavailableError

_MAX_AGE = re.compile(r"(?:^|,)\s*max-age\s*=\s*\"?(\d+)\"?\s*(?:,|$)", re.IGNORECASE)
_NO_REUSE = re.compile(r"(?:^|,)\s*(?:no-store|no-cache)\b", re.IGNORECASE)
RATE_WINDOW = timedelta(minutes=1)
FIRST_BACKOFF = timedelta(seconds=1)  # after one failed fetch; doubled after each further one
MAX_BACKOFF = timedelta(seconds=60)


def freshness_lifetime(headers: httpx.Headers) -> timedelta:
    """How long a response stays fresh from now: ``max-age`` minus ``Age``; zero for
    ``no-store``/``no-cache`` or when no ``max-age`` is given (no heuristic freshness: a key
    set is security state, RFC 9111 §4.2.2 allows but does not require one)."""
    cache_control = ", ".join(headers.get_list("cache-control"))
    if _NO_REUSE.search(cache_control):
        return timedelta(0)
    match = _MAX_AGE.search(cache_control)
    if match is None:
        return timedelta(0)
    age = headers.get("age", "0").strip()
    already = int(age) if age.isdigit() else 0
    return timedelta(seconds=max(0, int(match.group(1)) - already))


class JwksCache:
    def __init__(
        self,
        jwks_uri: str,
        *,
        http: httpx.AsyncClient,
        clock: Clock | None = None,
        unknown_kid_refetches_per_minute: int = 10,
    ) -> None:
        self.jwks_uri = jwks_uri
        self._http = http
        self._clock: Clock = clock or SystemClock()
        self._unknown_kid_limit = unknown_kid_refetches_per_minute
        self._unknown_kid_fetches: deque[datetime] = deque()
        self._keys: dict[str, Key] = {}
        self._etag: str | None = None
        self._fresh_until: datetime | None = None  # None: never fetched successfully
        self._lock = asyncio.Lock()
        self._generation = 0  # counts fetch attempts, so waiters know one happened meanwhile
        self._last_failure: str | None = None
        self._backoff: timedelta | None = None  # the wait after the last failure; None: no failure
        self._retry_at: datetime | None = None  # no request before this (after a failure)
        self.fetches = 0  # requests sent (observable for operators and tests)

    def _is_fresh(self) -> bool:
        return self._fresh_until is not None and self._clock.now() < self._fresh_until

    async def key(self, kid: str) -> Key:
        """The key for ``kid``, from a fresh key set; raises InvalidTokenError otherwise."""
        revalidated = not self._is_fresh()
        if revalidated:
            await self._refresh(unknown_kid=False)
        found = self._keys.get(kid)
        if found is not None:
            return found
        if not revalidated:  # the set was fresh but lacks kid: the issuer may have rotated
            await self._refresh(unknown_kid=True)
        found = self._keys.get(kid)
        if found is None:
            raise InvalidTokenError(f"no key {kid!r} in the issuer's JWKS")
        return found

    async def _refresh(self, *, unknown_kid: bool) -> None:
        seen = self._generation
        async with self._lock:
            if self._generation == seen and not self._backing_off():
                if unknown_kid and not self._may_refetch_for_unknown_kid():
                    raise InvalidTokenError("unknown kid, and the JWKS was refetched recently")
                await self._fetch()
            # else: another caller fetched while this one waited (its result is this one's), or
            # a fetch failed less than the backoff ago: no request now, the outcome stands.
        if self._last_failure is not None and not self._is_fresh():
            raise JwksUnavailableError(f"the issuer's JWKS is unavailable: {self._last_failure}")

    def _backing_off(self) -> bool:
        return self._retry_at is not None and self._clock.now() < self._retry_at

    def _may_refetch_for_unknown_kid(self) -> bool:
        now = self._clock.now()
        while self._unknown_kid_fetches and now - self._unknown_kid_fetches[0] >= RATE_WINDOW:
            self._unknown_kid_fetches.popleft()
        if len(self._unknown_kid_fetches) >= self._unknown_kid_limit:
            return False
        self._unknown_kid_fetches.append(now)
        return True

    async def _fetch(self) -> None:
        try:
            await self._request()
        finally:  # counted once done: a caller that queued meanwhile sees a fetch it can use
            self._generation += 1

    async def _request(self) -> None:
        self.fetches += 1
        headers = {"accept": "application/json"}
        if self._etag is not None and self._fresh_until is not None:
            headers["if-none-match"] = self._etag
        try:
            response = await self._http.get(self.jwks_uri, headers=headers)
            now = self._clock.now()
            if response.status_code == 304 and self._fresh_until is not None:
                self._fresh_until = now + freshness_lifetime(response.headers)
            elif response.status_code == 200:
                self._keys = _parse(response.json())
                self._etag = response.headers.get("etag")
                self._fresh_until = now + freshness_lifetime(response.headers)
            else:
                raise _FetchFailed(f"HTTP {response.status_code}")
        except (httpx.HTTPError, ValueError, JoseError, _FetchFailed) as error:
            self._last_failure = str(error) or type(error).__name__
            self._backoff = (
                FIRST_BACKOFF if self._backoff is None else min(2 * self._backoff, MAX_BACKOFF)
            )
            self._retry_at = self._clock.now() + self._backoff
        else:
            self._last_failure = None
            self._backoff = self._retry_at = None


class _FetchFailed(Exception):
    pass


def _parse(document: Any) -> dict[str, Key]:
    """RFC 7517 §5: a JSON object with a ``keys`` array; keys without a ``kid`` are unusable
    here (the verifier selects by kid) and keys of unknown types are skipped (§5)."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError("not a JWK Set")
    usable = [
        jwk
        for jwk in document["keys"]
        if isinstance(jwk, dict)
        and isinstance(jwk.get("kid"), str)
        and jwk.get("kty") in {"RSA", "EC", "OKP"}
        and jwk.get("use", "sig") == "sig"
    ]
    key_set = KeySet.import_key_set({"keys": usable})
    return {str(key.kid): key for key in key_set.keys}


__all__ = ["FIRST_BACKOFF", "MAX_BACKOFF", "JwksCache", "freshness_lifetime"]
