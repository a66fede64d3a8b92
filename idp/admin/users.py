"""Users, as operators manage them (``idp users ...`` and ``/admin/v1/users``)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import Enum

from idp.accounts import invitations, mail_tokens, reset
from idp.accounts.credentials import PasswordRejectedError, hash_new_password, store_password
from idp.admin import cursors
from idp.admin.caller import ADMIN_ROLE
from idp.admin.last_admin import keep_an_admin
from idp.admin.problems import ConflictProblem, NotFoundProblem, UnprocessableProblem, path_id
from idp.admin.sessions import revoke_user_sessions
from idp.audit_trail import AuditTrail, audited
from idp.clock import Clock
from idp.db import login_failures, second_factors, users
from idp.db.grants import RevokedGrants
from idp.db.outbox import delete_unsent_to
from idp.db.pool import Connection, Executor
from idp.db.users import User
from idp.mail.outbox import Mailing
from idp.passwords import Passwords
from idp.settings import Settings
from idp.terminal import printable


@dataclass(frozen=True)
class UserFilter:
    email_prefix: str | None = None  # addresses starting with it, whatever the case
    role: str | None = None
    disabled: bool | None = None


@dataclass(frozen=True)
class UserPage:
    users: list[User]
    next_cursor: str | None


def parse_user_id(text: str) -> uuid.UUID:
    return path_id(text, "user")


def check_roles(roles: list[str]) -> list[str]:
    for role in roles:
        if not role or not role.isprintable() or any(char.isspace() for char in role):
            raise UnprocessableProblem(f"role {role!r} must be one word")
    return sorted(set(roles))


async def get(db: Executor, user_id: uuid.UUID) -> User:
    user = await users.by_id(db, user_id)
    if user is None:
        raise NotFoundProblem(f"no user has the id {user_id}")
    return user


async def page(
    db: Executor, *, limit: int, cursor: str | None, where: UserFilter = UserFilter()
) -> UserPage:
    """Users in address order (case-folded), ``limit`` at a time, after ``cursor``."""
    after = None if cursor is None else str(cursors.decode(cursor, arity=1)[0])
    found = await users.page(
        db,
        after=after,
        limit=limit + 1,  # one more tells whether there is a next page
        email_prefix=where.email_prefix,
        role=where.role,
        disabled=where.disabled,
    )
    return UserPage(*cursors.shown(found, limit, lambda last: cursors.encode([last.email.lower()])))


async def create(
    connection: Connection,
    *,
    clock: Clock,
    actor: str,
    email: str,
    name: str | None,
    password_hash: str | None,
    roles: list[str],
    email_verified: bool,
) -> User:
    """A user who signs in with ``password_hash`` (None: none yet; an invitation or a reset
    gives one). Audited as ``user.created``."""
    now = clock.now()
    async with audited(connection) as trail:
        try:
            user = await users.insert(
                connection,
                email=email,
                name=name,
                password_hash=password_hash,
                roles=check_roles(roles),
                now=now,
                email_verified=email_verified,
            )
        except users.EmailTakenError:
            raise ConflictProblem(f"a user with email {email} exists already") from None
        await trail.record(now=now, actor=actor, action="user.created", subject=str(user.id))
    return user


class Keep(Enum):
    """A member an update leaves as it is."""

    KEEP = "keep"


KEEP = Keep.KEEP


@dataclass(frozen=True)
class UserChanges:
    """What an update sets; KEEP leaves a member alone (a JSON merge patch, RFC 7396)."""

    email: str | Keep = KEEP
    name: str | Keep | None = KEEP
    roles: list[str] | Keep = KEEP
    email_verified: bool | Keep = KEEP


def _no_precondition(user: User) -> None:
    return None


async def by_email(db: Executor, email: str) -> User:
    """The user the CLI names by address; NotFoundProblem if there is none."""
    user = await users.by_email(db, email)
    if user is None:
        raise NotFoundProblem(f"no user with email {printable(email)}")
    return user


async def _locked(connection: Connection, user_id: uuid.UUID) -> User:
    user = await users.lock(connection, user_id)
    if user is None:
        raise NotFoundProblem(f"no user has the id {user_id}")
    return user


async def update(
    connection: Connection,
    user_id: uuid.UUID,
    changes: UserChanges,
    *,
    clock: Clock,
    actor: str,
    precondition: Callable[[User], None] = _no_precondition,
) -> User:
    """Change the user's address, name, roles or ``email_verified``; nothing else (sessions
    and tokens stay). ``precondition`` sees the row as it is, locked, before the change (the
    API's If-Match, RFC 9110 §13.1.1) and raises to refuse it.

    A new address is unproven unless ``email_verified`` says otherwise, and every mailed link
    to the old one is voided (a reset link in a former mailbox must not set the password).
    Audited as ``user.updated`` with the names of the members that changed."""
    now = clock.now()
    async with audited(connection) as trail:
        current = await _locked(connection, user_id)
        precondition(current)
        roles = list(current.roles) if changes.roles is KEEP else check_roles(changes.roles)
        await keep_an_admin(
            connection, current, stays_admin=ADMIN_ROLE in roles, what="remove the admin role from"
        )
        email = current.email if changes.email is KEEP else changes.email
        new_address = email != current.email
        verified = changes.email_verified
        if verified is KEEP:
            verified = False if email.lower() != current.email.lower() else current.email_verified
        try:
            user = await users.update_profile(
                connection,
                user_id,
                email=email,
                name=current.name if changes.name is KEEP else changes.name,
                roles=roles,
                email_verified=verified,
                now=now,
            )
        except users.EmailTakenError:
            raise ConflictProblem(f"a user with email {email} exists already") from None
        assert user is not None  # locked above
        changed = [
            member
            for member in ("email", "name", "roles", "email_verified")
            if getattr(user, member) != getattr(current, member)
        ]
        if new_address:
            await mail_tokens.void(connection, user.id, mail_tokens.VOIDED_BY_EMAIL, now)
        await trail.record(
            now=now,
            actor=actor,
            action="user.updated",
            subject=str(user.id),
            details={"changed": changed},
        )
    return user


async def change_roles(
    connection: Connection,
    user: User,
    *,
    add: list[str],
    remove: list[str],
    clock: Clock,
    actor: str,
) -> User:
    """Add and remove roles (the roles claim); removing wins over adding. Audited as
    ``user.roles_changed``."""
    now = clock.now()
    added, removed = check_roles(add), check_roles(remove)
    async with audited(connection) as trail:
        current = await users.lock(connection, user.id)
        if current is None:
            raise NotFoundProblem(f"no user with email {printable(user.email)}")
        stays_admin = ADMIN_ROLE not in removed
        await keep_an_admin(
            connection, current, stays_admin=stays_admin, what="remove the admin role from"
        )
        changed = await users.change_roles(connection, user.email, added, removed, now)
        if changed is None:
            raise NotFoundProblem(f"no user with email {printable(user.email)}")
        await trail.record(
            now=now,
            actor=actor,
            action="user.roles_changed",
            subject=str(changed.id),
            details={"added": add, "removed": remove},
        )
    return changed


async def set_disabled(
    connection: Connection,
    user_id: uuid.UUID,
    disabled: bool,
    *,
    settings: Settings,
    clock: Clock,
    actor: str,
) -> User:
    """Disable (no sign-in; every session and refresh family ends now, their access tokens
    deny-listed) or enable the user. Audited as ``user.disabled`` or ``user.enabled``."""
    now = clock.now()
    async with audited(connection) as trail:
        current = await _locked(connection, user_id)
        await keep_an_admin(connection, current, stays_admin=not disabled, what="disable")
        action = "user.disabled" if disabled else "user.enabled"
        await trail.record(now=now, actor=actor, action=action, subject=str(user_id))
        if disabled:
            # Cut off what they hold before the flag: setting it revokes the refresh families
            # (migration 0011) but cannot deny-list their access tokens, which this does.
            await revoke_user_sessions(
                connection,
                trail,
                user_id,
                settings=settings,
                now=now,
                actor=actor,
                reason="user disabled",
                audit_if_empty=False,
            )
        user = await users.set_disabled_by_id(connection, user_id, disabled, now)
        assert user is not None  # locked above
    return user


async def hash_password(passwords: Passwords, settings: Settings, user: User, password: str) -> str:
    """The hash of ``password`` as ``user``'s new one, if the policy takes it (NIST SP 800-63B
    §3.1.1.2); UnprocessableProblem listing what it breaks otherwise. Argon2 runs off the
    event loop (``Passwords``)."""
    try:
        return await hash_new_password(
            passwords, password, email=user.email, min_length=settings.password_min_length
        )
    except PasswordRejectedError as rejected:
        # The errors extension as every problem carries it (the OpenAPI document's Problem).
        issues = [{"pointer": "/password", "detail": problem} for problem in rejected.problems]
        raise UnprocessableProblem(" ".join(rejected.problems), errors=issues) from None


async def set_password(
    connection: Connection,
    user_id: uuid.UUID,
    password_hash: str,
    *,
    settings: Settings,
    clock: Clock,
    actor: str,
    mailing: Mailing,
) -> tuple[User, RevokedGrants]:
    """A new password ends what the old one opened: whoever knew it (the reason to change it,
    often) keeps no session, refresh token or access token (OWASP Session Management Cheat
    Sheet, "Renew the Session ID After Any Privilege Level Change"; RFC 9700 §4.14). Mailed
    reset and invitation links are voided, the sign-in lock cleared, the owner told by mail.
    Audited as ``user.password_set``."""
    now = clock.now()
    async with audited(connection) as trail:
        user = await _locked(connection, user_id)
        await store_password(connection, user, password_hash, now, mailing=mailing)
        await trail.record(now=now, actor=actor, action="user.password_set", subject=str(user.id))
        revoked = await revoke_user_sessions(
            connection,
            trail,
            user.id,
            settings=settings,
            now=now,
            actor=actor,
            reason="password changed",
            audit_if_empty=False,
        )
    return user, revoked


async def send_reset_mail(
    connection: Connection, user_id: uuid.UUID, *, clock: Clock, actor: str, mailing: Mailing
) -> User:
    """Mail the user a link to choose a new password, as the forgotten-password page does
    (idp.accounts.reset). A disabled user cannot use one: UnprocessableProblem. Audited as
    ``password.reset_requested``."""
    now = clock.now()
    async with audited(connection) as trail:
        user = await _locked(connection, user_id)
        if user.disabled:
            raise UnprocessableProblem("the user is disabled: a reset link would not work")
        await reset.mail_reset_link(connection, mailing, user, now)
        await trail.record(
            now=now, actor=actor, action="password.reset_requested", subject=str(user.id)
        )
    return user


async def _invite(
    connection: Connection,
    trail: AuditTrail,
    *,
    email: str,
    name: str | None,
    roles: list[str],
    now: datetime,
    actor: str,
    mailing: Mailing,
) -> invitations.Invitation:
    try:
        return await invitations.invite(
            connection,
            trail,
            email=email,
            name=name,
            roles=roles,
            now=now,
            actor=actor,
            mailing=mailing,
        )
    except invitations.AlreadyAUserError:
        raise ConflictProblem(f"a user with email {printable(email)} exists already") from None


async def invite(
    connection: Connection,
    *,
    email: str,
    name: str | None,
    roles: list[str],
    clock: Clock,
    actor: str,
    mailing: Mailing,
) -> invitations.Invitation:
    """A user without a password and a mail with a link to choose one (idp.accounts.invitations);
    inviting again someone who has not accepted sends a new link and voids the earlier one.
    ConflictProblem for someone who is a user already. Audited as ``user.invited``."""
    async with audited(connection) as trail:
        return await _invite(
            connection,
            trail,
            email=email,
            name=name,
            roles=check_roles(roles),
            now=clock.now(),
            actor=actor,
            mailing=mailing,
        )


async def send_invitation(
    connection: Connection, user_id: uuid.UUID, *, clock: Clock, actor: str, mailing: Mailing
) -> invitations.Invitation:
    """The invitation mail again, with a new link, to a user who has not accepted yet;
    ConflictProblem for one who has a password (or is disabled)."""
    async with audited(connection) as trail:
        user = await _locked(connection, user_id)
        if not invitations.pending(user):
            raise ConflictProblem("the user has a password already or is disabled: no invitation")
        return await _invite(
            connection,
            trail,
            email=user.email,
            name=user.name,
            roles=list(user.roles),
            now=clock.now(),
            actor=actor,
            mailing=mailing,
        )


MFA_RESET_NOTICE = (
    "An administrator removed every second factor (authenticator app, passkeys, recovery codes) of"
)


async def reset_second_factors(
    connection: Connection,
    user_id: uuid.UUID,
    *,
    settings: Settings,
    clock: Clock,
    actor: str,
    mailing: Mailing,
) -> tuple[User, RevokedGrants]:
    """For someone who lost their authenticator and their recovery codes: every second factor
    goes, every session and refresh token ends, and the owner is told by mail (an operator's
    reset of a factor must not go unnoticed, NIST SP 800-63B §6.1.2.3). Audited as
    ``mfa.reset``."""
    now = clock.now()
    async with audited(connection) as trail:
        user = await _locked(connection, user_id)
        await second_factors.remove_all(connection, user.id)
        await trail.record(now=now, actor=actor, action="mfa.reset", subject=str(user.id))
        revoked = await revoke_user_sessions(
            connection,
            trail,
            user.id,
            settings=settings,
            now=now,
            actor=actor,
            reason="second factors reset",
            audit_if_empty=False,
        )
        await mailing.send(
            connection, "mfa_changed", user.email, now, name=user.name, what=MFA_RESET_NOTICE
        )
    return user, revoked


async def delete(
    connection: Connection, user_id: uuid.UUID, *, settings: Settings, clock: Clock, actor: str
) -> RevokedGrants:
    """Delete the user and what only made sense for them, in one transaction: their access
    tokens are deny-listed first (a resource server checking them must not keep accepting
    them, RFC 9700 §4.14), then the row goes and its sessions, consents, codes, refresh
    families, mail tokens, second factors and passkeys with it (ON DELETE CASCADE, migration
    0022), and the sign-in failures counted against the address are forgotten. Audited as
    ``user.deleted``; the log keeps the id, not the address."""
    now = clock.now()
    async with audited(connection) as trail:
        user = await _locked(connection, user_id)
        await keep_an_admin(connection, user, stays_admin=False, what="delete")
        revoked = await revoke_user_sessions(
            connection,
            trail,
            user.id,
            settings=settings,
            now=now,
            actor=actor,
            reason="user deleted",
            audit_if_empty=False,
        )
        await users.delete(connection, user.id)
        await login_failures.clear_account(connection, user.email)
        await delete_unsent_to(connection, user.email)  # a deleted account gets no more mail
        await trail.record(
            now=now,
            actor=actor,
            action="user.deleted",
            subject=str(user.id),
            details=revoked.as_details(),
        )
    return revoked
