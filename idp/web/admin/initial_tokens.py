"""``/admin/v1/initial-tokens``: RFC 7591 §3 initial access tokens for ``IDP_DCR=token``
(``idp clients initial-token``). The token is in the 201 answer only; idp stores its digest."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated
from uuid import UUID

from pydantic import Field, StrictInt

from idp.admin import initial_tokens
from idp.db.registrations import InitialTokenRecord
from idp.web.admin.api import PREFIX, Answer, Body, Call, Operation, Reply
from idp.web.admin.types import NextCursor, PageQuery

TAG = "initial-tokens"
_MAX_SECONDS = int(initial_tokens.MAX_TTL.total_seconds())


class InitialTokenOut(Reply):
    id: UUID
    created_at: datetime
    expires_at: datetime
    uses_left: int | None = Field(description="Registrations it may still make; null: any")
    created_by: str = Field(description="The actor who issued it")

    @classmethod
    def of(cls, record: InitialTokenRecord) -> InitialTokenOut:
        return cls(
            id=record.id,
            created_at=record.created_at,
            expires_at=record.expires_at,
            uses_left=record.uses_left,
            created_by=record.created_by,
        )


class InitialTokenIssued(InitialTokenOut):
    token: str = Field(
        description="Shown only in this answer: a program sends it as Bearer to /oauth2/register"
    )


class InitialTokenList(Reply):
    items: list[InitialTokenOut] = Field(
        description="Newest first; expired and used-up ones until the janitor deletes them"
    )
    next_cursor: NextCursor


class InitialTokenCreate(Body):
    expires_in: Annotated[StrictInt, Field(ge=1, le=_MAX_SECONDS)] = Field(
        default=int(initial_tokens.DEFAULT_TTL.total_seconds()),
        description="Seconds until it expires (idp clients initial-token --expires)",
    )
    uses: Annotated[StrictInt, Field(ge=1, le=2**31 - 1)] | None = Field(
        default=None, description="Registrations it may make; null: any until it expires"
    )


async def list_initial_tokens(call: Call) -> Answer:
    query = call.query_as(PageQuery)
    found = await initial_tokens.page(call.state["pool"], limit=query.limit, cursor=query.cursor)
    return Answer(
        InitialTokenList(
            items=[InitialTokenOut.of(token) for token in found.tokens],
            next_cursor=found.next_cursor,
        )
    )


async def get_initial_token(call: Call) -> Answer:
    token_id = initial_tokens.parse_id(call.path["token_id"])
    return Answer(InitialTokenOut.of(await initial_tokens.get(call.state["pool"], token_id)))


async def issue_initial_token(call: Call) -> Answer:
    """As ``idp clients initial-token``: the token is in this answer only."""
    body = call.body_as(InitialTokenCreate)
    issued = await initial_tokens.issue(
        call.state["pool"],
        now=call.state["clock"].now(),
        ttl=timedelta(seconds=body.expires_in),
        uses=body.uses,
        actor=call.caller.actor,
    )
    reply = InitialTokenIssued(**InitialTokenOut.of(issued.record).model_dump(), token=issued.token)
    return Answer(reply, 201, {"Location": f"{PREFIX}/initial-tokens/{issued.record.id}"})


async def revoke_initial_token(call: Call) -> Answer:
    """No registration can use it from now on."""
    await initial_tokens.revoke(
        call.state["pool"],
        initial_tokens.parse_id(call.path["token_id"]),
        now=call.state["clock"].now(),
        actor=call.caller.actor,
    )
    return Answer(status=204)


_ONE = "/initial-tokens/{token_id}"
OPERATIONS = [
    Operation("GET", "/initial-tokens", list_initial_tokens, "List initial access tokens", TAG,
              write=False, query=PageQuery, reply=InitialTokenList),
    Operation("POST", "/initial-tokens", issue_initial_token, "Issue an initial access token",
              TAG, write=True, status=201, body=InitialTokenCreate, reply=InitialTokenIssued),
    Operation("GET", _ONE, get_initial_token, "Get an initial access token", TAG, write=False,
              reply=InitialTokenOut, problems=(404,)),
    Operation("DELETE", _ONE, revoke_initial_token, "Revoke an initial access token", TAG,
              write=True, status=204, problems=(404,)),
]  # fmt: skip
