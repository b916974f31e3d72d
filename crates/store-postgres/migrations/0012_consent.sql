-- Purposes bound to records: lab reports (the document a report names, as its identity hash),
-- the holders' consent records, and the days each holder's read digest was sent. Released
-- migrations are never edited; changes are new files.

CREATE TABLE lab_reports (
    reference     text PRIMARY KEY,
    lab           text NOT NULL,
    identity_hash bytea NOT NULL,
    recorded_by   bigint NOT NULL,
    recorded_at   timestamptz NOT NULL
);

CREATE TABLE consents (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    holder      bytea NOT NULL,
    scope       text NOT NULL CHECK (scope IN ('proxy', 'printed-code')),
    -- NULL: any officer.
    granted_to  bigint,
    given       text NOT NULL CHECK (given IN ('app', 'one-time-code', 'in-person')),
    obtained_by bigint,
    created_at  timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL CHECK (expires_at > created_at AND expires_at <= created_at + interval '30 days'),
    revoked_at  timestamptz,
    -- An officer obtains every consent that is not given in the app, and attests how.
    CHECK ((given = 'app') = (obtained_by IS NULL))
);
CREATE INDEX consents_holder ON consents (holder, id);

CREATE TABLE read_digests (
    holder bytea NOT NULL,
    day    date NOT NULL,
    PRIMARY KEY (holder, day)
);

-- The digest counts a day's reads.
CREATE INDEX audit_log_action_at ON audit_log (action, at_ns);
