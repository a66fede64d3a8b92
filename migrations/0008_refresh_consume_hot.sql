-- Consuming a refresh token changes only consumed_at. With no index on that column the update
-- is HOT (heap-only: no new entry in any index), given free room on the page, which the
-- fillfactor keeps. The janitor's index of sealed answers (migration 0005) moves to created_at:
-- it only needs to find the few rows that hold one.
DROP INDEX refresh_tokens_sealed;
CREATE INDEX refresh_tokens_sealed ON refresh_tokens (created_at)
    WHERE successor_response IS NOT NULL;
ALTER TABLE refresh_tokens SET (fillfactor = 80);
