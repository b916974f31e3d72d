//! Group commit for check-ins. Handlers hand their check-ins to one writer task and wait; the
//! writer takes everything that queued while the previous transaction ran, stores it in one
//! transaction, and only then answers every waiting handler. A scan is answered "recorded" only
//! after its transaction committed, so it survives a `kill -9` the next instant. The queue is
//! bounded: when it is full the scan is refused with 503 and Retry-After instead of waiting.
//!
//! Each scan is answered with what the store did with it ([`Entry`]): stored, stored before (a
//! retry), or refused because its `(device, seq)` holds another code, also when the two arrive in
//! one group. A scan of the same code at the same device within `same_visit` of one this node
//! recorded is the same visit: answered with the first scan's sequence number, not stored again.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use healthcode_domain::{CheckIn, HolderId};
use healthcode_store::{Recorded, Store, StoreError};
use time::{Duration, OffsetDateTime};
use tokio::sync::{mpsc, oneshot};

use crate::problem::ApiError;

/// Most check-ins in one transaction.
pub const MAX_GROUP: usize = 20_000;

/// What became of one submitted check-in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry {
    /// Stored, now or by an earlier sending of the same scan.
    Recorded,
    /// The same visit as the scan recorded under this sequence number (same code, same device,
    /// within the same-visit window): that one stands, nothing more was stored.
    SameVisit(i64),
    /// The device's sequence number already records another code: nothing was stored.
    Conflict,
}

/// What every handler waiting on one transaction is told: its entries, or the one error shared.
type Outcome = Result<Vec<Entry>, Arc<StoreError>>;

struct Job {
    checkins: Vec<CheckIn>,
    done: oneshot::Sender<Outcome>,
}

/// The handle handlers submit to.
#[derive(Debug)]
pub struct Committer {
    tx: mpsc::Sender<Job>,
    depth: Arc<AtomicI64>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Job({})", self.checkins.len())
    }
}

impl Committer {
    /// A committer whose queue holds at most `capacity` submissions; returns it and the receiving
    /// end for [`run`].
    pub fn new(capacity: usize, same_visit: Duration) -> (Committer, Receiver) {
        let (tx, rx) = mpsc::channel(capacity);
        let depth = Arc::new(AtomicI64::new(0));
        (
            Committer {
                tx,
                depth: depth.clone(),
            },
            Receiver {
                rx,
                depth,
                same_visit,
            },
        )
    }

    /// Check-ins waiting for the writer.
    pub fn depth(&self) -> i64 {
        self.depth.load(Ordering::Relaxed)
    }

    /// Stores the check-ins durably, together with whatever else is waiting, and says what
    /// became of each (in their order).
    pub async fn submit(&self, checkins: Vec<CheckIn>) -> Result<Vec<Entry>, ApiError> {
        if checkins.is_empty() {
            return Ok(Vec::new());
        }
        let n = checkins.len() as i64;
        let (done, wait) = oneshot::channel();
        self.tx.try_send(Job { checkins, done }).map_err(|_| {
            ApiError::Unavailable("the server is saturated with scans; retry shortly".into(), 1)
        })?;
        self.depth.fetch_add(n, Ordering::Relaxed);
        match wait.await {
            Ok(Ok(entries)) => Ok(entries),
            // A scan whose group met an unavailable database may or may not be stored: sent
            // again, it is stored once.
            Ok(Err(e)) => Err(ApiError::unavailable_store(&e)
                .unwrap_or_else(|| ApiError::internal("storing check-ins failed", e))),
            Err(_) => Err(ApiError::Unavailable("the server is shutting down".into(), 1)),
        }
    }
}

/// The writer's end of the queue.
#[derive(Debug)]
pub struct Receiver {
    rx: mpsc::Receiver<Job>,
    depth: Arc<AtomicI64>,
    same_visit: Duration,
}

/// The visits this node recorded lately: per (device, holder), the sequence number and time of
/// the scan that recorded it.
#[derive(Debug, Default)]
struct Visits {
    last: HashMap<(i64, HolderId), (i64, OffsetDateTime)>,
}

impl Visits {
    /// The recorded scan `c` is the same visit as, if any.
    fn same_as(&self, c: &CheckIn, window: Duration) -> Option<i64> {
        let (seq, at) = self.last.get(&(c.device.0, c.holder.clone()))?;
        (*seq != c.seq && (c.at - *at).abs() <= window).then_some(*seq)
    }

    fn note(&mut self, c: &CheckIn) {
        self.last.insert((c.device.0, c.holder.clone()), (c.seq, c.at));
    }

