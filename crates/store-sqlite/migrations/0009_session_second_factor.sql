-- Whether the second factor was given in a staff session (at its sign-in, or by an enrolment
-- confirmed in it): a session signed in with the password alone stays limited to enrolment even
-- once the account has a second factor.
ALTER TABLE sessions ADD COLUMN second_factor INTEGER NOT NULL DEFAULT 0;
