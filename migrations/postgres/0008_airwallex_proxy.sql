-- Every call the platform made to Airwallex through the proxy: who, for which connection,
-- what (method and path, never a query or a body), how it ended, how long it took and how
-- many bytes went each way. Rows are never changed or deleted.
CREATE TABLE proxy_calls (
    id             BIGSERIAL PRIMARY KEY,
    key_id         TEXT   NOT NULL,
    connection_id  BIGINT NOT NULL REFERENCES connections (id),
    method         TEXT   NOT NULL,
    path           TEXT   NOT NULL,
    status         BIGINT NOT NULL,
    duration_ms    BIGINT NOT NULL,
    request_bytes  BIGINT NOT NULL,
    response_bytes BIGINT NOT NULL,
    created_at     BIGINT NOT NULL
);
CREATE INDEX proxy_calls_connection ON proxy_calls (connection_id, id);
CREATE FUNCTION proxy_calls_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'proxy_calls is append-only';
END;
$$;
CREATE TRIGGER proxy_calls_no_change BEFORE UPDATE OR DELETE ON proxy_calls
    FOR EACH ROW EXECUTE FUNCTION proxy_calls_append_only();
