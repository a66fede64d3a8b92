"""Jinja2 pages, always autoescaped and always with the security headers."""

from __future__ import annotations

from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.responses import HTMLResponse

from idp.resources import resource_dir
from idp.web.security import HTML_HEADERS

_ENV = Environment(
    loader=FileSystemLoader(resource_dir("templates")),
    autoescape=select_autoescape(default=True),
)


def render(name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    body = _ENV.get_template(name).render(**context)
    return HTMLResponse(body, status_code=status_code, headers=HTML_HEADERS)


def error_page(status_code: int, title: str, detail: str) -> HTMLResponse:
    return render("error.html", status_code, title=title, detail=detail)
