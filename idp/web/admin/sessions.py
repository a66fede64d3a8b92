"""``/admin/v1/users/{user_id}/sessions``: a user's sign-in sessions, listed and ended."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from idp.accounts.account_sessions import browser_label
from idp.admin import user_sessions
from idp.admin.users import parse_user_id
from idp.db.grants import RevokedGrants
from idp.db.sessions import ListedSession
from idp.web.account_session import services_of
from idp.web.admin.api import Answer, Call, Operation, Reply
from idp.web.admin.types import NextCursor, PageQuery

TAG = "sessions"


class SessionOut(Reply):
    sid: str = Field(description="The session's id: the sid claim of its ID tokens")
    browser: str = Field(description="A short name for its User-Agent")
    user_agent: str | None
    ip: str | None
    signed_in_at: datetime
    auth_time: datetime
    last_seen_at: datetime | None
    expires_at: datetime

    @classmethod
    def of(cls, session: ListedSession) -> SessionOut:
        return cls(
            sid=session.sid,
            browser=browser_label(session.user_agent),
            user_agent=session.user_agent,
            ip=session.ip,
            signed_in_at=session.created_at,
            auth_time=session.auth_time,
            last_seen_at=session.last_seen_at,
            expires_at=session.expires_at,
        )


class SessionList(Reply):
    items: list[SessionOut]
    next_cursor: NextCursor


class Revoked(Reply):
    """What a change ended: sign-in sessions, refresh families, access tokens deny-listed (ending
    sessions here; disabling a user, a new password or a reset of second factors in users)."""

    sessions: int
    refresh_families: int
    access_tokens: int = Field(description="Access tokens newly deny-listed")

    @classmethod
    def of(cls, revoked: RevokedGrants) -> Revoked:
        return cls(**revoked.as_details())


async def list_user_sessions(call: Call) -> Answer:
    query = call.query_as(PageQuery)
    found = await user_sessions.page(
        call.state["pool"],
        call.state["clock"],
        parse_user_id(call.path["user_id"]),
        limit=query.limit,
        cursor=query.cursor,
    )
    items = [SessionOut.of(session) for session in found.sessions]
    return Answer(SessionList(items=items, next_cursor=found.next_cursor))


async def end_user_session(call: Call) -> Answer:
    """As the user's own "end session": the refresh tokens its sign-ins got end with it."""
    await user_sessions.end(
        services_of(call.state),
        call.state["clock"],
        actor=call.caller.actor,
        user_id=parse_user_id(call.path["user_id"]),
        sid=call.path["sid"],
    )
    return Answer(status=204)


async def end_user_sessions(call: Call) -> Answer:
    """Every session, refresh token and live access token of the user: a cut-off."""
    user_id = parse_user_id(call.path["user_id"])
    async with call.state["pool"].acquire() as connection:
        revoked = await user_sessions.end_all(
            connection,
            user_id,
            settings=call.state["settings"],
            clock=call.state["clock"],
            actor=call.caller.actor,
        )
    return Answer(Revoked.of(revoked))


_ALL = "/users/{user_id}/sessions"
OPERATIONS = [
    Operation("GET", _ALL, list_user_sessions, "List a user's live sessions", TAG, write=False,
              query=PageQuery, reply=SessionList, problems=(404,)),
    Operation("DELETE", _ALL, end_user_sessions, "End every session of a user", TAG,
              write=True, reply=Revoked, problems=(404,)),
    Operation("DELETE", _ALL + "/{sid}", end_user_session, "End one session of a user", TAG,
              write=True, status=204, problems=(404,)),
]  # fmt: skip
