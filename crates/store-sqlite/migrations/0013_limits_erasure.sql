-- When a holder last signed in (a session began); NULL: not since registering. Retention erases
-- holders inactive for longer than `[retention] holder_inactive_days` with nothing holding a
-- colour. (PostgreSQL's 0013 also adds `checkin_keys`; SQLite answers which scan holds a
-- (device, seq) from the inbox's keys in memory and the indexed table's primary key.)
ALTER TABLE holders ADD COLUMN last_active_at INTEGER;
