//! PostgreSQL's side of reading rows: its row as [`Columns`], rows handed to a reader of
//! `healthcode_store::rows`, and the errors of a failed statement or an exhausted pool.

use healthcode_store::rows::Columns;
use healthcode_store::{StoreError, StoreResult};
use time::{Date, OffsetDateTime};
use tokio_postgres::Row;
use tokio_postgres::error::SqlState;

/// A failed statement: a unique clash is [`StoreError::Conflict`] and a missing reference
/// [`StoreError::NotFound`], each naming the constraint (never PostgreSQL's DETAIL, which quotes
/// the row's values: a name, an appeal's text); anything else is [`StoreError::Backend`] with the
/// driver's error as its source.
pub(crate) fn db(e: tokio_postgres::Error) -> StoreError {
    let constraint = || {
        e.as_db_error()
            .and_then(|d| d.constraint().or(Some(d.table()?)))
            .unwrap_or("unnamed")
            .to_owned()
    };
    match e.code() {
        Some(c) if *c == SqlState::UNIQUE_VIOLATION => {
            StoreError::Conflict(format!("a unique value exists already ({})", constraint()))
        }
        Some(c) if *c == SqlState::FOREIGN_KEY_VIOLATION => {
            StoreError::NotFound(format!("a referenced record does not exist ({})", constraint()))
        }
        Some(c) if unavailable_state(c) => StoreError::unavailable(e),
        // No SQLSTATE: the connection broke or could not be made.
        None if e.is_closed() || source_is_io(&e) => StoreError::unavailable(e),
        _ => StoreError::backend(e),
    }
}

/// States in which the server is restarting, shutting down, out of connections or of disk:
/// retrying later may succeed.
fn unavailable_state(c: &SqlState) -> bool {
    [
        SqlState::ADMIN_SHUTDOWN,
        SqlState::CRASH_SHUTDOWN,
        SqlState::CANNOT_CONNECT_NOW,
        SqlState::TOO_MANY_CONNECTIONS,
        SqlState::DISK_FULL,
        SqlState::INSUFFICIENT_RESOURCES,
        SqlState::OUT_OF_MEMORY,
        SqlState::CONNECTION_EXCEPTION,
        SqlState::CONNECTION_FAILURE,
        SqlState::SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION,
    ]
    .contains(c)
}

fn source_is_io(e: &tokio_postgres::Error) -> bool {
    let mut cur = std::error::Error::source(e);
    while let Some(s) = cur {
        if s.is::<std::io::Error>() {
            return true;
        }
        cur = s.source();
    }
    false
}

/// No connection could be had from the pool. A refused or broken connection, or a wait longer
/// than the pool's time-outs, is [`StoreError::Unavailable`]; a refusal that will not clear by
/// itself (a wrong password, a missing database) stays [`StoreError::Backend`], a 500 to fix.
pub(crate) fn pool_err(e: deadpool_postgres::PoolError) -> StoreError {
    match e {
        deadpool_postgres::PoolError::Backend(e) => db(e),
        deadpool_postgres::PoolError::Timeout(_) => StoreError::unavailable(e),
        other => StoreError::backend(other),
    }
}

/// A row of a query, read through [`Columns`].
pub(crate) struct Cols<'a>(pub(crate) &'a Row);

impl Columns for Cols<'_> {
    fn int(&self, i: usize) -> StoreResult<i64> {
        self.0.try_get(i).map_err(db)
    }

    fn opt_int(&self, i: usize) -> StoreResult<Option<i64>> {
        self.0.try_get(i).map_err(db)
    }

    fn boolean(&self, i: usize) -> StoreResult<bool> {
        self.0.try_get(i).map_err(db)
    }

    fn opt_real(&self, i: usize) -> StoreResult<Option<f32>> {
        self.0.try_get(i).map_err(db)
    }

    fn text(&self, i: usize) -> StoreResult<&str> {
        self.0.try_get(i).map_err(db)
    }

    fn blob(&self, i: usize) -> StoreResult<&[u8]> {
        self.0.try_get(i).map_err(db)
    }

    fn opt_text(&self, i: usize) -> StoreResult<Option<&str>> {
        self.0.try_get(i).map_err(db)
    }

    fn opt_blob(&self, i: usize) -> StoreResult<Option<&[u8]>> {
        self.0.try_get(i).map_err(db)
    }

    fn time(&self, i: usize) -> StoreResult<OffsetDateTime> {
        self.0.try_get(i).map_err(db)
    }

    fn opt_time(&self, i: usize) -> StoreResult<Option<OffsetDateTime>> {
        self.0.try_get(i).map_err(db)
    }

    fn date(&self, i: usize) -> StoreResult<Date> {
        self.0.try_get(i).map_err(db)
    }
}

/// Each of `rows` read by `read`.
pub(crate) fn each<T>(rows: &[Row], read: impl Fn(&dyn Columns) -> StoreResult<T>) -> StoreResult<Vec<T>> {
    rows.iter().map(|r| read(&Cols(r))).collect()
}

/// `row`, if there is one, read by `read`.
pub(crate) fn one<T>(
    row: Option<&Row>,
    read: impl Fn(&dyn Columns) -> StoreResult<T>,
) -> StoreResult<Option<T>> {
    row.map(|r| read(&Cols(r))).transpose()
}

/// The id an `INSERT … RETURNING id` gave.
pub(crate) fn returned_id(row: &Row) -> StoreResult<i64> {
    row.try_get(0).map_err(db)
}
