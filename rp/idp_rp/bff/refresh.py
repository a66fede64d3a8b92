"""One refresh per session at a time.

idp rotates refresh tokens and treats a replaced token presented again as theft (RFC 9700
§4.14.2): the whole family is revoked. A page that fires twenty API calls as its access token
expires sends twenty requests with the same refresh token cookie, so the BFF must make exactly
one refresh for them: the first request starts it, the others wait for it, and all answer with
the new tokens. Requests that left the browser before the new cookies arrived may come in after
the refresh finished, still carrying the replaced token: the result is kept for them for
``result_ttl``. Flights are keyed by a digest of the refresh token, never the token itself.

This coordinates one process. Several BFF processes behind a load balancer need a server-side
store with a shared lock, or idp's reuse grace window (IDP_REFRESH_REUSE_GRACE), which answers a
replaced token's second use with the same successor.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from idp_rp.bff.sessions import Session
from idp_rp.clock import Clock


class Refresher:
    def __init__(self, clock: Clock, result_ttl: timedelta) -> None:
        self._clock = clock
        self._result_ttl = result_ttl
        self._flights: dict[str, asyncio.Task[Session | None]] = {}
        self._finished: dict[str, datetime] = {}
        self.refreshes = 0  # started, for operators' metrics

    async def run(
        self, refresh_token: str, refresh: Callable[[], Awaitable[Session | None]]
    ) -> Session | None:
        """The session ``refresh`` makes, made once for every caller holding ``refresh_token``
        (None: idp refused it). An error (idp unreachable) is not kept: the next caller tries
        again."""
        self._forget_old()
        key = hashlib.sha256(refresh_token.encode()).hexdigest()
        flight = self._flights.get(key)
        if flight is None:
            self.refreshes += 1
            flight = asyncio.ensure_future(refresh())
            self._flights[key] = flight
            flight.add_done_callback(lambda done: self._landed(key, done))
        # shield: a caller that goes away (client disconnect) does not cancel the others' refresh
        return await asyncio.shield(flight)

    def _landed(self, key: str, flight: asyncio.Task[Session | None]) -> None:
        if flight.cancelled() or flight.exception() is not None:
            self._flights.pop(key, None)
        else:
            self._finished[key] = self._clock.now()

    def _forget_old(self) -> None:
        now = self._clock.now()
        for key in [k for k, at in self._finished.items() if now - at >= self._result_ttl]:
            del self._finished[key]
            self._flights.pop(key, None)
