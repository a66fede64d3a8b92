-- Resource servers that may introspect tokens not their own (RFC 7662 §2.1, §4): a client learns
-- about another client's access token only when one of the token's audiences is listed here
-- (`idp clients add ... --introspect-audience URI`); about a refresh token, only its own.
ALTER TABLE clients ADD COLUMN introspect_audiences text[] NOT NULL DEFAULT '{}';
