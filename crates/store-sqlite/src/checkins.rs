//! Check-ins on SQLite. A batch of scans is acknowledged once appended to `checkin_inbox` in the
//! main file; the `checkin-merger` thread moves the inbox into the indexed `checkins` table of
//! the check-ins file in large sorted chunks, under that file's own writer, then deletes them from
//! the inbox. Reads union both. The `(device, seq)` keys of the inbox are a set in memory (read at
//! open); the indexed table's primary key answers for older scans.

use std::collections::HashSet;
use std::sync::Weak;
use std::sync::atomic::Ordering;
use std::time::Duration;

use healthcode_domain::{CheckIn, HolderId, VenueId};
use healthcode_store::rows::{CHECKIN_COLS, checkin_row};
use healthcode_store::{CheckinStore, Recorded, StoreError, StoreResult, rules};
use rusqlite::{OptionalExtension, ToSql, params};
use time::OffsetDateTime;

use crate::rows::{Cols, backend, query_all, ts};
use crate::{Inner, SqliteStore, lock};

/// Check-ins moved from the inbox per merge transaction. Large, so that each index page of the
/// check-ins file is written once for many rows; the merge holds only that file's writer.
const MERGE_CHUNK: i64 = 200_000;

/// Check-ins handed over at once by a scan.
const SCAN_BATCH: usize = 50_000;

impl Inner {
    /// Moves up to `limit` of the oldest inbox rows into the indexed table, sorted so each index
    /// page is written once per chunk: first copied under the check-ins file's writer (scans keep
    /// arriving meanwhile), then deleted from the inbox. A crash in between leaves rows in both,
    /// which reads and the next merge treat as one. Returns how many rows left the inbox.
    fn merge_chunk(&self, limit: i64) -> StoreResult<u64> {
        // One merge at a time (the background thread, an explicit flush).
        let _one = lock(&self.merge_lock)?;
        let upto = self.ix_write_blocking(|tx| {
            let upto: Option<i64> = tx
                .query_row("SELECT max(id) FROM (SELECT id FROM hub.checkin_inbox ORDER BY id LIMIT ?1)", [limit], |r| r.get(0))
                .map_err(backend)?;
            if let Some(upto) = upto {
                tx.execute(
                    "INSERT INTO main.checkins (device, seq, holder, venue, at, out)
                     SELECT device, seq, holder, venue, at, out FROM hub.checkin_inbox WHERE id <= ?1 ORDER BY venue, at
                     ON CONFLICT (device, seq) DO NOTHING",
                    [upto],
                )
                .map_err(backend)?;
            }
            Ok(upto)
        })?;
        let Some(upto) = upto else { return Ok(0) };
        // Only rows now in the indexed table leave the inbox: a row appended meanwhile can never
        // be deleted unmerged, whatever its id.
        self.delete_from_inbox(
            "DELETE FROM checkin_inbox WHERE id <= ?1 AND EXISTS
             (SELECT 1 FROM ix.checkins c WHERE c.device = checkin_inbox.device AND c.seq = checkin_inbox.seq)
             RETURNING device, seq",
            upto,
            false,
        )
        .map(|(n, _)| n)
    }

    /// Deletes inbox rows with `sql` (which returns `device, seq` of each), keeping the key set in
    /// step. Returns how many rows went, and (when asked) how many of them were not also in the
    /// indexed table.
    pub(crate) fn delete_from_inbox(
        &self,
        sql: &str,
        arg: i64,
        count_unindexed: bool,
    ) -> StoreResult<(u64, u64)> {
        let mut c = lock(&self.writer)?;
        let tx = c.transaction().map_err(backend)?;
        let keys: Vec<(i64, i64)> = {
            let mut st = tx.prepare(sql).map_err(backend)?;
            st.query_map([arg], |r| Ok((r.get(0)?, r.get(1)?)))
                .and_then(Iterator::collect)
                .map_err(backend)?
        };
        let mut not_indexed = 0u64;
        if count_unindexed {
            let mut st = tx
                .prepare_cached("SELECT EXISTS (SELECT 1 FROM ix.checkins WHERE device = ?1 AND seq = ?2)")
                .map_err(backend)?;
            for k in &keys {
                if !st
                    .query_row([k.0, k.1], |r| r.get::<_, bool>(0))
                    .map_err(backend)?
                {
                    not_indexed += 1;
                }
            }
        }
        tx.commit().map_err(backend)?;
        let mut map = lock(&self.inbox_keys)?;
        for k in &keys {
            map.remove(k);
        }
        Ok((keys.len() as u64, not_indexed))
    }

