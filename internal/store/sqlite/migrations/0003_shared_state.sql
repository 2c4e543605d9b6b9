-- plumbline schema, version 3: observed instance state is shared (every
-- gateway routes from it), a change counter with triggers, gateway reports
-- for cross-process draining, and leases for leader election.

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
ALTER TABLE instances ADD COLUMN last_probe_at  INTEGER NOT NULL DEFAULT 0;
ALTER TABLE instances ADD COLUMN pid            INTEGER NOT NULL DEFAULT 0;
ALTER TABLE instances ADD COLUMN started_at     INTEGER NOT NULL DEFAULT 0;

-- counters.routing increases with every committed change of what the
-- gateways route from: endpoints, deployments, instances.
CREATE TABLE counters (
	name  TEXT PRIMARY KEY,
	value INTEGER NOT NULL
);
INSERT INTO counters (name, value) VALUES ('routing', 1);

CREATE TRIGGER endpoints_ins AFTER INSERT ON endpoints BEGIN UPDATE counters SET value = value + 1 WHERE name = 'routing'; END;
CREATE TRIGGER endpoints_upd AFTER UPDATE ON endpoints BEGIN UPDATE counters SET value = value + 1 WHERE name = 'routing'; END;
CREATE TRIGGER endpoints_del AFTER DELETE ON endpoints BEGIN UPDATE counters SET value = value + 1 WHERE name = 'routing'; END;
CREATE TRIGGER deployments_ins AFTER INSERT ON deployments BEGIN UPDATE counters SET value = value + 1 WHERE name = 'routing'; END;
CREATE TRIGGER deployments_upd AFTER UPDATE ON deployments BEGIN UPDATE counters SET value = value + 1 WHERE name = 'routing'; END;
CREATE TRIGGER deployments_del AFTER DELETE ON deployments BEGIN UPDATE counters SET value = value + 1 WHERE name = 'routing'; END;
CREATE TRIGGER instances_ins AFTER INSERT ON instances BEGIN UPDATE counters SET value = value + 1 WHERE name = 'routing'; END;
CREATE TRIGGER instances_upd AFTER UPDATE ON instances BEGIN UPDATE counters SET value = value + 1 WHERE name = 'routing'; END;
CREATE TRIGGER instances_del AFTER DELETE ON instances BEGIN UPDATE counters SET value = value + 1 WHERE name = 'routing'; END;

-- One row per gateway replica: the instances it may still send requests
-- to (listed in its table, or with requests in flight), refreshed often.
CREATE TABLE gateway_reports (
	id         TEXT PRIMARY KEY,
	addr       TEXT    NOT NULL DEFAULT '',
	instances  TEXT,
	updated_at INTEGER NOT NULL
);

-- Leases elect one reconciler; token increases with every new holder and
-- fences out a stale one.
CREATE TABLE leases (
	name       TEXT PRIMARY KEY,
	holder     TEXT    NOT NULL,
	token      INTEGER NOT NULL,
	expires_at INTEGER NOT NULL
);
