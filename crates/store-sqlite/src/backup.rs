//! Online backup: a consistent copy of the database while a server writes to it, through SQLite's
//! backup API, reading only (the data directory's lock is not needed).

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, OpenFlags};

use crate::SqliteStore;

/// A backup or a check of one failed.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The destination exists: a backup never overwrites.
    #[error("{0} exists already; a backup is written to a new file")]
    Exists(PathBuf),
    /// SQLite failed on a file.
    #[error("{path}")]
    Sqlite {
        /// The file.
        path: PathBuf,
        /// What SQLite said.
        #[source]
        source: rusqlite::Error,
    },
    /// The file is damaged.
    #[error("{path} is damaged: {report}")]
    Damaged {
        /// The file.
        path: PathBuf,
        /// SQLite's integrity report.
        report: String,
    },
    /// The source stayed locked.
    #[error("{0} stayed locked; try again")]
    Busy(PathBuf),
}

fn sqlite(path: &Path) -> impl FnOnce(rusqlite::Error) -> BackupError + '_ {
    move |source| BackupError::Sqlite {
        path: path.to_owned(),
        source,
    }
}

/// Copies one database file, whole, in one read transaction: the copy is the database as it was
/// at one instant, whatever is written meanwhile.
fn copy_file(from: &Path, to: &Path) -> Result<(), BackupError> {
    if to.exists() {
        return Err(BackupError::Exists(to.to_owned()));
    }
    let src = Connection::open_with_flags(
        from,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(sqlite(from))?;
    src.busy_timeout(Duration::from_secs(10)).map_err(sqlite(from))?;
    let mut dst = Connection::open(to).map_err(sqlite(to))?;
    let backup = Backup::new(&src, &mut dst).map_err(sqlite(to))?;
    for _ in 0..100 {
        match backup.step(-1).map_err(sqlite(from))? {
            StepResult::Done => return Ok(()),
            StepResult::More | StepResult::Busy | StepResult::Locked => {
                std::thread::sleep(Duration::from_millis(100));
            }
            _ => std::thread::sleep(Duration::from_millis(100)),
        }
    }
    Err(BackupError::Busy(from.to_owned()))
}

/// Backs up the database at `from` (its main file and its check-ins file) to `to` and the
/// check-ins file beside it, while a server may be writing. The main file is copied first: the
/// merger copies check-ins into the check-ins file before it deletes them from the main file's
/// inbox, so a check-in moved between the two copies is in both (read once), never in neither.
pub fn backup_database(from: &Path, to: &Path) -> Result<(), BackupError> {
    let ix_to = SqliteStore::checkins_path(to);
    if ix_to.exists() {
        return Err(BackupError::Exists(ix_to));
    }
    copy_file(from, to)?;
    copy_file(&SqliteStore::checkins_path(from), &ix_to)
}

/// Checks a database's two files with SQLite's `integrity_check`.
pub fn check_database(path: &Path) -> Result<(), BackupError> {
    for p in [path.to_owned(), SqliteStore::checkins_path(path)] {
        let c = Connection::open_with_flags(&p, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(sqlite(&p))?;
        let report: String = c
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .map_err(sqlite(&p))?;
        if report != "ok" {
            return Err(BackupError::Damaged { path: p, report });
        }
    }
    Ok(())
}
