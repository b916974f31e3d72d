-- One-time codes, login sessions, officer accounts; indexes for the listings. Released migrations
-- are never edited; changes are new files. Times are seconds since the epoch.

-- One row per phone: the latest code (NULL once used) and the counters that limit sends. The row
-- outlives its code, so that the send limits still hold after a login.
CREATE TABLE one_time_codes (
    phone_hash    BLOB PRIMARY KEY,
    code_hash     BLOB,
    expires_at    INTEGER NOT NULL,
    attempts_left INTEGER NOT NULL,
    last_sent_at  INTEGER NOT NULL,
    window_start  INTEGER NOT NULL,
    window_count  INTEGER NOT NULL
) WITHOUT ROWID;

-- Sessions by the SHA-256 of their token (the token itself is never stored).
CREATE TABLE sessions (
    token_hash BLOB PRIMARY KEY,
    kind       TEXT NOT NULL CHECK (kind IN ('holder', 'officer')),
    holder     BLOB,
    officer    INTEGER,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    CHECK ((kind = 'holder') = (holder IS NOT NULL) AND (kind = 'officer') = (officer IS NOT NULL))
) WITHOUT ROWID;
CREATE INDEX sessions_holder ON sessions (holder) WHERE holder IS NOT NULL;
CREATE INDEX sessions_officer ON sessions (officer) WHERE officer IS NOT NULL;

CREATE TABLE officers (
    id                   INTEGER PRIMARY KEY,
    username             TEXT NOT NULL UNIQUE,
    role                 TEXT NOT NULL,
    password_hash        TEXT NOT NULL,
    must_change_password INTEGER NOT NULL,
    created_at           INTEGER NOT NULL
);

CREATE INDEX devices_venue ON devices (venue);
CREATE INDEX cases_confirmed_at ON cases (confirmed_at);
