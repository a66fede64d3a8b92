"""Reading ``application/x-www-form-urlencoded`` bodies strictly (RFC 6749 §3.2, Appendix B)."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request

from idp.oauth.errors import InvalidRequestError
from idp.oauth.params import Params

MAX_BODY_BYTES = 16 * 1024
MAX_FIELDS = 64
FORM = "application/x-www-form-urlencoded"


async def read_form(request: Request[Any]) -> Params:
    media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media_type != FORM:
        raise InvalidRequestError(f"the request body must be {FORM}")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise InvalidRequestError("the request body is too large")
    try:
        pairs = parse_qsl(
            body.decode("utf-8"),
            keep_blank_values=True,
            strict_parsing=False,
            errors="strict",
            max_num_fields=MAX_FIELDS,
        )
    except (UnicodeDecodeError, ValueError):
        raise InvalidRequestError("the request body is not valid UTF-8 form data") from None
    return Params(pairs)


def read_query(request: Request[Any], *, max_fields: int = MAX_FIELDS) -> Params:
    """The query string. Bytes that are not UTF-8 stay marked (surrogateescape) for Params to
    refuse, instead of becoming U+FFFD and silently altering, say, the client's state."""
    query = request.scope["query_string"].decode("utf-8", "surrogateescape")
    try:
        pairs = parse_qsl(
            query, keep_blank_values=True, errors="surrogateescape", max_num_fields=max_fields
        )
    except ValueError:
        raise InvalidRequestError("the request has too many parameters") from None
    return Params(pairs)
