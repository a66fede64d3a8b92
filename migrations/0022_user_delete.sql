-- Deleting a user (`DELETE /admin/v1/users/{id}`) takes with it what only made sense for them:
-- their sign-in sessions, consents, authorization codes and refresh families (each holding its
-- refresh token, migration 0010). Mail tokens, second factors and passkeys cascade already
-- (migrations 0015, 0016, 0018). The access tokens issued from them are deny-listed first, in
-- the same transaction (idp.admin.users.delete); the audit log keeps the user's id as text.
ALTER TABLE sessions DROP CONSTRAINT sessions_user_id_fkey,
    ADD CONSTRAINT sessions_user_id_fkey
        FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE;
ALTER TABLE consents DROP CONSTRAINT consents_user_id_fkey,
    ADD CONSTRAINT consents_user_id_fkey
        FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE;
ALTER TABLE authorization_codes DROP CONSTRAINT authorization_codes_user_id_fkey,
    ADD CONSTRAINT authorization_codes_user_id_fkey
        FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE;
ALTER TABLE refresh_families DROP CONSTRAINT refresh_families_user_id_fkey,
    ADD CONSTRAINT refresh_families_user_id_fkey
        FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE;
