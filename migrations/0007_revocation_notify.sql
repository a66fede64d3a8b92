-- Every deny-listed access token is announced: each process keeps the deny-list in memory
-- (idp.oauth.deny_list), so introspection of a client's token needs no query. A trigger, so
-- that no writer (revocation, reuse detection, a replayed code, `idp sessions revoke`) can
-- forget; the notifications go out when the transaction commits, and only then.
CREATE FUNCTION idp_announce_revocation() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('idp_revocations', NEW.jti || ' ' || extract(epoch FROM NEW.expires_at)::bigint);
    RETURN NULL;
END
$$;
CREATE TRIGGER revoked_access_tokens_announce
AFTER INSERT ON revoked_access_tokens
FOR EACH ROW EXECUTE FUNCTION idp_announce_revocation();
