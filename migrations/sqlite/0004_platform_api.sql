-- Service keys of the platform's backend. The secret part is stored only as a SHA-256
-- hash (it is 256 random bits); the id is public and finds the row.
CREATE TABLE api_keys (
    id           TEXT    PRIMARY KEY,
    name         TEXT    NOT NULL,
    secret_hash  BLOB    NOT NULL,
    scopes       TEXT    NOT NULL,
    created_by   TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER,
    revoked_at   INTEGER,
    revoked_by   TEXT
);

-- Who read which merchant's access token, and when, per key, connection and minute.
-- Rows are never deleted and a count only grows.
CREATE TABLE token_reads (
    key_id        TEXT    NOT NULL REFERENCES api_keys (id),
    connection_id INTEGER NOT NULL REFERENCES connections (id),
    minute        INTEGER NOT NULL,
    reads         INTEGER NOT NULL,
    PRIMARY KEY (connection_id, minute, key_id)
);
CREATE INDEX token_reads_minute ON token_reads (minute);
CREATE TRIGGER token_reads_no_delete BEFORE DELETE ON token_reads
BEGIN
    SELECT RAISE(ABORT, 'token_reads is append-only');
END;
CREATE TRIGGER token_reads_only_grow BEFORE UPDATE ON token_reads
WHEN NEW.reads < OLD.reads OR NEW.key_id <> OLD.key_id OR NEW.connection_id <> OLD.connection_id
     OR NEW.minute <> OLD.minute
BEGIN
    SELECT RAISE(ABORT, 'token_reads counts only grow');
END;

-- Where connection events are delivered (Standard Webhooks), with the signing secret
-- encrypted like the tokens.
CREATE TABLE webhook_endpoints (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    url         TEXT    NOT NULL,
    events      TEXT    NOT NULL,
    secret      BLOB    NOT NULL,
    key_id      TEXT    NOT NULL,
    created_by  TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    disabled_at INTEGER
);

-- The outbox: one row per event, written in the transaction that changed the connection.
CREATE TABLE platform_events (
    id            TEXT    PRIMARY KEY,
    kind          TEXT    NOT NULL,
    connection_id INTEGER NOT NULL,
    payload       TEXT    NOT NULL,
    created_at    INTEGER NOT NULL
);

-- One delivery per event and subscribed endpoint; claimed by one instance at a time.
CREATE TABLE webhook_deliveries (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id        TEXT    NOT NULL REFERENCES platform_events (id),
    endpoint_id     INTEGER NOT NULL REFERENCES webhook_endpoints (id),
    status          TEXT    NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    last_status     INTEGER,
    last_error      TEXT,
    lease_owner     TEXT,
    lease_until     INTEGER,
    delivered_at    INTEGER,
    created_at      INTEGER NOT NULL
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_attempt_at);
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, id);
