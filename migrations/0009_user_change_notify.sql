-- Every change to a user is announced (NOTIFY idp_users, the user's id): each process caches the
-- users that /userinfo and /introspect answer about (idp.oauth.user_cache), and drops one the
-- moment it changes, whoever changed it (the CLI, another process, or plain SQL).
CREATE FUNCTION idp_announce_user_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('idp_users', OLD.id::text);
    RETURN NULL;
END
$$;
CREATE TRIGGER users_announce_change
AFTER UPDATE OR DELETE ON users
FOR EACH ROW EXECUTE FUNCTION idp_announce_user_change();
