-- Tenancy and access (issue 3). Times are Unix milliseconds (BIGINT); lists and maps are JSON
-- text; ids are prefixed UUIDv7 strings made by the application, so both databases share one
-- code path. `managed_by` is NULL for objects made through the admin API and 'apply' for
-- objects owned by config as code (read-only in the admin API).

CREATE TABLE orgs (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    display_name TEXT,
    managed_by  TEXT,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);

CREATE TABLE teams (
    id          TEXT PRIMARY KEY,
    org_id      TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    managed_by  TEXT,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    UNIQUE (org_id, name)
);

CREATE TABLE apps (
    id          TEXT PRIMARY KEY,
    org_id      TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    team_id     TEXT NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    models      TEXT,           -- JSON array of aliases; NULL = every alias
    apis        TEXT,           -- JSON array of API names; NULL = every API
    managed_by  TEXT,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    UNIQUE (team_id, name)
);
CREATE INDEX apps_org ON apps (org_id);

CREATE TABLE users (
    id          TEXT PRIMARY KEY,
    subject     TEXT NOT NULL UNIQUE,  -- the OIDC `sub` claim
    email       TEXT,
    name        TEXT,
    created_at  BIGINT NOT NULL
);

CREATE TABLE memberships (
    id          TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    org_id      TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    team_id     TEXT REFERENCES teams(id) ON DELETE CASCADE,  -- NULL = the whole org
    role        TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'developer', 'viewer')),
    created_at  BIGINT NOT NULL
);
CREATE UNIQUE INDEX memberships_unique ON memberships (user_id, org_id, COALESCE(team_id, ''));
CREATE INDEX memberships_org ON memberships (org_id);

CREATE TABLE virtual_keys (
    id          TEXT PRIMARY KEY,
    org_id      TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    team_id     TEXT REFERENCES teams(id) ON DELETE CASCADE,
    app_id      TEXT REFERENCES apps(id) ON DELETE CASCADE,
    user_id     TEXT REFERENCES users(id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    prefix      TEXT NOT NULL,         -- the visible start of the key, e.g. sk-sb-AbCd1234
    key_hash    TEXT NOT NULL UNIQUE,  -- hex SHA-256 of the whole key
    models      TEXT,                  -- JSON array; NULL = whatever the app may call
    apis        TEXT,
    metadata    TEXT NOT NULL DEFAULT '{}',
    expires_at  BIGINT,
    revoked_at  BIGINT,
    rotated_to  TEXT,                  -- id of the key that replaced this one
    created_by  TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    CHECK ((app_id IS NULL) <> (user_id IS NULL))
);
CREATE INDEX virtual_keys_org ON virtual_keys (org_id, created_at);
CREATE INDEX virtual_keys_app ON virtual_keys (app_id);

CREATE TABLE subscriptions (
    id          TEXT PRIMARY KEY,
    org_id      TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    team_id     TEXT NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
    app_id      TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    target_kind TEXT NOT NULL CHECK (target_kind IN ('model', 'api')),
    target      TEXT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'rejected')),
    reason      TEXT,
    requested_by TEXT NOT NULL,
    decided_by  TEXT,
    created_at  BIGINT NOT NULL,
    decided_at  BIGINT,
    UNIQUE (app_id, target_kind, target)
);
CREATE INDEX subscriptions_org ON subscriptions (org_id, status);

-- Providers and models stored through the admin API or `apply`: the same YAML mapping a config
-- file holds, as JSON, with the provider's API key taken out and kept encrypted (AES-GCM).
CREATE TABLE providers (
    name        TEXT PRIMARY KEY,
    settings    TEXT NOT NULL,
    api_key_enc TEXT,
    managed_by  TEXT,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);

CREATE TABLE models (
    name        TEXT PRIMARY KEY,
    settings    TEXT NOT NULL,
    managed_by  TEXT,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);

-- Append-only: each row's hash covers its content and the previous row's hash.
CREATE TABLE audit_log (
    seq         BIGINT PRIMARY KEY,
    at          BIGINT NOT NULL,
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL,
    object_kind TEXT NOT NULL,
    object_id   TEXT NOT NULL,
    org_id      TEXT,
    before_json TEXT,
    after_json  TEXT,
    prev_hash   TEXT NOT NULL,
    hash        TEXT NOT NULL
);
CREATE INDEX audit_log_org ON audit_log (org_id, seq);

-- Postgres only: nobody updates or deletes audit rows through SQL by accident.
CREATE RULE audit_log_no_update AS ON UPDATE TO audit_log DO INSTEAD NOTHING;
CREATE RULE audit_log_no_delete AS ON DELETE TO audit_log DO INSTEAD NOTHING;
