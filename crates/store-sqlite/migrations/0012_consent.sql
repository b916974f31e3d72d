-- Purposes bound to records: lab reports (the document a report names, as its identity hash),
-- the holders' consent records, and the days each holder's read digest was sent. Released
-- migrations are never edited; changes are new files.

CREATE TABLE lab_reports (
    reference     TEXT PRIMARY KEY,
    lab           TEXT NOT NULL,
    identity_hash BLOB NOT NULL,
    recorded_by   INTEGER NOT NULL,
    recorded_at   INTEGER NOT NULL
);

CREATE TABLE consents (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    holder      BLOB NOT NULL,
    scope       TEXT NOT NULL CHECK (scope IN ('proxy', 'printed-code')),
    -- NULL: any officer.
    granted_to  INTEGER,
    given       TEXT NOT NULL CHECK (given IN ('app', 'one-time-code', 'in-person')),
    obtained_by INTEGER,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL CHECK (expires_at > created_at AND expires_at <= created_at + 30 * 86400),
    revoked_at  INTEGER,
    -- An officer obtains every consent that is not given in the app, and attests how.
    CHECK ((given = 'app') = (obtained_by IS NULL))
);
CREATE INDEX consents_holder ON consents (holder, id);

CREATE TABLE read_digests (
    holder BLOB NOT NULL,
    day    TEXT NOT NULL,
    PRIMARY KEY (holder, day)
) WITHOUT ROWID;

-- The digest counts a day's reads.
CREATE INDEX audit_log_action_at ON audit_log (action, at_ns);
