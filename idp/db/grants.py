"""SQL over everything a user has been granted: sign-in sessions, refresh families and the
access tokens issued from them. Used to cut a user off at once (``idp sessions revoke``,
``idp users disable``)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from idp.db.pool import Connection

END_SESSIONS = """
UPDATE sessions SET ended_at = $2
WHERE user_id = $1 AND ended_at IS NULL AND expires_at > $2
"""
# Expired families are revoked too: access tokens issued from them may still be alive. An access
# token is alive at most one token lifetime ($4 - $2: the longest TTL + skew) after it was
# issued: a family deny-lists the generations that may be alive (idp_family_access_jtis,
# migration 0010); access tokens issued to clients without refresh tokens are found through the
# codes exchanged since then.
_REVOKE_TOKENS = """
WITH revoked AS (
    UPDATE refresh_families SET revoked_at = $2, revoked_reason = $3
    WHERE user_id = $1 AND revoked_at IS NULL{only}
    RETURNING id, access_jtis, jti_older_from, generation
), issued AS (
    SELECT idp_family_access_jtis(id, access_jtis, jti_older_from, generation) AS jti
    FROM revoked
    UNION
    SELECT unnest(issued_jtis) FROM authorization_codes
    WHERE user_id = $1 AND consumed_at > $2 - ($4 - $2){only}
), denied AS (
    INSERT INTO revoked_access_tokens (jti, expires_at)
    SELECT jti, $4 FROM issued
    ON CONFLICT (jti) DO NOTHING
    RETURNING jti
)
SELECT (SELECT count(*) FROM revoked) AS families, (SELECT count(*) FROM denied) AS access_tokens
"""
REVOKE_TOKENS = _REVOKE_TOKENS.format(only="")
# Only what the user's sessions $5 started (the account page ending them), or only what the
# client $5 holds (the user revoking that app's consent).
REVOKE_SESSION_TOKENS = _REVOKE_TOKENS.format(only=" AND sid = ANY($5::text[])")
REVOKE_CLIENT_TOKENS = _REVOKE_TOKENS.format(only=" AND client_id = $5")


@dataclass(frozen=True)
class RevokedGrants:
    sessions: int
    refresh_families: int
    access_tokens: int  # newly deny-listed

    def as_details(self) -> dict[str, int]:
        return {
            "sessions": self.sessions,
            "refresh_families": self.refresh_families,
            "access_tokens": self.access_tokens,
        }

    def summary(self) -> str:
        """What was ended, as the CLI says it."""
        return (
            f"{self.sessions} sessions ended, {self.refresh_families} refresh families revoked, "
            f"{self.access_tokens} access tokens deny-listed"
        )

    @property
    def empty(self) -> bool:
        return not (self.sessions or self.refresh_families or self.access_tokens)


async def revoke_user_grants(
    connection: Connection,
    user_id: uuid.UUID,
    now: datetime,
    deny_until: datetime,
    *,
    reason: str = "sessions revoked",
) -> RevokedGrants:
    """End the user's live sessions, revoke their refresh families and deny-list every access
    token of theirs that may still be alive until ``deny_until``: now + the longest lifetime an
    access token can have. Run it inside the caller's transaction: all of it happens or none."""
    ended = await connection.execute(END_SESSIONS, user_id, now)
    row = await connection.fetchrow(REVOKE_TOKENS, user_id, now, reason, deny_until)
    assert row is not None
    return RevokedGrants(
        sessions=int(ended.split()[-1]),
        refresh_families=row["families"],
        access_tokens=row["access_tokens"],
    )


async def revoke_session_tokens(
    connection: Connection,
    user_id: uuid.UUID,
    sids: list[str],
    now: datetime,
    deny_until: datetime,
    *,
    reason: str,
) -> RevokedGrants:
    """Revoke the refresh families the user's sessions ``sids`` started and deny-list their
    access tokens, as ``revoke_user_grants`` does; the caller ends the sessions themselves."""
    row = await connection.fetchrow(REVOKE_SESSION_TOKENS, user_id, now, reason, deny_until, sids)
    assert row is not None
    return RevokedGrants(0, row["families"], row["access_tokens"])


async def revoke_client_tokens(
    connection: Connection,
    user_id: uuid.UUID,
    client_id: str,
    now: datetime,
    deny_until: datetime,
    *,
    reason: str,
) -> RevokedGrants:
    """Revoke the user's refresh families of one client and deny-list the access tokens that
    client may still hold for the user, as ``revoke_user_grants`` does; sessions stay."""
    row = await connection.fetchrow(
        REVOKE_CLIENT_TOKENS, user_id, now, reason, deny_until, client_id
    )
    assert row is not None
    return RevokedGrants(0, row["families"], row["access_tokens"])
