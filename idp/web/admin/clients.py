"""``/admin/v1/clients``: the relying apps operators manage."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any, Literal, Self

from pydantic import Field, StrictBool, model_validator
from pydantic.json_schema import SkipJsonSchema

from idp.admin import clients
from idp.admin.clients import Precondition
from idp.db.clients import Client, Registration
from idp.oauth.registration import DEFAULT_SCOPES
from idp.web.admin.api import Answer, Body, Call, Operation, Patch, Reply, etag_of
from idp.web.admin.types import Name, NextCursor, PageQuery, Uri

TAG = "clients"
# RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
Scope = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[\x21\x23-\x5b\x5d-\x7e]+$")]
Seconds = Annotated[int, Field(ge=1, le=10 * 365 * 86400, description="A lifetime in seconds")]
GrantType = Literal["authorization_code", "refresh_token", "client_credentials"]
_MANY = 32
_NULLABLE = {"access_token_ttl", "refresh_token_ttl"}


def _seconds(value: timedelta | None) -> int | None:
    return None if value is None else int(value.total_seconds())


def _duration(value: int | None) -> timedelta | None:
    return None if value is None else timedelta(seconds=value)


class ClientOut(Reply):
    client_id: str
    name: str
    public: bool
    registration: Registration
    first_party: bool
    admin: bool
    require_mfa: bool
    disabled: bool
    grant_types: list[str]
    redirect_uris: list[str]
    post_logout_redirect_uris: list[str]
    scopes: list[str]
    audiences: list[str]
    introspect_audiences: list[str]
    access_token_ttl: int | None = Field(description="Seconds; null: IDP_ACCESS_TOKEN_TTL")
    refresh_token_ttl: int | None = Field(description="Seconds; null: IDP_REFRESH_TOKEN_TTL")
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, client: Client) -> ClientOut:
        return cls(
            client_id=client.client_id,
            name=client.name,
            public=client.public,
            registration=client.registration,
            first_party=client.first_party,
            admin=client.admin,
            require_mfa=client.require_mfa,
            disabled=client.disabled,
            grant_types=list(client.grant_types),
            redirect_uris=list(client.redirect_uris),
            post_logout_redirect_uris=list(client.post_logout_redirect_uris),
            scopes=list(client.scopes),
            audiences=list(client.audiences),
            introspect_audiences=list(client.introspect_audiences),
            access_token_ttl=_seconds(client.access_token_ttl),
            refresh_token_ttl=_seconds(client.refresh_token_ttl),
            created_at=client.created_at,
            updated_at=client.updated_at or client.created_at,
        )


class ClientWithSecret(ClientOut):
    client_secret: str | None = Field(
        description="Shown only in this answer: store it in the client's configuration; "
        "null for a public client"
    )


class ClientList(Reply):
    items: list[ClientOut]
    next_cursor: NextCursor


class ClientCreate(Body):
    name: Name
    grant_types: list[GrantType] = Field(min_length=1, max_length=3)
    redirect_uris: list[Uri] = Field(default_factory=list, max_length=_MANY)
    post_logout_redirect_uris: list[Uri] = Field(default_factory=list, max_length=_MANY)
    scopes: list[Scope] = Field(default_factory=lambda: list(DEFAULT_SCOPES), max_length=_MANY)
    audiences: list[Uri] = Field(default_factory=list, max_length=_MANY)
    introspect_audiences: list[Uri] = Field(default_factory=list, max_length=_MANY)
    public: StrictBool = False
    first_party: StrictBool = False
    require_mfa: StrictBool = False
    admin: StrictBool = Field(default=False, description="May call this API (client_credentials)")
    access_token_ttl: Seconds | None = None
    refresh_token_ttl: Seconds | None = None


class ClientUpdate(Patch):
    """A JSON merge patch (RFC 7396) of the client: members left out stay as they are. Only the
    lifetimes may be null: the server's default then."""

    # Absent: unchanged. Not nullable (null is refused, and the schema does not offer it).
    name: Name | SkipJsonSchema[None] = None
    redirect_uris: Annotated[list[Uri], Field(max_length=_MANY)] | SkipJsonSchema[None] = None
    post_logout_redirect_uris: (
        Annotated[list[Uri], Field(max_length=_MANY)] | SkipJsonSchema[None]
    ) = None
    scopes: Annotated[list[Scope], Field(max_length=_MANY)] | SkipJsonSchema[None] = None
    audiences: Annotated[list[Uri], Field(max_length=_MANY)] | SkipJsonSchema[None] = None
    introspect_audiences: Annotated[list[Uri], Field(max_length=_MANY)] | SkipJsonSchema[None] = (
        None
    )
    first_party: StrictBool | SkipJsonSchema[None] = None
    require_mfa: StrictBool | SkipJsonSchema[None] = None
    access_token_ttl: Seconds | None = None
    refresh_token_ttl: Seconds | None = None

    @model_validator(mode="after")
    def _only_lifetimes_are_nullable(self) -> Self:
        for member in self.model_fields_set - _NULLABLE:
            if getattr(self, member) is None:
                raise ValueError(f"{member} may be left out, not null")
        return self

    def changes(self) -> dict[str, Any]:
        """The members sent, as idp.admin.clients.update takes them."""
        changes: dict[str, Any] = {key: getattr(self, key) for key in self.model_fields_set}
        for key in _NULLABLE & self.model_fields_set:
            changes[key] = _duration(changes[key])
        return changes


