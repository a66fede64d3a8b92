-- Deleting a client (idp.admin.clients.delete) deletes what it holds: its refresh families and
-- the consents users gave it, found here by client_id (their keys lead with id and user_id),
-- and the foreign-key checks of the client's own row find none left the same way. Codes and
-- pending requests live minutes and the janitor keeps their tables small: no index needed.
CREATE INDEX refresh_families_client ON refresh_families (client_id);
CREATE INDEX consents_client ON consents (client_id);
