-- Refresh tokens rotate on every use; each belongs to a family (one per authorization).
-- Presenting a consumed token revokes the whole family (RFC 9700 §4.14.2), except a retry
-- within IDP_REFRESH_REUSE_GRACE, which gets the very same successor again.
CREATE TABLE refresh_families (
    id              uuid PRIMARY KEY,
    client_id       text NOT NULL REFERENCES clients (client_id),
    user_id         uuid NOT NULL REFERENCES users (id),
    sid             text NOT NULL,
    scopes          text[] NOT NULL,
    audience        text[] NOT NULL,
    auth_time       timestamptz NOT NULL,
    created_at      timestamptz NOT NULL,
    expires_at      timestamptz NOT NULL,        -- absolute lifetime
    revoked_at      timestamptz,
    revoked_reason  text,
    access_jtis     text[] NOT NULL DEFAULT '{}' -- access tokens issued from it, deny-listed with it
);
CREATE INDEX refresh_families_user ON refresh_families (user_id) WHERE revoked_at IS NULL;

CREATE TABLE refresh_tokens (
    token_hash          bytea PRIMARY KEY,
    family_id           uuid NOT NULL REFERENCES refresh_families (id) ON DELETE CASCADE,
    created_at          timestamptz NOT NULL,
    idle_expires_at     timestamptz NOT NULL,
    consumed_at         timestamptz,
    -- the answer given when it was consumed, AES-GCM sealed, kept only for a grace-window retry
    successor_response  bytea
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);
