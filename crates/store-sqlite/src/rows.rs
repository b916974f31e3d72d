//! SQLite's side of reading rows: its row as [`Columns`] (times are stored as seconds since 1970,
//! dates as `YYYY-MM-DD` text), queries that hand each row to a reader of `healthcode_store::rows`,
//! and the error of a failed statement.

use healthcode_store::rows::Columns;
use healthcode_store::{StoreError, StoreResult};
use rusqlite::{Connection, Params, Row};
use time::{Date, OffsetDateTime};

/// A failed statement: a broken constraint is [`StoreError::Conflict`], anything else
/// [`StoreError::Backend`] with SQLite's error as its source.
pub(crate) fn backend(e: rusqlite::Error) -> StoreError {
    use rusqlite::ErrorCode::{ConstraintViolation, DatabaseBusy, DatabaseLocked, DiskFull};
    match &e {
        rusqlite::Error::SqliteFailure(f, _) if f.code == ConstraintViolation => {
            StoreError::Conflict(e.to_string())
        }
        // A full disk or a locked file: the same request may succeed later. (An I/O failure or
        // a file that cannot be opened is a fault to fix, a 500.)
        rusqlite::Error::SqliteFailure(f, _)
            if matches!(f.code, DiskFull | DatabaseBusy | DatabaseLocked) =>
        {
            StoreError::unavailable(e)
        }
        _ => StoreError::backend(e),
    }
}

/// A time as stored.
pub(crate) fn ts(t: OffsetDateTime) -> i64 {
    t.unix_timestamp()
}

/// A stored time.
pub(crate) fn from_ts(s: i64) -> StoreResult<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp(s)
        .map_err(|_| StoreError::Corrupt(format!("time {s} is out of range")))
}

/// A date as stored.
pub(crate) fn date_text(d: Date) -> String {
    d.to_string()
}

/// A row of a query, read through [`Columns`].
pub(crate) struct Cols<'a, 'r>(pub(crate) &'a Row<'r>);

impl Columns for Cols<'_, '_> {
    fn int(&self, i: usize) -> StoreResult<i64> {
        self.0.get(i).map_err(StoreError::backend)
    }

    fn opt_int(&self, i: usize) -> StoreResult<Option<i64>> {
        self.0.get(i).map_err(StoreError::backend)
    }

    fn boolean(&self, i: usize) -> StoreResult<bool> {
        self.0.get(i).map_err(StoreError::backend)
    }

    fn opt_real(&self, i: usize) -> StoreResult<Option<f32>> {
        let v: Option<f64> = self.0.get(i).map_err(StoreError::backend)?;
        Ok(v.map(|t| t as f32))
    }

    fn text(&self, i: usize) -> StoreResult<&str> {
        let v = self.0.get_ref(i).map_err(StoreError::backend)?;
        v.as_str().map_err(StoreError::backend)
    }

    fn blob(&self, i: usize) -> StoreResult<&[u8]> {
        let v = self.0.get_ref(i).map_err(StoreError::backend)?;
        v.as_blob().map_err(StoreError::backend)
    }

    fn opt_text(&self, i: usize) -> StoreResult<Option<&str>> {
        let v = self.0.get_ref(i).map_err(StoreError::backend)?;
        v.as_str_or_null().map_err(StoreError::backend)
    }

    fn opt_blob(&self, i: usize) -> StoreResult<Option<&[u8]>> {
        let v = self.0.get_ref(i).map_err(StoreError::backend)?;
        v.as_blob_or_null().map_err(StoreError::backend)
    }

    fn time(&self, i: usize) -> StoreResult<OffsetDateTime> {
        from_ts(self.int(i)?)
    }

    fn opt_time(&self, i: usize) -> StoreResult<Option<OffsetDateTime>> {
        self.opt_int(i)?.map(from_ts).transpose()
    }

    fn date(&self, i: usize) -> StoreResult<Date> {
        let s = self.text(i)?;
        Date::parse(s, time::macros::format_description!("[year]-[month]-[day]"))
            .map_err(|_| StoreError::Corrupt(format!("{s:?} is not a date")))
    }
}

/// Every row `sql` returns, each handed to `read`.
pub(crate) fn query_all<T>(
    c: &Connection,
    sql: &str,
    params: impl Params,
    read: impl Fn(&dyn Columns) -> StoreResult<T>,
) -> StoreResult<Vec<T>> {
    let mut st = c.prepare_cached(sql).map_err(backend)?;
    let mut rows = st.query(params).map_err(backend)?;
    let mut out = Vec::new();
    while let Some(r) = rows.next().map_err(backend)? {
        out.push(read(&Cols(r))?);
    }
    Ok(out)
}

/// The first row `sql` returns, if any, handed to `read`.
pub(crate) fn query_first<T>(
    c: &Connection,
    sql: &str,
    params: impl Params,
    read: impl Fn(&dyn Columns) -> StoreResult<T>,
) -> StoreResult<Option<T>> {
    let mut st = c.prepare_cached(sql).map_err(backend)?;
    let mut rows = st.query(params).map_err(backend)?;
    rows.next().map_err(backend)?.map(|r| read(&Cols(r))).transpose()
}
