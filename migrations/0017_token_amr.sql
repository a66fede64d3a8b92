-- The factors a sign-in used (RFC 8176 amr values) travel from the session with its code into
-- the tokens, and stay with the refresh family it starts. NULL (rows from before): ["pwd"].
ALTER TABLE authorization_codes ADD COLUMN amr text[];
ALTER TABLE refresh_families ADD COLUMN amr text[];
