-- Rollups of the operators' trends: a settled day or hour is computed from the event log
-- once and kept (the log is append-only, so it never changes).
CREATE TABLE trend_status_days (
    day             INTEGER PRIMARY KEY,
    connected       INTEGER NOT NULL,
    needs_reconnect INTEGER NOT NULL,
    disconnected    INTEGER NOT NULL
);
CREATE TABLE trend_refresh_hours (
    hour      INTEGER PRIMARY KEY,
    ok        INTEGER NOT NULL,
    transient INTEGER NOT NULL,
    rejected  INTEGER NOT NULL
);
-- Events by kind and time (refreshes per hour, status changes before a day), covering.
CREATE INDEX connection_events_kind_time ON connection_events (kind, created_at, connection_id);

-- Substring search on the operator dashboard through trigram full-text indexes (as
-- pg_trgm does on PostgreSQL): business names and merchants' emails, kept in step by
-- triggers. Terms shorter than three characters still scan.
CREATE VIRTUAL TABLE connections_name_fts USING fts5(
    business_name, content = 'connections', content_rowid = 'id', tokenize = 'trigram'
);
INSERT INTO connections_name_fts (connections_name_fts) VALUES ('rebuild');
CREATE TRIGGER connections_name_fts_insert AFTER INSERT ON connections
BEGIN
    INSERT INTO connections_name_fts (rowid, business_name) VALUES (new.id, new.business_name);
END;
CREATE TRIGGER connections_name_fts_delete AFTER DELETE ON connections
BEGIN
    INSERT INTO connections_name_fts (connections_name_fts, rowid, business_name)
    VALUES ('delete', old.id, old.business_name);
END;
CREATE TRIGGER connections_name_fts_update AFTER UPDATE OF business_name ON connections
WHEN old.business_name IS NOT new.business_name
BEGIN
    INSERT INTO connections_name_fts (connections_name_fts, rowid, business_name)
    VALUES ('delete', old.id, old.business_name);
    INSERT INTO connections_name_fts (rowid, business_name) VALUES (new.id, new.business_name);
END;

CREATE VIRTUAL TABLE merchants_email_fts USING fts5(
    email, content = 'merchants', content_rowid = 'id', tokenize = 'trigram'
);
INSERT INTO merchants_email_fts (merchants_email_fts) VALUES ('rebuild');
CREATE TRIGGER merchants_email_fts_insert AFTER INSERT ON merchants
BEGIN
    INSERT INTO merchants_email_fts (rowid, email) VALUES (new.id, new.email);
END;
CREATE TRIGGER merchants_email_fts_delete AFTER DELETE ON merchants
BEGIN
    INSERT INTO merchants_email_fts (merchants_email_fts, rowid, email) VALUES ('delete', old.id, old.email);
END;
CREATE TRIGGER merchants_email_fts_update AFTER UPDATE OF email ON merchants
WHEN old.email IS NOT new.email
BEGIN
    INSERT INTO merchants_email_fts (merchants_email_fts, rowid, email) VALUES ('delete', old.id, old.email);
    INSERT INTO merchants_email_fts (rowid, email) VALUES (new.id, new.email);
END;

-- Counters the dashboard reads instead of counting 100,000 rows per view, kept exact by
-- triggers in the same transaction as each change.
CREATE TABLE connection_status_counts (
    status         TEXT    NOT NULL,
    reason         TEXT    NOT NULL,
    ever_connected INTEGER NOT NULL,
    n              INTEGER NOT NULL,
    PRIMARY KEY (status, reason, ever_connected)
);
INSERT INTO connection_status_counts (status, reason, ever_connected, n)
SELECT status, COALESCE(status_reason, ''), connected_at IS NOT NULL, COUNT(*) FROM connections
GROUP BY status, COALESCE(status_reason, ''), connected_at IS NOT NULL;
CREATE TRIGGER connections_count_insert AFTER INSERT ON connections
BEGIN
    INSERT INTO connection_status_counts (status, reason, ever_connected, n)
    VALUES (new.status, COALESCE(new.status_reason, ''), new.connected_at IS NOT NULL, 1)
    ON CONFLICT (status, reason, ever_connected) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER connections_count_delete AFTER DELETE ON connections
BEGIN
    UPDATE connection_status_counts SET n = n - 1 WHERE status = old.status
        AND reason = COALESCE(old.status_reason, '') AND ever_connected = (old.connected_at IS NOT NULL);
END;
CREATE TRIGGER connections_count_update AFTER UPDATE OF status, status_reason, connected_at ON connections
WHEN old.status IS NOT new.status OR old.status_reason IS NOT new.status_reason
     OR (old.connected_at IS NULL) <> (new.connected_at IS NULL)
BEGIN
    UPDATE connection_status_counts SET n = n - 1 WHERE status = old.status
        AND reason = COALESCE(old.status_reason, '') AND ever_connected = (old.connected_at IS NOT NULL);
    INSERT INTO connection_status_counts (status, reason, ever_connected, n)
    VALUES (new.status, COALESCE(new.status_reason, ''), new.connected_at IS NOT NULL, 1)
    ON CONFLICT (status, reason, ever_connected) DO UPDATE SET n = n + 1;
END;

CREATE TABLE account_counts (
    role TEXT    PRIMARY KEY,
    n    INTEGER NOT NULL
);
INSERT INTO account_counts (role, n) SELECT role, COUNT(*) FROM merchants GROUP BY role;
CREATE TRIGGER merchants_count_insert AFTER INSERT ON merchants
BEGIN
    INSERT INTO account_counts (role, n) VALUES (new.role, 1) ON CONFLICT (role) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER merchants_count_delete AFTER DELETE ON merchants
BEGIN
    UPDATE account_counts SET n = n - 1 WHERE role = old.role;
END;
CREATE TRIGGER merchants_count_update AFTER UPDATE OF role ON merchants WHEN old.role IS NOT new.role
BEGIN
    UPDATE account_counts SET n = n - 1 WHERE role = old.role;
    INSERT INTO account_counts (role, n) VALUES (new.role, 1) ON CONFLICT (role) DO UPDATE SET n = n + 1;
END;
