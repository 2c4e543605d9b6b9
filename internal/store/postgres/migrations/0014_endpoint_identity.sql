-- An endpoint's identity and token generation (the same as SQLite's
-- version 14): uid is random and new for every endpoint created, so one
-- deleted and created again under the same name is another endpoint;
-- aml_tokens are bound to it and to token_generation, which revoking the
-- endpoint's tokens increments.
ALTER TABLE endpoints ADD COLUMN uid TEXT NOT NULL DEFAULT '';
ALTER TABLE endpoints ADD COLUMN token_generation BIGINT NOT NULL DEFAULT 0;
UPDATE endpoints SET uid = md5(random()::text || clock_timestamp()::text || name) WHERE uid = '';
