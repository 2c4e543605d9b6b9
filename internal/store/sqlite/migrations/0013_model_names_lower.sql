-- Model names are case-insensitive, like endpoint and deployment names:
-- plumbline keeps them in lower case. Versions registered before under names
-- that differ only in case join the lower-case name. Where two of them had
-- the same version (rm-e:1 and RM-E:1), the oldest keeps it and each other
-- one becomes <version>-<its old name> (RM-E:1 becomes rm-e:1-RM-E), so no
-- version is lost and deployments, which pin digests, run unchanged.
UPDATE models SET version = version || '-' || name
 WHERE id NOT IN (SELECT min(id) FROM models GROUP BY lower(name), version);
UPDATE models SET name = lower(name) WHERE name <> lower(name);
