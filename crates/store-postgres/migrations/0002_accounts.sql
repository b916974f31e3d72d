-- One-time codes, login sessions, officer accounts; indexes for the listings. Released migrations
-- are never edited; changes are new files.

-- One row per phone: the latest code (NULL once used) and the counters that limit sends. The row
-- outlives its code, so that the send limits still hold after a login. Sends and guesses lock it.
CREATE TABLE one_time_codes (
    phone_hash    bytea PRIMARY KEY,
    code_hash     bytea,
    expires_at    timestamptz NOT NULL,
    attempts_left smallint NOT NULL,
    last_sent_at  timestamptz NOT NULL,
    window_start  timestamptz NOT NULL,
    window_count  bigint NOT NULL
);

-- Sessions by the SHA-256 of their token (the token itself is never stored).
CREATE TABLE sessions (
    token_hash bytea PRIMARY KEY,
    kind       text NOT NULL CHECK (kind IN ('holder', 'officer')),
    holder     bytea,
    officer    bigint,
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    CHECK ((kind = 'holder') = (holder IS NOT NULL) AND (kind = 'officer') = (officer IS NOT NULL))
);
CREATE INDEX sessions_holder ON sessions (holder) WHERE holder IS NOT NULL;
CREATE INDEX sessions_officer ON sessions (officer) WHERE officer IS NOT NULL;

CREATE TABLE officers (
    id                   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    username             text NOT NULL UNIQUE,
    role                 text NOT NULL,
    password_hash        text NOT NULL,
    must_change_password boolean NOT NULL,
    created_at           timestamptz NOT NULL
);

CREATE INDEX devices_venue ON devices (venue);
CREATE INDEX cases_confirmed_at ON cases (confirmed_at);
