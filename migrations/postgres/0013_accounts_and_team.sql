-- Keys that end: an optional expiry (unix seconds); an expired key answers 401 key_expired.
ALTER TABLE api_keys ADD COLUMN expires_at BIGINT;

-- When an account last signed in (shown on the operators' team page), and when an operator
-- was removed (the row stays: the audit trails name it; it can no longer sign in).
ALTER TABLE merchants ADD COLUMN last_login_at BIGINT;
ALTER TABLE merchants ADD COLUMN removed_at BIGINT;

-- A merchant's account, whole: an address proven by a link (accounts that exist already
-- count as verified: they were created before the rule), and accounts that were deleted
-- (the row stays, without email or password, for the audit trails that name its id).
ALTER TABLE merchants ADD COLUMN email_verified_at BIGINT;
ALTER TABLE merchants ADD COLUMN deleted_at BIGINT;
UPDATE merchants SET email_verified_at = created_at;

-- Single-use links sent to an account's address: verifying it (24 h) and resetting the
-- password (30 minutes). The secret is stored as SHA-256; ip is who asked (for the limits).
CREATE TABLE account_tokens (
    id          BIGSERIAL PRIMARY KEY,
    account_id  BIGINT NOT NULL REFERENCES merchants (id),
    purpose     TEXT NOT NULL CHECK (purpose IN ('verify_email', 'password_reset')),
    token_hash  TEXT NOT NULL UNIQUE,
    ip          TEXT,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    used_at     BIGINT
);
CREATE INDEX account_tokens_account ON account_tokens (account_id, purpose, created_at);
CREATE INDEX account_tokens_ip ON account_tokens (ip, purpose, created_at);

-- Invitations of new operators: a single-use link (its secret stored as SHA-256), 24 h.
CREATE TABLE operator_invitations (
    id          BIGSERIAL PRIMARY KEY,
    email       TEXT   NOT NULL,
    token_hash  TEXT   NOT NULL UNIQUE,
    invited_by  TEXT   NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    used_at     BIGINT,
    account_id  BIGINT
);
CREATE INDEX operator_invitations_email ON operator_invitations (email);

-- The security log: operator log-ins, second factors, re-authentications, keys, endpoints,
-- invitations, removals, session ends. Append-only like the connection events; the actor
-- is kept by id and address as they were (an account may be removed later).
CREATE TABLE security_events (
    id         BIGSERIAL PRIMARY KEY,
    at         BIGINT NOT NULL,
    kind       TEXT   NOT NULL,
    account_id BIGINT,
    actor      TEXT,
    subject    TEXT,
    ip         TEXT
);
CREATE INDEX security_events_at ON security_events (at);
CREATE FUNCTION security_events_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'security_events is append-only';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER security_events_no_change BEFORE UPDATE OR DELETE ON security_events
    FOR EACH ROW EXECUTE FUNCTION security_events_append_only();

-- The mail outbox carries invitations (to an address with no account yet) and security
-- alerts to operators.
ALTER TABLE mail_outbox DROP CONSTRAINT mail_outbox_kind_check;
ALTER TABLE mail_outbox ADD CONSTRAINT mail_outbox_kind_check
    CHECK (kind IN ('reconnect', 'expiry_warning', 'digest', 'invitation', 'security_alert', 'verify_email', 'password_reset'));
ALTER TABLE mail_outbox ALTER COLUMN account_id DROP NOT NULL;
