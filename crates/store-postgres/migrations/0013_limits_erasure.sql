-- When a holder last signed in (a session began); NULL: not since registering. Retention erases
-- holders inactive for longer than `[retention] holder_inactive_days` with nothing holding a
-- colour.
ALTER TABLE holders ADD COLUMN last_active_at timestamptz;

-- Which scan holds a (device, seq). The open hour's partition has no index, so it cannot say;
-- this table can, in the same transaction as the COPY: a reused (device, seq) with another code
-- is refused, a re-sent scan is recognised, and nothing is reported stored that was not.
-- Retention deletes keys with their check-ins (BRIN on `at`: cheap to keep, enough for that).
CREATE TABLE checkin_keys (
    device bigint NOT NULL,
    seq    bigint NOT NULL,
    holder bytea NOT NULL,
    at     timestamptz NOT NULL,
    PRIMARY KEY (device, seq)
);
CREATE INDEX checkin_keys_at ON checkin_keys USING brin (at);
INSERT INTO checkin_keys (device, seq, holder, at)
    SELECT DISTINCT ON (device, seq) device, seq, holder, at FROM checkins ORDER BY device, seq, at;
