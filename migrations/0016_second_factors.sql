-- Second factors: an authenticator app (TOTP) and recovery codes; sessions remember which
-- factors signed them in (amr) and when the second one was last given.

CREATE TABLE totp_credentials (
    user_id       uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    secret_sealed bytea NOT NULL,               -- AES-GCM under the key-encryption key
    created_at    timestamptz NOT NULL,
    confirmed_at  timestamptz,                  -- NULL: enrolment begun, not yet confirmed
    last_step     bigint                        -- the last time step accepted (RFC 6238 §5.2)
);

-- Ten single-use codes; only an HMAC of each under a key derived from the key-encryption key.
CREATE TABLE recovery_codes (
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_hash   bytea NOT NULL,
    created_at  timestamptz NOT NULL,
    used_at     timestamptz,
    PRIMARY KEY (user_id, code_hash)
);

ALTER TABLE sessions ADD COLUMN amr text[] NOT NULL DEFAULT '{pwd}';  -- RFC 8176 values
ALTER TABLE sessions ADD COLUMN mfa_at timestamptz;  -- when a second factor was last given
