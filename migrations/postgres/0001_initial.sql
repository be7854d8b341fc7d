-- Merchants and operators. Times are unix seconds.
CREATE TABLE merchants (
    id            BIGSERIAL PRIMARY KEY,
    email         TEXT   NOT NULL UNIQUE,
    password_hash TEXT   NOT NULL,
    role          TEXT   NOT NULL DEFAULT 'merchant' CHECK (role IN ('merchant', 'operator')),
    created_at    BIGINT NOT NULL
);

-- One Airwallex connection per merchant. Tokens are AES-256-GCM ciphertexts bound to
-- (connection id, field); key_id names the key that wrote them.
CREATE TABLE connections (
    id                    BIGSERIAL PRIMARY KEY,
    merchant_id           BIGINT NOT NULL UNIQUE REFERENCES merchants (id),
    status                TEXT   NOT NULL CHECK (status IN ('connected', 'needs_reconnect', 'disconnected')),
    status_reason         TEXT,
    account_id            TEXT,
    business_name         TEXT,
    account_json          TEXT,
    account_fetched_at    BIGINT,
    scope                 TEXT,
    key_id                TEXT,
    access_token          BYTEA,
    access_expires_at     BIGINT,
    refresh_token         BYTEA,
    refresh_issued_at     BIGINT,
    refresh_expires_at    BIGINT,
    -- when the stored refresh token was first sent; it is never sent again past the grace window
    refresh_sent_at       BIGINT,
    -- when the keeper should rotate the refresh token (part of its life left)
    rotate_due_at         BIGINT,
    generation            BIGINT NOT NULL DEFAULT 0,
    lease_owner           TEXT,
    lease_until           BIGINT,
    connected_at          BIGINT,
    last_refresh_at       BIGINT,
    last_refresh_result   TEXT,
    last_error            TEXT,
    last_activity_at      BIGINT NOT NULL,
    created_at            BIGINT NOT NULL,
    updated_at            BIGINT NOT NULL
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
    id            BIGSERIAL PRIMARY KEY,
    connection_id BIGINT NOT NULL REFERENCES connections (id),
    kind          TEXT   NOT NULL,
    reason        TEXT,
    actor         TEXT   NOT NULL,
    detail        TEXT,
    created_at    BIGINT NOT NULL
);
CREATE INDEX connection_events_timeline ON connection_events (connection_id, id);

CREATE FUNCTION connection_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'connection_events is append-only';
END;
$$;
CREATE TRIGGER connection_events_no_change BEFORE UPDATE OR DELETE ON connection_events
    FOR EACH ROW EXECUTE FUNCTION connection_events_append_only();

-- OAuth authorization requests in flight: single-use state bound to a session.
CREATE TABLE oauth_states (
    state_hash    TEXT   PRIMARY KEY,
    session_id    TEXT   NOT NULL,
    merchant_id   BIGINT NOT NULL REFERENCES merchants (id),
    pkce_verifier BYTEA  NOT NULL,
    key_id        TEXT   NOT NULL,
    created_at    BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL,
    consumed_at   BIGINT
);
CREATE INDEX oauth_states_expiry ON oauth_states (expires_at);

-- Sessions (tower-sessions store).
CREATE TABLE sessions (
    id          TEXT   PRIMARY KEY,
    data        BYTEA  NOT NULL,
    expiry_date BIGINT NOT NULL
);
CREATE INDEX sessions_expiry ON sessions (expiry_date);

-- Failed logins, for throttling by account and by address.
CREATE TABLE login_failures (
    id         BIGSERIAL PRIMARY KEY,
    email      TEXT   NOT NULL,
    ip         TEXT   NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX login_failures_email ON login_failures (email, created_at);
CREATE INDEX login_failures_ip ON login_failures (ip, created_at);
