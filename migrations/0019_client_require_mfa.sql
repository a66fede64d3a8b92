-- A client whose every sign-in must reach two factors (`idp clients add ... --require-mfa`): as if
-- each of its requests asked for an essential urn:idp:acr:mfa (OIDC Core §5.5.1.1).
ALTER TABLE clients ADD COLUMN require_mfa boolean NOT NULL DEFAULT false;
