-- Who last reset an account's credentials (its password or second factor) or re-enabled it, and
-- when: whoever did it knew its credentials, so the approval rule refuses that account as the
-- approver of their proposals (and, while the reset is recent, of anyone's).
ALTER TABLE officers ADD COLUMN credentials_reset_by INTEGER;
ALTER TABLE officers ADD COLUMN credentials_reset_at INTEGER;

-- Who recorded a case (NULL: tracing, the command line, the demo): a case opens nobody's
-- personal data to the staff member who recorded it.
ALTER TABLE cases ADD COLUMN recorded_by INTEGER;

-- Exposures numbered in the order they were recorded, so that a bulk decision decides those
-- that were pending when it was proposed and none recorded since (`id <= upto`).
ALTER TABLE exposures ADD COLUMN id INTEGER;
UPDATE exposures SET id = n.r
  FROM (SELECT holder AS h, case_id AS c, venue AS v, contact_start AS s,
               ROW_NUMBER() OVER (ORDER BY case_id, holder, venue, contact_start) AS r
          FROM exposures) AS n
 WHERE exposures.holder = n.h AND exposures.case_id = n.c AND exposures.venue = n.v
   AND exposures.contact_start = n.s;
CREATE UNIQUE INDEX exposures_id ON exposures (id);
