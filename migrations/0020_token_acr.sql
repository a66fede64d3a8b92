-- The acr (OIDC Core §2) a code's and a refresh family's tokens report: the value the request
-- asked for that the sign-in met (a passkey sign-in asked for urn:idp:acr:mfa reports that,
-- as OIDC Core §5.5.1.1 wants of an essential acr). NULL: the class the amr reaches.
ALTER TABLE authorization_codes ADD COLUMN acr text;
ALTER TABLE refresh_families ADD COLUMN acr text;
