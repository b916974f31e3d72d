-- Colour policy versions as published. The first is the configured policy the store first ran
-- with (no proposal); every later one was proposed by one officer and approved by another, and is
-- written in the approving transaction. The newest row is the policy in force; rows are never
-- changed or deleted.
CREATE TABLE policies (
    seq          INTEGER PRIMARY KEY,
    version      TEXT NOT NULL UNIQUE,
    sha256       TEXT NOT NULL,
    source       TEXT NOT NULL,
    published_at INTEGER NOT NULL,
    proposal     INTEGER REFERENCES proposals (id),
    proposed_by  INTEGER,
    approved_by  INTEGER,
    CHECK (proposal IS NULL OR (proposed_by IS NOT NULL AND approved_by IS NOT NULL
                                AND proposed_by <> approved_by))
);
-- Never changed, never deleted: a published version stays what the officers signed off.
CREATE TRIGGER policies_never_updated BEFORE UPDATE ON policies
BEGIN SELECT RAISE(ABORT, 'a published policy version is never changed'); END;
CREATE TRIGGER policies_never_deleted BEFORE DELETE ON policies
BEGIN SELECT RAISE(ABORT, 'a published policy version is never deleted'); END;
