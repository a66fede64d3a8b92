-- Passkeys (WebAuthn L2 discoverable credentials with user verification).

-- The user handle (WebAuthn L2 §14.6.1): random, never the email, one per user; an assertion's
-- userHandle names the user of a discoverable credential.
CREATE TABLE passkey_users (
    user_id uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    handle  bytea NOT NULL UNIQUE
);

CREATE TABLE passkeys (
    credential_id   bytea PRIMARY KEY,
    user_id         uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    public_key      bytea NOT NULL,             -- COSE_Key, as registered
    sign_count      bigint NOT NULL,            -- the last seen signature counter (§6.1.1)
    name            text NOT NULL,              -- the owner's name for it
    transports      text[] NOT NULL DEFAULT '{}',
    backup_eligible boolean NOT NULL,           -- BE flag: may be synced (RFC 8176 "swk")
    backed_up       boolean NOT NULL,           -- BS flag, as last seen
    aaguid          text NOT NULL,
    created_at      timestamptz NOT NULL,
    last_used_at    timestamptz
);
CREATE INDEX passkeys_user ON passkeys (user_id);

-- Challenges spent (single use): a challenge is issued signed, without a row, and recorded here
-- when an answer to it is accepted; the janitor deletes rows once the challenge has expired.
CREATE TABLE webauthn_challenges (
    challenge_hash bytea PRIMARY KEY,
    expires_at     timestamptz NOT NULL
);
CREATE INDEX webauthn_challenges_expiry ON webauthn_challenges (expires_at);
