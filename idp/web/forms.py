"""Reading requests strictly: ``application/x-www-form-urlencoded`` bodies (RFC 6749 §3.2,
Appendix B), JSON bodies (the management API, RFC 7591 registration) and the Bearer token of
the Authorization header (RFC 6750 §2.1)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request

from idp.oauth.errors import InvalidRequestError
from idp.oauth.params import Params

MAX_BODY_BYTES = 16 * 1024
MAX_FIELDS = 64
FORM = "application/x-www-form-urlencoded"
JSON = "application/json"


class BodyError(ValueError):
    """A body that was not read, with a sentence for the client; each endpoint answers it in
    its own error shape."""


class MediaTypeError(BodyError):
    pass


class TooLargeError(BodyError):
    pass


def media_type(request: Request[Any]) -> str:
    return request.headers.get("content-type", "").partition(";")[0].strip().lower()


async def read_body(request: Request[Any], max_bytes: int) -> bytes:
    """The body, read no further than ``max_bytes``: TooLargeError past it."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_bytes:
            raise TooLargeError(f"the body is larger than {max_bytes} bytes")
    return bytes(body)


async def read_json(request: Request[Any], max_bytes: int) -> Any:
    """The JSON value of an ``application/json`` body of at most ``max_bytes``; BodyError
    (MediaTypeError, TooLargeError) otherwise."""
    if media_type(request) != JSON:
        raise MediaTypeError(f"send the body as {JSON}")
    body = await read_body(request, max_bytes)
    try:
        return json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise BodyError("the body is not valid UTF-8 JSON") from None


def bearer_header(request: Request[Any]) -> str | None:
    """The token of ``Authorization: Bearer <token>`` (RFC 6750 §2.1); None for no header,
    another scheme or an empty token."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


async def read_form(request: Request[Any]) -> Params:
    if media_type(request) != FORM:
        raise InvalidRequestError(f"the request body must be {FORM}")
    try:
        body = await read_body(request, MAX_BODY_BYTES)
    except TooLargeError:
        raise InvalidRequestError("the request body is too large") from None
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
