-- A second factor per account (TOTP, RFC 6238): the secret AES-256-GCM encrypted under
-- TOKEN_ENCRYPTION_KEY like the tokens, confirmed by a first code; last_step is the time
-- step of the last code accepted, so each code is taken once.
CREATE TABLE second_factors (
    account_id   INTEGER NOT NULL PRIMARY KEY REFERENCES merchants (id),
    secret       BLOB NOT NULL,
    key_id       TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    confirmed_at INTEGER,
    last_step    INTEGER NOT NULL DEFAULT 0
);

-- Single-use recovery codes, shown once, stored as SHA-256.
CREATE TABLE recovery_codes (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id INTEGER NOT NULL REFERENCES merchants (id),
    code_hash  TEXT NOT NULL,
    used_at    INTEGER
);
CREATE INDEX recovery_codes_account ON recovery_codes (account_id, code_hash);
