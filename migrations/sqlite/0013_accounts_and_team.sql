-- Keys that end: an optional expiry (unix seconds); an expired key answers 401 key_expired.
ALTER TABLE api_keys ADD COLUMN expires_at INTEGER;

-- When an account last signed in (shown on the operators' team page), and when an operator
-- was removed (the row stays: the audit trails name it; it can no longer sign in).
ALTER TABLE merchants ADD COLUMN last_login_at INTEGER;
ALTER TABLE merchants ADD COLUMN removed_at INTEGER;

-- A merchant's account, whole: an address proven by a link (accounts that exist already
-- count as verified: they were created before the rule), and accounts that were deleted
-- (the row stays, without email or password, for the audit trails that name its id).
ALTER TABLE merchants ADD COLUMN email_verified_at INTEGER;
ALTER TABLE merchants ADD COLUMN deleted_at INTEGER;
UPDATE merchants SET email_verified_at = created_at;

-- Single-use links sent to an account's address: verifying it (24 h) and resetting the
-- password (30 minutes). The secret is stored as SHA-256; ip is who asked (for the limits).
CREATE TABLE account_tokens (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id  INTEGER NOT NULL REFERENCES merchants (id),
    purpose     TEXT NOT NULL CHECK (purpose IN ('verify_email', 'password_reset')),
    token_hash  TEXT NOT NULL UNIQUE,
    ip          TEXT,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    used_at     INTEGER
);
CREATE INDEX account_tokens_account ON account_tokens (account_id, purpose, created_at);
CREATE INDEX account_tokens_ip ON account_tokens (ip, purpose, created_at);

-- Invitations of new operators: a single-use link (its secret stored as SHA-256), 24 h.
CREATE TABLE operator_invitations (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    email       TEXT    NOT NULL,
    token_hash  TEXT    NOT NULL UNIQUE,
    invited_by  TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    used_at     INTEGER,
    account_id  INTEGER
);
CREATE INDEX operator_invitations_email ON operator_invitations (email);

-- The security log: operator log-ins, second factors, re-authentications, keys, endpoints,
-- invitations, removals, session ends. Append-only like the connection events; the actor
-- is kept by id and address as they were (an account may be removed later).
CREATE TABLE security_events (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    at         INTEGER NOT NULL,
    kind       TEXT    NOT NULL,
    account_id INTEGER,
    actor      TEXT,
    subject    TEXT,
    ip         TEXT
);
CREATE INDEX security_events_at ON security_events (at);
CREATE TRIGGER security_events_no_update BEFORE UPDATE ON security_events
BEGIN
    SELECT RAISE(ABORT, 'security_events is append-only');
END;
CREATE TRIGGER security_events_no_delete BEFORE DELETE ON security_events
BEGIN
    SELECT RAISE(ABORT, 'security_events is append-only');
END;

-- The mail outbox carries invitations (to an address with no account yet) and security
-- alerts to operators. SQLite cannot change a CHECK or drop NOT NULL: the table is rebuilt
-- with the same rows.
CREATE TABLE mail_outbox_copy AS SELECT * FROM mail_outbox;
DROP TABLE mail_outbox;
CREATE TABLE mail_outbox (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    dedupe_key        TEXT    NOT NULL UNIQUE,
    kind              TEXT    NOT NULL CHECK (kind IN ('reconnect', 'expiry_warning', 'digest', 'invitation', 'security_alert', 'verify_email', 'password_reset')),
    reason            TEXT,
    account_id        INTEGER REFERENCES merchants (id),
    connection_id     INTEGER REFERENCES connections (id),
    recipient         TEXT    NOT NULL,
    context           TEXT,
    unsubscribe_token TEXT    NOT NULL UNIQUE,
    status            TEXT    NOT NULL CHECK (status IN ('queued', 'sent', 'failed', 'suppressed')),
    attempts          INTEGER NOT NULL DEFAULT 0,
    next_attempt_at   INTEGER NOT NULL,
    last_answer       TEXT,
    lease_owner       TEXT,
    lease_until       INTEGER,
    sent_at           INTEGER,
    created_at        INTEGER NOT NULL
);
INSERT INTO mail_outbox SELECT * FROM mail_outbox_copy;
DROP TABLE mail_outbox_copy;
CREATE INDEX mail_outbox_due ON mail_outbox (status, next_attempt_at);
CREATE INDEX mail_outbox_account ON mail_outbox (account_id, status);
