-- plumbline schema for PostgreSQL, version 3: observed instance state, a
-- change counter that notifies listeners, gateway reports and leases (the
-- same as SQLite's version 3).

ALTER TABLE instances ADD COLUMN instance_id    TEXT    NOT NULL DEFAULT '';
ALTER TABLE instances ADD COLUMN addr           TEXT    NOT NULL DEFAULT '';
ALTER TABLE instances ADD COLUMN template       TEXT    NOT NULL DEFAULT '';
ALTER TABLE instances ADD COLUMN state          TEXT    NOT NULL DEFAULT '';
ALTER TABLE instances ADD COLUMN routable       INTEGER NOT NULL DEFAULT 0;
ALTER TABLE instances ADD COLUMN scoring_path   TEXT    NOT NULL DEFAULT '';
ALTER TABLE instances ADD COLUMN openapi_path   TEXT    NOT NULL DEFAULT '';
ALTER TABLE instances ADD COLUMN max_concurrent INTEGER NOT NULL DEFAULT 0;
ALTER TABLE instances ADD COLUMN restarts       INTEGER NOT NULL DEFAULT 0;
ALTER TABLE instances ADD COLUMN last_probe     TEXT    NOT NULL DEFAULT '';
ALTER TABLE instances ADD COLUMN last_probe_at  BIGINT  NOT NULL DEFAULT 0;
ALTER TABLE instances ADD COLUMN pid            INTEGER NOT NULL DEFAULT 0;
ALTER TABLE instances ADD COLUMN started_at     BIGINT  NOT NULL DEFAULT 0;

-- counters.routing increases with every committed change of what the
-- gateways route from, and every such commit notifies plumbline_routing:
-- gateways waiting on the version wake at once.
CREATE TABLE counters (
	name  TEXT PRIMARY KEY,
	value BIGINT NOT NULL
);
INSERT INTO counters (name, value) VALUES ('routing', 1);

CREATE FUNCTION plumbline_routing_changed() RETURNS trigger AS $$
BEGIN
	UPDATE counters SET value = value + 1 WHERE name = 'routing';
	PERFORM pg_notify('plumbline_routing', '');
	RETURN NULL;
END
$$ LANGUAGE plpgsql;

CREATE TRIGGER endpoints_routing AFTER INSERT OR UPDATE OR DELETE ON endpoints
	FOR EACH STATEMENT EXECUTE FUNCTION plumbline_routing_changed();
CREATE TRIGGER deployments_routing AFTER INSERT OR UPDATE OR DELETE ON deployments
	FOR EACH STATEMENT EXECUTE FUNCTION plumbline_routing_changed();
CREATE TRIGGER instances_routing AFTER INSERT OR UPDATE OR DELETE ON instances
	FOR EACH STATEMENT EXECUTE FUNCTION plumbline_routing_changed();

CREATE TABLE gateway_reports (
	id         TEXT PRIMARY KEY,
	addr       TEXT   NOT NULL DEFAULT '',
	instances  TEXT,
	updated_at BIGINT NOT NULL
);

CREATE TABLE leases (
	name       TEXT PRIMARY KEY,
	holder     TEXT   NOT NULL,
	token      BIGINT NOT NULL,
	expires_at BIGINT NOT NULL
);
