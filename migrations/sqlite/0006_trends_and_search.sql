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
-- Today's counts: connections that ever connected, by status.
CREATE INDEX connections_status_connected ON connections (status, connected_at);

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
