-- The phone a staff account's one-time passwords are sent to (E.164): recorded with the proposal
-- that makes the account, or by its owner with a one-time code. Nobody else learns them.
ALTER TABLE officers ADD COLUMN phone TEXT;
