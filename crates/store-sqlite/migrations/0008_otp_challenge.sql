-- A one-time code is guessed under the challenge its requester was given: a guess under another
-- challenge costs the code nothing. Codes sent before this column existed have none and are void.
ALTER TABLE one_time_codes ADD COLUMN challenge_hash BLOB;
