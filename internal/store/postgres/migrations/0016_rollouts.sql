-- Safe rollout: progressive rollouts (one active per endpoint), the traffic
-- history of every endpoint, the figures each gateway measures per traffic
-- epoch, and sampled diffs of disagreeing shadow answers (the same as
-- SQLite's version 13).

CREATE TABLE rollouts (
	id              BIGSERIAL PRIMARY KEY,
	endpoint        TEXT   NOT NULL REFERENCES endpoints (name) ON DELETE CASCADE,
	deployment      TEXT   NOT NULL,
	plan            TEXT,
	state           TEXT   NOT NULL,
	reason          TEXT   NOT NULL DEFAULT '',
	step            INTEGER NOT NULL DEFAULT 0,
	step_started_at BIGINT NOT NULL DEFAULT 0,
	epoch           BIGINT NOT NULL DEFAULT 0,
	baseline        TEXT,
	baseline_mirror TEXT,
	data            TEXT,
	created_at      BIGINT NOT NULL,
	updated_at      BIGINT NOT NULL,
	finished_at     BIGINT NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX rollouts_one_active ON rollouts (endpoint) WHERE state IN ('Running', 'Paused');
CREATE INDEX rollouts_by_endpoint ON rollouts (endpoint, deployment, id);
-- A rollout's step is part of what gateways route by (the candidate's hold).
CREATE TRIGGER rollouts_routing AFTER INSERT OR UPDATE OR DELETE ON rollouts
	FOR EACH STATEMENT EXECUTE FUNCTION plumbline_routing_changed();

CREATE TABLE traffic_history (
	id         BIGSERIAL PRIMARY KEY,
	endpoint   TEXT   NOT NULL REFERENCES endpoints (name) ON DELETE CASCADE,
	time       BIGINT NOT NULL,
	generation BIGINT NOT NULL DEFAULT 0,
	rollout_id BIGINT NOT NULL DEFAULT 0,
	cause      TEXT   NOT NULL DEFAULT '',
	entries    TEXT
);
CREATE INDEX traffic_history_by_endpoint ON traffic_history (endpoint, id);

-- Written by gateways, often: no routing trigger, no foreign key (a
-- gateway may report an endpoint deleted a moment ago); old rows are
-- removed by the leader.
CREATE TABLE rollout_stats (
	source     TEXT   NOT NULL,
	endpoint   TEXT   NOT NULL,
	epoch      BIGINT NOT NULL,
	kind       TEXT   NOT NULL,
	subject    TEXT   NOT NULL,
	figures    TEXT,
	updated_at BIGINT NOT NULL,
	PRIMARY KEY (source, endpoint, epoch, kind, subject)
);
CREATE INDEX rollout_stats_by_endpoint ON rollout_stats (endpoint, epoch);

CREATE TABLE shadow_diffs (
	id       BIGSERIAL PRIMARY KEY,
	endpoint TEXT   NOT NULL,
	epoch    BIGINT NOT NULL,
	kind     TEXT   NOT NULL,
	subject  TEXT   NOT NULL,
	time     BIGINT NOT NULL,
	body     TEXT
);
CREATE INDEX shadow_diffs_by_subject ON shadow_diffs (endpoint, kind, subject, id);
