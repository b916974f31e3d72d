-- Staff sign-in that resists guessing, a second factor, and the lifecycle of credentials.

-- An account an admin disabled cannot sign in and its sessions have ended (NULL while active).
ALTER TABLE officers ADD COLUMN disabled_at TIMESTAMPTZ;
-- The TOTP secret (RFC 6238), sealed with the data keys; NULL until enrolled.
ALTER TABLE officers ADD COLUMN totp_secret BYTEA;
-- A secret offered at enrolment and not yet confirmed with a code.
ALTER TABLE officers ADD COLUMN totp_offered BYTEA;
-- The highest time step whose code was accepted: a code is good once.
ALTER TABLE officers ADD COLUMN totp_last_step BIGINT;

-- Single-use recovery codes, by their SHA-256; used_at is set when one is spent.
CREATE TABLE staff_recovery_codes (
    officer   BIGINT NOT NULL REFERENCES officers (id),
    code_hash BYTEA NOT NULL,
    used_at   TIMESTAMPTZ,
    PRIMARY KEY (officer, code_hash)
);

-- Failed staff sign-ins by what they count against: 'user:<name>' (known or not) or
-- 'client:<address>'. streak grows the delay and locks at the configured count; unseen is what
-- the account's owner is shown at the next sign-in.
CREATE TABLE sign_in_failures (
    key             TEXT PRIMARY KEY,
    streak          BIGINT NOT NULL,
    unseen          BIGINT NOT NULL,
    last_failure_at TIMESTAMPTZ NOT NULL,
    locked_at       TIMESTAMPTZ
);

-- Staff sessions remember when they were last used (idle expiry) and from which client.
ALTER TABLE sessions ADD COLUMN last_used_at TIMESTAMPTZ;
ALTER TABLE sessions ADD COLUMN client TEXT;
