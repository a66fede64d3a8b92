"""The OpenAPI 3.1 document of the management API, made from the operation table.

The schemas are pydantic's JSON Schema (draft 2020-12, the dialect OpenAPI 3.1 uses as is); the
paths, parameters and responses come from each :class:`Operation`. Nothing here is written by
hand per endpoint, so the document cannot drift from the routes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from idp.admin.caller import SCOPE_READ, SCOPE_WRITE
from idp.admin.problems import ProblemError
from idp.web.admin.api import PREFIX, PROBLEM_JSON, Operation

REF = "#/components/schemas/{model}"
_PROBLEM_TITLES = {cls.status: cls.title for cls in ProblemError.__subclasses__()}
_ALWAYS = (400, 401, 403)


def _problem_schema() -> dict[str, Any]:
    """RFC 9457 §3.1, with the ``errors`` extension the validation problems carry."""
    return {
        "type": "object",
        "title": "Problem",
        "required": ["type", "title", "status", "detail"],
        "properties": {
            "type": {"type": "string"},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string"},
            "instance": {"type": "string"},
            "retry_at": {
                "type": "string",
                "format": "date-time",
                "description": "When the same request will work (a refused key rotation)",
            },
            "errors": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"pointer": {"type": "string"}, "detail": {"type": "string"}},
                },
            },
        },
    }


def _models(operations: Sequence[Operation]) -> list[tuple[type[BaseModel], Any]]:
    seen: dict[type[BaseModel], Any] = {}
    for operation in operations:
        if operation.body is not None:
            seen.setdefault(operation.body, "validation")
        if operation.reply is not None:
            seen.setdefault(operation.reply, "serialization")
    return list(seen.items())


def _parameters(operation: Operation, schemas: dict[str, Any]) -> list[dict[str, Any]]:
    parameters: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in operation.path_params
    ]
    if operation.query is not None:
        query_schema = operation.query.model_json_schema(ref_template=REF)
        schemas.update(query_schema.pop("$defs", {}))
        required = set(query_schema.get("required", ()))
        for name, schema in query_schema.get("properties", {}).items():
            parameter: dict[str, Any] = {
                "name": name,
                "in": "query",
                "required": name in required,
                "schema": {key: value for key, value in schema.items() if key != "description"},
            }
            if "description" in schema:
                parameter["description"] = schema["description"]
            parameters.append(parameter)
    if operation.etag and operation.write and operation.method in ("PATCH", "PUT"):
        parameters.append(
            {
                "name": "If-Match",
                "in": "header",
                "required": True,
                "description": "The ETag of the representation the change is based on.",
                "schema": {"type": "string"},
            }
        )
    return parameters


def _responses(operation: Operation, refs: dict[Any, Any]) -> dict[str, Any]:
    success: dict[str, Any] = {"description": operation.summary}
    if operation.reply is not None:
        success["content"] = {
            "application/json": {"schema": refs[(operation.reply, "serialization")]}
        }
    if operation.etag:
        success["headers"] = {"ETag": {"schema": {"type": "string"}}}
    responses: dict[str, Any] = {str(operation.status): success}
    # A path's identifier may always name nothing (api._path_params).
    found = (404,) if operation.path_params else ()
    for status in sorted({*_ALWAYS, *found, *operation.problems}):
        responses[str(status)] = {
            "description": _PROBLEM_TITLES.get(status, "Problem"),
            "content": {PROBLEM_JSON: {"schema": {"$ref": REF.format(model="Problem")}}},
        }
    return responses


def openapi_document(operations: Sequence[Operation], *, issuer: str) -> dict[str, Any]:
    refs, definitions = models_json_schema(_models(operations), ref_template=REF)
    schemas: dict[str, Any] = {**definitions.get("$defs", {}), "Problem": _problem_schema()}
    paths: dict[str, Any] = {}
    for operation in operations:
        item: dict[str, Any] = {
            "operationId": operation.operation_id,
            "summary": operation.summary,
            "tags": [operation.tag],
            "parameters": _parameters(operation, schemas),
            "responses": _responses(operation, refs),
            "security": [{"oauth2": [SCOPE_WRITE if operation.write else SCOPE_READ]}],
        }
        if operation.body is not None:
            item["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": refs[(operation.body, "validation")]}},
            }
        paths.setdefault(PREFIX + operation.path, {})[operation.method.lower()] = item
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "idp management API",
            "version": "1",
            "description": (
                "Users, clients, sessions, consents, signing keys, resources (RFC 8707), initial "
                "access tokens (RFC 7591) and the audit log. Bearer "
                f"access tokens from {issuer}/token for the audience {issuer}/admin, with the "
                "scope idp:admin (idp:admin.read for reads). Errors are RFC 9457 problem "
                "details; lists are paged with an opaque cursor; updates need If-Match."
            ),
        },
        "servers": [{"url": issuer}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "oauth2": {
                    "type": "oauth2",
                    "description": f"An idp access token whose aud includes {issuer}/admin.",
                    "flows": {
                        "clientCredentials": {
                            "tokenUrl": f"{issuer}/token",
                            "scopes": {
                                SCOPE_WRITE: "read and change everything",
                                SCOPE_READ: "read only",
                            },
                        }
                    },
                }
            },
        },
    }
