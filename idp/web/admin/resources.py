"""``/admin/v1/resources``: the resources (RFC 8707) clients registered by a program may ask
tokens for, beside ``IDP_RESOURCES`` (``idp resources``)."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from pydantic import ConfigDict, Field

from idp.admin import resources
from idp.db.registrations import Resource
from idp.web.admin.api import PREFIX, Answer, Body, Call, Operation, Reply
from idp.web.admin.types import NextCursor, PageQuery, Uri

TAG = "resources"


class ResourceOut(Reply):
    id: UUID
    url: str
    created_at: datetime

    @classmethod
    def of(cls, resource: Resource) -> ResourceOut:
        return cls(id=resource.id, url=resource.url, created_at=resource.created_at)


class ResourceList(Reply):
    items: list[ResourceOut] = Field(description="Those added here, in URL order")
    next_cursor: NextCursor
    configured: list[str] = Field(
        description="IDP_RESOURCES: allowed too, set in the environment, not changed here"
    )


class ResourceCreate(Body):
    model_config = ConfigDict(
        **Body.model_config,
        json_schema_extra={"examples": [{"url": "https://mcp.example.com/mcp"}]},
    )

    url: Uri = Field(description="An absolute http(s) URL without a fragment (RFC 8707 §2)")


def _announced(call: Call) -> None:
    """Read-your-writes in this process: its registry drops what it read now, as the NOTIFY
    sent at commit makes every process's do a moment later."""
    call.state["token_context"].resources.subscription().on_notify("")


async def list_resources(call: Call) -> Answer:
    query = call.query_as(PageQuery)
    found = await resources.page(call.state["pool"], limit=query.limit, cursor=query.cursor)
    return Answer(
        ResourceList(
            items=[ResourceOut.of(resource) for resource in found.resources],
            next_cursor=found.next_cursor,
            configured=list(call.state["settings"].resources),
        )
    )


async def get_resource(call: Call) -> Answer:
    resource_id = resources.parse_id(call.path["resource_id"])
    return Answer(ResourceOut.of(await resources.get(call.state["pool"], resource_id)))


async def add_resource(call: Call) -> Answer:
    """As ``idp resources add URL``; 409 if it is there already."""
    added = await resources.add(
        call.state["pool"],
        call.body_as(ResourceCreate).url,
        now=call.state["clock"].now(),
        actor=call.caller.actor,
    )
    _announced(call)
    return Answer(ResourceOut.of(added), 201, {"Location": f"{PREFIX}/resources/{added.id}"})


async def remove_resource(call: Call) -> Answer:
    """As ``idp resources remove URL``: registered clients may no longer ask for it."""
    await resources.remove(
        call.state["pool"],
        resource_id=resources.parse_id(call.path["resource_id"]),
        now=call.state["clock"].now(),
        actor=call.caller.actor,
    )
    _announced(call)
    return Answer(status=204)


_ONE = "/resources/{resource_id}"
OPERATIONS = [
    Operation("GET", "/resources", list_resources, "List the resources registered clients may "
              "ask tokens for", TAG, write=False, query=PageQuery, reply=ResourceList),
    Operation("POST", "/resources", add_resource, "Allow a resource", TAG, write=True,
              status=201, body=ResourceCreate, reply=ResourceOut, problems=(409,)),
    Operation("GET", _ONE, get_resource, "Get a resource", TAG, write=False, reply=ResourceOut,
              problems=(404,)),
    Operation("DELETE", _ONE, remove_resource, "Stop allowing a resource", TAG, write=True,
              status=204, problems=(404,)),
]  # fmt: skip
