-- The call log's per-organisation, per-team and per-key indexes leave out the rows that have
-- no organisation, team or key (calls made with the admin key). No query looks those rows up
-- through these indexes: every one that uses them filters with `org = ?`, `team = ?` or
-- `key_id = ?`, which implies the column is not null, so both SQLite and Postgres still choose
-- them. Each row written without a caller then updates three index B-trees fewer: ~3 of the
-- ~8 B-tree inserts and about a third of the WAL pages per such row.
-- Rebuilding an index reads the whole table once; on a large Postgres table the migration
-- holds the table's write lock while it runs. The SQLite and Postgres migrations of this
-- number are the same text.

DROP INDEX usage_records_team;
CREATE INDEX usage_records_team ON usage_records (org, team, started_at_ms)
    WHERE team IS NOT NULL;

DROP INDEX usage_records_key;
CREATE INDEX usage_records_key ON usage_records (key_id, started_at_ms)
    WHERE key_id IS NOT NULL;

DROP INDEX usage_records_org_time;
CREATE INDEX usage_records_org_time ON usage_records (org, started_at_ms, id)
    WHERE org IS NOT NULL;
