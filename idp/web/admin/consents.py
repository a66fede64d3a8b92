"""``/admin/v1/users/{user_id}/consents``: the apps a user consented to, listed and revoked."""

from __future__ import annotations

from datetime import datetime

from idp.admin import consents
from idp.admin.users import parse_user_id
from idp.db.consents import Consent
from idp.web.account_session import services_of
from idp.web.admin.api import Answer, Call, Operation, Reply
from idp.web.admin.types import NextCursor, PageQuery

TAG = "consents"


class ConsentOut(Reply):
    client_id: str
    client_name: str
    scopes: list[str]
    granted_at: datetime

    @classmethod
    def of(cls, consent: Consent) -> ConsentOut:
        return cls(
            client_id=consent.client_id,
            client_name=consent.client_name,
            scopes=list(consent.scopes),
            granted_at=consent.granted_at,
        )


class ConsentList(Reply):
    items: list[ConsentOut]
    next_cursor: NextCursor


async def list_user_consents(call: Call) -> Answer:
    query = call.query_as(PageQuery)
    found = await consents.page(
        call.state["pool"],
        parse_user_id(call.path["user_id"]),
        limit=query.limit,
        cursor=query.cursor,
    )
    items = [ConsentOut.of(consent) for consent in found.consents]
    return Answer(ConsentList(items=items, next_cursor=found.next_cursor))


async def revoke_user_consent(call: Call) -> Answer:
    """The app asks again next time; its refresh tokens for the user end now."""
    await consents.revoke(
        services_of(call.state),
        call.state["clock"],
        actor=call.caller.actor,
        user_id=parse_user_id(call.path["user_id"]),
        client_id=call.path["client_id"],
    )
    return Answer(status=204)


OPERATIONS = [
    Operation("GET", "/users/{user_id}/consents", list_user_consents,
              "List the apps a user consented to", TAG, write=False,
              query=PageQuery, reply=ConsentList, problems=(404,)),
    Operation("DELETE", "/users/{user_id}/consents/{client_id}", revoke_user_consent,
              "Revoke a user's consent to an app", TAG, write=True, status=204,
              problems=(404,)),
]  # fmt: skip
