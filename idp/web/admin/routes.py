"""The management API's operation table (the one source of its routes and its OpenAPI
document), and the routes made from it, mounted when ``IDP_ADMIN_API=on``."""

from __future__ import annotations

import functools
import json

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from idp.web.admin import (
    audit,
    clients,
    consents,
    initial_tokens,
    keys,
    resources,
    sessions,
    users,
)
from idp.web.admin.api import PREFIX, Operation, route
from idp.web.admin.openapi import openapi_document
from idp.web.state import AppState

OPERATIONS: list[Operation] = [
    *users.OPERATIONS,
    *clients.OPERATIONS,
    *sessions.OPERATIONS,
    *consents.OPERATIONS,
    *keys.OPERATIONS,
    *resources.OPERATIONS,
    *initial_tokens.OPERATIONS,
    *audit.OPERATIONS,
]


@functools.cache
def _document(issuer: str) -> bytes:
    return json.dumps(openapi_document(OPERATIONS, issuer=issuer), separators=(",", ":")).encode()


async def openapi_json(request: Request[AppState]) -> Response:
    """Public, like discovery: it describes the API, and tells nothing about the data."""
    return Response(
        _document(request.state["settings"].issuer),
        media_type="application/json",
        headers={"Cache-Control": "public, max-age=300"},
    )


admin_routes = [
    Route(PREFIX + "/openapi.json", openapi_json, methods=["GET"]),
    *(route(operation) for operation in OPERATIONS),
]
