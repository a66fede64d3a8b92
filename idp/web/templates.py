"""Jinja2 pages, always autoescaped and always with the security headers. Templates come from
the operator's ``IDP_TEMPLATES_DIR`` first, then idp's own (idp.templating)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse

from idp.templating import environment
from idp.web.security import HTML_HEADERS


def render(
    request: Request[Any], name: str, status_code: int = 200, **context: Any
) -> HTMLResponse:
    """The page ``name``; the request names the app, whose settings say where templates live
    (outside the lifespan, e.g. an error before it ran, idp's own templates)."""
    settings = request.scope.get("state", {}).get("settings")
    override = None if settings is None else settings.templates_dir
    body = environment(override).get_template(name).render(**context)
    return HTMLResponse(body, status_code=status_code, headers=HTML_HEADERS)


def error_page(request: Request[Any], status_code: int, title: str, detail: str) -> HTMLResponse:
    return render(request, "error.html", status_code, title=title, detail=detail)
