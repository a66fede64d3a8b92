-- One row per refresh family. The family's row holds its current token, so a rotation is one
-- UPDATE of that row, changing no indexed column: a HOT update (heap-only: no new index entry),
-- where the table of tokens needed an UPDATE, an INSERT into two indexes and a foreign key check,
-- and grew by a row per refresh. A token is `<handle>.<generation>.<secret>`
-- (idp.oauth.refresh_format): the handle (its digest indexed here) finds the family and never
-- changes; the digest of the whole token must equal token_hash. A token of the family with an
-- earlier generation than the current one is an old token presented again: reuse, which revokes
-- the family (RFC 9700 §4.14.2). previous_hash is the token the current one replaced, kept for
-- a retry within IDP_REFRESH_REUSE_GRACE, with its sealed answer.
ALTER TABLE refresh_families
    ADD COLUMN handle_hash        bytea,
    ADD COLUMN token_hash         bytea,        -- NULL: the family has no usable token
    ADD COLUMN token_issued_at    timestamptz,  -- also when previous_hash was used
    ADD COLUMN idle_expires_at    timestamptz,
    ADD COLUMN previous_hash      bytea,
    ADD COLUMN successor_response bytea,        -- AES-GCM sealed, kept only for the grace
    -- The token's generation; the access token issued beside it has the jti `<id, hex>.<n>`.
    -- Revoking the family deny-lists those that may be alive: the generations issued in the
    -- current and the previous window of at least the longest access-token lifetime + skew.
    -- A rotation only counts its generation, however often the family refreshes; the window
    -- moves on once a lifetime (idp.db.refresh_tokens.ROLL_JTI_WINDOW).
    ADD COLUMN generation         integer NOT NULL DEFAULT 0,
    ADD COLUMN jti_window_from    integer NOT NULL DEFAULT 0,
    ADD COLUMN jti_window_at      timestamptz,
    ADD COLUMN jti_older_from     integer NOT NULL DEFAULT 0;

-- A family's unconsumed token becomes its current one. Tokens issued before this migration
-- have no handle part: the whole token is the handle, so its digest is both.
UPDATE refresh_families f SET
    handle_hash = t.token_hash,
    token_hash = t.token_hash,
    token_issued_at = t.created_at,
    idle_expires_at = t.idle_expires_at
FROM refresh_tokens t
WHERE t.family_id = f.id AND t.consumed_at IS NULL;

-- A family with no unconsumed token keeps none, and a handle nobody holds.
UPDATE refresh_families SET
    handle_hash = decode(replace(gen_random_uuid()::text, '-', ''), 'hex'),
    token_issued_at = created_at,
    idle_expires_at = created_at
WHERE handle_hash IS NULL;

-- The access tokens issued from a family in the last day stay deny-listed with it (they were
-- recorded one per token row; access_jtis is deny-listed with the family as before).
UPDATE refresh_families f SET access_jtis = f.access_jtis || recent.jtis
FROM (
    SELECT family_id, array_agg(access_jti) AS jtis FROM refresh_tokens
    WHERE access_jti IS NOT NULL AND created_at > now() - interval '1 day'
    GROUP BY family_id
) recent
WHERE recent.family_id = f.id;

UPDATE refresh_families SET jti_window_at = token_issued_at;

ALTER TABLE refresh_families
    ALTER COLUMN handle_hash SET NOT NULL,
    ALTER COLUMN token_issued_at SET NOT NULL,
    ALTER COLUMN idle_expires_at SET NOT NULL,
    ALTER COLUMN jti_window_at SET NOT NULL;
CREATE UNIQUE INDEX refresh_families_handle ON refresh_families (handle_hash);
-- The janitor erases sealed answers once the grace is over. Keyed on id, which never changes:
-- without a grace no row holds an answer, and a rotation stays a HOT update.
CREATE INDEX refresh_families_sealed ON refresh_families (id) WHERE successor_response IS NOT NULL;
-- Room on each page for the new versions of its rows.
ALTER TABLE refresh_families SET (fillfactor = 70);

DROP TABLE refresh_tokens;

-- What revoking a family deny-lists: the access tokens recorded before migration 0010, and the
-- jtis (idp.db.refresh_tokens.family_access_jti) of the generations that may be alive.
CREATE FUNCTION idp_family_access_jtis(id uuid, recorded text[], first integer, last integer)
RETURNS SETOF text LANGUAGE sql IMMUTABLE AS $$
    SELECT unnest(recorded)
    UNION
    SELECT replace(id::text, '-', '') || '.' || generation
    FROM generate_series(first, last) AS generation
$$;
