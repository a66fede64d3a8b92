"""The management API's operations: one table (``idp.web.admin.routes.OPERATIONS``) from which
both the routes and the OpenAPI document (``idp.web.admin.openapi``) are made.

An :class:`Operation` names its method and path, the typed models of its query, body and
answer, and whether it writes. ``route`` turns it into a Starlette route whose endpoint does
what every operation needs, in order: authenticate the Bearer token (``idp.admin.caller``),
refuse a read-only token on a write, validate the query and the JSON body against the models,
call the handler, and answer JSON; any :class:`ProblemError` becomes RFC 9457 problem details.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from idp.admin.caller import Caller, authenticate, require_write
from idp.admin.problems import (
    InvalidRequestProblem,
    NotFoundProblem,
    PreconditionFailedProblem,
    PreconditionRequiredProblem,
    ProblemError,
    UnauthorizedProblem,
)
from idp.web.errors import NO_STORE
from idp.web.forms import BodyError, bearer_header, read_json
from idp.web.state import AppState

PREFIX = "/admin/v1"
PROBLEM_JSON = "application/problem+json"
MAX_BODY_BYTES = 64 * 1024
_PATH_PARAM = re.compile(r"{(\w+)}")

Model = TypeVar("Model", bound=BaseModel)


class Body(BaseModel):
    """Every request body: unknown members are refused, so a typo is not silently ignored."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


def _absent_not_null(schema: dict[str, Any]) -> None:
    """The schema of a member that may be left out but not null: no ``default: null``."""
    for member in schema.get("properties", {}).values():
        if member.get("default", ...) is None and "anyOf" not in member:
            del member["default"]


class Patch(Body):
    """A JSON merge patch (RFC 7396) body: a member left out stays as it is. A member that may
    be left out but not null (``X | SkipJsonSchema[None] = None``) has no ``default: null`` in
    the schema."""

    model_config = ConfigDict(**Body.model_config, json_schema_extra=_absent_not_null)


class Reply(BaseModel):
    """Every answer body."""


@dataclass(frozen=True)
class Answer:
    """What a handler returns: a model (or nothing, 204) with its status and headers."""

    body: BaseModel | None = None
    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Call:
    """One validated request, as a handler sees it."""

    state: AppState
    caller: Caller
    path: Mapping[str, str]
    query: BaseModel | None
    body: BaseModel | None
    if_match: str | None

    def body_as(self, model: type[Model]) -> Model:
        assert isinstance(self.body, model)
        return self.body

    def query_as(self, model: type[Model]) -> Model:
        assert isinstance(self.query, model)
        return self.query

    def require_match(self, current_etag: str) -> None:
        """RFC 9110 §13.1.1: the update applies only to the representation the caller read.
        Updates must send If-Match (RFC 6585 §3: 428), so that two writers never overwrite each
        other unknowingly."""
        if self.if_match is None:
            raise PreconditionRequiredProblem("send If-Match with the ETag of a GET of it")
        offered = [tag.strip() for tag in self.if_match.split(",")]
        if "*" not in offered and current_etag not in offered:
            raise PreconditionFailedProblem(
                "it changed since you read it: GET it again and retry with the new ETag"
            )


Handler = Callable[[Call], Awaitable[Answer]]


@dataclass(frozen=True)
class Operation:
    method: str
    path: str  # under PREFIX, e.g. "/users/{user_id}"
    handler: Handler
    summary: str
    tag: str
    write: bool
    status: int = 200  # the success status the document names
    query: type[BaseModel] | None = None
    body: type[BaseModel] | None = None
    reply: type[BaseModel] | None = None
    etag: bool = False  # answers carry an ETag; a write needs If-Match
    problems: tuple[int, ...] = ()  # statuses beyond 400/401/403 it may answer

    @property
    def operation_id(self) -> str:
        return self.handler.__name__

    @property
    def path_params(self) -> list[str]:
        return _PATH_PARAM.findall(self.path)


