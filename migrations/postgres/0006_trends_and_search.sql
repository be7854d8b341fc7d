-- Rollups of the operators' trends: a settled day or hour is computed from the event log
-- once and kept (the log is append-only, so it never changes).
CREATE TABLE trend_status_days (
    day             BIGINT  PRIMARY KEY,
    connected       BIGINT  NOT NULL,
    needs_reconnect BIGINT  NOT NULL,
    disconnected    BIGINT  NOT NULL
);
CREATE TABLE trend_refresh_hours (
    hour      BIGINT  PRIMARY KEY,
    ok        BIGINT  NOT NULL,
    transient BIGINT  NOT NULL,
    rejected  BIGINT  NOT NULL
);
-- Events by kind and time (refreshes per hour, status changes before a day), covering.
CREATE INDEX connection_events_kind_time ON connection_events (kind, created_at, connection_id);

-- Counters the dashboard reads instead of counting 100,000 rows per view, kept exact by
-- triggers in the same transaction as each change. A change takes its two counter rows'
-- locks in key order, so two opposite changes cannot deadlock.
CREATE TABLE connection_status_counts (
    status         TEXT   NOT NULL,
    reason         TEXT   NOT NULL,
    ever_connected BIGINT NOT NULL,
    n              BIGINT NOT NULL,
    PRIMARY KEY (status, reason, ever_connected)
);
INSERT INTO connection_status_counts (status, reason, ever_connected, n)
SELECT status, COALESCE(status_reason, ''), CASE WHEN connected_at IS NULL THEN 0 ELSE 1 END, COUNT(*)
FROM connections GROUP BY 1, 2, 3;

CREATE FUNCTION connection_status_count_add(s TEXT, r TEXT, e BIGINT, delta BIGINT) RETURNS void AS $$
BEGIN
    INSERT INTO connection_status_counts (status, reason, ever_connected, n) VALUES (s, r, e, delta)
    ON CONFLICT (status, reason, ever_connected) DO UPDATE SET n = connection_status_counts.n + delta;
END;
$$ LANGUAGE plpgsql;

CREATE FUNCTION connection_status_count() RETURNS trigger AS $$
DECLARE
    old_key TEXT;
    new_key TEXT;
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM connection_status_count_add(NEW.status, COALESCE(NEW.status_reason, ''),
            CASE WHEN NEW.connected_at IS NULL THEN 0 ELSE 1 END, 1);
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM connection_status_count_add(OLD.status, COALESCE(OLD.status_reason, ''),
            CASE WHEN OLD.connected_at IS NULL THEN 0 ELSE 1 END, -1);
    ELSE
        old_key := OLD.status || '/' || COALESCE(OLD.status_reason, '') || '/' || (OLD.connected_at IS NULL)::text;
        new_key := NEW.status || '/' || COALESCE(NEW.status_reason, '') || '/' || (NEW.connected_at IS NULL)::text;
        IF old_key < new_key THEN
            PERFORM connection_status_count_add(OLD.status, COALESCE(OLD.status_reason, ''),
                CASE WHEN OLD.connected_at IS NULL THEN 0 ELSE 1 END, -1);
            PERFORM connection_status_count_add(NEW.status, COALESCE(NEW.status_reason, ''),
                CASE WHEN NEW.connected_at IS NULL THEN 0 ELSE 1 END, 1);
        ELSE
            PERFORM connection_status_count_add(NEW.status, COALESCE(NEW.status_reason, ''),
                CASE WHEN NEW.connected_at IS NULL THEN 0 ELSE 1 END, 1);
            PERFORM connection_status_count_add(OLD.status, COALESCE(OLD.status_reason, ''),
                CASE WHEN OLD.connected_at IS NULL THEN 0 ELSE 1 END, -1);
        END IF;
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER connections_count_insert_delete AFTER INSERT OR DELETE ON connections
    FOR EACH ROW EXECUTE FUNCTION connection_status_count();
CREATE TRIGGER connections_count_update AFTER UPDATE OF status, status_reason, connected_at ON connections
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status OR OLD.status_reason IS DISTINCT FROM NEW.status_reason
        OR (OLD.connected_at IS NULL) <> (NEW.connected_at IS NULL))
    EXECUTE FUNCTION connection_status_count();

CREATE TABLE account_counts (
    role TEXT   PRIMARY KEY,
    n    BIGINT NOT NULL
);
INSERT INTO account_counts (role, n) SELECT role, COUNT(*) FROM merchants GROUP BY role;
CREATE FUNCTION account_count() RETURNS trigger AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        UPDATE account_counts SET n = n - 1 WHERE role = OLD.role;
    END IF;
    IF TG_OP IN ('UPDATE', 'INSERT') THEN
        INSERT INTO account_counts (role, n) VALUES (NEW.role, 1)
        ON CONFLICT (role) DO UPDATE SET n = account_counts.n + 1;
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER merchants_count_insert_delete AFTER INSERT OR DELETE ON merchants
    FOR EACH ROW EXECUTE FUNCTION account_count();
CREATE TRIGGER merchants_count_update AFTER UPDATE OF role ON merchants
    FOR EACH ROW WHEN (OLD.role IS DISTINCT FROM NEW.role) EXECUTE FUNCTION account_count();
