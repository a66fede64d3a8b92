-- The management API names initial access tokens and resources by an id
-- (/admin/v1/initial-tokens/{id}, /admin/v1/resources/{id}): a token is never named by its
-- digest, and a resource's URL does not fit in one path segment (an encoded "/" is decoded, or
-- refused, by servers and proxies before idp sees it).
ALTER TABLE initial_access_tokens ADD COLUMN id uuid NOT NULL DEFAULT gen_random_uuid();
ALTER TABLE initial_access_tokens ADD CONSTRAINT initial_access_tokens_id UNIQUE (id);
-- /admin/v1/initial-tokens lists them newest first, page by page.
CREATE INDEX initial_access_tokens_created ON initial_access_tokens (created_at, id);
ALTER TABLE resources ADD COLUMN id uuid NOT NULL DEFAULT gen_random_uuid();
ALTER TABLE resources ADD CONSTRAINT resources_id UNIQUE (id);
