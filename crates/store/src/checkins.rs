//! Check-ins: taken in batches as scanners send them, read back by venue, by holder, or a whole
//! period at once.

use std::future::Future;

use healthcode_domain::{CheckIn, HolderId, VenueId};
use time::OffsetDateTime;

use crate::StoreResult;

/// What became of one scan handed to [`CheckinStore::record_checkins`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    /// Stored now.
    New,
    /// The same `(device, seq)` with the same code was stored before (a retry): stored once.
    Again,
    /// The `(device, seq)` is taken by another holder's check-in: nothing was stored.
    Taken,
}

/// Check-ins.
pub trait CheckinStore: Send + Sync + 'static {
    /// Records check-ins durably and says, for each in `batch` (in its order), whether it was
    /// stored now, was stored before (same device, seq and holder), or could not be because its
    /// `(device, seq)` already holds another holder's check-in (stored before, or earlier in the
    /// same batch). Nothing is reported stored that is not.
    fn record_checkins(&self, batch: &[CheckIn]) -> impl Future<Output = StoreResult<Vec<Recorded>>> + Send;
    /// Records check-ins durably; a check-in whose `(device, seq)` is already stored is stored and
    /// read once. Returns how many were new, except that PostgreSQL counts a scan re-sent within its
    /// still-open hour again (its duplicates are removed when the hour closes).
    fn insert_checkins(&self, batch: &[CheckIn]) -> impl Future<Output = StoreResult<u64>> + Send;
    /// Stores check-ins of any period in bulk, as loading a synthetic city or a restore does:
    /// what [`CheckinStore::insert_checkins`] does, except that a backend may keep them unindexed until
    /// [`CheckinStore::flush_checkins`] (PostgreSQL copies them into unindexed hour partitions, also
    /// past ones, and indexes each when it closes). Returns how many were taken.
    fn load_checkins(&self, batch: &[CheckIn]) -> impl Future<Output = StoreResult<u64>> + Send {
        self.insert_checkins(batch)
    }
    /// Moves every acknowledged check-in into its indexed place now (SQLite: the inbox merge;
    /// PostgreSQL: closing every open hour), as after a bulk load. Returns how many moved.
    fn flush_checkins(&self) -> impl Future<Output = StoreResult<u64>> + Send;
    /// Check-ins at a venue with `from <= at < to`, by time.
    fn checkins_at_venue(
        &self,
        venue: VenueId,
        from: OffsetDateTime,
        to: OffsetDateTime,
    ) -> impl Future<Output = StoreResult<Vec<CheckIn>>> + Send;
    /// A holder's check-ins with `from <= at < to`, by time.
    fn checkins_of_holder(
        &self,
        holder: &HolderId,
        from: OffsetDateTime,
        to: OffsetDateTime,
    ) -> impl Future<Output = StoreResult<Vec<CheckIn>>> + Send;
    /// Every check-in with `from <= at < to`, each `(device, seq)` once, handed to `each` in
    /// batches as it is read (batches in no promised order): one pass over a period, for loading
    /// it whole (the tracing index). Returns how many were handed over.
    fn scan_checkins(
        &self,
        from: OffsetDateTime,
        to: OffsetDateTime,
        each: &mut (dyn FnMut(Vec<CheckIn>) + Send),
    ) -> impl Future<Output = StoreResult<u64>> + Send;
}
