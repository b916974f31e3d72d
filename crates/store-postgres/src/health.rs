//! Readiness on PostgreSQL: one small write, as the database takes writes now.

use healthcode_store::{HealthStore, StoreResult};

use crate::PgStore;
use crate::rows::db;

impl HealthStore for PgStore {
    async fn check_writable(&self) -> StoreResult<()> {
        let at = time::OffsetDateTime::now_utc().unix_timestamp();
        self.conn()
            .await?
            .execute("UPDATE write_probe SET at = $1 WHERE id = 1", &[&at])
            .await
            .map_err(db)?;
        Ok(())
    }
}
