-- Registered environments (az ml environment create): versions like models.
CREATE TABLE environments (
	id          BIGSERIAL PRIMARY KEY,
	name        TEXT    NOT NULL,
	version     TEXT    NOT NULL,
	digest      TEXT    NOT NULL,
	spec        TEXT,
	description TEXT    NOT NULL DEFAULT '',
	tags        TEXT,
	archived    INTEGER NOT NULL DEFAULT 0,
	created_at  BIGINT  NOT NULL,
	UNIQUE (name, version)
);
CREATE INDEX environments_latest ON environments (name, archived, created_at, id);
