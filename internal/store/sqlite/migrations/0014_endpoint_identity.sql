-- An endpoint's identity and token generation. uid is random and new for
-- every endpoint created, so an endpoint deleted and created again under
-- the same name is another endpoint: aml_tokens are bound to it, and to
-- token_generation, which revoking the endpoint's tokens increments.
ALTER TABLE endpoints ADD COLUMN uid TEXT NOT NULL DEFAULT '';
ALTER TABLE endpoints ADD COLUMN token_generation INTEGER NOT NULL DEFAULT 0;
UPDATE endpoints SET uid = lower(hex(randomblob(16))) WHERE uid = '';
