"""``/admin/v1/keys``: the signing keys, their rotation and their revocation (``idp keys``),
one key's or, in an incident, every key's."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field

from idp.admin import keys
from idp.admin.keys import KeyInfo
from idp.keys.manager import Applied
from idp.web.admin.api import Answer, Body, Call, Operation, Reply
from idp.web.admin.types import Reason

TAG = "keys"


class KeyOut(Reply):
    kid: str
    alg: str
    state: str = Field(description="pending, active, retiring, retired or revoked")
    created_at: datetime
    activated_at: datetime | None
    retired_at: datetime | None
    revoked_at: datetime | None
    revoked_reason: str | None

    @classmethod
    def of(cls, key: KeyInfo) -> KeyOut:
        return cls(
            kid=key.kid,
            alg=key.alg,
            state=key.state,
            created_at=key.created_at,
            activated_at=key.activated_at,
            retired_at=key.retired_at,
            revoked_at=key.revoked_at,
            revoked_reason=key.revoked_reason,
        )


class KeyList(Reply):
    items: list[KeyOut] = Field(description="Every key, oldest first (a few: not paged)")


class RotateKeys(Body):
    force: bool = Field(
        default=False,
        description="Rotate even if a verifier may not hold the next key yet (idp keys rotate "
        "--force): verifiers meet an unknown kid and fetch the JWKS again",
    )


class Rotated(Reply):
    kid: str = Field(description="The key that signs from now")
    forced: bool


class RevokeKey(Body):
    reason: Reason = Field(description="Why; kept in the audit log")


def _exactly_true(value: object) -> object:
    """A confirmation is JSON true itself: pydantic's Literal[True] would take 1 and "true"."""
    if value is not True:
        raise ValueError("must be true: it confirms that every key is revoked")
    return value


class RevokeAllKeys(Body):
    """The confirmation ``idp keys revoke --all`` asks for at the terminal, in the body."""

    all: Annotated[Literal[True], BeforeValidator(_exactly_true)] = Field(
        description="Must be true: every key, pending ones included, leaves the JWKS now"
    )
    reason: Reason = Field(description="Why; kept in the audit log")


class KeyChange(Reply):
    change: str = Field(description="createkey, promote, demote, retire or revoke")
    kid: str


class KeyRevoked(Reply):
    changes: list[KeyChange]


async def list_keys(call: Call) -> Answer:
    found = await keys.list_keys(call.state["pool"])
    return Answer(KeyList(items=[KeyOut.of(key) for key in found]))


async def rotate_keys(call: Call) -> Answer:
    """As ``idp keys rotate``: 409, with ``retry_at``, while it is too early (without force)."""
    body = call.body_as(RotateKeys)
    rotation = await keys.rotate(
        call.state["keys"], actor=call.caller.actor, force=body.force, override='"force": true'
    )
    return Answer(Rotated(kid=rotation.kid, forced=rotation.forced))


async def revoke_key(call: Call) -> Answer:
    """As ``idp keys revoke KID`` (and ``scripts/revoke-key``): the key leaves every JWKS now."""
    body = call.body_as(RevokeKey)
    applied = await keys.revoke(
        call.state["keys"], call.state["pool"], call.path["kid"], body.reason,
        actor=call.caller.actor,
    )  # fmt: skip
    return Answer(_revoked(applied))


def _revoked(applied: list[Applied]) -> KeyRevoked:
    return KeyRevoked(
        changes=[
            KeyChange(change=type(item.transition).__name__.lower(), kid=item.kid)
            for item in applied
        ]
    )


async def revoke_all_keys(call: Call) -> Answer:
    """As ``idp keys revoke --all``, for an incident in which every key may be known to someone
    else (the key-encryption key or the database leaked): every published key leaves every
    JWKS now and a new key signs. Every access and ID token signed so far stops verifying
    (this call's own too) once verifiers refetch the JWKS; refresh tokens are not signed, and
    get new access tokens signed by the new key."""
    body = call.body_as(RevokeAllKeys)
    applied = await keys.revoke(
        call.state["keys"], call.state["pool"], None, body.reason, actor=call.caller.actor
    )
    return Answer(_revoked(applied))


OPERATIONS = [
    Operation("GET", "/keys", list_keys, "List the signing keys", TAG, write=False,
              reply=KeyList),
    Operation("POST", "/keys/rotate", rotate_keys, "Rotate the signing key", TAG, write=True,
              body=RotateKeys, reply=Rotated, problems=(409,)),
    Operation("POST", "/keys/{kid}/revoke", revoke_key, "Revoke a signing key", TAG,
              write=True, body=RevokeKey, reply=KeyRevoked, problems=(404, 409, 422)),
    Operation("POST", "/keys/revoke", revoke_all_keys, "Revoke every signing key", TAG,
              write=True, body=RevokeAllKeys, reply=KeyRevoked, problems=(422,)),
]  # fmt: skip
