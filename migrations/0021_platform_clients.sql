-- Clients that platforms and programs create: the management API's admin clients, clients
-- registered dynamically (RFC 7591/7592), clients known by a Client ID Metadata Document, the
-- initial access tokens that open registration, and the resources registered clients may name.

-- `idp clients add ... --admin`: may get tokens for {issuer}/admin with idp:admin scopes.
ALTER TABLE clients ADD COLUMN admin boolean NOT NULL DEFAULT false;
-- Who made it: an operator (CLI or management API), RFC 7591 registration, or a metadata
-- document fetched from its client_id URL. Only operator clients may be first-party or admin.
ALTER TABLE clients ADD COLUMN registration text NOT NULL DEFAULT 'operator'
    CHECK (registration IN ('operator', 'dynamic', 'metadata_document'));
-- RFC 7591 §2 metadata shown to people or echoed back: client_uri, logo_uri, contacts, ...
ALTER TABLE clients ADD COLUMN metadata jsonb NOT NULL DEFAULT '{}';
-- RFC 7592 §3: SHA-256 of the registration access token; NULL for other clients.
ALTER TABLE clients ADD COLUMN registration_token_hash bytea;
-- A metadata document's client: when its cached document must be fetched again.
ALTER TABLE clients ADD COLUMN metadata_expires_at timestamptz;
ALTER TABLE clients ADD COLUMN updated_at timestamptz;
UPDATE clients SET updated_at = created_at;
ALTER TABLE clients ALTER COLUMN updated_at SET NOT NULL;
-- Listing clients page by page (cursor pagination: never OFFSET).
CREATE INDEX clients_created ON clients (created_at, client_id);

-- `idp clients initial-token`: RFC 7591 §3 initial access tokens, stored by digest.
CREATE TABLE initial_access_tokens (
    token_hash  bytea PRIMARY KEY,
    created_at  timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    uses_left   integer CHECK (uses_left >= 0),   -- NULL: any number until it expires
    created_by  text NOT NULL
);
CREATE INDEX initial_access_tokens_expires ON initial_access_tokens (expires_at);

-- `idp resources add URL`: resources (RFC 8707) registered clients may ask tokens for.
CREATE TABLE resources (
    url         text PRIMARY KEY,
    created_at  timestamptz NOT NULL
);

-- Listing users page by page in address order, and the audit log by time.
CREATE INDEX audit_log_actor ON audit_log (actor, id);
CREATE INDEX audit_log_action ON audit_log (action, id);
