-- Users who sign in on the hosted login page, and the clients (relying apps) they sign in to.
CREATE TABLE users (
    id              uuid PRIMARY KEY,
    email           text NOT NULL,
    name            text,
    email_verified  boolean NOT NULL DEFAULT false,
    password_hash   text NOT NULL,              -- argon2id, PHC string
    roles           text[] NOT NULL DEFAULT '{}',
    disabled        boolean NOT NULL DEFAULT false,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL
);
-- Emails are unique whatever their case (login looks them up by lower(email)).
CREATE UNIQUE INDEX users_email_lower ON users (lower(email));

CREATE TABLE clients (
    client_id                 text PRIMARY KEY,
    name                      text NOT NULL,
    secret_hash               bytea,            -- SHA-256 of a 256-bit random secret; NULL: public client
    redirect_uris             text[] NOT NULL DEFAULT '{}',
    grant_types               text[] NOT NULL,
    scopes                    text[] NOT NULL,  -- the scopes it may ask for
    audiences                 text[] NOT NULL DEFAULT '{}',
    post_logout_redirect_uris text[] NOT NULL DEFAULT '{}',
    first_party               boolean NOT NULL DEFAULT false,
    access_token_ttl          integer CHECK (access_token_ttl > 0),   -- seconds; NULL: the default
    refresh_token_ttl         integer CHECK (refresh_token_ttl > 0),  -- seconds; NULL: the default
    disabled                  boolean NOT NULL DEFAULT false,
    created_at                timestamptz NOT NULL
);
