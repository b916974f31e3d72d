-- Exposures that wait for an officer's review. Released migrations are never edited; changes are
-- new files.

-- Only applied exposures count for the colour rules; those traced before this migration were all
-- applied.
ALTER TABLE exposures ADD COLUMN state TEXT NOT NULL DEFAULT 'applied'
    CHECK (state IN ('applied', 'pending', 'dismissed'));

-- A case's exposures, in the order they are listed; and the review queue, small beside the rest.
CREATE INDEX exposures_case ON exposures (case_id, holder, venue, contact_start);
CREATE INDEX exposures_pending ON exposures (case_id, holder, venue, contact_start) WHERE state = 'pending';
