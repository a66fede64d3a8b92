"""Where a signed-in browser's tokens live: in sealed cookies (the default) or in a server-side
store the app chooses, with only an opaque session id in a cookie. Either way JavaScript reads
none of it (HttpOnly); it reads only the ``XSRF-TOKEN`` cookie.

Cookie attributes (RFC 6265bis §4.1.2, §4.1.3): ``Secure`` always (browsers accept it on
``http://localhost``, and nowhere else over http, so the BFF must be served over https
elsewhere); ``HttpOnly`` on everything holding tokens; ``Path=/`` and no ``Domain``, and on an
https origin the ``__Host-`` prefix (§4.1.3.2), so no sibling subdomain can set or shadow them;
``SameSite=Lax`` (§5.4.7): idp sends the browser back to ``/auth/callback`` by a cross-site
top-level GET, which must carry the pending sign-in cookie, and a first visit arriving from a
link elsewhere should find the user signed in; unsafe cross-site requests carry no cookie at
all under Lax, and the double-submit XSRF check covers the rest (same-site subdomains).
"""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Protocol

from starlette.requests import Request
from starlette.responses import Response

from idp_rp.bff.sealing import Sealer
from idp_rp.clock import Clock

XSRF_COOKIE = "XSRF-TOKEN"  # the names Angular's HttpClient uses by default
XSRF_HEADER = "X-XSRF-TOKEN"
# RFC 6265bis §5.4: a browser ignores a cookie whose name and value together exceed 4096 octets.
MAX_COOKIE_OCTETS = 4096
# Protocol claims of the ID token that say nothing about the user (OIDC Core §2).
_PROTOCOL_CLAIMS = frozenset(
    {"iss", "aud", "azp", "exp", "iat", "nbf", "nonce", "at_hash", "c_hash", "sid", "jti"}
)


@dataclass(frozen=True)
class Session:
    """One signed-in browser. ``id`` binds its cookies together (and keys a server-side
    store); ``xsrf`` is the value the ``X-XSRF-TOKEN`` header must repeat."""

    id: str = field(repr=False)  # repr: for logs, which must hold no token nor session id
    access_token: str = field(repr=False)
    expires_at: float  # POSIX seconds, by the BFF's clock
    refresh_token: str | None = field(repr=False)
    id_token: str = field(repr=False)
    xsrf: str = field(repr=False)

    @classmethod
    def new(
        cls, access_token: str, expires_at: float, refresh_token: str | None, id_token: str
    ) -> Session:
        return cls(
            id=secrets.token_urlsafe(32),
            access_token=access_token,
            expires_at=expires_at,
            refresh_token=refresh_token,
            id_token=id_token,
            xsrf=secrets.token_urlsafe(32),
        )

    def renewed(
        self, access_token: str, expires_at: float, refresh_token: str | None, id_token: str | None
    ) -> Session:
        """After a refresh: new tokens, the same session (and XSRF value, which pages hold)."""
        return replace(
            self,
            access_token=access_token,
            expires_at=expires_at,
            refresh_token=refresh_token or self.refresh_token,  # idp may not rotate
            id_token=id_token or self.id_token,
        )

    def claims(self) -> dict[str, Any]:
        """Every claim of the ID token, verified when it was received (and sealed since)."""
        payload = self.id_token.split(".")[1]
        claims: dict[str, Any] = json.loads(
            base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
        )
        return claims

    def user(self) -> dict[str, Any]:
        """The user claims of the ID token."""
        return {k: v for k, v in self.claims().items() if k not in _PROTOCOL_CLAIMS}


class SessionTooLargeError(ValueError):
    """The tokens do not fit in cookies: a browser would drop the cookie without a word
    (RFC 6265bis §5.4) and the user would be signed out at every request. Keep them server-side
    (``BackendForFrontend(config, store=...)``)."""


class SessionStore(Protocol):
    """A server-side session store (in memory here; Redis, a database, ... in an app)."""

    async def get(self, session_id: str) -> Session | None: ...

    async def put(self, session: Session, ttl: timedelta) -> None: ...

    async def delete(self, session_id: str) -> None: ...


class MemorySessionStore:
    """One process's sessions, each dropped ``ttl`` after it was last written."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._sessions: dict[str, tuple[Session, datetime]] = {}
        self._lock = asyncio.Lock()

    async def get(self, session_id: str) -> Session | None:
        found = self._sessions.get(session_id)
        if found is None or found[1] <= self._clock.now():
            return None
        return found[0]

    async def put(self, session: Session, ttl: timedelta) -> None:
        now = self._clock.now()
        async with self._lock:
            for key in [key for key, (_, until) in self._sessions.items() if until <= now]:
                del self._sessions[key]
            self._sessions[session.id] = (session, now + ttl)

    async def delete(self, session_id: str) -> None:
        self._sessions.pop(session_id, None)


@dataclass(frozen=True)
class CookieNames:
    """``__Host-`` on an https origin (RFC 6265bis §4.1.3.2); plain names on http, where a
    browser would refuse prefixed cookies from an insecure origin. ``XSRF-TOKEN`` keeps
    Angular's name: the header is checked against the sealed session, not against it, so a
    tossed XSRF cookie gains an attacker nothing."""

    session: str
    refresh: str
    identity: str
    login: str
    xsrf: str = XSRF_COOKIE

    @classmethod
    def for_origin(cls, https: bool) -> CookieNames:
        prefix = "__Host-" if https else ""
        return cls(
            session=f"{prefix}bff_session",
            refresh=f"{prefix}bff_refresh",
            identity=f"{prefix}bff_id",
            login=f"{prefix}bff_login",
        )


class Cookies:
    """Sets and clears the BFF's cookies with one set of attributes."""

    def __init__(self, names: CookieNames, sealer: Sealer) -> None:
        self.names = names
        self.sealer = sealer

    def set(
        self, response: Response, name: str, value: str, ttl: timedelta, *, http_only: bool = True
    ) -> None:
        response.set_cookie(
            name,
            value,
            max_age=int(ttl.total_seconds()),
            path="/",
            secure=True,
            httponly=http_only,
            samesite="lax",
        )

    def clear(self, response: Response, name: str, *, http_only: bool = True) -> None:
        response.delete_cookie(name, path="/", secure=True, httponly=http_only, samesite="lax")

    def set_xsrf(self, response: Response, session: Session, ttl: timedelta) -> None:
        # Not HttpOnly: the page's JavaScript reads it to send it back as X-XSRF-TOKEN.
        self.set(response, self.names.xsrf, session.xsrf, ttl, http_only=False)


