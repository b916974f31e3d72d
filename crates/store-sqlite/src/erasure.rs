//! Erasure on SQLite. Every connection deletes with `secure_delete` (set at open), so a deleted
//! row's bytes are zeroed in the page that held it; [`SqliteStore::scrub`] then checkpoints both
//! files' write-ahead logs and truncates them, so no older copy of a page stays in a log.

use healthcode_domain::HolderId;
use healthcode_store::{
    ERASE, INACTIVE_HOLDERS, PURGE_DECIDED_APPEALS, PURGE_TESTS, StoreError, StoreResult,
};
use rusqlite::{Connection, params};
use time::OffsetDateTime;

use crate::rows::{backend, ts};
use crate::{SqliteStore, lock};

/// Tries at a checkpoint that readers hold back, 50 ms apart.
const CHECKPOINT_TRIES: u32 = 40;

impl SqliteStore {
    pub(crate) fn erase(&self, holder: &HolderId) -> StoreResult<bool> {
        let id = holder.as_bytes();
        // No merge may run meanwhile: a merge reads the inbox before it takes the check-ins
        // file's writer, so a chunk it read before this erasure would otherwise be copied into the
        // indexed table after it, and the erased holder's check-ins would come back.
        let _no_merge = tokio::task::block_in_place(|| lock(&self.inner.merge_lock))?;
        self.write(|tx| {
            let (row, children) = ERASE
                .split_last()
                .ok_or_else(|| StoreError::backend("no erasure statements"))?;
            for sql in children {
                tx.execute(sql, [id]).map_err(backend)?;
            }
            tx.execute("DELETE FROM checkin_inbox WHERE holder = ?1", [id])
                .map_err(backend)?;
            tx.execute("DELETE FROM ix.checkins WHERE holder = ?1", [id])
                .map_err(backend)?;
            let found = tx.execute(row, [id]).map_err(backend)? > 0;
            // Under the writer, as the inbox's keys are: no scan is sorted against them meanwhile.
            lock(&self.inner.inbox_keys)?.retain(|_, h| h != holder);
            Ok(found)
        })
    }

    pub(crate) fn inactive(
        &self,
        before: OffsetDateTime,
        now: OffsetDateTime,
        limit: u32,
    ) -> StoreResult<Vec<HolderId>> {
        let sql = format!(
            "{INACTIVE_HOLDERS}
               AND NOT EXISTS (SELECT 1 FROM checkin_inbox ci WHERE ci.holder = h.id)
               AND NOT EXISTS (SELECT 1 FROM ix.checkins ck WHERE ck.holder = h.id)
             ORDER BY h.id LIMIT $3"
        );
        self.read(|c| {
            let mut st = c.prepare(&sql).map_err(backend)?;
            let ids: Vec<Vec<u8>> = st
                .query_map(params![ts(before), ts(now), limit], |r| r.get(0))
                .and_then(Iterator::collect)
                .map_err(backend)?;
            ids.iter()
                .map(|b| HolderId::from_bytes(b).map_err(|e| StoreError::Corrupt(format!("holder id: {e}"))))
                .collect()
        })
    }

    pub(crate) fn purge_personal_data(
        &self,
        tests_before: OffsetDateTime,
        appeals_before: OffsetDateTime,
    ) -> StoreResult<(u64, u64)> {
        self.write(|tx| {
            let tests = tx.execute(PURGE_TESTS, [ts(tests_before)]).map_err(backend)?;
            let appeals = tx
                .execute(PURGE_DECIDED_APPEALS, [ts(appeals_before)])
                .map_err(backend)?;
            Ok((tests as u64, appeals as u64))
        })
    }

    pub(crate) fn scrub(&self) -> StoreResult<()> {
        tokio::task::block_in_place(|| {
            {
                let c = lock(&self.inner.writer)?;
                truncate_log(&c, "main")?;
            }
            let c = lock(&self.inner.ix_writer)?;
            truncate_log(&c, "main")
        })
    }
}

/// Checkpoints a database's log into its file and truncates the log to nothing, waiting for
/// readers that hold an older snapshot.
fn truncate_log(c: &Connection, schema: &str) -> StoreResult<()> {
    for _ in 0..CHECKPOINT_TRIES {
        let busy: i64 = c
            .query_row(&format!("PRAGMA {schema}.wal_checkpoint(TRUNCATE)"), [], |r| {
                r.get(0)
            })
            .map_err(backend)?;
        if busy == 0 {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    Err(StoreError::unavailable(
        "readers held the write-ahead log; erased data may remain in it until the next checkpoint",
    ))
}