    /// Appends scans to the inbox, skipping those whose `(device, seq)` is already in the inbox,
    /// earlier in the batch, or in the indexed table, and says what became of each
    /// (`rules::sort_checkins`). Keys enter the map only after the commit.
    fn ingest(&self, batch: &[CheckIn]) -> StoreResult<Vec<Recorded>> {
        self.space.check()?;
        let mut c = lock(&self.writer)?;
        let tx = c.transaction().map_err(backend)?;
        let (outcomes, fresh) = {
            let map = lock(&self.inbox_keys)?;
            let mut stored = tx
                .prepare_cached("SELECT holder FROM ix.checkins WHERE device = ?1 AND seq = ?2")
                .map_err(backend)?;
            let (outcomes, fresh) = rules::sort_checkins(batch, |device, seq| {
                if let Some(h) = map.get(&(device, seq)) {
                    return Ok(Some(h.clone()));
                }
                let found: Option<Vec<u8>> = stored
                    .query_row([device, seq], |r| r.get(0))
                    .optional()
                    .map_err(backend)?;
                found
                    .map(|b| {
                        HolderId::from_bytes(&b)
                            .map_err(|e| StoreError::Corrupt(format!("check-in holder: {e}")))
                    })
                    .transpose()
            })?;
            let mut insert = tx
                .prepare_cached("INSERT INTO checkin_inbox (device, seq, holder, venue, at, out) VALUES (?1, ?2, ?3, ?4, ?5, ?6)")
                .map_err(backend)?;
            for &i in &fresh {
                let c = &batch[i];
                insert
                    .execute(params![
                        c.device.0,
                        c.seq,
                        c.holder.as_bytes(),
                        c.venue.0,
                        ts(c.at),
                        c.out.map(ts)
                    ])
                    .map_err(backend)?;
            }
            (outcomes, fresh)
        };
        tx.commit().map_err(backend)?;
        lock(&self.inbox_keys)?.extend(
            fresh
                .iter()
                .map(|&i| ((batch[i].device.0, batch[i].seq), batch[i].holder.clone())),
        );
        Ok(outcomes)
    }
}

/// The merger's pause after a round that moved little, and the longest pause after failures.
const IDLE: Duration = Duration::from_millis(200);
const LONGEST_BACKOFF: Duration = Duration::from_secs(5);

/// Moves check-ins from the inbox while the store lives. A round that fails (a full disk, free
/// space below the floor, a locked file) is tried again after a pause that doubles up to 5 s, so a
/// full disk is not written to every few hundred milliseconds; the space a failed copy took in the
/// check-ins file's log is given back. The failure is logged once, as is the recovery, and readiness
/// reports the merger stalled meanwhile. Scans stay safe in the inbox throughout.
pub(crate) fn merger(inner: Weak<Inner>) {
    let mut backoff = Duration::ZERO;
    loop {
        let Some(inner) = inner.upgrade() else { return };
        let pause = match inner.merge_chunk(MERGE_CHUNK) {
            Ok(moved) => {
                if inner.merger_stalled.swap(false, Ordering::Relaxed) {
                    tracing::info!("check-ins are moved from the inbox again");
                }
                backoff = Duration::ZERO;
                if moved < MERGE_CHUNK as u64 / 4 {
                    IDLE
                } else {
                    Duration::ZERO
                }
            }
            Err(e) => {
                if !inner.merger_stalled.swap(true, Ordering::Relaxed) {
                    let chain: Vec<String> =
                        std::iter::successors(Some(&e as &dyn std::error::Error), |e| e.source())
                            .map(ToString::to_string)
                            .collect();
                    tracing::warn!(
                        error = chain.join(": "),
                        "moving check-ins from the inbox failed; retrying with back-off (scans are kept in the inbox)"
                    );
                }
                inner.give_back_log_space();
                backoff = (backoff * 2).clamp(Duration::from_secs(1), LONGEST_BACKOFF);
                backoff
            }
        };
        drop(inner);
        if !pause.is_zero() {
            std::thread::sleep(pause);
        }
    }
}

