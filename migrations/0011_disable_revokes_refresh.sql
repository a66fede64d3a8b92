-- Disabling a user revokes their live refresh families in the same transaction, however it is
-- done (`idp users disable` did so already; plain SQL now too). A rotation can then rely on the
-- family alone: it no longer reads the users table, and takes the user, for the claims of the
-- new tokens, from the process's user cache, which every change to a user invalidates
-- (NOTIFY idp_users, migration 0009).
CREATE FUNCTION idp_revoke_refresh_on_disable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE refresh_families SET revoked_at = now(), revoked_reason = 'user disabled'
    WHERE user_id = NEW.id AND revoked_at IS NULL;
    RETURN NULL;
END
$$;
CREATE TRIGGER users_disable_revokes_refresh
AFTER UPDATE OF disabled ON users
FOR EACH ROW WHEN (NEW.disabled AND NOT OLD.disabled)
EXECUTE FUNCTION idp_revoke_refresh_on_disable();

-- Users disabled before this migration.
UPDATE refresh_families f SET revoked_at = now(), revoked_reason = 'user disabled'
FROM users u
WHERE u.id = f.user_id AND u.disabled AND f.revoked_at IS NULL;
