-- Model names are case-insensitive, like endpoint and deployment names:
-- plumbline keeps them in lower case (the same as SQLite's version 13).
-- Versions registered before under names that differ only in case join the
-- lower-case name; where two had the same version, the oldest keeps it and
-- each other one becomes <version>-<its old name>, losing none.
UPDATE models SET version = version || '-' || name
 WHERE id NOT IN (SELECT min(id) FROM models GROUP BY lower(name), version);
UPDATE models SET name = lower(name) WHERE name <> lower(name);
