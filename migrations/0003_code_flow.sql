-- The authorization code flow: pending requests, sign-in sessions, consents, codes, and the
-- brute-force counters of the login page. Secrets (session ids, codes) are stored as SHA-256.

-- An /authorize request waiting for the user to sign in or consent.
CREATE TABLE authorization_requests (
    id          bytea PRIMARY KEY,              -- SHA-256 of the random id carried by the pages
    client_id   text NOT NULL REFERENCES clients (client_id),
    params      jsonb NOT NULL,                 -- the checked request
    created_at  timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL
);
CREATE INDEX authorization_requests_expires ON authorization_requests (expires_at);

CREATE TABLE sessions (
    id_hash     bytea PRIMARY KEY,              -- SHA-256 of the cookie value
    sid         text NOT NULL UNIQUE,           -- public session id, the ID token's sid claim
    user_id     uuid NOT NULL REFERENCES users (id),
    auth_time   timestamptz NOT NULL,
    created_at  timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    ended_at    timestamptz
);
CREATE INDEX sessions_user ON sessions (user_id) WHERE ended_at IS NULL;
CREATE INDEX sessions_expires ON sessions (expires_at);

CREATE TABLE consents (
    user_id     uuid NOT NULL REFERENCES users (id),
    client_id   text NOT NULL REFERENCES clients (client_id),
    scopes      text[] NOT NULL,
    granted_at  timestamptz NOT NULL,
    PRIMARY KEY (user_id, client_id)
);

CREATE TABLE authorization_codes (
    code_hash       bytea PRIMARY KEY,
    client_id       text NOT NULL REFERENCES clients (client_id),
    user_id         uuid NOT NULL REFERENCES users (id),
    sid             text NOT NULL,
    redirect_uri    text NOT NULL,
    scopes          text[] NOT NULL,
    audience        text[] NOT NULL,
    nonce           text,
    code_challenge  text NOT NULL,              -- S256 only
    auth_time       timestamptz NOT NULL,
    created_at      timestamptz NOT NULL,
    expires_at      timestamptz NOT NULL,
    consumed_at     timestamptz,
    issued_jtis     text[] NOT NULL DEFAULT '{}'  -- what the exchange issued, revoked on reuse
);
CREATE INDEX authorization_codes_expires ON authorization_codes (expires_at);

-- Access tokens revoked before their exp (code reuse now, /revoke later), by jti.
CREATE TABLE revoked_access_tokens (
    jti         text PRIMARY KEY,
    expires_at  timestamptz NOT NULL
);
CREATE INDEX revoked_access_tokens_expires ON revoked_access_tokens (expires_at);

-- Failed sign-ins per account (lower(email)) and per client IP, for growing delays and locks.
CREATE TABLE login_failures (
    key             text PRIMARY KEY,           -- 'email:<lower email>' or 'ip:<address>'
    failures        integer NOT NULL,
    last_failure_at timestamptz NOT NULL,
    locked_until    timestamptz
);
