-- Accounts people run themselves: sign-up, email verification, password reset, invitations,
-- the account page, and the mail outbox that carries their links.

-- An invited user has no password until they accept the invitation.
ALTER TABLE users ALTER COLUMN password_hash DROP NOT NULL;
-- A user who signed up may sign in only once their address is verified; users an operator
-- added sign in as before (idp users add --verified marks the address verified).
ALTER TABLE users ADD COLUMN must_verify_email boolean NOT NULL DEFAULT false;

-- What the account page shows of a session.
ALTER TABLE sessions ADD COLUMN user_agent text;
ALTER TABLE sessions ADD COLUMN ip text;
ALTER TABLE sessions ADD COLUMN last_seen_at timestamptz;

-- The tokens mails carry (verification, reset, invitation, email change): only their SHA-256 is
-- stored; each is for one purpose and one user, used once, and voided when the password or the
-- email changes.
CREATE TABLE mail_tokens (
    token_hash  bytea PRIMARY KEY,
    purpose     text NOT NULL CHECK (purpose IN
                    ('verify_email', 'reset_password', 'invitation', 'change_email')),
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    email       text NOT NULL,                  -- the address the mail went to
    resume      jsonb,                          -- the authorization request to go back to
    created_at  timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz
);
CREATE INDEX mail_tokens_user ON mail_tokens (user_id) WHERE used_at IS NULL;
CREATE INDEX mail_tokens_expires ON mail_tokens (expires_at);

-- Mail waiting to be sent, written in the transaction that made its token. Bodies are
-- encrypted under the key-encryption key (they carry links) and dropped once sent.
CREATE TABLE mail_outbox (
    id              bigserial PRIMARY KEY,
    recipient       text NOT NULL,
    template        text NOT NULL,              -- which mail, for `idp mail queue`
    sealed          bytea,                      -- subject and bodies, AES-GCM; NULL once sent
    created_at      timestamptz NOT NULL,
    next_attempt_at timestamptz NOT NULL,
    attempts        integer NOT NULL DEFAULT 0,
    last_error      text,
    sent_at         timestamptz,
    given_up_at     timestamptz
);
CREATE INDEX mail_outbox_due ON mail_outbox (next_attempt_at)
    WHERE sent_at IS NULL AND given_up_at IS NULL;

-- Fixed-window counters for the mail-sending forms (per address and per client IP).
CREATE TABLE rate_limits (
    key           text PRIMARY KEY,
    window_start  timestamptz NOT NULL,
    hits          integer NOT NULL
);
CREATE INDEX rate_limits_window ON rate_limits (window_start);

-- Wake every process's mail sender when a mail is queued.
CREATE FUNCTION idp_mail_queued() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('idp_mail', '');
    RETURN NULL;
END;
$$;
CREATE TRIGGER mail_outbox_notify AFTER INSERT ON mail_outbox
    FOR EACH STATEMENT EXECUTE FUNCTION idp_mail_queued();
