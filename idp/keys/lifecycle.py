"""The signing-key lifecycle as a pure state machine (DESIGN.md, "Signing-key lifecycle").

::

    (none) --create--> pending --promote--> active --demote--> retiring --retire--> retired
    any published state --revoke--> revoked

Planners take the keys as they are, the time and the settings, and return the transitions to
apply, in the order they must be applied; they never touch the database (``manager.py`` does,
in one transaction). Invariants they keep:

* exactly one key is active, and a next key is always published as pending, so a forced
  revocation switches to a key verifiers already hold;
* on schedule, a key signs only after it has been published for ``key_prepublish``
  (``Settings`` guarantees that outlasts ``min_publication``: a JWKS cached for
  ``jwks_max_age``, clock skew, and one ``key_check_interval`` of a process that missed the
  change); a manual rotation waits for ``min_publication``, unless forced;
* a key leaves the JWKS only when every token it signed has expired (``retire_at``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from idp.db.signing_keys import PUBLISHED_STATES, KeyRecord
from idp.settings import Settings, SigningAlg

# Manual rotations are spaced so that verifiers that re-fetch the JWKS on an unknown kid never
# hit their own rate limit (jwks-rsa: 10 fetches a minute).
MIN_MANUAL_ROTATION_SPACING = timedelta(minutes=1)
# The reasons of a manual rotation's transitions, in the audit log.
MANUAL_ROTATION = "manual rotation"
FORCED_ROTATION = "manual rotation, forced"


@dataclass(frozen=True)
class CreateKey:
    alg: SigningAlg
    state: Literal["pending", "active"]
    reason: str


@dataclass(frozen=True)
class Promote:
    kid: str
    reason: str


@dataclass(frozen=True)
class Demote:
    kid: str
    reason: str


@dataclass(frozen=True)
class Retire:
    kid: str
    reason: str


@dataclass(frozen=True)
class Revoke:
    kid: str
    reason: str


Transition = CreateKey | Promote | Demote | Retire | Revoke


class KeyLifecycleError(Exception):
    """An operator asked for something the lifecycle refuses; the message says why, and
    ``retry_at`` when the same request will work (None: it never will). A refused rotation's
    message does not name the override: each front end names its own (``idp.admin.keys``)."""

    def __init__(self, message: str, *, retry_at: datetime | None = None) -> None:
        super().__init__(message)
        self.retry_at = retry_at


def retire_at(key: KeyRecord, settings: Settings) -> datetime:
    """When a retiring key may leave the JWKS.

    Every token it signed has expired by then: it signed until ``last_signed_at`` (plus, at
    most, one ``key_check_interval`` in a process that missed the NOTIFY: its keyring reloads
    every half interval and stops signing after a whole one without a reload), tokens live at
    most ``longest_token_ttl``, and verifiers allow ``clock_skew``.
    """
    assert key.last_signed_at is not None
    return (
        key.last_signed_at
        + settings.longest_token_ttl
        + settings.clock_skew
        + settings.key_check_interval
    )


def _split(keys: Sequence[KeyRecord]) -> tuple[KeyRecord | None, list[KeyRecord], list[KeyRecord]]:
    active = next((key for key in keys if key.state == "active"), None)
    pending = sorted((key for key in keys if key.state == "pending"), key=lambda k: k.created_at)
    retiring = [key for key in keys if key.state == "retiring"]
    return active, pending, retiring


def tick(keys: Sequence[KeyRecord], now: datetime, settings: Settings) -> list[Transition]:
    """The scheduled transitions due at ``now``.

    A change of IDP_SIGNING_ALG publishes a next key of the new algorithm at once; it signs at
    the next rotation, both algorithms being published in between. Pending keys of another
    algorithm are left alone until a key of this process's algorithm takes over (then they are
    retired: they never signed), so processes configured differently during a rolling deploy
    do not undo each other's keys at every tick.
    """
    active, pending, retiring = _split(keys)
    transitions: list[Transition] = [
        Retire(key.kid, "every token it signed has expired")
        for key in retiring
        if now >= retire_at(key, settings)
    ]
    mine = [key for key in pending if key.alg == settings.signing_alg]
    successor: KeyRecord | None = None
    if active is None:
        # Nothing signs (a fresh database): the next key signs at once, there is no token yet.
        candidates = mine or pending
        successor = candidates[0] if candidates else None
        if successor is not None:
            transitions.append(Promote(successor.kid, "no active key"))
        else:
            transitions.append(CreateKey(settings.signing_alg, "active", "no signing key"))
    else:
        assert active.activated_at is not None
        if now >= active.activated_at + settings.key_rotation_interval:
            # A successor not published for key_prepublish yet would surprise verifiers with a
            # kid they cannot have fetched: the active key then signs a little longer.
            ready = [key for key in mine if now >= key.created_at + settings.key_prepublish]
            if ready:
                successor = ready[0]
                transitions.append(Demote(active.kid, "scheduled rotation"))
                transitions.append(Promote(successor.kid, "scheduled rotation"))
    if successor is not None:
        transitions += [
            Retire(key.kid, f"a {successor.alg} key took over; this one never signed")
            for key in pending
            if key is not successor and key.alg != successor.alg
        ]
    if not [key for key in mine if key is not successor]:
        transitions.append(CreateKey(settings.signing_alg, "pending", "next key"))
    return transitions


def _ready_for_manual_use(key: KeyRecord, now: datetime, settings: Settings) -> timedelta:
    """How much longer ``key`` must stay published before every verifier can hold it."""
    return key.created_at + settings.min_publication - now


def _seconds(wait: timedelta) -> str:
    return f"{int(wait.total_seconds()) + 1}s"


def rotation_refusal(keys: Sequence[KeyRecord], now: datetime, settings: Settings) -> str | None:
    """Why a manual rotation should wait, or None if it is safe now: the pending key must have
    been published for ``settings.min_publication`` (a verifier may not have fetched it yet),
    and the active key must have signed for a minute (``MIN_MANUAL_ROTATION_SPACING``)."""
    refusal = _rotation_wait(keys, now, settings)
    return None if refusal is None else refusal[0]


def _rotation_wait(
    keys: Sequence[KeyRecord], now: datetime, settings: Settings
) -> tuple[str, datetime] | None:
    """``rotation_refusal``'s reason, with the instant when no reason to wait is left."""
    active, pending, _ = _split(keys)
    waits: list[tuple[str, datetime]] = []
    if active is not None:
        assert active.activated_at is not None
        wait = active.activated_at + MIN_MANUAL_ROTATION_SPACING - now
        if wait > timedelta(0):
            waits.append(
                (
                    "the active key was activated less than a minute ago; "
                    f"rotate again in {_seconds(wait)}",
                    now + wait,
                )
            )
    if pending:
        wait = _ready_for_manual_use(pending[0], now, settings)
        if wait > timedelta(0):
            waits.append(
                (
                    f"the next key {pending[0].kid} was published too recently for every "
                    f"verifier to hold it; rotate again in {_seconds(wait)}",
                    now + wait,
                )
            )
    if not waits:
        return None
    return waits[0][0], max(until for _, until in waits)


