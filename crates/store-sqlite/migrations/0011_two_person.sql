-- Two people for every act that changes colours or powers. An account made through the API
-- names the admin who proposed it and the one who approved it (NULL for the command line's
-- bootstrap accounts); the approval rule reads both.
ALTER TABLE officers ADD COLUMN created_by INTEGER;
ALTER TABLE officers ADD COLUMN creation_approved_by INTEGER
    CHECK (creation_approved_by IS NULL OR creation_approved_by <> created_by);

-- An ended risk area keeps its row (region, level, declared period) with when it was ended; from
-- then on it no longer counts for anyone's colour.
ALTER TABLE risk_areas ADD COLUMN ended_at INTEGER;

-- Proposals: risk areas (declare, change level, end), staff accounts and role grants, bulk
-- exposure decisions, colour policy versions. `act` is what approval does (JSON, written by
-- healthcode_store::proposals); it is done in the approving transaction.
CREATE TABLE proposals (
    id          INTEGER PRIMARY KEY,
    kind        TEXT NOT NULL,
    act         TEXT NOT NULL,
    proposed_by INTEGER NOT NULL,
    proposed_at INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    state       TEXT NOT NULL DEFAULT 'pending'
        CHECK (state IN ('pending', 'approved', 'withdrawn')),
    decided_by  INTEGER,
    decided_at  INTEGER,
    CHECK (state <> 'approved' OR (decided_by IS NOT NULL AND decided_by <> proposed_by))
);
CREATE INDEX proposals_pending ON proposals (state, id);