    /// Forgets visits whose scan is older than `before`.
    fn forget_before(&mut self, before: OffsetDateTime) {
        self.last.retain(|_, (_, at)| *at >= before);
    }
}

/// Sorts a group: the scans that are the same visit as one recorded in an earlier group are
/// answered at once; the rest go to the store (two scans of one visit in one group are both
/// stored: which of them the store keeps is known only after it answers). Returns each scan's
/// answer so far and the positions of those to store.
fn same_visits(batch: &[CheckIn], visits: &Visits, window: Duration) -> (Vec<Option<Entry>>, Vec<usize>) {
    let mut entries = vec![None; batch.len()];
    let mut to_store = Vec::with_capacity(batch.len());
    for (i, c) in batch.iter().enumerate() {
        if let Some(seq) = visits.same_as(c, window).filter(|_| window.is_positive()) {
            entries[i] = Some(Entry::SameVisit(seq));
            continue;
        }
        to_store.push(i);
    }
    (entries, to_store)
}

/// The writer task: stores into `store` until every [`Committer`] is dropped (with the `App` that
/// holds it).
pub async fn run<S: Store>(store: Arc<S>, mut rx: Receiver) {
    let mut batch: Vec<CheckIn> = Vec::new();
    let mut waiting: Vec<(oneshot::Sender<Outcome>, usize)> = Vec::new();
    let mut visits = Visits::default();
    while let Some(first) = rx.rx.recv().await {
        batch.clear();
        waiting.push((first.done, first.checkins.len()));
        batch.extend(first.checkins);
        while batch.len() < MAX_GROUP {
            match rx.rx.try_recv() {
                Ok(job) => {
                    waiting.push((job.done, job.checkins.len()));
                    batch.extend(job.checkins);
                }
                Err(_) => break,
            }
        }
        let (mut entries, to_store) = same_visits(&batch, &visits, rx.same_visit);
        let stored: Vec<CheckIn> = to_store.iter().map(|&i| batch[i].clone()).collect();
        let result = store.record_checkins(&stored).await.map_err(Arc::new);
        rx.depth.fetch_sub(batch.len() as i64, Ordering::Relaxed);
        let result = result.map(|recorded| {
            for (&i, r) in to_store.iter().zip(recorded) {
                entries[i] = Some(match r {
                    Recorded::New | Recorded::Again => {
                        if rx.same_visit.is_positive() {
                            visits.note(&batch[i]);
                        }
                        Entry::Recorded
                    }
                    Recorded::Taken => Entry::Conflict,
                });
            }
            // A scan the store did not answer for is not reported stored.
            entries
                .into_iter()
                .map(|e| e.unwrap_or(Entry::Conflict))
                .collect::<Vec<_>>()
        });
        if rx.same_visit.is_positive() {
            visits.forget_before(OffsetDateTime::now_utc() - rx.same_visit * 2);
        }
        if let Err(e) = &result {
            tracing::error!(
                error = %crate::problem::ErrorChain(e.as_ref()),
                rows = batch.len(),
                "a group of check-ins failed to commit"
            );
        }
        let mut from = 0;
        for (w, n) in waiting.drain(..) {
            let _ = w.send(result.clone().map(|all| all[from..from + n].to_vec()));
            from += n;
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use healthcode_domain::{DeviceId, VenueId};

    fn scan(device: i64, seq: i64, holder: u8, secs: i64) -> CheckIn {
        CheckIn {
            holder: HolderId::from_bytes(&[holder; 8]).unwrap(),
            venue: VenueId(1),
            device: DeviceId(device),
            seq,
            at: time::macros::datetime!(2026-11-30 10:00 UTC) + Duration::seconds(secs),
            out: None,
        }
    }

    /// One code scanned again and again at one door within the window is one visit, under the
    /// first number; elsewhere, by someone else, or after the window it is a visit of its own.
    #[test]
    fn the_same_code_at_the_same_door_soon_after_is_the_same_visit() {
        let w = Duration::minutes(5);
        let mut visits = Visits::default();
        visits.note(&scan(1, 7, 1, 0));
        let group = [
            scan(1, 8, 1, 60),
            scan(1, 7, 1, 0),
            scan(2, 9, 1, 60),
            scan(1, 10, 2, 60),
            scan(1, 11, 2, 90),
            scan(1, 12, 1, 301),
        ];
        let (entries, to_store) = same_visits(&group, &visits, w);
        assert_eq!(entries[0], Some(Entry::SameVisit(7)));
        assert_eq!(to_store, vec![1, 2, 3, 4, 5]);
        // Off: everything goes to the store.
        assert_eq!(same_visits(&group, &visits, Duration::ZERO).1.len(), group.len());
    }
}
