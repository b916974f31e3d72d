-- Colour policy versions as published. The first is the configured policy the store first ran
-- with (no proposal); every later one was proposed by one officer and approved by another, and is
-- written in the approving transaction. The newest row is the policy in force; rows are never
-- changed or deleted.
CREATE TABLE policies (
    seq          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    version      text NOT NULL UNIQUE,
    sha256       text NOT NULL,
    source       text NOT NULL,
    published_at timestamptz NOT NULL,
    proposal     bigint REFERENCES proposals (id),
    proposed_by  bigint,
    approved_by  bigint,
    CHECK (proposal IS NULL OR (proposed_by IS NOT NULL AND approved_by IS NOT NULL
                                AND proposed_by <> approved_by))
);
-- Never changed, never deleted: a published version stays what the officers signed off.
CREATE FUNCTION policies_are_kept() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'a published policy version is never changed or deleted';
END $$;
CREATE TRIGGER policies_kept BEFORE UPDATE OR DELETE ON policies
    FOR EACH ROW EXECUTE FUNCTION policies_are_kept();
