-- Indexes for the queries that ran as sequential scans: the janitor erasing grace-window
-- answers, and session revocation finding what a user's recent codes issued.
CREATE INDEX refresh_tokens_sealed ON refresh_tokens (consumed_at)
    WHERE successor_response IS NOT NULL;
CREATE INDEX authorization_codes_user ON authorization_codes (user_id, consumed_at);
