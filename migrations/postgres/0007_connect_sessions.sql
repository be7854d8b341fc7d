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
    seq                  BIGSERIAL PRIMARY KEY,
    id                   TEXT    NOT NULL UNIQUE,
    secret_hash          TEXT    NOT NULL UNIQUE,
    merchant_id          BIGINT  NOT NULL REFERENCES merchants (id),
    return_url           TEXT    NOT NULL,
    -- how the platform names the merchant, shown on the landing page
    business_name        TEXT,
    sign_up              BIGINT  NOT NULL DEFAULT 0,
    allow_account_change BIGINT  NOT NULL DEFAULT 0,
    created_by           TEXT    NOT NULL,
    created_at           BIGINT  NOT NULL,
    expires_at           BIGINT  NOT NULL,
    opened_at            BIGINT,
    completed_at         BIGINT,
    outcome              TEXT CHECK (outcome IN ('connected', 'reconnected', 'declined', 'failed')),
    reason               TEXT
);
CREATE INDEX connect_sessions_merchant ON connect_sessions (merchant_id, seq);

-- An authorization started from a connect session remembers it, so the callback can
-- finish the session and send the browser back to the platform.
ALTER TABLE oauth_states ADD COLUMN connect_session_id TEXT;

-- Events about a connect session may concern a merchant who has no connection yet.
ALTER TABLE platform_events ALTER COLUMN connection_id DROP NOT NULL;
