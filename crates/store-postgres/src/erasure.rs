//! Erasure on PostgreSQL. A deleted row stays in its page until a vacuum, and a plain vacuum
//! leaves its bytes in the page's free space (and the index entries'), so
//! [`PgStore::scrub`] rewrites every table erasure deletes from ([`erased_tables`]: the sealed
//! data and lookup hashes, appeals' words, lab reports' identity hashes, and the ids and facts)
//! with `VACUUM FULL`, which writes new files and drops the old. It takes each table's exclusive
//! lock while it runs: the server runs it at most every few minutes, in the background, after
//! erasures, at start and after a retention purge that deleted anything, never once per erasure.

use healthcode_domain::HolderId;
use healthcode_store::{
    ERASE, INACTIVE_HOLDERS, PURGE_DECIDED_APPEALS, PURGE_TESTS, StoreError, StoreResult, erased_tables,
};
use time::OffsetDateTime;

use crate::PgStore;
use crate::rows::db;

impl PgStore {
    pub(crate) async fn erase(&self, holder: &HolderId) -> StoreResult<bool> {
        let id = holder.as_bytes();
        let mut c = self.conn().await?;
        let tx = c.transaction().await.map_err(db)?;
        let (row, children) = ERASE
            .split_last()
            .ok_or_else(|| StoreError::backend("no erasure statements"))?;
        for sql in children {
            tx.execute(*sql, &[&id]).await.map_err(db)?;
        }
        tx.execute(
            "WITH d AS (DELETE FROM checkins WHERE holder = $1 RETURNING device, seq)
             DELETE FROM checkin_keys k USING d WHERE k.device = d.device AND k.seq = d.seq",
            &[&id],
        )
        .await
        .map_err(db)?;
        let found = tx.execute(*row, &[&id]).await.map_err(db)? > 0;
        tx.commit().await.map_err(db)?;
        Ok(found)
    }

    pub(crate) async fn inactive(
        &self,
        before: OffsetDateTime,
        now: OffsetDateTime,
        limit: u32,
    ) -> StoreResult<Vec<HolderId>> {
        let sql = format!(
            "{INACTIVE_HOLDERS}
               AND NOT EXISTS (SELECT 1 FROM checkins ck WHERE ck.holder = h.id)
             ORDER BY h.id LIMIT $3"
        );
        let c = self.conn().await?;
        let rows = c
            .query(&sql, &[&before, &now, &i64::from(limit)])
            .await
            .map_err(db)?;
        rows.iter()
            .map(|r| {
                let b: &[u8] = r.try_get(0).map_err(db)?;
                HolderId::from_bytes(b).map_err(|e| StoreError::Corrupt(format!("holder id: {e}")))
            })
            .collect()
    }

    pub(crate) async fn purge_personal_data(
        &self,
        tests_before: OffsetDateTime,
        appeals_before: OffsetDateTime,
    ) -> StoreResult<(u64, u64)> {
        let mut c = self.conn().await?;
        let tx = c.transaction().await.map_err(db)?;
        let tests = tx.execute(PURGE_TESTS, &[&tests_before]).await.map_err(db)?;
        let appeals = tx
            .execute(PURGE_DECIDED_APPEALS, &[&appeals_before])
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok((tests, appeals))
    }

    pub(crate) async fn scrub(&self) -> StoreResult<()> {
        let c = self.conn().await?;
        // One statement each: several in one message would run as one transaction block, where
        // VACUUM cannot.
        for table in erased_tables() {
            c.batch_execute(&format!("VACUUM FULL {table}"))
                .await
                .map_err(db)?;
        }
        Ok(())
    }
}
