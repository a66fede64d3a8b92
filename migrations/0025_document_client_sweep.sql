-- The janitor deletes metadata document clients whose cached document expired long ago and
-- that hold nothing (idp.janitor.DELETE_DOCUMENT_CLIENTS): found by this partial index, which
-- holds only such clients' rows. What they could hold is found by refresh_families_client and
-- consents_client (0023); codes and pending requests are few, the janitor keeps them so.
CREATE INDEX clients_document_expiry ON clients (metadata_expires_at)
    WHERE registration = 'metadata_document';
