-- The refresh family an authorization code's exchange started, so that a replay of the code
-- revokes it with every access token issued from it, as well as the exchange's own access token
-- (RFC 6749 §4.1.2, RFC 9700 §4.5). Set by the UPDATE that records the exchange's access token;
-- NULL for a client without the refresh_token grant. No foreign key: it would add a lookup to
-- the exchange, and a family the janitor deleted has nothing left to revoke.
ALTER TABLE authorization_codes ADD COLUMN refresh_family_id uuid;
