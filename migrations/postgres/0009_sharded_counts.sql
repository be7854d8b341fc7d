-- The dashboard's counters were one row per key, and every change of that key locked its
-- row until the transaction committed: merchants created at the same moment (a platform's
-- connect sessions, a sign-up rush) and connections changing status together (a launch
-- day's connects) waited on one another's commits. Sixteen rows per key now, chosen by
-- the changed row's id; readers already sum them. A change still takes its two counter
-- rows in key order (one shard per row), so opposite changes cannot deadlock.
ALTER TABLE account_counts ADD COLUMN shard BIGINT NOT NULL DEFAULT 0;
ALTER TABLE account_counts DROP CONSTRAINT account_counts_pkey;
ALTER TABLE account_counts ADD PRIMARY KEY (role, shard);
CREATE OR REPLACE FUNCTION account_count() RETURNS trigger AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        INSERT INTO account_counts (role, shard, n) VALUES (OLD.role, OLD.id % 16, -1)
        ON CONFLICT (role, shard) DO UPDATE SET n = account_counts.n - 1;
    END IF;
    IF TG_OP IN ('UPDATE', 'INSERT') THEN
        INSERT INTO account_counts (role, shard, n) VALUES (NEW.role, NEW.id % 16, 1)
        ON CONFLICT (role, shard) DO UPDATE SET n = account_counts.n + 1;
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

ALTER TABLE connection_status_counts ADD COLUMN shard BIGINT NOT NULL DEFAULT 0;
ALTER TABLE connection_status_counts DROP CONSTRAINT connection_status_counts_pkey;
ALTER TABLE connection_status_counts ADD PRIMARY KEY (status, reason, ever_connected, shard);
CREATE FUNCTION connection_status_count_in(s TEXT, r TEXT, e BIGINT, k BIGINT, delta BIGINT) RETURNS void AS $$
BEGIN
    INSERT INTO connection_status_counts (status, reason, ever_connected, shard, n) VALUES (s, r, e, k, delta)
    ON CONFLICT (status, reason, ever_connected, shard) DO UPDATE SET n = connection_status_counts.n + delta;
END;
$$ LANGUAGE plpgsql;
CREATE OR REPLACE FUNCTION connection_status_count() RETURNS trigger AS $$
DECLARE
    old_key TEXT;
    new_key TEXT;
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM connection_status_count_in(NEW.status, COALESCE(NEW.status_reason, ''),
            CASE WHEN NEW.connected_at IS NULL THEN 0 ELSE 1 END, NEW.id % 16, 1);
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM connection_status_count_in(OLD.status, COALESCE(OLD.status_reason, ''),
            CASE WHEN OLD.connected_at IS NULL THEN 0 ELSE 1 END, OLD.id % 16, -1);
    ELSE
        old_key := OLD.status || '/' || COALESCE(OLD.status_reason, '') || '/' || (OLD.connected_at IS NULL)::text;
        new_key := NEW.status || '/' || COALESCE(NEW.status_reason, '') || '/' || (NEW.connected_at IS NULL)::text;
        IF old_key < new_key THEN
            PERFORM connection_status_count_in(OLD.status, COALESCE(OLD.status_reason, ''),
                CASE WHEN OLD.connected_at IS NULL THEN 0 ELSE 1 END, OLD.id % 16, -1);
            PERFORM connection_status_count_in(NEW.status, COALESCE(NEW.status_reason, ''),
                CASE WHEN NEW.connected_at IS NULL THEN 0 ELSE 1 END, NEW.id % 16, 1);
        ELSE
            PERFORM connection_status_count_in(NEW.status, COALESCE(NEW.status_reason, ''),
                CASE WHEN NEW.connected_at IS NULL THEN 0 ELSE 1 END, NEW.id % 16, 1);
            PERFORM connection_status_count_in(OLD.status, COALESCE(OLD.status_reason, ''),
                CASE WHEN OLD.connected_at IS NULL THEN 0 ELSE 1 END, OLD.id % 16, -1);
        END IF;
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;
DROP FUNCTION connection_status_count_add(TEXT, TEXT, BIGINT, BIGINT);
