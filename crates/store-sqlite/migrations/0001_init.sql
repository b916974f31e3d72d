-- healthcode schema, SQLite. Released migrations are never edited; changes are new files.
-- Times are seconds since the epoch unless named *_ns; dates are 'YYYY-MM-DD'.

CREATE TABLE holders (
    id            BLOB PRIMARY KEY,
    kind          TEXT NOT NULL CHECK (kind IN ('resident', 'visitor')),
    identity_hash BLOB NOT NULL UNIQUE,
    phone_hash    BLOB NOT NULL UNIQUE,
    name_hint     TEXT NOT NULL,
    sealed        BLOB NOT NULL,
    created_at    INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE venues (
    id        INTEGER PRIMARY KEY,
    name      TEXT NOT NULL,
    category  TEXT NOT NULL,
    region    TEXT NOT NULL,
    admission TEXT NOT NULL
);

CREATE TABLE devices (
    id       INTEGER PRIMARY KEY,
    venue    INTEGER NOT NULL REFERENCES venues (id),
    label    TEXT NOT NULL,
    key_hash BLOB NOT NULL UNIQUE
);

-- Scans are acknowledged once appended here (an append touches few pages); a background merger
-- moves them in large sorted chunks into `checkins`, which lives in its own file (see
-- checkins/0001_checkins.sql) so that merging never holds this file's writer. A device's
-- sequence number makes a re-sent scan a no-op: the store keeps the inbox's (device, seq) keys in
-- memory and checks the indexed table's primary key. Reads look at both.
CREATE TABLE checkin_inbox (
    -- AUTOINCREMENT: an id is never reused, so a merge's bounds name only rows it has seen.
    id     INTEGER PRIMARY KEY AUTOINCREMENT,
    device INTEGER NOT NULL,
    seq    INTEGER NOT NULL,
    holder BLOB NOT NULL,
    venue  INTEGER NOT NULL,
    at     INTEGER NOT NULL,
    out    INTEGER
);

CREATE TABLE health_declarations (
    id          INTEGER PRIMARY KEY,
    holder      BLOB NOT NULL,
    at          INTEGER NOT NULL,
    symptoms    TEXT NOT NULL,
    temperature REAL
);
CREATE INDEX health_declarations_holder ON health_declarations (holder);

CREATE TABLE travel_declarations (
    id         INTEGER PRIMARY KEY,
    holder     BLOB NOT NULL,
    at         INTEGER NOT NULL,
    region     TEXT NOT NULL,
    date_from  TEXT NOT NULL,
    date_until TEXT NOT NULL
);
CREATE INDEX travel_declarations_holder ON travel_declarations (holder);

CREATE TABLE daily_reports (
    id     INTEGER PRIMARY KEY,
    holder BLOB NOT NULL,
    at     INTEGER NOT NULL,
    well   INTEGER NOT NULL
);
CREATE INDEX daily_reports_holder ON daily_reports (holder);

CREATE TABLE test_results (
    id         INTEGER PRIMARY KEY,
    holder     BLOB NOT NULL,
    positive   INTEGER NOT NULL,
    sampled_at INTEGER NOT NULL,
    lab        TEXT NOT NULL
);
CREATE INDEX test_results_holder ON test_results (holder);

CREATE TABLE cases (
    id           INTEGER PRIMARY KEY,
    holder       BLOB NOT NULL,
    onset        INTEGER NOT NULL,
    confirmed_at INTEGER NOT NULL
);
CREATE INDEX cases_holder ON cases (holder);

CREATE TABLE risk_areas (
    id        INTEGER PRIMARY KEY,
    region    TEXT NOT NULL,
    level     TEXT NOT NULL,
    starts_at INTEGER NOT NULL,
    ends_at   INTEGER
);

CREATE TABLE exposures (
    holder          BLOB NOT NULL,
    case_id         INTEGER NOT NULL,
    venue           INTEGER NOT NULL,
    contact_start   INTEGER NOT NULL,
    contact_end     INTEGER NOT NULL,
    case_start      INTEGER NOT NULL,
    case_end        INTEGER NOT NULL,
    overlap_minutes INTEGER NOT NULL,
    grade           TEXT NOT NULL,
    PRIMARY KEY (holder, case_id, venue, contact_start)
) WITHOUT ROWID;

CREATE TABLE overrides (
    id          INTEGER PRIMARY KEY,
    holder      BLOB NOT NULL,
    colour      TEXT NOT NULL,
    reason      TEXT NOT NULL,
    proposed_by INTEGER NOT NULL,
    proposed_at INTEGER NOT NULL,
    approved_by INTEGER,
    approved_at INTEGER,
    expires_at  INTEGER NOT NULL,
    CHECK (approved_by IS NULL OR approved_by <> proposed_by)
);
CREATE INDEX overrides_holder ON overrides (holder);

CREATE TABLE appeals (
    id         INTEGER PRIMARY KEY,
    holder     BLOB NOT NULL,
    text       TEXT NOT NULL,
    filed_at   INTEGER NOT NULL,
    decided_by INTEGER,
    upheld     INTEGER,
    note       TEXT,
    decided_at INTEGER
);
CREATE INDEX appeals_holder ON appeals (holder);

-- Append-only, hash-chained.
CREATE TABLE audit_log (
    seq       INTEGER PRIMARY KEY,
    at_ns     INTEGER NOT NULL,
    actor     TEXT NOT NULL,
    role      TEXT NOT NULL,
    action    TEXT NOT NULL,
    subject   BLOB,
    purpose   TEXT NOT NULL,
    prev_hash BLOB NOT NULL,
    hash      BLOB NOT NULL
);
CREATE INDEX audit_log_subject ON audit_log (subject, seq);
