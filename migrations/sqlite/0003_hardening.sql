-- Sessions end 7 days after sign-in however active they are, and name their account so
-- that a role change or a deleted account takes effect at the next request.
ALTER TABLE sessions ADD COLUMN created_at INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sessions ADD COLUMN account_id INTEGER;
UPDATE sessions SET created_at = expiry_date - 43200;
CREATE INDEX sessions_account ON sessions (account_id);

-- Log-in and sign-up attempts, counted before any password hashing (replaces
-- login_failures), and one row per key to serialise the counting across instances.
DROP TABLE login_failures;
CREATE TABLE auth_attempts (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    kind       TEXT    NOT NULL CHECK (kind IN ('login', 'signup')),
    email      TEXT    NOT NULL,
    ip         TEXT    NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX auth_attempts_pair ON auth_attempts (kind, email, ip, created_at);
CREATE INDEX auth_attempts_ip ON auth_attempts (kind, ip, created_at);
CREATE INDEX auth_attempts_email ON auth_attempts (kind, email, created_at);
CREATE TABLE auth_locks (
    lock_key   TEXT    PRIMARY KEY,
    touched_at INTEGER NOT NULL
);

-- Airwallex webhook events already processed (kept 8 days; Airwallex retries for about 3).
CREATE TABLE airwallex_events (
    event_id    TEXT    PRIMARY KEY,
    name        TEXT    NOT NULL,
    account_id  TEXT,
    outcome     TEXT    NOT NULL,
    created_at  INTEGER,
    received_at INTEGER NOT NULL
);
CREATE INDEX airwallex_events_received ON airwallex_events (received_at);
