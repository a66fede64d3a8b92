"""The backend-for-frontend's routes, mounted into an app's Starlette routes::

    bff = BackendForFrontend(BffConfig(...))
    app = Starlette(routes=[*bff.routes, Mount("/", StaticFiles(...))], lifespan=...)
    # and ``await bff.aclose()`` when the app stops

``GET /auth/login[?return_to=/path]``, ``GET /auth/callback``, ``POST /auth/logout``,
``GET /me``, and ``{api_prefix}/{path}`` forwarded to ``api_upstream`` with the session's
access token (the token-handler pattern: the browser never holds a token). Every answer the
browser's JavaScript sees is JSON: ``{"error": ..., "error_description": ...}`` on failure.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import quote, unquote, urlsplit

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from idp_rp.bff.config import BffConfig
from idp_rp.bff.provider import (
    CodeRefusedError,
    IdTokenError,
    KeysUnavailableError,
    Provider,
    ProviderError,
)
from idp_rp.bff.refresh import Refresher
from idp_rp.bff.sealing import Sealer
from idp_rp.bff.sessions import (
    XSRF_HEADER,
    CookieNames,
    Cookies,
    CookieStorage,
    ServerStorage,
    Session,
    SessionStorage,
    SessionStore,
    SessionTooLargeError,
)
from idp_rp.clock import Clock, SystemClock

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Request headers the proxy passes on; cookies, the XSRF header and any Authorization stay here.
FORWARDED_REQUEST_HEADERS = ("accept", "accept-language", "content-type", "if-none-match")
FORWARDED_RESPONSE_HEADERS = ("content-type", "cache-control", "etag", "www-authenticate")
NO_STORE = {"cache-control": "no-store"}


def error(status: int, code: str, description: str) -> Response:
    return JSONResponse(
        {"error": code, "error_description": description}, status_code=status, headers=NO_STORE
    )


@dataclass(frozen=True)
class Current:
    """The request's session, and whether a refresh just renewed it (its cookies then go out
    with the answer)."""

    session: Session
    refreshed: bool


class BackendForFrontend:
    def __init__(
        self,
        config: BffConfig,
        *,
        store: SessionStore | None = None,
        clock: Clock | None = None,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        """``store``: keep tokens server-side (only a session id goes to the browser); by
        default they live in sealed cookies. ``http``: the client for idp and the API (the
        BFF's own otherwise, closed by ``aclose``)."""
        self.config = config
        self._clock: Clock = clock or SystemClock()
        self._owned_http = None if http is not None else httpx.AsyncClient(timeout=10)
        self._http = http or self._owned_http
        assert self._http is not None
        self.provider = Provider(config, self._http, self._clock)
        self.cookies = Cookies(CookieNames.for_origin(config.https), Sealer(config.cookie_key))
        self.storage: SessionStorage = (
            CookieStorage(self.cookies, config.session_ttl)
            if store is None
            else ServerStorage(self.cookies, store, config.session_ttl)
        )
        self.refresher = Refresher(self._clock, config.refresh_result_ttl)

    @property
    def routes(self) -> list[BaseRoute]:
        routes: list[BaseRoute] = [
            Route("/auth/login", self.login, methods=["GET"]),
            Route("/auth/callback", self.callback, methods=["GET"]),
            Route("/auth/logout", self.logout, methods=["POST"]),
            Route("/me", self.me, methods=["GET"]),
        ]
        if self.config.api_upstream is not None:
            methods = ["GET", "HEAD", *sorted(UNSAFE_METHODS)]
            path = self.config.api_prefix + "/{path:path}"
            routes.append(Route(path, self.proxy, methods=methods))
        return routes

    async def aclose(self) -> None:
        if self._owned_http is not None:
            await self._owned_http.aclose()

    async def login(self, request: Request) -> Response:
        """Starts the code flow: state, nonce and PKCE verifier sealed in a short-lived cookie
        that only this browser holds; idp sees the S256 challenge (RFC 7636 §4.2)."""
        return_to = request.query_params.get("return_to", "/")
        if not is_local_path(return_to):
            return error(400, "invalid_request", "return_to must be a path on this site")
        state, nonce, verifier = (secrets.token_urlsafe(32) for _ in range(3))
        challenge = pkce_s256(verifier)
        try:
            url = await self.provider.authorization_url(state, nonce, challenge)
        except ProviderError as failure:
            return error(502, "idp_unavailable", str(failure))
        response = RedirectResponse(url, status_code=302, headers=NO_STORE)
        names = self.cookies.names
        until = self._clock.now().timestamp() + self.config.login_ttl.total_seconds()
        pending = {
            "state": state,
            "nonce": nonce,
            "verifier": verifier,
            "return_to": return_to,
            "until": until,  # Max-Age binds only the browser: a copied cookie must die too
        }
        sealed = self.cookies.sealer.seal(names.login, pending)
        self.cookies.set(response, names.login, sealed, self.config.login_ttl)
        return response

    async def callback(self, request: Request) -> Response:
        """OIDC Core §3.1.2.5-§3.1.3.7: the state must be the one this browser's pending
        cookie holds (RFC 6749 §10.12), then the code is exchanged and the ID token verified."""
        names = self.cookies.names
        pending = self.cookies.sealer.unseal(names.login, request.cookies.get(names.login))
        if pending is None:
            return error(400, "invalid_request", "no sign-in in progress in this browser")
        until = pending.get("until")
        if not isinstance(until, int | float) or self._clock.now().timestamp() >= until:
            response = error(400, "invalid_request", "the sign-in took too long: start again")
            self.cookies.clear(response, names.login)
            return response
        state = request.query_params.get("state", "")
        if not hmac.compare_digest(state.encode(), str(pending.get("state", "")).encode()):
            return error(400, "invalid_request", "the state does not match this sign-in")
        if "error" in request.query_params:  # RFC 6749 §4.1.2.1, once the state is known good
            response = error(400, "access_denied", request.query_params["error"][:100])
            self.cookies.clear(response, names.login)
            return response
        code = request.query_params.get("code")
        if not code:
            return error(400, "invalid_request", "no code")
        try:
            answer = await self.provider.exchange_code(code, str(pending["verifier"]))
            assert answer.id_token is not None
            await self.provider.verify_id_token(answer.id_token, nonce=str(pending["nonce"]))
        except KeysUnavailableError as failure:
            return error(502, "idp_unavailable", str(failure))
        except IdTokenError as failure:
            return error(400, "invalid_id_token", str(failure))
        except CodeRefusedError as failure:
            response = error(400, "invalid_grant", str(failure))
            self.cookies.clear(response, names.login)
            return response
        except ProviderError as failure:
            return error(502, "idp_unavailable", str(failure))
        await self._end_previous(request)
        session = Session.new(
            answer.access_token, answer.expires_at, answer.refresh_token, answer.id_token
        )
        return_to = str(pending.get("return_to", "/"))
        response = RedirectResponse(
            return_to if is_local_path(return_to) else "/", status_code=303, headers=NO_STORE
        )
        self.cookies.clear(response, names.login)
        try:
            await self.storage.save(response, session)
        except SessionTooLargeError as failure:
            # Never a cookie the browser silently drops: a clear error for the operator.
            refused = error(502, "session_too_large", str(failure))
            self.cookies.clear(refused, names.login)
            if session.refresh_token is not None:
                await self.provider.revoke(session.refresh_token)
            return refused
        return response

    async def _end_previous(self, request: Request) -> None:
        """A sign-in over an existing session (another user on a shared browser, or the same
        one again) replaces it: its refresh token is revoked at idp and its server-side entry
        dropped, rather than left usable by whoever kept a copy of the old cookies."""
        previous = await self.storage.load(request)
        if previous is None:
            return
        await self.storage.clear(request, Response())  # the new session's cookies follow
        if previous.refresh_token is not None:
            with contextlib.suppress(ProviderError):
                await self.provider.revoke(previous.refresh_token)

    async def logout(self, request: Request) -> Response:
        """Clears this site's session and answers idp's end-session URL as JSON
        (``{"logout_url": ...}``) for the page to navigate to (OIDC RP-Initiated Logout §2):
        the request comes from fetch (only fetch can send the XSRF header), and fetch would
        follow a 303 to idp's origin itself, in CORS mode, where it would fail and idp's
        session cookie would not end. Without a session there is nothing to protect here:
        the URL then carries no ``id_token_hint`` and idp asks the user."""
        session = await self.storage.load(request)
        if session is not None and not self._xsrf_ok(request, session):
            return xsrf_refused()
        try:
            url = await self.provider.end_session_url(session.id_token if session else None)
            response: Response = JSONResponse({"logout_url": url}, headers=NO_STORE)
        except ProviderError as failure:
            # The user asked to leave: this site's session ends even when idp's cannot.
            response = error(502, "idp_unavailable", f"signed out here only: {failure}")
        if self._carries_our_cookies(request):
            # Only then: a cross-site form POST carries no SameSite=Lax cookie, yet a browser
            # applies the Set-Cookie of its answer (RFC 6265bis §5.7, a top-level navigation):
            # clearing for it would let any site sign the user out.
            await self.storage.clear(request, response)
        if session is not None and session.refresh_token is not None:
            with contextlib.suppress(ProviderError):
                await self.provider.revoke(session.refresh_token)
        return response

    def _carries_our_cookies(self, request: Request) -> bool:
        names = self.cookies.names
        ours = (names.session, names.refresh, names.identity, names.xsrf)
        return any(name in request.cookies for name in ours)

    async def me(self, request: Request) -> Response:
        """The signed-in user (the ID token's user claims), or 401."""
        return await self._with_session(
            request, lambda current: _ok(JSONResponse(current.session.user(), headers=NO_STORE))
        )

    async def proxy(self, request: Request) -> Response:
        """Forwards the request to the API with ``Authorization: Bearer`` (RFC 6750 §2.1)."""
        return await self._with_session(request, lambda current: self._forward(request, current))

    async def _forward(self, request: Request, current: Current) -> Response:
        assert self.config.api_upstream is not None
        target = self._upstream_target(request)
        if target is None:
            return error(400, "invalid_request", "the path or query cannot be forwarded")
        body = await read_body(request, self.config.max_body_bytes)
        if body is None:
            limit = self.config.max_body_bytes
            return error(413, "request_too_large", f"the body is over {limit} bytes")
        headers = {k: v for k in FORWARDED_REQUEST_HEADERS if (v := request.headers.get(k))}
        headers["authorization"] = f"Bearer {current.session.access_token}"
        try:
            url = httpx.URL(self.config.api_upstream.rstrip("/") + target)
            upstream = await self._http_client.request(
                request.method, url, headers=headers, content=body
            )
        except httpx.InvalidURL:
            return error(400, "invalid_request", "the path or query cannot be forwarded")
        except httpx.HTTPError as failure:
            return error(502, "api_unavailable", type(failure).__name__)
        kept = {k: v for k in FORWARDED_RESPONSE_HEADERS if (v := upstream.headers.get(k))}
        # One user's answer, got with their token: no shared cache (a CDN in front of the BFF)
        # may keep it unless the API says so itself (RFC 9111 §5.2.2.5).
        kept.setdefault("cache-control", "no-store")
        return Response(upstream.content, status_code=upstream.status_code, headers=kept)

    def _upstream_target(self, request: Request) -> str | None:
        """The path and query as the browser sent them, still percent-encoded: decoded, a
        ``%3F`` would start a query and ``%23`` a fragment at the upstream. None for what must
        not go on: a dot segment, encoded or not (RFC 3986 §5.2.4 would resolve it away from
        the API prefix, to any route of the upstream), control characters, or a path the
        routing only matched once decoded."""
        raw = request.scope.get("raw_path") or quote(request.scope["path"]).encode()
        # httpx's ASGITransport passes the query in raw_path; servers (uvicorn) do not.
        raw_path = raw.partition(b"?")[0]
        mounted_at = quote(request.scope.get("root_path", "")).encode()
        if mounted_at and raw_path.startswith(mounted_at + b"/"):  # Mount("/app", routes=...)
            raw_path = raw_path[len(mounted_at) :]
        query = request.scope.get("query_string", b"")
        if not all(0x21 <= byte < 0x7F for byte in raw_path + query):
            return None
        path = raw_path.decode("ascii")
        decoded = unquote(path)
        if any(ord(char) < 0x20 or ord(char) == 0x7F for char in decoded):
            return None
        if any(segment in (".", "..") for segment in decoded.replace("\\", "/").split("/")):
            return None
        if not path.startswith(self.config.api_prefix + "/"):
            return None
        return path + ("?" + query.decode("ascii") if query else "")

    @property
    def _http_client(self) -> httpx.AsyncClient:
        assert self._http is not None
        return self._http

    async def _with_session(
        self, request: Request, respond: Callable[[Current], Awaitable[Response]]
    ) -> Response:
        """Loads the session (401 without one), checks the XSRF header on unsafe methods
        (403), refreshes an access token at or near its expiry (401 and cleared cookies when
        idp refuses), and sends renewed cookies with the answer."""
        session = await self.storage.load(request)
        if session is None:
            return error(401, "login_required", "no session")
        if request.method in UNSAFE_METHODS and not self._xsrf_ok(request, session):
            return xsrf_refused()
        refreshed = False
        if self._expiring(session):
            try:
                renewed = await self._refresh(session)
            except IdTokenError as failure:
                # The refresh token was spent on tokens that cannot be trusted: the session
                # cannot go on (and a retry with the spent token would be reuse at idp).
                response = error(401, "login_required", f"sign in again: {failure}")
                await self.storage.clear(request, response)
                return response
            except ProviderError as failure:
                return error(502, "idp_unavailable", str(failure))
            if renewed is None:
                response = error(401, "login_required", "the session has ended at idp")
                await self.storage.clear(request, response)
                return response
            session, refreshed = renewed, True
        renewed_cookies = Response()
        if refreshed:
            try:  # before the request goes on: an unsafe one must not run without its answer
                await self.storage.save(renewed_cookies, session)
            except SessionTooLargeError as failure:
                response = error(502, "session_too_large", str(failure))
                await self.storage.clear(request, response)
                return response
        response = await respond(Current(session, refreshed))
        response.raw_headers.extend(
            (name, value) for name, value in renewed_cookies.raw_headers if name == b"set-cookie"
        )
        return response

    def _expiring(self, session: Session) -> bool:
        skew = self.config.refresh_skew.total_seconds()
        return self._clock.now().timestamp() >= session.expires_at - skew

    async def _refresh(self, session: Session) -> Session | None:
        if session.refresh_token is None:
            return None
        refresh_token = session.refresh_token

        async def refresh() -> Session | None:
            answer = await self.provider.refresh(refresh_token)
            if answer is None:
                return None
            if answer.id_token is not None:
                original = session.claims()
                try:
                    await self.provider.verify_id_token(
                        answer.id_token, nonce=None, original=original
                    )
                except IdTokenError:
                    if answer.refresh_token is not None:  # tokens this BFF will not use
                        with contextlib.suppress(ProviderError):
                            await self.provider.revoke(answer.refresh_token)
                    raise
            return session.renewed(
                answer.access_token, answer.expires_at, answer.refresh_token, answer.id_token
            )

        return await self.refresher.run(refresh_token, refresh)

    def _xsrf_ok(self, request: Request, session: Session) -> bool:
        """Double submit: the header repeats the ``XSRF-TOKEN`` cookie's value, which is the
        session's own (so a cookie tossed in from a sibling site does not help)."""
        presented = request.headers.get(XSRF_HEADER, "")
        return hmac.compare_digest(presented.encode(), session.xsrf.encode())


async def _ok(response: Response) -> Response:
    return response


async def read_body(request: Request, limit: int) -> bytes | None:
    """The request body, or None past ``limit`` bytes (read no further: memory stays
    bounded whatever the browser sends)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)


def xsrf_refused() -> Response:
    return error(403, "xsrf_failed", f"the {XSRF_HEADER} header is missing or wrong")


def pkce_s256(verifier: str) -> str:
    """RFC 7636 §4.2: BASE64URL(SHA256(ASCII(code_verifier)))."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def is_local_path(target: str) -> bool:
    """A path on this site: ``/x``, never ``//host``, ``/\\host`` (browsers read ``\\`` as
    ``/``), a scheme or control characters: an open redirect otherwise."""
    if not target.startswith("/") or target.startswith(("//", "/\\")):
        return False
    if any(ord(char) < 0x20 or char == "\\" for char in target):
        return False
    parts = urlsplit(target)
    return not parts.scheme and not parts.netloc
