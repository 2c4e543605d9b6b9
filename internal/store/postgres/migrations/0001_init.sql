-- plumbline schema for PostgreSQL, version 1 (the same tables as SQLite's
-- version 1). Times are unix nanoseconds (UTC); booleans are 0/1; maps and
-- specs are JSON text.

CREATE TABLE models (
	id          BIGSERIAL PRIMARY KEY,
	name        TEXT    NOT NULL,
	version     TEXT    NOT NULL,
	digest      TEXT    NOT NULL,
	type        TEXT    NOT NULL DEFAULT '',
	description TEXT    NOT NULL DEFAULT '',
	tags        TEXT,
	path_base   TEXT    NOT NULL DEFAULT '',
	size        BIGINT  NOT NULL DEFAULT 0,
	file_count  BIGINT  NOT NULL DEFAULT 0,
	archived    INTEGER NOT NULL DEFAULT 0,
	created_at  BIGINT  NOT NULL,
	UNIQUE (name, version)
);
CREATE INDEX models_latest ON models (name, archived, created_at, id);

CREATE TABLE endpoints (
	name          TEXT PRIMARY KEY,
	spec          TEXT,
	auth_mode     TEXT    NOT NULL DEFAULT '',
	primary_key   TEXT    NOT NULL DEFAULT '',
	secondary_key TEXT    NOT NULL DEFAULT '',
	traffic       TEXT,
	mirror        TEXT,
	state         TEXT    NOT NULL DEFAULT '',
	reason        TEXT    NOT NULL DEFAULT '',
	generation    BIGINT  NOT NULL DEFAULT 0,
	created_at    BIGINT  NOT NULL,
	updated_at    BIGINT  NOT NULL
);

CREATE TABLE deployments (
	endpoint            TEXT    NOT NULL REFERENCES endpoints (name) ON DELETE CASCADE,
	name                TEXT    NOT NULL,
	spec                TEXT,
	state               TEXT    NOT NULL DEFAULT '',
	reason              TEXT    NOT NULL DEFAULT '',
	generation          BIGINT  NOT NULL DEFAULT 0,
	observed_generation BIGINT  NOT NULL DEFAULT 0,
	created_at          BIGINT  NOT NULL,
	updated_at          BIGINT  NOT NULL,
	PRIMARY KEY (endpoint, name)
);

CREATE TABLE instances (
	endpoint   TEXT    NOT NULL,
	deployment TEXT    NOT NULL,
	name       TEXT    NOT NULL,
	driver     TEXT    NOT NULL DEFAULT '',
	data       TEXT,
	created_at BIGINT  NOT NULL,
	updated_at BIGINT  NOT NULL,
	PRIMARY KEY (endpoint, deployment, name),
	FOREIGN KEY (endpoint, deployment) REFERENCES deployments (endpoint, name) ON DELETE CASCADE
);

-- Events outlive their deployment and instance but not their endpoint. An
-- ID is never reused, so "events after ID n" stays correct.
CREATE TABLE events (
	id         BIGSERIAL PRIMARY KEY,
	time       BIGINT NOT NULL,
	endpoint   TEXT   NOT NULL REFERENCES endpoints (name) ON DELETE CASCADE,
	deployment TEXT   NOT NULL DEFAULT '',
	instance   TEXT   NOT NULL DEFAULT '',
	type       TEXT   NOT NULL DEFAULT '',
	reason     TEXT   NOT NULL DEFAULT '',
	message    TEXT   NOT NULL DEFAULT ''
);
CREATE INDEX events_by_owner ON events (endpoint, deployment, instance, id);

CREATE TABLE settings (
	key   TEXT PRIMARY KEY,
	value BYTEA NOT NULL
);
