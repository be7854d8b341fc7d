-- Every call the platform made to Airwallex through the proxy: who, for which connection,
-- what (method and path, never a query or a body), how it ended, how long it took and how
-- many bytes went each way. Rows are never changed or deleted.
CREATE TABLE proxy_calls (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    key_id         TEXT    NOT NULL,
    connection_id  INTEGER NOT NULL REFERENCES connections (id),
    method         TEXT    NOT NULL,
    path           TEXT    NOT NULL,
    status         INTEGER NOT NULL,
    duration_ms    INTEGER NOT NULL,
    request_bytes  INTEGER NOT NULL,
    response_bytes INTEGER NOT NULL,
    created_at     INTEGER NOT NULL
);
CREATE INDEX proxy_calls_connection ON proxy_calls (connection_id, id);
CREATE TRIGGER proxy_calls_no_update BEFORE UPDATE ON proxy_calls
BEGIN
    SELECT RAISE(ABORT, 'proxy_calls is append-only');
END;
CREATE TRIGGER proxy_calls_no_delete BEFORE DELETE ON proxy_calls
BEGIN
    SELECT RAISE(ABORT, 'proxy_calls is append-only');
END;
