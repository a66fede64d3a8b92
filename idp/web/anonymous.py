"""The forms someone not signed in posts (sign-in, sign-up, verification, reset, invitation):
their CSRF token is bound to the pre-login cookie, set when the form is shown if the browser has
none yet, and checked against it when the form comes back."""

from __future__ import annotations

import secrets
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from idp.web.state import AppState
from idp.web.templates import render


def form_page(
    request: Request[AppState], template: str, purpose: str, status_code: int = 200, **context: Any
) -> Response:
    """``template`` rendered with ``csrf_token`` for a form of ``purpose``."""
    cookies = request.state["cookies"]
    binding = request.cookies.get(cookies.login) or secrets.token_urlsafe(32)
    csrf_token = cookies.csrf_token(purpose, binding)
    response = render(request, template, status_code, csrf_token=csrf_token, **context)
    cookies.set(response, cookies.login, binding, max_age=None)
    return response


def form_csrf_ok(request: Request[AppState], purpose: str, token: str | None) -> bool:
    cookies = request.state["cookies"]
    return cookies.csrf_ok(purpose, request.cookies.get(cookies.login), token)
