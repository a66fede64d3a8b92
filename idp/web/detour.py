"""The authorization request survives a detour through the mailbox: a sign-up (or a resend)
keeps what restarts it in its mail token (``resume``), and the verification parks a new request
at the login step from it. The parked request itself lives minutes (PENDING_TTL); the mail's
link a day, so the request is carried, not its token."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from idp.oauth.authorize import AuthorizationRequest
from idp.web.authorize import Pending, new_pending
from idp.web.state import AppState


def carried(pending: Pending | None) -> dict[str, Any] | None:
    """What a mail token keeps of the parked request ``pending``."""
    if pending is None:
        return None
    assert pending.auth.client is not None
    return {"client_id": pending.auth.client.client_id, "params": pending.auth.to_json()}


async def rejoin(request: Request[AppState], resume: dict[str, Any] | None) -> str | None:
    """The token of a new request parked at the login step from ``resume``; None if there is
    nothing to go back to (no request, the client gone or disabled, its redirect URI no longer
    registered: RFC 6749 §3.1.2.3 holds at every step)."""
    if resume is None:
        return None
    state = request.state
    client_id, params = resume.get("client_id"), resume.get("params")
    if not isinstance(client_id, str) or not isinstance(params, dict):
        return None
    client = await state["clients"].find(client_id)
    if client is None or client.disabled:
        return None
    try:
        auth = AuthorizationRequest.from_json(params, client)
    except (KeyError, TypeError):
        return None
    if auth.redirect_uri not in client.redirect_uris:
        return None
    return await new_pending(state, auth, "login", state["clock"].now())
