-- The indexed check-ins, in their own database file beside the main one. Released migrations are
-- never edited. Times are seconds since the epoch.
CREATE TABLE checkins (
    device INTEGER NOT NULL,
    seq    INTEGER NOT NULL,
    holder BLOB NOT NULL,
    venue  INTEGER NOT NULL,
    at     INTEGER NOT NULL,
    out    INTEGER,
    PRIMARY KEY (device, seq)
) WITHOUT ROWID;
CREATE INDEX checkins_venue_at ON checkins (venue, at);
CREATE INDEX checkins_holder_at ON checkins (holder, at);