def etag_of(reply: BaseModel) -> str:
    """A strong ETag (RFC 9110 §8.8.3): the digest of the representation itself, so it changes
    exactly when what a GET shows changes, and needs no version column."""
    return _etag(reply.model_dump_json().encode())


def _etag(representation: bytes) -> str:
    return f'"{hashlib.sha256(representation).hexdigest()[:32]}"'


def problem_response(problem: ProblemError, instance: str) -> Response:
    headers = dict(NO_STORE)
    if isinstance(problem, UnauthorizedProblem):
        # RFC 6750 §3: a 401 names the scheme; invalid_token when a token was sent.
        headers["WWW-Authenticate"] = 'Bearer realm="idp-admin", error="invalid_token"'
    return Response(
        json.dumps(problem.body(instance), separators=(",", ":"), ensure_ascii=False),
        status_code=problem.status,
        media_type=PROBLEM_JSON,
        headers=headers,
    )


def _validation_problem(where: str, error: ValidationError) -> InvalidRequestProblem:
    issues = [
        {
            "pointer": "/" + "/".join(str(part) for part in issue["loc"]),
            "detail": issue["msg"],
        }
        for issue in error.errors(include_url=False, include_input=False)
    ]
    first = issues[0] if issues else {"pointer": "", "detail": "invalid"}
    return InvalidRequestProblem(
        f"{where} {first['pointer'] or ''}: {first['detail']}".replace("  ", " "),
        errors=issues,
    )


async def _read_json(request: Request[AppState]) -> Any:
    try:
        return await read_json(request, MAX_BODY_BYTES)
    except BodyError as error:
        raise InvalidRequestProblem(str(error)) from None


def _path_params(request: Request[AppState]) -> dict[str, str]:
    """The path's identifiers. One with a control character names nothing that can exist (the
    database cannot even hold NUL): 404 without asking it."""
    params = {name: str(value) for name, value in request.path_params.items()}
    for name, value in params.items():
        if not value.isprintable():
            raise NotFoundProblem(f"no such {name.removesuffix('_id')}: {value!r}")
    return params


def _query(request: Request[AppState], model: type[BaseModel] | None) -> BaseModel | None:
    if model is None:
        return None
    values: dict[str, str] = {}
    for name, value in request.query_params.multi_items():
        if name in values:
            raise InvalidRequestProblem(f"query parameter {name} is repeated")
        values[name] = value
    unknown = set(values) - set(model.model_fields)
    if unknown:
        raise InvalidRequestProblem(f"unknown query parameter {sorted(unknown)[0]}")
    try:
        return model.model_validate(values)
    except ValidationError as error:
        raise _validation_problem("query", error) from None


def route(operation: Operation) -> Route:
    async def endpoint(request: Request[AppState]) -> Response:
        state = request.state
        try:
            caller = await authenticate(
                bearer_header(request), state["token_context"], state["clients"]
            )
            if operation.write:
                require_write(caller)
            query = _query(request, operation.query)
            body = None
            if operation.body is not None:
                try:
                    body = operation.body.model_validate(await _read_json(request))
                except ValidationError as error:
                    raise _validation_problem("body", error) from None
            call = Call(
                state=state,
                caller=caller,
                path=_path_params(request),
                query=query,
                body=body,
                if_match=request.headers.get("if-match"),
            )
            answer = await operation.handler(call)
        except ProblemError as problem:
            return problem_response(problem, request.url.path)
        if answer.body is None:
            return Response(status_code=answer.status, headers={**NO_STORE, **answer.headers})
        # pydantic-core writes the JSON itself: no dict of dicts in between.
        representation = answer.body.model_dump_json().encode()
        headers = {**NO_STORE, **answer.headers}
        if operation.etag and "ETag" not in headers:
            headers["ETag"] = _etag(representation)
        return Response(
            representation, answer.status, headers=headers, media_type="application/json"
        )

    endpoint.__name__ = operation.operation_id
    return Route(PREFIX + operation.path, endpoint, methods=[operation.method])
