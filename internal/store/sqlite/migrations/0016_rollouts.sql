-- Safe rollout: progressive rollouts (one active per endpoint), the traffic
-- history of every endpoint, the figures each gateway measures per traffic
-- epoch, and sampled diffs of disagreeing shadow answers.

CREATE TABLE rollouts (
	id              INTEGER PRIMARY KEY AUTOINCREMENT,
	endpoint        TEXT    NOT NULL REFERENCES endpoints (name) ON DELETE CASCADE,
	deployment      TEXT    NOT NULL,
	plan            TEXT,
	state           TEXT    NOT NULL,
	reason          TEXT    NOT NULL DEFAULT '',
	step            INTEGER NOT NULL DEFAULT 0,
	step_started_at INTEGER NOT NULL DEFAULT 0,
	epoch           INTEGER NOT NULL DEFAULT 0,
	baseline        TEXT,
	baseline_mirror TEXT,
	data            TEXT,
	created_at      INTEGER NOT NULL,
	updated_at      INTEGER NOT NULL,
	finished_at     INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX rollouts_one_active ON rollouts (endpoint) WHERE state IN ('Running', 'Paused');
CREATE INDEX rollouts_by_endpoint ON rollouts (endpoint, deployment, id);
-- A rollout's step is part of what gateways route by (the candidate's hold).
CREATE TRIGGER rollouts_ins AFTER INSERT ON rollouts BEGIN UPDATE counters SET value = value + 1 WHERE name = 'routing'; END;
CREATE TRIGGER rollouts_upd AFTER UPDATE ON rollouts BEGIN UPDATE counters SET value = value + 1 WHERE name = 'routing'; END;
CREATE TRIGGER rollouts_del AFTER DELETE ON rollouts BEGIN UPDATE counters SET value = value + 1 WHERE name = 'routing'; END;

CREATE TABLE traffic_history (
	id         INTEGER PRIMARY KEY AUTOINCREMENT,
	endpoint   TEXT    NOT NULL REFERENCES endpoints (name) ON DELETE CASCADE,
	time       INTEGER NOT NULL,
	generation INTEGER NOT NULL DEFAULT 0,
	rollout_id INTEGER NOT NULL DEFAULT 0,
	cause      TEXT    NOT NULL DEFAULT '',
	entries    TEXT
);
CREATE INDEX traffic_history_by_endpoint ON traffic_history (endpoint, id);

-- Written by gateways, often: no routing trigger, no foreign key (a
-- gateway may report an endpoint deleted a moment ago); old rows are
-- removed by the leader.
CREATE TABLE rollout_stats (
	source     TEXT    NOT NULL,
	endpoint   TEXT    NOT NULL,
	epoch      INTEGER NOT NULL,
	kind       TEXT    NOT NULL,
	subject    TEXT    NOT NULL,
	figures    TEXT,
	updated_at INTEGER NOT NULL,
	PRIMARY KEY (source, endpoint, epoch, kind, subject)
);
CREATE INDEX rollout_stats_by_endpoint ON rollout_stats (endpoint, epoch);

CREATE TABLE shadow_diffs (
	id       INTEGER PRIMARY KEY AUTOINCREMENT,
	endpoint TEXT    NOT NULL,
	epoch    INTEGER NOT NULL,
	kind     TEXT    NOT NULL,
	subject  TEXT    NOT NULL,
	time     INTEGER NOT NULL,
	body     TEXT
);
CREATE INDEX shadow_diffs_by_subject ON shadow_diffs (endpoint, kind, subject, id);
