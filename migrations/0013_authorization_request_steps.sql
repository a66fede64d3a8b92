-- A parked /authorize request remembers the step it waits for, and the sign-in made for it.
-- prompt=login and max_age (OIDC Core §3.1.2.1) are satisfied only by a sign-in completed for
-- this very request: the login step records its session's sid here, and the consent step is
-- reached only by that session. Requests parked before this migration default to waiting for
-- the login step, the safe side (they expire within minutes anyway).
ALTER TABLE authorization_requests
    ADD COLUMN waiting_for text NOT NULL DEFAULT 'login'
        CHECK (waiting_for IN ('login', 'consent')),
    ADD COLUMN login_sid text;
