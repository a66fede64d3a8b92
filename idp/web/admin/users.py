"""``/admin/v1/users``: the users operators manage."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from idp.admin import users
from idp.admin.cursors import DEFAULT_LIMIT
from idp.admin.users import UserFilter, parse_user_id
from idp.db.users import User
from idp.web.admin.api import Answer, Body, Call, Operation, Reply, etag_of
from idp.web.admin.types import Cursor, Email, Limit, Name, Role

TAG = "users"


class UserOut(Reply):
    id: str
    email: str
    name: str | None
    email_verified: bool
    roles: list[str]
    disabled: bool
    has_password: bool
    created_at: datetime

    @classmethod
    def of(cls, user: User) -> UserOut:
        return cls(
            id=str(user.id),
            email=user.email,
            name=user.name,
            email_verified=user.email_verified,
            roles=list(user.roles),
            disabled=user.disabled,
            has_password=user.password_hash is not None,
            created_at=user.created_at,
        )


class UserList(Reply):
    items: list[UserOut]
    next_cursor: str | None = Field(description="Pass as cursor for the next page; null: last")


class UserQuery(BaseModel):
    limit: Limit = DEFAULT_LIMIT
    cursor: Cursor | None = None
    email_prefix: Name | None = Field(default=None, description="Addresses starting with it")
    role: Role | None = None
    disabled: bool | None = None


class UserCreate(Body):
    email: Email
    name: Name | None = None
    roles: list[Role] = Field(default_factory=list, max_length=32)
    email_verified: bool = False


def user_answer(user: User, status: int = 200) -> Answer:
    reply = UserOut.of(user)
    headers = {"ETag": etag_of(reply)}
    if status == 201:
        headers["Location"] = f"/admin/v1/users/{user.id}"
    return Answer(reply, status, headers)


async def list_users(call: Call) -> Answer:
    query = call.query_as(UserQuery)
    found = await users.page(
        call.state["pool"],
        limit=query.limit,
        cursor=query.cursor,
        where=UserFilter(email_prefix=query.email_prefix, role=query.role, disabled=query.disabled),
    )
    return Answer(
        UserList(items=[UserOut.of(user) for user in found.users], next_cursor=found.next_cursor)
    )


async def get_user(call: Call) -> Answer:
    return user_answer(await users.get(call.state["pool"], parse_user_id(call.path["user_id"])))


async def create_user(call: Call) -> Answer:
    """A user without a password: they get one through an invitation or a reset mail."""
    body = call.body_as(UserCreate)
    async with call.state["pool"].acquire() as connection:
        user = await users.create(
            connection,
            clock=call.state["clock"],
            actor=call.caller.actor,
            email=body.email,
            name=body.name,
            password_hash=None,
            roles=list(body.roles),
            email_verified=body.email_verified,
        )
    return user_answer(user, 201)


OPERATIONS = [
    Operation("GET", "/users", list_users, "List users", TAG, write=False,
              query=UserQuery, reply=UserList),
    Operation("POST", "/users", create_user, "Create a user", TAG, write=True, status=201,
              body=UserCreate, reply=UserOut, etag=True, problems=(409, 422)),
    Operation("GET", "/users/{user_id}", get_user, "Get a user", TAG, write=False,
              reply=UserOut, etag=True, problems=(404,)),
]  # fmt: skip
