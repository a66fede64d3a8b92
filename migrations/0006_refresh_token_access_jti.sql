-- Each refresh token records the access token issued beside it. A rotation then inserts one row
-- instead of rewriting its family's ever-growing access_jtis array (which made every refresh
-- of a long-lived family slower than the one before). Revoking a family deny-lists the jtis of
-- its tokens young enough for their access tokens to be alive, and whatever access_jtis still
-- holds from before this migration (nothing is appended there any more).
ALTER TABLE refresh_tokens ADD COLUMN access_jti text;
