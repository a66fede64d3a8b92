"""Signing keys, as operators manage them (``idp keys ...``, ``scripts/revoke-key`` and
``/admin/v1/keys``). The lifecycle's rules stay in ``idp.keys.lifecycle``; this module turns its
refusals into problems and says which key an operator names."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from idp.admin.problems import ConflictProblem, NotFoundProblem, UnprocessableProblem
from idp.db import signing_keys
from idp.db.pool import Executor
from idp.keys.lifecycle import KeyLifecycleError
from idp.keys.manager import Applied, KeyManager, Rotation


@dataclass(frozen=True)
class KeyInfo:
    """What an operator sees of a key: never key material."""

    kid: str
    alg: str
    state: str
    created_at: datetime
    activated_at: datetime | None
    retired_at: datetime | None
    revoked_at: datetime | None
    revoked_reason: str | None


async def list_keys(db: Executor) -> list[KeyInfo]:
    """Every key, of any state, oldest first."""
    return [
        KeyInfo(
            kid=key.record.kid,
            alg=key.record.alg,
            state=key.record.state,
            created_at=key.record.created_at,
            activated_at=key.record.activated_at,
            retired_at=key.retired_at,
            revoked_at=key.revoked_at,
            revoked_reason=key.revoked_reason,
        )
        for key in await signing_keys.fetch_all(db)
    ]


async def rotate(manager: KeyManager, *, actor: str, force: bool, override: str) -> Rotation:
    """The pending key signs from now (``KeyManager.rotate``). ConflictProblem, carrying
    ``retry_at``, while the lifecycle says it is too early and ``force`` is not given; its
    detail ends with ``override``, how the caller's front end forces it (``--force`` for the
    CLI, ``"force": true`` for the API)."""
    try:
        return await manager.rotate(actor=actor, force=force)
    except KeyLifecycleError as error:
        extensions = {} if error.retry_at is None else {"retry_at": error.retry_at.isoformat()}
        raise ConflictProblem(f"{error}, or now with {override}", **extensions) from None


async def check_revocable(db: Executor, kid: str | None, reason: str) -> None:
    """What ``revoke`` refuses, checked before the CLI asks for confirmation: a reason that says
    nothing (it is kept in the audit log), a kid no key has, a key already unpublished. ``kid``
    None names every key."""
    if not reason.strip():
        raise UnprocessableProblem("the reason must say why the key is revoked")
    if kid is None:
        return
    found = await signing_keys.fetch_public_jwk(db, kid)
    if found is None:
        raise NotFoundProblem(f"no signing key with kid {kid!r}")
    if found[1] in ("retired", "revoked"):
        raise ConflictProblem(f"key {kid} is already {found[1]}")


async def revoke(
    manager: KeyManager, db: Executor, kid: str | None, reason: str, *, actor: str
) -> list[Applied]:
    """``kid`` (every key when None) leaves the JWKS of every process now
    (``KeyManager.revoke``); what it refuses is ``check_revocable``'s."""
    await check_revocable(db, kid, reason)
    try:
        return await manager.revoke(kid, reason, actor=actor)
    except KeyLifecycleError as error:  # it changed since check_revocable looked
        raise ConflictProblem(str(error)) from None
