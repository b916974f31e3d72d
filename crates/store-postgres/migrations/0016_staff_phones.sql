-- The phone a staff account's one-time passwords are sent to (E.164), and when its owner proved
-- it with a one-time code: a phone recorded with the proposal that made the account is the
-- proposer's word only, and receives only half of the first password; resets go to a proven one.
ALTER TABLE officers ADD COLUMN phone TEXT,
                     ADD COLUMN phone_proven_at timestamptz;
-- One phone, one staff account.
CREATE UNIQUE INDEX officers_phone ON officers (phone);
