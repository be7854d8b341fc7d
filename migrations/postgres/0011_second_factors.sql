-- A second factor per account (TOTP, RFC 6238): the secret AES-256-GCM encrypted under
-- TOKEN_ENCRYPTION_KEY like the tokens, confirmed by a first code; last_step is the time
-- step of the last code accepted, so each code is taken once.
CREATE TABLE second_factors (
    account_id   BIGINT NOT NULL PRIMARY KEY REFERENCES merchants (id),
    secret       BYTEA NOT NULL,
    key_id       TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    confirmed_at BIGINT,
    last_step    BIGINT NOT NULL DEFAULT 0
);

-- Single-use recovery codes, shown once, stored as SHA-256.
CREATE TABLE recovery_codes (
    id         BIGSERIAL PRIMARY KEY,
    account_id BIGINT NOT NULL REFERENCES merchants (id),
    code_hash  TEXT NOT NULL,
    used_at    BIGINT
);
CREATE INDEX recovery_codes_account ON recovery_codes (account_id, code_hash);
