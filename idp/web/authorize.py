"""``GET /authorize``: check the request, then sign-in, consent, or straight back with a code."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from idp.accounts.account_sessions import SEEN_EVERY
from idp.db import authorization_requests, consents, second_factors, sessions, users
from idp.db.authorization_requests import Step
from idp.db.clients import Client
from idp.hashing import digest
from idp.oauth import acr
from idp.oauth.authorize import (
    AuthorizationRequest,
    AuthorizePageError,
    AuthorizeRedirectError,
    FindClient,
    check_request,
)
from idp.oauth.code_flow import (
    SignedIn,
    issue_code,
    needs_consent,
    needs_login,
    redirect_to_client,
)
from idp.oauth.document_clients import TooManyFetchesError
from idp.oauth.errors import (
    ConsentRequiredError,
    InteractionRequiredError,
    LoginRequiredError,
    OAuthError,
    UnmetAuthenticationRequirementsError,
)
from idp.oauth.metadata_document import DocumentError
from idp.web.forms import read_query
from idp.web.security import HTML_HEADERS, client_ip
from idp.web.state import AppState
from idp.web.templates import error_page

# How long a user may take to sign in and consent before the request must start over.
PENDING_TTL = timedelta(minutes=10)
EXPIRED = ("This request has expired", "The request took too long or was already completed.")
SECOND_FACTOR = "/login/second-factor"
ENROL = "/login/enrol"


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303, headers=HTML_HEADERS)


async def signed_in(request: Request[AppState]) -> SignedIn | None:
    """The live session of the browser, if its user may still sign in; using it moves its
    last-seen time (at most once per ``SEEN_EVERY``, for the account page)."""
    state = request.state
    cookie = request.cookies.get(state["cookies"].session)
    if not cookie:
        return None
    now = state["clock"].now()
    session = await sessions.live_and_seen(state["pool"], digest(cookie), now, SEEN_EVERY)
    if session is None:
        return None
    user = await users.by_id(state["pool"], session.user_id)
    if user is None or user.disabled:
        return None
    return SignedIn(user_id=user.id, sid=session.sid, auth_time=session.auth_time, amr=session.amr)


@dataclass(frozen=True)
class Pending:
    """A parked request as its pages resume it: the token they carry, the checked request, the
    step it waits for, and the session that signed in for it (read from its row, never taken
    from the browser)."""

    token: str
    auth: AuthorizationRequest
    waiting_for: Step
    login_sid: str | None

    def signed_in_for_it(self, who: SignedIn | None) -> bool:
        return who is not None and self.login_sid is not None and who.sid == self.login_sid

    def after_sign_in(self, sid: str) -> Pending:
        """The request once its login step is done by session ``sid``: for the login page only,
        right after the password was verified. ``proceed`` writes it to the row (or completes
        the request) before any other step can see it."""
        return replace(self, login_sid=sid)


async def new_pending(
    state: AppState, auth: AuthorizationRequest, step: Step, now: datetime
) -> str:
    """Park ``auth`` server-side, waiting for ``step``: the token its pages carry."""
    assert auth.client is not None
    token = secrets.token_urlsafe(32)
    await authorization_requests.insert(
        state["pool"],
        id_hash=digest(token),
        client_id=auth.client.client_id,
        params=auth.to_json(),
        waiting_for=step,
        now=now,
        expires_at=now + PENDING_TTL,
    )
    return token


async def park(
    request: Request[AppState],
    auth: AuthorizationRequest,
    step: Step,
    pending: Pending | None,
    login_sid: str | None = None,
) -> Response:
    """Keep the checked request server-side, waiting for ``step``, while the user signs in or
    consents; a request already parked moves to ``step`` under the token it has."""
    token = await _kept(request.state, auth, step, pending, login_sid)
    if token is None:
        return error_page(request, 400, *EXPIRED)
    return redirect(f"/{step}?request={token}")


async def _kept(
    state: AppState,
    auth: AuthorizationRequest,
    step: Step,
    pending: Pending | None,
    login_sid: str | None,
) -> str | None:
    """The token of ``auth`` parked waiting for ``step``; None if its row is gone."""
    assert auth.client is not None
    now = state["clock"].now()
    if pending is None:
        return await new_pending(state, auth, step, now)
    if (pending.waiting_for, pending.login_sid) != (step, login_sid):
        moved = await authorization_requests.move(
            state["pool"], digest(pending.token), step, login_sid, now
        )
        if not moved:
            return None
    return pending.token


@dataclass(frozen=True)
class StepUp:
    """What the session lacks: the class (idp.oauth.acr) to step up to, or, with ``acr`` None,
    a second factor to set up first (IDP_MFA=required, for a user who has none)."""

    acr: str | None


async def step_up_to(state: AppState, auth: AuthorizationRequest, who: SignedIn) -> StepUp | None:
    """What the session must be stepped up to; None if nothing.

    One rule for every way of asking. OIDC Core §3.1.2.1: ``acr_values`` is voluntary, so the
    strongest class asked for is met when it can be: the session's sign-in does not reach it
    and the user has a factor that does; else the strongest the user can reach, if the session
    does not reach that either; a user without a second factor gets the password class, which
    the ID token's ``acr`` says (§2). An essential ``acr`` (§5.5.1.1, the client's
    ``--require-mfa``, IDP_MFA=required: ``AuthorizationRequest.required_acr``) must be met:
    while the session meets none of its classes, the strongest the user can reach; if the user
    can reach none, IDP_MFA=required has them set up an authenticator app when that would do,
    and otherwise the answer is ``unmet_authentication_requirements`` (OpenID Connect Core Unmet
    Authentication Requirements 1.0 §2). The user's factors are read only when the session
    falls short."""
    required = state["settings"].mfa == "required"
    essential = auth.required_acr(mfa_required=required)
    if not acr.short_of(who.amr, auth.wanted_acr, essential):
        return None
    kinds = await second_factors.factor_kinds(state["pool"], who.user_id)
    reachable = acr.reachable(second_factor=kinds.any, passkey=kinds.passkey)
    unmet = essential is not None and not acr.meets_any(who.amr, essential)
    if unmet and acr.strongest(essential or [], reachable) is None:
        if required and not kinds.any and acr.ACR_MFA in (essential or []):
            return StepUp(None)
        error = UnmetAuthenticationRequirementsError("the user cannot reach the acr required")
        raise AuthorizeRedirectError(error, auth)
    target = acr.target(who.amr, auth.acr_values, essential, reachable)
    return None if target is None else StepUp(target)


async def ask_step_up(
    request: Request[AppState],
    auth: AuthorizationRequest,
    who: SignedIn,
    pending: Pending | None,
    target: str,
) -> Response:
    """The second factor only, for the signed-in session (no password again): the request is
    parked (waiting for its login step, which a full sign-in also completes), and the browser
    holds the signed pending state of idp.mfa.challenge naming the user, the request and the
    session the code will upgrade and the class ``target`` it must reach (/login/second-factor
    then updates that session)."""
    state, cookies = request.state, request.state["cookies"]
    login_sid = None if pending is None else pending.login_sid
    token = await _kept(state, auth, "login", pending, login_sid)
    user = await users.by_id(state["pool"], who.user_id)
    if token is None or user is None:
        return error_page(request, 400, *EXPIRED)
    account, _ = await users.for_sign_in(state["pool"], user.email)  # the password's throttle key
    now = state["clock"].now()
    issuing = cookies.pending_sign_ins
    value = issuing.issue(user, account, token, now, sid=who.sid, acr=target)
    response = redirect(SECOND_FACTOR)
    cookies.set(response, cookies.second_factor, value, max_age=int(issuing.ttl.total_seconds()))
    return response


async def ask_enrolment(
    request: Request[AppState], auth: AuthorizationRequest, pending: Pending | None
) -> Response:
    """IDP_MFA=required and the user has no second factor: the request is parked (waiting for
    its login step, the session that signed in for it kept), and /login/enrol has the signed-in
    user set up an authenticator app, which upgrades the session and resumes the request."""
    login_sid = None if pending is None else pending.login_sid
    token = await _kept(request.state, auth, "login", pending, login_sid)
    if token is None:
        return error_page(request, 400, *EXPIRED)
    return redirect(f"{ENROL}?request={token}")


async def resume(request: Request[AppState], token: str | None) -> Pending | None:
    """The parked request named by ``token``, if it is still there."""
    if not token:
        return None
    state = request.state
    found = await authorization_requests.live(state["pool"], digest(token), state["clock"].now())
    if found is None:
        return None
    client = await state["clients"].find(found.client_id)
    if client is None or client.disabled:
        return None
    auth = AuthorizationRequest.from_json(found.params, client)
    return Pending(token, auth, found.waiting_for, found.login_sid)


def waits_for_login(pending: Pending, who: SignedIn | None, now: datetime) -> bool:
    """Whether the request's login step is still to be done for this browser: it was never done,
    or this browser's session is not the one that did it and prompt=login or max_age needs one
    made for the request (OIDC Core §3.1.2.1)."""
    if pending.waiting_for == "login":
        return True
    return needs_login(pending.auth, who, now, signed_in_for_request=pending.signed_in_for_it(who))


async def proceed(
    request: Request[AppState],
    auth: AuthorizationRequest,
    who: SignedIn | None,
    *,
    pending: Pending | None = None,
    consented: bool = False,
) -> Response:
    """Sign-in if needed, then the second factor if ``acr_values`` or an essential ``acr`` asks
    for it (step-up, ``step_up_to``), or its set-up (IDP_MFA=required), then consent if needed,
    then the code. The login step counts as done
    for this request only if ``pending`` records ``who``'s session as having done it. With
    prompt=none, a step to take is an error for the client (OIDC Core §3.1.2.6). ``consented``:
    the user has just allowed this very request (/consent), which a client that must be
    consented to every time (``needs_consent``) must not be asked again."""
    assert auth.client is not None
    state = request.state
    issuer = state["settings"].issuer
    now = state["clock"].now()
    login_done = pending is not None and pending.signed_in_for_it(who)
    if needs_login(auth, who, now, signed_in_for_request=login_done):
        if auth.prompt == "none":
            raise AuthorizeRedirectError(LoginRequiredError("the user must sign in"), auth)
        return await park(request, auth, "login", pending)
    assert who is not None
    step = await step_up_to(state, auth, who)
    if step is not None:
        if auth.prompt == "none":
            error = InteractionRequiredError("the user must give or set up a second factor")
            raise AuthorizeRedirectError(error, auth)
        if step.acr is None:
            return await ask_enrolment(request, auth, pending)
        return await ask_step_up(request, auth, who, pending, step.acr)
    if not consented and needs_consent(
        auth, await consents.granted(state["pool"], who.user_id, auth.client.client_id)
    ):
        if auth.prompt == "none":
            raise AuthorizeRedirectError(ConsentRequiredError("the user must consent"), auth)
        return await park(request, auth, "consent", pending, who.sid if login_done else None)
    async with state["pool"].acquire() as connection, connection.transaction():
        if pending is not None and not await authorization_requests.finish(
            connection, digest(pending.token), now
        ):
            return error_page(request, 400, *EXPIRED)
        code = await issue_code(connection, auth, who, now=now, ttl=state["settings"].auth_code_ttl)
    return redirect(redirect_to_client(auth, issuer, code=code))


def client_finder(state: AppState, ip: str) -> FindClient:
    """Clients by id, metadata documents included (idp.oauth.document_clients); a document that
    cannot be used is an error page, never a redirect: none of its redirect URIs is trusted
    (RFC 6749 §4.1.2.1; draft-ietf-oauth-client-id-metadata-document §4.3)."""

    async def find(client_id: str) -> Client | None:
        try:
            return await state["client_documents"].find(client_id, ip=ip)
        except DocumentError as error:
            raise AuthorizePageError(
                "This application's metadata document was refused", str(error)
            ) from None
        except TooManyFetchesError as error:
            raise AuthorizePageError(
                "Too many requests",
                str(error),
                status_code=429,
                retry_after=error.retry_after,
            ) from None

    return find


async def authorize(request: Request[AppState]) -> Response:
    """Errors of the request are raised to idp.web.errors: a page, or back to the client."""
    state = request.state
    try:
        params = read_query(request)
    except OAuthError:
        raise AuthorizePageError(
            "Invalid request", "The request has too many parameters."
        ) from None
    auth = await check_request(
        params,
        client_finder(state, client_ip(request)),
        state["settings"].issuer,
        state["token_context"].resources.allowed,
    )
    return await proceed(request, auth, await signed_in(request))
