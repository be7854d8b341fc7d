-- Service keys of the platform's backend. The secret part is stored only as a SHA-256
-- hash (it is 256 random bits); the id is public and finds the row.
CREATE TABLE api_keys (
    id           TEXT   PRIMARY KEY,
    name         TEXT   NOT NULL,
    secret_hash  BYTEA  NOT NULL,
    scopes       TEXT   NOT NULL,
    created_by   TEXT   NOT NULL,
    created_at   BIGINT NOT NULL,
    last_used_at BIGINT,
    revoked_at   BIGINT,
    revoked_by   TEXT
);

-- Who read which merchant's access token, and when, per key, connection and minute.
-- Rows are never deleted and a count only grows.
CREATE TABLE token_reads (
    key_id        TEXT   NOT NULL REFERENCES api_keys (id),
    connection_id BIGINT NOT NULL REFERENCES connections (id),
    minute        BIGINT NOT NULL,
    reads         BIGINT NOT NULL,
    PRIMARY KEY (connection_id, minute, key_id)
);
CREATE INDEX token_reads_minute ON token_reads (minute);
CREATE FUNCTION token_reads_append_only() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'token_reads is append-only';
    END IF;
    IF NEW.reads < OLD.reads OR NEW.key_id <> OLD.key_id OR NEW.connection_id <> OLD.connection_id
       OR NEW.minute <> OLD.minute THEN
        RAISE EXCEPTION 'token_reads counts only grow';
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER token_reads_append_only BEFORE UPDATE OR DELETE ON token_reads
    FOR EACH ROW EXECUTE FUNCTION token_reads_append_only();

-- Where connection events are delivered (Standard Webhooks), with the signing secret
-- encrypted like the tokens.
CREATE TABLE webhook_endpoints (
    id          BIGSERIAL PRIMARY KEY,
    url         TEXT   NOT NULL,
    events      TEXT   NOT NULL,
    secret      BYTEA  NOT NULL,
    key_id      TEXT   NOT NULL,
    created_by  TEXT   NOT NULL,
    created_at  BIGINT NOT NULL,
    disabled_at BIGINT
);

-- The outbox: one row per event, written in the transaction that changed the connection.
CREATE TABLE platform_events (
    id            TEXT   PRIMARY KEY,
    kind          TEXT   NOT NULL,
    connection_id BIGINT NOT NULL,
    payload       TEXT   NOT NULL,
    created_at    BIGINT NOT NULL
);

-- One delivery per event and subscribed endpoint; claimed by one instance at a time.
CREATE TABLE webhook_deliveries (
    id              BIGSERIAL PRIMARY KEY,
    event_id        TEXT   NOT NULL REFERENCES platform_events (id),
    endpoint_id     BIGINT NOT NULL REFERENCES webhook_endpoints (id),
    status          TEXT   NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    last_status     BIGINT,
    last_error      TEXT,
    lease_owner     TEXT,
    lease_until     BIGINT,
    delivered_at    BIGINT,
    created_at      BIGINT NOT NULL
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_attempt_at);
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, id);
