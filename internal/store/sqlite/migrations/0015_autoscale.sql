-- plumbline schema, version 15: the autoscaler. Gateways report each
-- deployment's demand with the instances they may reach; the leader's
-- autoscaler keeps its decision (and the API a pre-warm floor) per
-- deployment. Not a routing input: no trigger raises the routing version.

ALTER TABLE gateway_reports ADD COLUMN demand TEXT;

CREATE TABLE deployment_scales (
	endpoint          TEXT    NOT NULL,
	deployment        TEXT    NOT NULL,
	desired           INTEGER NOT NULL DEFAULT 0,
	decided_at        INTEGER NOT NULL DEFAULT 0,
	decision          TEXT    NOT NULL DEFAULT '',
	panic             INTEGER NOT NULL DEFAULT 0,
	utilization       REAL    NOT NULL DEFAULT 0,
	prewarm_instances INTEGER NOT NULL DEFAULT 0,
	prewarm_until     INTEGER NOT NULL DEFAULT 0,
	updated_at        INTEGER NOT NULL,
	PRIMARY KEY (endpoint, deployment),
	FOREIGN KEY (endpoint, deployment) REFERENCES deployments (endpoint, name) ON DELETE CASCADE
);
