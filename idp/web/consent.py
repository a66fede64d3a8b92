"""``/consent``: a user allows (or denies) a client that is not first-party."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import Response

from idp.audit_trail import audited
from idp.db import consents, users
from idp.oauth.authorize import AuthorizationRequest, AuthorizeRedirectError
from idp.oauth.code_flow import SignedIn, scope_texts
from idp.oauth.errors import AccessDeniedError, OAuthError
from idp.web.authorize import (
    EXPIRED,
    Pending,
    proceed,
    redirect,
    resume,
    signed_in,
    waits_for_login,
)
from idp.web.forms import read_form
from idp.web.state import AppState
from idp.web.templates import error_page, render


async def ready(
    request: Request[AppState], token: str | None
) -> tuple[Pending, SignedIn] | Response:
    """The parked request and the browser's session, or the answer refusing them. Consent is
    reached only once the request's login step is done, by this browser's session (OIDC Core
    §3.1.2.1: prompt=login and max_age cannot be skipped by coming here directly); until then
    the browser is sent to that step, which changes nothing."""
    pending = await resume(request, token)
    who = await signed_in(request)
    if pending is None or who is None:
        return error_page(request, 400, *EXPIRED)
    if waits_for_login(pending, who, request.state["clock"].now()):
        return redirect(f"/login?request={pending.token}")
    return pending, who


def host_of(uri: str) -> str:
    """What the page names for a URI: its host (and port), or for a private-use scheme
    (RFC 8252 §7.1, an app on this device) the scheme."""
    parts = urlsplit(uri)
    if not parts.hostname:
        return parts.scheme
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return host if parts.port is None else f"{host}:{parts.port}"


def client_facts(auth: AuthorizationRequest) -> dict[str, Any]:
    """What the page says about the client beside its name: the host this request returns to;
    for a client a program registered, that it is unverified (its name is its registrant's
    say-so) and, for a metadata document, the host that publishes it
    (draft-ietf-oauth-client-id-metadata-document §6, MCP authorization 2025-11-25)."""
    assert auth.client is not None
    client = auth.client
    return {
        "redirect_host": host_of(auth.redirect_uri),
        "unverified": client.unverified,
        "document_host": (
            host_of(client.client_id) if client.registration == "metadata_document" else None
        ),
    }


async def show_consent(request: Request[AppState]) -> Response:
    found = await ready(request, request.query_params.get("request"))
    if isinstance(found, Response):
        return found
    pending, who = found
    auth = pending.auth
    assert auth.client is not None
    user = await users.by_id(request.state["pool"], who.user_id)
    assert user is not None
    cookies = request.state["cookies"]
    return render(
        request,
        "consent.html",
        client_name=auth.client.name,
        **client_facts(auth),
        email=user.email,
        scope_texts=scope_texts(auth.scopes),
        request_id=pending.token,
        csrf_token=cookies.csrf_token("consent", request.cookies.get(cookies.session, "")),
    )


async def submit_consent(request: Request[AppState]) -> Response:
    state = request.state
    cookies = state["cookies"]
    try:
        form = await read_form(request)
        token, decision, csrf = form.get("request"), form.get("decision"), form.get("csrf_token")
    except OAuthError:
        return error_page(request, 400, "Invalid form", "The form was not sent correctly.")
    if not cookies.csrf_ok("consent", request.cookies.get(cookies.session), csrf):
        return error_page(request, 400, "This form has expired", "Reload the page and try again.")
    found = await ready(request, token)
    if isinstance(found, Response):
        return found
    (pending, who), now = found, state["clock"].now()
    auth, allowed = pending.auth, decision == "allow"
    assert auth.client is not None
    async with state["pool"].acquire() as connection, audited(connection) as trail:
        if allowed:
            await consents.grant(connection, who.user_id, auth.client.client_id, auth.scopes, now)
        await trail.record(
            now=now,
            actor=f"user:{who.user_id}",
            action="consent.granted" if allowed else "consent.denied",
            subject=str(who.user_id),
            details={"client_id": auth.client.client_id, "scopes": auth.scopes},
        )
    if not allowed:
        raise AuthorizeRedirectError(AccessDeniedError("the user denied"), auth)
    return await proceed(request, auth, who, pending=pending, consented=True)
