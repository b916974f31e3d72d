//! Readiness on SQLite: the floor of free space, the merger, and one small write.

use std::sync::atomic::Ordering;

use healthcode_store::{HealthStore, StoreError, StoreResult};

use crate::SqliteStore;
use crate::rows::backend;

/// The check-in merger cannot write (its cause was logged when it began).
#[derive(Debug, thiserror::Error)]
#[error("check-ins cannot be moved from the inbox into their indexed file (a full disk?)")]
pub struct MergerStalled;

impl HealthStore for SqliteStore {
    async fn check_writable(&self) -> StoreResult<()> {
        if self.inner.merger_stalled.load(Ordering::Relaxed) {
            return Err(StoreError::unavailable(MergerStalled));
        }
        let at = time::OffsetDateTime::now_utc().unix_timestamp();
        self.write(|tx| {
            tx.execute("UPDATE write_probe SET at = ?1 WHERE id = 1", [at])
                .map_err(backend)?;
            Ok(())
        })
    }
}