def plan_rotation(
    keys: Sequence[KeyRecord], now: datetime, settings: Settings, *, force: bool = False
) -> list[Transition]:
    """``idp keys rotate``: the pending key signs from now, the old one stays published as
    retiring. Refused while ``rotation_refusal`` has a reason, unless ``force``: the change is
    then made at once, its reason ``FORCED_ROTATION`` (verifiers that cached the JWKS before
    the pending key was published meet an unknown kid and fetch the JWKS again).
    New keys take the active key's algorithm: the operator's shell need not carry the server's
    IDP_SIGNING_ALG; the scheduler changes algorithms.
    """
    refusal = _rotation_wait(keys, now, settings)
    if refusal is not None and not force:
        raise KeyLifecycleError(refusal[0], retry_at=refusal[1])
    reason = MANUAL_ROTATION if refusal is None else FORCED_ROTATION
    active, pending, _ = _split(keys)
    alg = active.alg if active is not None else settings.signing_alg
    transitions: list[Transition] = []
    if active is not None:
        transitions.append(Demote(active.kid, reason))
    if pending:
        successor = pending[0]
        transitions.append(Promote(successor.kid, reason))
        if len(pending) == 1:
            transitions.append(CreateKey(successor.alg, "pending", "next key"))
    else:
        transitions.append(CreateKey(alg, "active", reason))
        transitions.append(CreateKey(alg, "pending", "next key"))
    return transitions


def plan_revocation(
    keys: Sequence[KeyRecord], kid: str | None, reason: str, settings: Settings
) -> list[Transition]:
    """``idp keys revoke``: ``kid`` (or every key when None) leaves the JWKS at once.

    If the active key goes, the pending key signs from the same instant: verifiers that
    refreshed the JWKS since the last rotation already hold it. Only with no pending key left
    does a brand-new key sign at once. A new pending key is always published. New keys take the
    active key's algorithm (see ``plan_rotation``).
    """
    active, pending, retiring = _split(keys)
    alg = active.alg if active is not None else settings.signing_alg
    if kid is None:
        revoked = [*pending, *([active] if active else []), *retiring]
        return [
            *(Revoke(key.kid, reason) for key in revoked),
            CreateKey(alg, "active", "every key revoked"),
            CreateKey(alg, "pending", "next key"),
        ]
    target = next((key for key in keys if key.kid == kid), None)
    if target is None:
        raise KeyLifecycleError(f"no signing key with kid {kid!r}")
    if target.state not in PUBLISHED_STATES:
        raise KeyLifecycleError(f"key {kid} is already {target.state}")
    transitions: list[Transition] = [Revoke(kid, reason)]
    pending = [key for key in pending if key.kid != kid]
    if target.state == "active":
        if pending:
            transitions.append(Promote(pending.pop(0).kid, "active key revoked"))
        else:
            transitions.append(CreateKey(alg, "active", "active key revoked"))
    if not pending:
        transitions.append(CreateKey(alg, "pending", "next key"))
    return transitions


