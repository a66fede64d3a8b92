"""``/admin/v1/users``: the users operators manage."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Self

from pydantic import Field, StrictBool, model_validator
from pydantic.json_schema import SkipJsonSchema

from idp.accounts.password_policy import MAX_LENGTH
from idp.admin import users
from idp.admin.users import UserChanges, UserFilter, parse_user_id
from idp.db.users import User
from idp.web.admin.api import Answer, Body, Call, Operation, Patch, Reply, etag_of
from idp.web.admin.sessions import Revoked
from idp.web.admin.types import Email, Name, NextCursor, PageQuery, Role

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
    next_cursor: NextCursor


class UserQuery(PageQuery):
    email_prefix: Name | None = Field(default=None, description="Addresses starting with it")
    role: Role | None = None
    disabled: bool | None = None


class UserCreate(Body):
    email: Email
    name: Name | None = None
    roles: list[Role] = Field(default_factory=list, max_length=32)
    email_verified: bool = False


class UserUpdate(Patch):
    """A JSON merge patch (RFC 7396) of the user: members left out stay as they are; ``name``
    may be null (no name). A new ``email`` is unverified unless ``email_verified`` says so."""

    # Absent: unchanged. Not nullable (null is refused, and the schema does not offer it): a
    # user always has these.
    email: Email | SkipJsonSchema[None] = None
    name: Name | None = None
    roles: Annotated[list[Role], Field(max_length=32)] | SkipJsonSchema[None] = None
    email_verified: StrictBool | SkipJsonSchema[None] = None

    @model_validator(mode="after")
    def _only_name_is_nullable(self) -> Self:
        for member in ("email", "roles", "email_verified"):
            if member in self.model_fields_set and getattr(self, member) is None:
                raise ValueError(f"{member} may be left out, not null")
        return self


# Checked by the password policy (422); bounded here so that no body costs more to hash.
Password = Annotated[
    str, Field(min_length=1, max_length=4 * MAX_LENGTH, pattern=r"^[^\x00-\x1f\x7f-\x9f]*$")
]


class PasswordSet(Body):
    password: Password


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


async def update_user(call: Call) -> Answer:
    """RFC 9110 §13.1.1: applied only if If-Match names the ETag of the user as they are now,
    read under a row lock, so that two writers never overwrite each other unknowingly. Roles
    without ``admin`` for the last enabled user holding it: 409 ``urn:idp:problem:last-admin``."""
    body = call.body_as(UserUpdate)
    user_id = parse_user_id(call.path["user_id"])
    given: dict[str, Any] = {member: getattr(body, member) for member in body.model_fields_set}
    if "roles" in given:
        given["roles"] = list(given["roles"])

    def precondition(current: User) -> None:
        call.require_match(etag_of(UserOut.of(current)))

    async with call.state["pool"].acquire() as connection:
        user = await users.update(
            connection,
            user_id,
            UserChanges(**given),
            clock=call.state["clock"],
            actor=call.caller.actor,
            precondition=precondition,
        )
    return user_answer(user)


async def _set_disabled(call: Call, disabled: bool) -> Answer:
    user_id = parse_user_id(call.path["user_id"])
    async with call.state["pool"].acquire() as connection:
        user = await users.set_disabled(
            connection,
            user_id,
            disabled,
            settings=call.state["settings"],
            clock=call.state["clock"],
            actor=call.caller.actor,
        )
    return user_answer(user)


async def disable_user(call: Call) -> Answer:
    """No more sign-in; every session and refresh token ends now, access tokens deny-listed.
    409 (``urn:idp:problem:last-admin``) for the last enabled user with the admin role."""
    return await _set_disabled(call, True)


async def enable_user(call: Call) -> Answer:
    return await _set_disabled(call, False)


async def set_user_password(call: Call) -> Answer:
    """The password policy applies (422 lists what it breaks); every session and refresh token
    of the user ends, and they are told by mail."""
    body = call.body_as(PasswordSet)
    state = call.state
    user = await users.get(state["pool"], parse_user_id(call.path["user_id"]))
    hashed = await users.hash_password(state["passwords"], state["settings"], user, body.password)
    async with state["pool"].acquire() as connection:
        _, revoked = await users.set_password(
            connection,
            user.id,
            hashed,
            settings=state["settings"],
            clock=state["clock"],
            actor=call.caller.actor,
            mailing=state["mailing"],
        )
    return Answer(Revoked.of(revoked))


async def send_reset_mail(call: Call) -> Answer:
    """Queue a mail with a link to choose a new password (422 for a disabled user)."""
    user_id = parse_user_id(call.path["user_id"])
    async with call.state["pool"].acquire() as connection:
        await users.send_reset_mail(
            connection,
            user_id,
            clock=call.state["clock"],
            actor=call.caller.actor,
            mailing=call.state["mailing"],
        )
    return Answer(None, 202)


async def send_invitation(call: Call) -> Answer:
    """Queue the invitation mail again with a new link, voiding the earlier one (409 for a user
    who has a password)."""
    user_id = parse_user_id(call.path["user_id"])
    async with call.state["pool"].acquire() as connection:
        await users.send_invitation(
            connection,
            user_id,
            clock=call.state["clock"],
            actor=call.caller.actor,
            mailing=call.state["mailing"],
        )
    return Answer(None, 202)


async def reset_user_mfa(call: Call) -> Answer:
    """Remove every second factor (app, recovery codes, passkeys); sessions end; mail told."""
    user_id = parse_user_id(call.path["user_id"])
    async with call.state["pool"].acquire() as connection:
        _, revoked = await users.reset_second_factors(
            connection,
            user_id,
            settings=call.state["settings"],
            clock=call.state["clock"],
            actor=call.caller.actor,
            mailing=call.state["mailing"],
        )
    return Answer(Revoked.of(revoked))


async def delete_user(call: Call) -> Answer:
    """The user and their sessions, consents, codes, refresh tokens, mail links, second factors
    and passkeys; their access tokens are deny-listed. 409 (``urn:idp:problem:last-admin``) for
    the last enabled user with the admin role."""
    user_id = parse_user_id(call.path["user_id"])
    async with call.state["pool"].acquire() as connection:
        await users.delete(
            connection,
            user_id,
            settings=call.state["settings"],
            clock=call.state["clock"],
            actor=call.caller.actor,
        )
    return Answer(None, 204)


OPERATIONS = [
    Operation("GET", "/users", list_users, "List users", TAG, write=False,
              query=UserQuery, reply=UserList),
    Operation("POST", "/users", create_user, "Create a user", TAG, write=True, status=201,
              body=UserCreate, reply=UserOut, etag=True, problems=(409, 422)),
    Operation("GET", "/users/{user_id}", get_user, "Get a user", TAG, write=False,
              reply=UserOut, etag=True, problems=(404,)),
    Operation("PATCH", "/users/{user_id}", update_user, "Update a user", TAG, write=True,
              body=UserUpdate, reply=UserOut, etag=True, problems=(404, 409, 412, 422, 428)),
    Operation("DELETE", "/users/{user_id}", delete_user, "Delete a user", TAG, write=True,
              status=204, problems=(404, 409)),
    Operation("POST", "/users/{user_id}/disable", disable_user, "Disable a user", TAG,
              write=True, reply=UserOut, etag=True, problems=(404, 409)),
    Operation("POST", "/users/{user_id}/enable", enable_user, "Enable a user", TAG, write=True,
              reply=UserOut, etag=True, problems=(404,)),
    Operation("POST", "/users/{user_id}/password", set_user_password, "Set a user's password",
              TAG, write=True, body=PasswordSet, reply=Revoked, problems=(404, 422)),
    Operation("POST", "/users/{user_id}/reset-mail", send_reset_mail,
              "Mail a user a password reset link", TAG, write=True, status=202,
              problems=(404, 422)),
    Operation("POST", "/users/{user_id}/invitation", send_invitation,
              "Mail a user their invitation again", TAG, write=True, status=202,
              problems=(404, 409)),
    Operation("POST", "/users/{user_id}/mfa-reset", reset_user_mfa,
              "Remove a user's second factors", TAG, write=True, reply=Revoked, problems=(404,)),
]  # fmt: skip
