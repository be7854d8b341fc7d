-- Merchants and operators. Times are unix seconds.
CREATE TABLE merchants (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    email         TEXT    NOT NULL UNIQUE,
    password_hash TEXT    NOT NULL,
    role          TEXT    NOT NULL DEFAULT 'merchant' CHECK (role IN ('merchant', 'operator')),
    created_at    INTEGER NOT NULL
);

-- One Airwallex connection per merchant. Tokens are AES-256-GCM ciphertexts bound to
-- (connection id, field); key_id names the key that wrote them.
CREATE TABLE connections (
    id                    INTEGER PRIMARY KEY AUTOINCREMENT,
    merchant_id           INTEGER NOT NULL UNIQUE REFERENCES merchants (id),
    status                TEXT    NOT NULL CHECK (status IN ('connected', 'needs_reconnect', 'disconnected')),
    status_reason         TEXT,
    account_id            TEXT,
    business_name         TEXT,
    account_json          TEXT,
    account_fetched_at    INTEGER,
    scope                 TEXT,
    key_id                TEXT,
    access_token          BLOB,
    access_expires_at     INTEGER,
    refresh_token         BLOB,
    refresh_issued_at     INTEGER,
    refresh_expires_at    INTEGER,
    -- when the stored refresh token was first sent; it is never sent again past the grace window
    refresh_sent_at       INTEGER,
    -- when the keeper should rotate the refresh token (part of its life left)
    rotate_due_at         INTEGER,
    generation            INTEGER NOT NULL DEFAULT 0,
    lease_owner           TEXT,
    lease_until           INTEGER,
    connected_at          INTEGER,
    last_refresh_at       INTEGER,
    last_refresh_result   TEXT,
    last_error            TEXT,
    last_activity_at      INTEGER NOT NULL,
    created_at            INTEGER NOT NULL,
    updated_at            INTEGER NOT NULL
);
-- Operator dashboard: keyset pages by refresh-token expiry (no token = last) or by last
-- activity, each optionally within one status; counts by status and reason.
CREATE INDEX connections_expiry_sort ON connections ((COALESCE(refresh_expires_at, 9000000000000000000)), id);
CREATE INDEX connections_status_expiry_sort ON connections (status, (COALESCE(refresh_expires_at, 9000000000000000000)), id);
CREATE INDEX connections_activity ON connections (last_activity_at, id);
CREATE INDEX connections_status_activity ON connections (status, last_activity_at, id);
CREATE INDEX connections_status_reason ON connections (status, status_reason);
CREATE INDEX connections_account_id ON connections (account_id);
CREATE INDEX connections_rotate_due ON connections (status, rotate_due_at);

-- Append-only audit log of every connection state change. Never holds a secret.
CREATE TABLE connection_events (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    connection_id INTEGER NOT NULL REFERENCES connections (id),
    kind          TEXT    NOT NULL,
    reason        TEXT,
    actor         TEXT    NOT NULL,
    detail        TEXT,
    created_at    INTEGER NOT NULL
);
CREATE INDEX connection_events_timeline ON connection_events (connection_id, id);

CREATE TRIGGER connection_events_no_update BEFORE UPDATE ON connection_events
BEGIN
    SELECT RAISE(ABORT, 'connection_events is append-only');
END;
CREATE TRIGGER connection_events_no_delete BEFORE DELETE ON connection_events
BEGIN
    SELECT RAISE(ABORT, 'connection_events is append-only');
END;

-- OAuth authorization requests in flight: single-use state bound to a session.
CREATE TABLE oauth_states (
    state_hash    TEXT    PRIMARY KEY,
    session_id    TEXT    NOT NULL,
    merchant_id   INTEGER NOT NULL REFERENCES merchants (id),
    pkce_verifier BLOB    NOT NULL,
    key_id        TEXT    NOT NULL,
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL,
    consumed_at   INTEGER
);
CREATE INDEX oauth_states_expiry ON oauth_states (expires_at);

-- Sessions (tower-sessions store).
CREATE TABLE sessions (
    id          TEXT    PRIMARY KEY,
    data        BLOB    NOT NULL,
    expiry_date INTEGER NOT NULL
);
CREATE INDEX sessions_expiry ON sessions (expiry_date);

-- Failed logins, for throttling by account and by address.
CREATE TABLE login_failures (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    email      TEXT    NOT NULL,
    ip         TEXT    NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX login_failures_email ON login_failures (email, created_at);
CREATE INDEX login_failures_ip ON login_failures (ip, created_at);