def next_change(keys: Sequence[KeyRecord], now: datetime, settings: Settings) -> datetime:
    """The next instant at which the JWKS may change on schedule (bounds ``max-age``)."""
    active, pending, retiring = _split(keys)
    mine = [key for key in pending if key.alg == settings.signing_alg]
    if active is None or not mine:
        return now  # a change is due at the next tick
    assert active.activated_at is not None
    # The rotation happens when it is due and the successor has been published long enough.
    rotation = max(
        active.activated_at + settings.key_rotation_interval,
        min(key.created_at + settings.key_prepublish for key in mine),
    )
    return max(now, min([rotation, *(retire_at(key, settings) for key in retiring)]))


def jwks_max_age(next_change_at: datetime, now: datetime, settings: Settings) -> int:
    """The JWKS ``Cache-Control: max-age`` served at ``now`` (RFC 9111 §5.2.2.1), in seconds:
    ``IDP_JWKS_MAX_AGE``, but never past the next scheduled key change (``next_change``)."""
    until_change = (next_change_at - now).total_seconds()
    return max(0, min(int(settings.jwks_max_age.total_seconds()), int(until_change)))


def retirement_window(settings: Settings) -> timedelta:
    """How long a key stays published after it last signed (``retire_at``)."""
    return settings.longest_token_ttl + settings.clock_skew + settings.key_check_interval


@dataclass(frozen=True)
class PlannedChange:
    """One instant of ``timeline``: the scheduled transitions ``tick`` makes then, and the
    JWKS ``max-age`` served just after the previous change (it counts down to 0 by ``at``)."""

    at: datetime
    transitions: tuple[tuple[Transition, str], ...]  # with the kid each one concerns
    max_age_before: int


# The name ``timeline`` gives the keys it creates: their real kid is only known once made.
PLANNED_KID_PREFIX = "(new key "


def _applied(
    keys: list[KeyRecord], transitions: Sequence[Transition], now: datetime, created: int
) -> tuple[list[KeyRecord], list[tuple[Transition, str]], int]:
    """``keys`` after ``transitions`` at ``now`` (what manager.py does, in memory); a created
    key gets a placeholder kid; each transition is returned with its kid."""
    by_kid = {key.kid: key for key in keys}
    named: list[tuple[Transition, str]] = []
    for transition in transitions:
        match transition:
            case CreateKey(alg=alg, state=state):
                created += 1
                kid = f"{PLANNED_KID_PREFIX}{created})"
                by_kid[kid] = KeyRecord(
                    kid, alg, state, now, activated_at=now if state == "active" else None
                )
                named.append((transition, kid))
                continue
            case Promote(kid=kid):
                key = by_kid[kid]
                by_kid[kid] = KeyRecord(kid, key.alg, "active", key.created_at, activated_at=now)
            case Demote(kid=kid):
                key = by_kid[kid]
                by_kid[kid] = KeyRecord(
                    kid, key.alg, "retiring", key.created_at, key.activated_at, last_signed_at=now
                )
            case Retire(kid=kid) | Revoke(kid=kid):
                key = by_kid[kid]
                ended: Literal["retired", "revoked"] = (
                    "retired" if isinstance(transition, Retire) else "revoked"
                )
                by_kid[kid] = KeyRecord(
                    kid, key.alg, ended, key.created_at, key.activated_at, key.last_signed_at
                )
        named.append((transition, kid))
    published = [key for key in by_kid.values() if key.state in PUBLISHED_STATES]
    return published, named, created


def timeline(
    keys: Sequence[KeyRecord], now: datetime, settings: Settings, horizon: datetime
) -> list[PlannedChange]:
    """The scheduled changes from ``now`` to ``horizon``: ``tick`` applied to an in-memory
    copy of ``keys`` at every ``next_change``, exactly as the scheduler will apply it (a
    process's tick runs within ``key_check_interval`` of each instant). Keys created on the way
    are named ``(new key N)``. Revocations and manual rotations are not foreseen."""
    current = [key for key in keys if key.state in PUBLISHED_STATES]
    changes: list[PlannedChange] = []
    created = 0
    at = now
    max_age = jwks_max_age(now, now, settings)
    while at <= horizon:
        transitions = tick(current, at, settings)
        if transitions:
            current, named, created = _applied(current, transitions, at, created)
            changes.append(PlannedChange(at, tuple(named), max_age))
        following = next_change(current, at, settings)
        if following <= at:
            break  # cannot happen after a tick; never loop on it
        max_age = jwks_max_age(following, at, settings)
        at = following
    return changes