impl Inner {
    /// After a failed merge: cuts the check-ins file's write-ahead log back to nothing when no
    /// reader needs it, returning the space the rolled-back copy took.
    fn give_back_log_space(&self) {
        if let Ok(c) = self.ix_writer.lock() {
            let _ = c.query_row("PRAGMA main.wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
        }
    }
}

impl SqliteStore {
    /// The check-ins whose `column` (a fixed column name) is `value`, with `from <= at < to`, by
    /// time: from the indexed table and the inbox, each `(device, seq)` once.
    fn checkins_where(
        &self,
        column: &'static str,
        value: &dyn ToSql,
        from: OffsetDateTime,
        to: OffsetDateTime,
    ) -> StoreResult<Vec<CheckIn>> {
        let sql = format!(
            "SELECT {CHECKIN_COLS} FROM ix.checkins WHERE {column} = ?1 AND at >= ?2 AND at < ?3
             UNION SELECT {CHECKIN_COLS} FROM checkin_inbox WHERE {column} = ?1 AND at >= ?2 AND at < ?3
             ORDER BY 5, 1, 2"
        );
        self.read(|c| query_all(c, &sql, params![value, ts(from), ts(to)], checkin_row))
    }

    /// Moves every check-in waiting in the inbox into the indexed table now.
    pub fn flush_checkins(&self) -> StoreResult<u64> {
        let mut total = 0;
        loop {
            let n = self.inner.merge_chunk(MERGE_CHUNK)?;
            total += n;
            if n == 0 {
                return Ok(total);
            }
        }
    }
}

impl CheckinStore for SqliteStore {
    async fn insert_checkins(&self, batch: &[CheckIn]) -> StoreResult<u64> {
        if batch.is_empty() {
            return Ok(0);
        }
        let outcomes = tokio::task::block_in_place(|| self.inner.ingest(batch))?;
        Ok(outcomes.iter().filter(|o| **o == Recorded::New).count() as u64)
    }

    async fn record_checkins(&self, batch: &[CheckIn]) -> StoreResult<Vec<Recorded>> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        tokio::task::block_in_place(|| self.inner.ingest(batch))
    }

    async fn flush_checkins(&self) -> StoreResult<u64> {
        tokio::task::block_in_place(|| SqliteStore::flush_checkins(self))
    }

    async fn checkins_at_venue(
        &self,
        venue: VenueId,
        from: OffsetDateTime,
        to: OffsetDateTime,
    ) -> StoreResult<Vec<CheckIn>> {
        self.checkins_where("venue", &venue.0, from, to)
    }

    async fn checkins_of_holder(
        &self,
        holder: &HolderId,
        from: OffsetDateTime,
        to: OffsetDateTime,
    ) -> StoreResult<Vec<CheckIn>> {
        self.checkins_where("holder", &holder.as_bytes(), from, to)
    }

    async fn scan_checkins(
        &self,
        from: OffsetDateTime,
        to: OffsetDateTime,
        each: &mut (dyn FnMut(Vec<CheckIn>) + Send),
    ) -> StoreResult<u64> {
        self.read(|c| {
            // The inbox first, then the indexed table without the keys already seen: the merge
            // copies a row into the indexed table before it leaves the inbox, so a row it moves
            // meanwhile is read in one place or the other, and once.
            let mut inbox_keys: HashSet<(i64, i64)> = HashSet::new();
            let mut batch = Vec::with_capacity(SCAN_BATCH);
            let mut n = 0u64;
            for (table, inbox) in [("checkin_inbox", true), ("ix.checkins", false)] {
                let mut st = c
                    .prepare(&format!(
                        "SELECT {CHECKIN_COLS} FROM {table} WHERE at >= ?1 AND at < ?2"
                    ))
                    .map_err(backend)?;
                let mut rows = st.query(params![ts(from), ts(to)]).map_err(backend)?;
                while let Some(r) = rows.next().map_err(backend)? {
                    let r = checkin_row(&Cols(r))?;
                    let key = (r.device.0, r.seq);
                    let fresh = if inbox {
                        inbox_keys.insert(key)
                    } else {
                        !inbox_keys.contains(&key)
                    };
                    if fresh {
                        batch.push(r);
                        if batch.len() == SCAN_BATCH {
                            n += batch.len() as u64;
                            each(std::mem::replace(&mut batch, Vec::with_capacity(SCAN_BATCH)));
                        }
                    }
                }
            }
            if !batch.is_empty() {
                n += batch.len() as u64;
                each(batch);
            }
            Ok(n)
        })
    }
}
