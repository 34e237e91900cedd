-- Prompts and prompt APIs stored through the admin API or `apply` (issue 6): the mapping of a
-- config file's `prompts:` or `apis:` entry, as JSON, like `models`. A prompt's versions are
-- immutable; the store enforces it when a prompt is written (no schema can say it of JSON).
-- The SQLite and Postgres migrations of this number are the same text.

CREATE TABLE prompts (
    name        TEXT PRIMARY KEY,
    settings    TEXT NOT NULL,
    managed_by  TEXT,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);

CREATE TABLE apis (
    name        TEXT PRIMARY KEY,
    settings    TEXT NOT NULL,
    managed_by  TEXT,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
