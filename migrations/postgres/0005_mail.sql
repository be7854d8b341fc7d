-- Merchants (and operators) may turn off the emails about their connection.
ALTER TABLE merchants ADD COLUMN email_notifications BIGINT  NOT NULL DEFAULT 1;

-- The mail outbox: one row per message, idempotent per dedupe_key
-- ('reconnect:<connection>:<generation>', 'expiry_warning:<connection>:<expires_at>',
-- 'digest:<day>:<account>'). A row is claimed under a lease by one instance at a time and
-- composed when it is sent.
CREATE TABLE mail_outbox (
    id                BIGSERIAL PRIMARY KEY,
    dedupe_key        TEXT    NOT NULL UNIQUE,
    kind              TEXT    NOT NULL CHECK (kind IN ('reconnect', 'expiry_warning', 'digest')),
    reason            TEXT,
    account_id        BIGINT  NOT NULL REFERENCES merchants (id),
    connection_id     BIGINT  REFERENCES connections (id),
    recipient         TEXT    NOT NULL,
    context           TEXT,
    unsubscribe_token TEXT    NOT NULL UNIQUE,
    status            TEXT    NOT NULL CHECK (status IN ('queued', 'sent', 'failed', 'suppressed')),
    attempts          BIGINT  NOT NULL DEFAULT 0,
    next_attempt_at   BIGINT  NOT NULL,
    last_answer       TEXT,
    lease_owner       TEXT,
    lease_until       BIGINT,
    sent_at           BIGINT,
    created_at        BIGINT  NOT NULL
);
CREATE INDEX mail_outbox_due ON mail_outbox (status, next_attempt_at);
CREATE INDEX mail_outbox_account ON mail_outbox (account_id, status);