def client_answer(client: Client, status: int = 200, secret: str | None = None) -> Answer:
    reply = ClientOut.of(client)
    headers = {"ETag": etag_of(reply)}
    if status == 201:
        headers["Location"] = f"/admin/v1/clients/{client.client_id}"
    if status == 201 or secret is not None:
        reply = ClientWithSecret(**reply.model_dump(), client_secret=secret)
    return Answer(reply, status, headers)


def _forget(call: Call, client_id: str) -> None:
    """Read-your-writes in this process: its ClientRegistry drops the client now, as the NOTIFY
    sent at commit makes every process's do a moment later."""
    call.state["clients"].subscription().on_notify(client_id)


def _matching(call: Call) -> Precondition:
    """If-Match (RFC 9110 §13.1.1) checked against the locked row the change will apply to."""

    def check(client: Client) -> None:
        call.require_match(etag_of(ClientOut.of(client)))

    return check


def _optional_match(call: Call) -> Precondition | None:
    return None if call.if_match is None else _matching(call)


async def list_clients(call: Call) -> Answer:
    query = call.query_as(PageQuery)
    found = await clients.page(call.state["pool"], limit=query.limit, cursor=query.cursor)
    return Answer(
        ClientList(items=[ClientOut.of(c) for c in found.clients], next_cursor=found.next_cursor)
    )


async def get_client(call: Call) -> Answer:
    return client_answer(await clients.get(call.state["pool"], call.path["client_id"]))


async def create_client(call: Call) -> Answer:
    """The secret is in this answer only; idp stores its digest."""
    body = call.body_as(ClientCreate)
    async with call.state["pool"].acquire() as connection:
        created = await clients.create(
            connection,
            clock=call.state["clock"],
            settings=call.state["settings"],
            actor=call.caller.actor,
            name=body.name,
            grant_types=list(body.grant_types),
            redirect_uris=body.redirect_uris,
            post_logout_redirect_uris=body.post_logout_redirect_uris,
            scopes=body.scopes,
            audiences=body.audiences,
            introspect_audiences=body.introspect_audiences,
            public=body.public,
            first_party=body.first_party,
            require_mfa=body.require_mfa,
            admin=body.admin,
            access_token_ttl=_duration(body.access_token_ttl),
            refresh_token_ttl=_duration(body.refresh_token_ttl),
        )
    return client_answer(created.client, 201, created.secret)


async def update_client(call: Call) -> Answer:
    changes = call.body_as(ClientUpdate).changes()
    async with call.state["pool"].acquire() as connection:
        client = await clients.update(
            connection,
            clock=call.state["clock"],
            settings=call.state["settings"],
            actor=call.caller.actor,
            client_id=call.path["client_id"],
            changes=changes,
            precondition=_matching(call),
        )
    _forget(call, client.client_id)
    return client_answer(client)


async def delete_client(call: Call) -> Answer:
    """Its consents, codes, pending requests and refresh families go with it."""
    async with call.state["pool"].acquire() as connection:
        await clients.delete(
            connection,
            clock=call.state["clock"],
            settings=call.state["settings"],
            actor=call.caller.actor,
            client_id=call.path["client_id"],
            precondition=_optional_match(call),
        )
    _forget(call, call.path["client_id"])
    return Answer(status=204)


async def rotate_client_secret(call: Call) -> Answer:
    """The old secret stops working at once; the new one is in this answer only."""
    async with call.state["pool"].acquire() as connection:
        rotated = await clients.rotate_secret(
            connection,
            clock=call.state["clock"],
            actor=call.caller.actor,
            client_id=call.path["client_id"],
            precondition=_optional_match(call),
        )
    _forget(call, rotated.client.client_id)
    return client_answer(rotated.client, secret=rotated.secret)


async def _set_disabled(call: Call, disabled: bool) -> Answer:
    async with call.state["pool"].acquire() as connection:
        client = await clients.set_disabled(
            connection,
            clock=call.state["clock"],
            actor=call.caller.actor,
            client_id=call.path["client_id"],
            disabled=disabled,
        )
    _forget(call, client.client_id)
    return client_answer(client)


async def disable_client(call: Call) -> Answer:
    """Every request of the client is refused from now on, in every process."""
    return await _set_disabled(call, True)


async def enable_client(call: Call) -> Answer:
    return await _set_disabled(call, False)


_ONE = "/clients/{client_id}"
OPERATIONS = [
    Operation("GET", "/clients", list_clients, "List clients", TAG, write=False,
              query=PageQuery, reply=ClientList),
    Operation("POST", "/clients", create_client, "Create a client", TAG, write=True, status=201,
              body=ClientCreate, reply=ClientWithSecret, etag=True, problems=(422,)),
    Operation("GET", _ONE, get_client, "Get a client", TAG, write=False,
              reply=ClientOut, etag=True, problems=(404,)),
    Operation("PATCH", _ONE, update_client, "Change a client", TAG, write=True,
              body=ClientUpdate, reply=ClientOut, etag=True, problems=(404, 412, 422, 428)),
    Operation("DELETE", _ONE, delete_client, "Delete a client and what it holds", TAG,
              write=True, status=204, problems=(404, 412)),
    Operation("POST", _ONE + "/secret", rotate_client_secret, "Give a client a new secret", TAG,
              write=True, reply=ClientWithSecret, etag=True, problems=(404, 409, 412)),
    Operation("POST", _ONE + "/disable", disable_client, "Disable a client", TAG, write=True,
              reply=ClientOut, etag=True, problems=(404,)),
    Operation("POST", _ONE + "/enable", enable_client, "Enable a client", TAG, write=True,
              reply=ClientOut, etag=True, problems=(404,)),
]  # fmt: skip
