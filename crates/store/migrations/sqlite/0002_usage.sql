-- Usage ledger, rate-limit rules and budgets (issue 4). Times are Unix milliseconds, money is
-- integer micro-dollars, booleans are 0/1 integers and tags are JSON text, so that both
-- databases share one code path. The Postgres migration of the same number differs only in
-- how the row id is generated.

-- One row per request that reached admission, written in batches by the usage writer.
-- `request_id` is not unique: clients may send their own ids and reuse them.
CREATE TABLE usage_records (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id          TEXT NOT NULL,
    started_at_ms       BIGINT NOT NULL,
    org                 TEXT,
    team                TEXT,
    app                 TEXT,
    key_id              TEXT,
    user_id             TEXT,
    kind                TEXT NOT NULL,
    alias               TEXT NOT NULL,
    served_alias        TEXT,
    provider            TEXT,
    model               TEXT,
    stream              BIGINT NOT NULL,
    input_tokens        BIGINT NOT NULL,
    output_tokens       BIGINT NOT NULL,
    cached_input_tokens BIGINT NOT NULL,
    cache_write_tokens  BIGINT NOT NULL,
    reasoning_tokens    BIGINT NOT NULL,
    usage_source        TEXT NOT NULL,
    cost_micros         BIGINT NOT NULL,
    priced              BIGINT NOT NULL,
    latency_ms          BIGINT NOT NULL,
    ttft_ms             BIGINT,
    attempts            BIGINT NOT NULL,
    outcome             TEXT NOT NULL,
    status              BIGINT NOT NULL,
    error_code          TEXT,
    tags                TEXT NOT NULL DEFAULT '[]'
);
CREATE INDEX usage_records_request ON usage_records (request_id);
CREATE INDEX usage_records_time ON usage_records (started_at_ms);
CREATE INDEX usage_records_team ON usage_records (org, team, started_at_ms);
CREATE INDEX usage_records_key ON usage_records (key_id, started_at_ms);
CREATE INDEX usage_records_alias ON usage_records (alias, started_at_ms);

-- Rules stored through the admin API or `apply`: `body` is the JSON of core's
-- `RateLimitRule` / `BudgetRule` (its `name` equal to the row's).
CREATE TABLE rate_limit_rules (
    name        TEXT PRIMARY KEY,
    body        TEXT NOT NULL,
    managed_by  TEXT,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);

CREATE TABLE budget_rules (
    name        TEXT PRIMARY KEY,
    body        TEXT NOT NULL,
    managed_by  TEXT,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
