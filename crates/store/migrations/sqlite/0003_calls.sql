-- Call log, bodies and analytics rollups (issue 5). Same conventions as 0002: Unix
-- milliseconds, integer micro-dollars, JSON text. The Postgres migration of the same number
-- differs only in how row ids are generated.

-- The call log is the usage ledger's table: one row per admitted request, billing data and
-- log metadata together, written once. These columns are the log's part.
ALTER TABLE usage_records ADD COLUMN client_ip TEXT;
ALTER TABLE usage_records ADD COLUMN user_agent TEXT;
ALTER TABLE usage_records ADD COLUMN route TEXT;
-- JSON array of {target, status, latency_ms, error_code}, one per upstream attempt.
ALTER TABLE usage_records ADD COLUMN attempt_log TEXT NOT NULL DEFAULT '[]';
ALTER TABLE usage_records ADD COLUMN cache_status TEXT;
ALTER TABLE usage_records ADD COLUMN guardrail TEXT;
ALTER TABLE usage_records ADD COLUMN trace_id TEXT;
CREATE INDEX usage_records_app ON usage_records (org, team, app, started_at_ms);

-- Request and response bodies, only for the aliases and teams `logging.bodies` names, redacted
-- before they are queued. Written through their own queue, which may drop under overload.
CREATE TABLE call_bodies (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id          TEXT NOT NULL,
    started_at_ms       BIGINT NOT NULL,
    request_body        TEXT,
    response_body       TEXT,
    truncated           BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX call_bodies_request ON call_bodies (request_id);
CREATE INDEX call_bodies_time ON call_bodies (started_at_ms);

-- Per-minute analytics rollups, added to by the usage writer in the transaction that inserts
-- the records. Each record adds to one row per dimension: `all` (value ''), `alias`,
-- `target` (provider/model), `team` (org/team), `app` (org/team/app), `key` (key id) and one
-- `tag` row per tag (k=v). Dimension values are '' rather than NULL so that the unique key
-- matches for upserts. `lat_NN` count requests per latency bucket (core::usage::rollup).
CREATE TABLE usage_rollups (
    bucket_ms           BIGINT NOT NULL,
    org                 TEXT NOT NULL DEFAULT '',
    dimension           TEXT NOT NULL,
    value               TEXT NOT NULL,
    requests            BIGINT NOT NULL DEFAULT 0,
    errors              BIGINT NOT NULL DEFAULT 0,
    cancelled           BIGINT NOT NULL DEFAULT 0,
    input_tokens        BIGINT NOT NULL DEFAULT 0,
    output_tokens       BIGINT NOT NULL DEFAULT 0,
    cached_input_tokens BIGINT NOT NULL DEFAULT 0,
    cache_write_tokens  BIGINT NOT NULL DEFAULT 0,
    reasoning_tokens    BIGINT NOT NULL DEFAULT 0,
    cost_micros         BIGINT NOT NULL DEFAULT 0,
    latency_ms_sum      BIGINT NOT NULL DEFAULT 0,
    ttft_ms_sum         BIGINT NOT NULL DEFAULT 0,
    ttft_count          BIGINT NOT NULL DEFAULT 0,
    lat_00              BIGINT NOT NULL DEFAULT 0,
    lat_01              BIGINT NOT NULL DEFAULT 0,
    lat_02              BIGINT NOT NULL DEFAULT 0,
    lat_03              BIGINT NOT NULL DEFAULT 0,
    lat_04              BIGINT NOT NULL DEFAULT 0,
    lat_05              BIGINT NOT NULL DEFAULT 0,
    lat_06              BIGINT NOT NULL DEFAULT 0,
    lat_07              BIGINT NOT NULL DEFAULT 0,
    lat_08              BIGINT NOT NULL DEFAULT 0,
    lat_09              BIGINT NOT NULL DEFAULT 0,
    lat_10              BIGINT NOT NULL DEFAULT 0,
    lat_11              BIGINT NOT NULL DEFAULT 0,
    lat_12              BIGINT NOT NULL DEFAULT 0,
    lat_13              BIGINT NOT NULL DEFAULT 0,
    lat_14              BIGINT NOT NULL DEFAULT 0,
    lat_15              BIGINT NOT NULL DEFAULT 0,
    lat_16              BIGINT NOT NULL DEFAULT 0,
    lat_17              BIGINT NOT NULL DEFAULT 0,
    lat_18              BIGINT NOT NULL DEFAULT 0,
    lat_19              BIGINT NOT NULL DEFAULT 0,
    lat_20              BIGINT NOT NULL DEFAULT 0,
    lat_21              BIGINT NOT NULL DEFAULT 0,
    lat_22              BIGINT NOT NULL DEFAULT 0,
    lat_23              BIGINT NOT NULL DEFAULT 0,
    lat_24              BIGINT NOT NULL DEFAULT 0,
    lat_25              BIGINT NOT NULL DEFAULT 0,
    lat_26              BIGINT NOT NULL DEFAULT 0,
    lat_27              BIGINT NOT NULL DEFAULT 0,
    lat_28              BIGINT NOT NULL DEFAULT 0,
    lat_29              BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (dimension, value, org, bucket_ms)
);
CREATE INDEX usage_rollups_time ON usage_rollups (bucket_ms);

-- Measured on one million calls (docs/observability-api.md): the log's newest-first pages of one
-- organisation walk this index instead of sorting the organisation's rows (271 ms -> < 1 ms on
-- SQLite); `id` is part of it because it is the order's tie-breaker (implicit in SQLite).
CREATE INDEX usage_records_org_time ON usage_records (org, started_at_ms, id);
-- Analytics read one dimension over a range (of one organisation or all) from this index
-- rather than every dimension of the range (usage_rollups_time) or of all time (the key).
CREATE INDEX usage_rollups_dim_time ON usage_rollups (dimension, bucket_ms, org);
