//! Group commit for check-ins. Handlers hand their check-ins to one writer task and wait; the
//! writer takes everything that queued while the previous transaction ran, stores it in one
//! transaction, and only then answers every waiting handler. A scan is answered "recorded" only
//! after its transaction committed, so it survives a `kill -9` the next instant. The queue is
//! bounded: when it is full the scan is refused with 503 and Retry-After instead of waiting.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use healthcode_domain::CheckIn;
use healthcode_store::{Store, StoreError};
use tokio::sync::{mpsc, oneshot};

use crate::problem::ApiError;

/// Most check-ins in one transaction.
pub const MAX_GROUP: usize = 20_000;

/// What every handler waiting on one transaction is told: the one error is shared.
type Outcome = Result<(), Arc<StoreError>>;

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
    pub fn new(capacity: usize) -> (Committer, Receiver) {
        let (tx, rx) = mpsc::channel(capacity);
        let depth = Arc::new(AtomicI64::new(0));
        (
            Committer {
                tx,
                depth: depth.clone(),
            },
            Receiver { rx, depth },
        )
    }

    /// Check-ins waiting for the writer.
    pub fn depth(&self) -> i64 {
        self.depth.load(Ordering::Relaxed)
    }

    /// Stores the check-ins durably, together with whatever else is waiting.
    pub async fn submit(&self, checkins: Vec<CheckIn>) -> Result<(), ApiError> {
        if checkins.is_empty() {
            return Ok(());
        }
        let n = checkins.len() as i64;
        let (done, wait) = oneshot::channel();
        self.tx.try_send(Job { checkins, done }).map_err(|_| {
            ApiError::Unavailable("the server is saturated with scans; retry shortly".into(), 1)
        })?;
        self.depth.fetch_add(n, Ordering::Relaxed);
        match wait.await {
            Ok(Ok(())) => Ok(()),
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
}

/// The writer task: stores into `store` until every [`Committer`] is dropped (with the `App` that
/// holds it).
pub async fn run<S: Store>(store: Arc<S>, mut rx: Receiver) {
    let mut batch: Vec<CheckIn> = Vec::new();
    let mut waiting: Vec<oneshot::Sender<Outcome>> = Vec::new();
    while let Some(first) = rx.rx.recv().await {
        batch.clear();
        batch.extend(first.checkins);
        waiting.push(first.done);
        while batch.len() < MAX_GROUP {
            match rx.rx.try_recv() {
                Ok(job) => {
                    batch.extend(job.checkins);
                    waiting.push(job.done);
                }
                Err(_) => break,
            }
        }
        let result = store.insert_checkins(&batch).await.map(|_| ()).map_err(Arc::new);
        rx.depth.fetch_sub(batch.len() as i64, Ordering::Relaxed);
        if let Err(e) = &result {
            tracing::error!(
                error = %crate::problem::ErrorChain(e.as_ref()),
                rows = batch.len(),
                "a group of check-ins failed to commit"
            );
        }
        for w in waiting.drain(..) {
            let _ = w.send(result.clone());
        }
    }
}
