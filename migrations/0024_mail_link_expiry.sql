-- When the link a queued mail carries expires (idp.accounts.mail_tokens.TTL): the sender gives
-- the mail up then rather than deliver a dead link. NULL for mail without a link, and for rows
-- queued before this migration: they keep the sender's 24 hours (idp.mail.sender.MAX_AGE).
ALTER TABLE mail_outbox ADD COLUMN link_expires_at timestamptz;
