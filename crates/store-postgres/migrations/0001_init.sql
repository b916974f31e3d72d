-- healthcode schema, PostgreSQL. Released migrations are never edited; changes are new files.

CREATE TABLE holders (
    id            bytea PRIMARY KEY,
    kind          text NOT NULL CHECK (kind IN ('resident', 'visitor')),
    identity_hash bytea NOT NULL UNIQUE,
    phone_hash    bytea NOT NULL UNIQUE,
    name_hint     text NOT NULL,
    sealed        bytea NOT NULL,
    created_at    timestamptz NOT NULL
);

CREATE TABLE venues (
    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name      text NOT NULL,
    category  text NOT NULL,
    region    text NOT NULL,
    admission text NOT NULL
);

CREATE TABLE devices (
    id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    venue    bigint NOT NULL REFERENCES venues (id),
    label    text NOT NULL,
    key_hash bytea NOT NULL UNIQUE
);

-- Partitioned by hour (UTC) so that retention drops whole partitions. The current hour's partition
-- has no index, so that scans are appended with COPY at the rate a morning peak needs; ten minutes
-- after the hour the server removes duplicate (device, seq) rows and builds the unique and lookup
-- indexes (see src/checkins.rs). Partitions are created by the server as scans arrive.
CREATE TABLE checkins (
    device bigint NOT NULL,
    seq    bigint NOT NULL,
    holder bytea NOT NULL,
    venue  bigint NOT NULL,
    at     timestamptz NOT NULL,
    out    timestamptz
) PARTITION BY RANGE (at);

CREATE TABLE checkin_partitions (
    name      text PRIMARY KEY,
    starts_at timestamptz NOT NULL UNIQUE,
    closed    boolean NOT NULL
);

CREATE TABLE health_declarations (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    holder      bytea NOT NULL,
    at          timestamptz NOT NULL,
    symptoms    text NOT NULL,
    temperature real
);
CREATE INDEX health_declarations_holder ON health_declarations (holder);

CREATE TABLE travel_declarations (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    holder     bytea NOT NULL,
    at         timestamptz NOT NULL,
    region     text NOT NULL,
    date_from  date NOT NULL,
    date_until date NOT NULL
);
CREATE INDEX travel_declarations_holder ON travel_declarations (holder);

CREATE TABLE daily_reports (
    id     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    holder bytea NOT NULL,
    at     timestamptz NOT NULL,
    well   boolean NOT NULL
);
CREATE INDEX daily_reports_holder ON daily_reports (holder);

CREATE TABLE test_results (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    holder     bytea NOT NULL,
    positive   boolean NOT NULL,
    sampled_at timestamptz NOT NULL,
    lab        text NOT NULL
);
CREATE INDEX test_results_holder ON test_results (holder);

CREATE TABLE cases (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    holder       bytea NOT NULL,
    onset        timestamptz NOT NULL,
    confirmed_at timestamptz NOT NULL
);
CREATE INDEX cases_holder ON cases (holder);

CREATE TABLE risk_areas (
    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    region    text NOT NULL,
    level     text NOT NULL,
    starts_at timestamptz NOT NULL,
    ends_at   timestamptz
);

CREATE TABLE exposures (
    holder          bytea NOT NULL,
    case_id         bigint NOT NULL,
    venue           bigint NOT NULL,
    contact_start   timestamptz NOT NULL,
    contact_end     timestamptz NOT NULL,
    case_start      timestamptz NOT NULL,
    case_end        timestamptz NOT NULL,
    overlap_minutes bigint NOT NULL,
    grade           text NOT NULL,
    PRIMARY KEY (holder, case_id, venue, contact_start)
);

CREATE TABLE overrides (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    holder      bytea NOT NULL,
    colour      text NOT NULL,
    reason      text NOT NULL,
    proposed_by bigint NOT NULL,
    proposed_at timestamptz NOT NULL,
    approved_by bigint,
    approved_at timestamptz,
    expires_at  timestamptz NOT NULL,
    CHECK (approved_by IS NULL OR approved_by <> proposed_by)
);
CREATE INDEX overrides_holder ON overrides (holder);

CREATE TABLE appeals (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    holder     bytea NOT NULL,
    text       text NOT NULL,
    filed_at   timestamptz NOT NULL,
    decided_by bigint,
    upheld     boolean,
    note       text,
    decided_at timestamptz
);
CREATE INDEX appeals_holder ON appeals (holder);

CREATE TABLE audit_log (
    seq       bigint PRIMARY KEY,
    at_ns     bigint NOT NULL,
    actor     text NOT NULL,
    role      text NOT NULL,
    action    text NOT NULL,
    subject   bytea,
    purpose   text NOT NULL,
    prev_hash bytea NOT NULL,
    hash      bytea NOT NULL
);
CREATE INDEX audit_log_subject ON audit_log (subject, seq);
