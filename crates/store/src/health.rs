//! Whether the store can take writes now: what readiness reports, so that a load balancer stops
//! sending traffic to a node whose database is full or gone, and sends it again once writes work.

use std::future::Future;

use crate::StoreResult;

/// The store's own health.
pub trait HealthStore: Send + Sync + 'static {
    /// Writes one small row (`write_probe`, always the same one) as every acknowledged write would
    /// be written, and fails as such a write would now: [`crate::StoreError::Unavailable`] when the
    /// database is unreachable, full, or (SQLite) below its floor of free space.
    fn check_writable(&self) -> impl Future<Output = StoreResult<()>> + Send;
}
