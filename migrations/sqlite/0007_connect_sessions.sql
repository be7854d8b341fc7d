-- Connect sessions: the platform's backend starts a connection for one of its own users,
-- named by the platform's id (external_id), with no password of its own (password_hash
-- '' never matches: such a merchant never logs in on /login).
ALTER TABLE merchants ADD COLUMN external_id TEXT;
-- A JSON object of at most 10 string pairs, set by the platform.
ALTER TABLE merchants ADD COLUMN tags TEXT;
CREATE UNIQUE INDEX merchants_external_id ON merchants (external_id) WHERE external_id IS NOT NULL;

-- One row per link handed to the platform (seq: the order they were made in). The secret
-- in the link is stored only as its SHA-256; opened_at is set once, by the POST that
-- consumes it.
CREATE TABLE connect_sessions (
    seq                  INTEGER PRIMARY KEY AUTOINCREMENT,
    id                   TEXT    NOT NULL UNIQUE,
    secret_hash          TEXT    NOT NULL UNIQUE,
    merchant_id          INTEGER NOT NULL REFERENCES merchants (id),
    return_url           TEXT    NOT NULL,
    -- how the platform names the merchant, shown on the landing page
    business_name        TEXT,
    sign_up              INTEGER NOT NULL DEFAULT 0,
    allow_account_change INTEGER NOT NULL DEFAULT 0,
    created_by           TEXT    NOT NULL,
    created_at           INTEGER NOT NULL,
    expires_at           INTEGER NOT NULL,
    opened_at            INTEGER,
    completed_at         INTEGER,
    outcome              TEXT CHECK (outcome IN ('connected', 'reconnected', 'declined', 'failed')),
    reason               TEXT
);
CREATE INDEX connect_sessions_merchant ON connect_sessions (merchant_id, seq);

-- An authorization started from a connect session remembers it, so the callback can
-- finish the session and send the browser back to the platform.
ALTER TABLE oauth_states ADD COLUMN connect_session_id TEXT;

-- Events about a connect session may concern a merchant who has no connection yet:
-- platform_events.connection_id becomes optional. SQLite cannot drop NOT NULL, so the
-- table is rebuilt; its deliveries keep pointing at the same ids (foreign keys are checked
-- at commit, once the rows are back).
PRAGMA defer_foreign_keys = ON;
CREATE TABLE platform_events_copy AS SELECT id, kind, connection_id, payload, created_at FROM platform_events;
DROP TABLE platform_events;
CREATE TABLE platform_events (
    id            TEXT    PRIMARY KEY,
    kind          TEXT    NOT NULL,
    connection_id INTEGER,
    payload       TEXT    NOT NULL,
    created_at    INTEGER NOT NULL
);
INSERT INTO platform_events (id, kind, connection_id, payload, created_at)
    SELECT id, kind, connection_id, payload, created_at FROM platform_events_copy;
DROP TABLE platform_events_copy;