class SessionStorage(Protocol):
    async def load(self, request: Request) -> Session | None: ...

    async def save(self, response: Response, session: Session) -> None: ...

    async def clear(self, request: Request, response: Response) -> None: ...


class CookieStorage:
    """Tokens in three sealed HttpOnly cookies (each well below the 4096 octets browsers keep,
    RFC 6265bis §5.6): the access token with its expiry and the XSRF value, the refresh token,
    and the ID token. All three carry the session id and must agree."""

    def __init__(self, cookies: Cookies, ttl: timedelta) -> None:
        self.cookies = cookies
        self.ttl = ttl

    async def load(self, request: Request) -> Session | None:
        names, sealer = self.cookies.names, self.cookies.sealer
        access = sealer.unseal(names.session, request.cookies.get(names.session))
        identity = sealer.unseal(names.identity, request.cookies.get(names.identity))
        if access is None or identity is None or identity.get("sid") != access.get("sid"):
            return None
        refresh = sealer.unseal(names.refresh, request.cookies.get(names.refresh))
        refresh_token = None
        if refresh is not None and refresh.get("sid") == access.get("sid"):
            refresh_token = refresh.get("rt")
        try:
            return Session(
                id=str(access["sid"]),
                access_token=str(access["at"]),
                expires_at=float(access["exp"]),
                refresh_token=None if refresh_token is None else str(refresh_token),
                id_token=str(identity["idt"]),
                xsrf=str(access["xsrf"]),
            )
        except (KeyError, TypeError, ValueError):
            return None

    async def save(self, response: Response, session: Session) -> None:
        """Raises SessionTooLargeError, before setting any cookie, when one would exceed
        4096 octets (many roles make long tokens)."""
        names, sealer = self.cookies.names, self.cookies.sealer
        access = {"sid": session.id, "at": session.access_token, "exp": session.expires_at}
        values: dict[str, dict[str, Any]] = {
            names.session: {**access, "xsrf": session.xsrf},
            names.identity: {"sid": session.id, "idt": session.id_token},
        }
        if session.refresh_token is not None:
            values[names.refresh] = {"sid": session.id, "rt": session.refresh_token}
        sealed = {name: sealer.seal(name, value) for name, value in values.items()}
        for name, value in sealed.items():
            if len(name) + len(value) > MAX_COOKIE_OCTETS:
                raise SessionTooLargeError(
                    f"the {name} cookie would be {len(name) + len(value)} octets, over the"
                    f" {MAX_COOKIE_OCTETS} browsers keep: use a server-side session store"
                )
        for name, value in sealed.items():
            self.cookies.set(response, name, value, self.ttl)
        self.cookies.set_xsrf(response, session, self.ttl)

    async def clear(self, request: Request, response: Response) -> None:
        clear_all(self.cookies, response)


class ServerStorage:
    """Tokens in ``store``; the browser holds only the session id, sealed in one cookie."""

    def __init__(self, cookies: Cookies, store: SessionStore, ttl: timedelta) -> None:
        self.cookies = cookies
        self.store = store
        self.ttl = ttl

    def _session_id(self, request: Request) -> str | None:
        names = self.cookies.names
        opened = self.cookies.sealer.unseal(names.session, request.cookies.get(names.session))
        found = None if opened is None else opened.get("sid")
        return found if isinstance(found, str) else None

    async def load(self, request: Request) -> Session | None:
        session_id = self._session_id(request)
        return None if session_id is None else await self.store.get(session_id)

    async def save(self, response: Response, session: Session) -> None:
        await self.store.put(session, self.ttl)
        names = self.cookies.names
        value = self.cookies.sealer.seal(names.session, {"sid": session.id})
        self.cookies.set(response, names.session, value, self.ttl)
        self.cookies.set_xsrf(response, session, self.ttl)

    async def clear(self, request: Request, response: Response) -> None:
        session_id = self._session_id(request)
        if session_id is not None:
            await self.store.delete(session_id)
        clear_all(self.cookies, response)


def clear_all(cookies: Cookies, response: Response) -> None:
    names = cookies.names
    for name in (names.session, names.refresh, names.identity):
        cookies.clear(response, name)
    cookies.clear(response, names.xsrf, http_only=False)
