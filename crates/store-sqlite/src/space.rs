//! The floor of free space. Below `min_free_bytes` on the file system of the database, writes are
//! refused before they are tried ([`StoreError::Unavailable`]: an API client gets 503 with
//! Retry-After) and the check-in merger waits, so the disk never fills to the last byte: the
//! operator keeps room to act (a shell, a backup, moving files) and the server recovers by itself
//! once space is freed.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use healthcode_store::{StoreError, StoreResult};

/// How long one measurement of free space is trusted.
const FRESH_FOR: Duration = Duration::from_millis(250);

/// Free space is below the floor.
#[derive(Debug, thiserror::Error)]
#[error(
    "{free_mb} MiB free beside the database, below the floor of {floor_mb} MiB ([storage] min_free_mb): writes wait for space"
)]
pub struct BelowFloor {
    free_mb: u64,
    floor_mb: u64,
}

/// Watches the free space of the database's file system.
#[derive(Debug)]
pub(crate) struct SpaceGuard {
    dir: PathBuf,
    floor: u64,
    /// When free space was last measured, and what it was.
    last: Mutex<Option<(Instant, u64)>>,
}

impl SpaceGuard {
    pub(crate) fn new(dir: PathBuf, floor: u64) -> SpaceGuard {
        SpaceGuard {
            dir,
            floor,
            last: Mutex::new(None),
        }
    }

    /// Bytes an unprivileged process may still write there.
    fn free_bytes(&self) -> Option<u64> {
        let now = Instant::now();
        let mut last = self.last.lock().ok()?;
        if let Some((at, free)) = *last
            && now.duration_since(at) < FRESH_FOR
        {
            return Some(free);
        }
        let st = rustix::fs::statvfs(&self.dir).ok()?;
        let free = st.f_bavail.saturating_mul(st.f_frsize);
        *last = Some((now, free));
        Some(free)
    }

    /// Refuses when free space is below the floor. A file system that cannot be measured is not
    /// refused: the write itself then says whether it fits.
    pub(crate) fn check(&self) -> StoreResult<()> {
        if self.floor == 0 {
            return Ok(());
        }
        match self.free_bytes() {
            Some(free) if free < self.floor => Err(StoreError::unavailable(BelowFloor {
                free_mb: free >> 20,
                floor_mb: self.floor >> 20,
            })),
            _ => Ok(()),
        }
    }
}
