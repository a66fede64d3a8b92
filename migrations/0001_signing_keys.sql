-- Signing keys and their lifecycle (see DESIGN.md, "Signing-key lifecycle").
CREATE TABLE signing_keys (
    kid             text PRIMARY KEY,           -- RFC 7638 thumbprint of the public key
    alg             text NOT NULL CHECK (alg IN ('RS256', 'PS256', 'ES256', 'EdDSA')),
    state           text NOT NULL CHECK (state IN ('pending', 'active', 'retiring', 'retired', 'revoked')),
    public_jwk      jsonb NOT NULL,             -- public members only, as published
    private_key_enc bytea,                      -- AES-256-GCM(nonce || ciphertext) of PKCS#8 DER
    created_at      timestamptz NOT NULL,       -- also when it was first published
    activated_at    timestamptz,
    last_signed_at  timestamptz,                -- set when it stops being active
    retired_at      timestamptz,
    revoked_at      timestamptz,
    revoked_reason  text,
    -- a key that can no longer be published has lost its private half, and only then
    CONSTRAINT signing_keys_private_erased
        CHECK ((state IN ('retired', 'revoked')) = (private_key_enc IS NULL))
);

-- Exactly one key signs at a time.
CREATE UNIQUE INDEX signing_keys_one_active ON signing_keys ((true)) WHERE state = 'active';
-- The keyring and the scheduler read only the published keys.
CREATE INDEX signing_keys_published ON signing_keys (state, created_at)
    WHERE state IN ('pending', 'active', 'retiring');

CREATE TABLE audit_log (
    id       bigserial PRIMARY KEY,
    at       timestamptz NOT NULL,
    actor    text NOT NULL,                     -- 'scheduler', 'cli:<os user>', later 'user:<id>'
    action   text NOT NULL,                     -- e.g. 'key.created', 'key.revoked'
    subject  text,                              -- e.g. the kid
    reason   text,
    details  jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX audit_log_at ON audit_log (at);
