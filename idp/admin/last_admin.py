"""The last administrator: no operator's change leaves an installation that has an enabled user
holding the ``admin`` role without one.

Deleting, disabling or taking the role from the only enabled user who holds it is refused
(LastAdminProblem, 409) whatever path asks: the ``idp users`` commands and the management API
both end here (idp.admin.users). Admin clients (client_credentials, ``--admin``) are not users
and do not count: the rule keeps a person able to sign in and administer. An installation with no
admin user at all has nothing to protect, so one run by an admin client alone changes its users
freely.

Two changes that each end one of two admins must not both pass: every such change takes one
transaction-level advisory lock before it counts the others, so the second counts after the
first has committed (READ COMMITTED reads a new snapshot per statement). The lock is taken after
the user's own row lock and only for a change that ends an admin. A transaction waiting for it
has written nothing and holds no lock but its own user's row, which the holder (busy with its own
user) never needs: the order cannot deadlock."""

from __future__ import annotations

from idp.admin.caller import ADMIN_ROLE
from idp.admin.problems import LastAdminProblem
from idp.db import users
from idp.db.pool import Connection
from idp.db.users import User
from idp.terminal import printable

# pg_advisory_xact_lock key shared by every change that ends an enabled admin user.
LAST_ADMIN_LOCK_ID = 0x1D9_0004


def is_admin(user: User) -> bool:
    """An enabled user holding the admin role: whom the rule protects the last of."""
    return ADMIN_ROLE in user.roles and not user.disabled


async def keep_an_admin(
    connection: Connection, current: User, *, stays_admin: bool, what: str
) -> None:
    """Refuse (LastAdminProblem) a change that ends ``current`` as an admin when no other
    enabled user holds the role. ``current`` is the user's row as locked in the caller's
    transaction; ``stays_admin`` whether they are still an admin after the change; ``what``
    names the change for the message ("delete", "disable", "remove the admin role from")."""
    if not is_admin(current) or stays_admin:
        return
    await connection.execute("SELECT pg_advisory_xact_lock($1)", LAST_ADMIN_LOCK_ID)
    if await users.other_enabled_holders(connection, ADMIN_ROLE, current.id) == 0:
        raise LastAdminProblem(
            f"cannot {what} {printable(current.email)}: they are the last enabled user with the "
            f"{ADMIN_ROLE} role; give another user the role first"
        )
