//! Check-ins on PostgreSQL: one partition an hour (UTC). While its hour is current the partition
//! has no index, and scans are `COPY`ed into it; ten minutes after the hour ends the closer removes
//! duplicate `(device, seq)` rows and builds the unique and lookup indexes in one pass each. Scans
//! for an hour already over (an offline scanner's queue) are inserted with `ON CONFLICT DO
//! NOTHING`. Reads return each `(device, seq)` once, whatever the partition's state.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};

use futures_util::StreamExt;

use healthcode_domain::{CheckIn, HolderId, VenueId};
use healthcode_store::rows::{CHECKIN_COLS, checkin_row};
use healthcode_store::{CheckinStore, Recorded, StoreError, StoreResult};
use time::{Duration, OffsetDateTime, Time, UtcOffset};
use tokio_postgres::GenericClient;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};

use crate::rows::{Cols, db, each, pool_err};
use crate::{PgInner, PgStore};

/// An hour's partition is closed (deduplicated and indexed) this long after the hour ends.
pub const CLOSE_AFTER: Duration = Duration::minutes(10);
/// Scans for an hour that ended longer ago than this take the indexed path.
pub(crate) const LATE_AFTER: Duration = Duration::minutes(5);

/// The start of the UTC hour holding `t`.
pub fn hour_of(t: OffsetDateTime) -> OffsetDateTime {
    let t = t.to_offset(UtcOffset::UTC);
    t.replace_time(Time::from_hms(t.hour(), 0, 0).unwrap_or(Time::MIDNIGHT))
}

/// The partition's table name.
pub fn partition_name(hour: OffsetDateTime) -> String {
    format!(
        "checkins_h{:04}{:02}{:02}{:02}",
        hour.year(),
        u8::from(hour.month()),
        hour.day(),
        hour.hour()
    )
}

fn ts_literal(t: OffsetDateTime) -> String {
    format!(
        "{:04}-{:02}-{:02} {:02}:00:00+00",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour()
    )
}

/// The statements that make an open partition closed: duplicates out, indexes in.
fn close_sql(name: &str) -> String {
    format!(
        "LOCK TABLE {name} IN ACCESS EXCLUSIVE MODE;
         DELETE FROM {name} a USING {name} b WHERE a.device = b.device AND a.seq = b.seq AND a.ctid > b.ctid;
         CREATE UNIQUE INDEX IF NOT EXISTS {name}_device_seq ON {name} (device, seq);
         CREATE INDEX IF NOT EXISTS {name}_venue_at ON {name} (venue, at);
         CREATE INDEX IF NOT EXISTS {name}_holder_at ON {name} (holder, at);
         UPDATE checkin_partitions SET closed = true WHERE name = '{name}';"
    )
}

/// COPYs rows straight into their hour's partition (no routing through the parent), in `tx`.
pub(crate) async fn copy_rows(tx: &tokio_postgres::Transaction<'_>, rows: &[&CheckIn]) -> StoreResult<u64> {
    let mut by_hour: BTreeMap<OffsetDateTime, Vec<&CheckIn>> = BTreeMap::new();
    for r in rows {
        by_hour.entry(hour_of(r.at)).or_default().push(r);
    }
    let mut n = 0;
    for (hour, rows) in by_hour {
        let sink = tx
            .copy_in(&format!(
                "COPY {} (device, seq, holder, venue, at, out) FROM STDIN BINARY",
                partition_name(hour)
            ))
            .await
            .map_err(db)?;
        let types = [
            Type::INT8,
            Type::INT8,
            Type::BYTEA,
            Type::INT8,
            Type::TIMESTAMPTZ,
            Type::TIMESTAMPTZ,
        ];
        let writer = BinaryCopyInWriter::new(sink, &types);
        futures_util::pin_mut!(writer);
        for r in rows {
            writer
                .as_mut()
                .write(&[
                    &r.device.0,
                    &r.seq,
                    &r.holder.as_bytes(),
                    &r.venue.0,
                    &r.at,
                    &r.out,
                ])
                .await
                .map_err(db)?;
        }
        n += writer.finish().await.map_err(db)?;
    }
    Ok(n)
}

impl PgInner {
    /// Makes sure the partitions for these hours exist; returns whether each is closed. A partition
    /// for an hour already past its closing time is created closed, except for a `bulk` load
    /// (then the closer indexes it later).
    pub(crate) async fn ensure_hours(
        &self,
        hours: impl IntoIterator<Item = OffsetDateTime>,
        now: OffsetDateTime,
        bulk: bool,
    ) -> StoreResult<BTreeMap<OffsetDateTime, bool>> {
        let mut out = BTreeMap::new();
        let mut missing = Vec::new();
        {
            let known = self
                .partitions
                .lock()
                .map_err(|_| StoreError::backend("partition cache poisoned"))?;
            // Each hour once: a batch names its hours once a scan.
            let hours: std::collections::BTreeSet<OffsetDateTime> = hours.into_iter().collect();
            for h in hours {
                match known.get(&h) {
                    Some(closed) => {
                        out.insert(h, *closed);
                    }
                    None => missing.push(h),
                }
            }
        }
        if missing.is_empty() {
            return Ok(out);
        }
        let mut loading = Vec::new();
        let mut c = self.pool.get().await.map_err(pool_err)?;
        let tx = c.transaction().await.map_err(db)?;
        tx.execute("SELECT pg_advisory_xact_lock(7209412)", &[])
            .await
            .map_err(db)?;
        for h in missing {
            let name = partition_name(h);
            let closed = match tx
                .query_opt("SELECT closed FROM checkin_partitions WHERE name = $1", &[&name])
                .await
                .map_err(db)?
            {
                Some(r) => r.get::<_, bool>(0),
                None => {
                    tx.batch_execute(&format!(
                        "CREATE TABLE {name} PARTITION OF checkins FOR VALUES FROM ('{}') TO ('{}')",
                        ts_literal(h),
                        ts_literal(h + Duration::hours(1))
                    ))
                    .await
                    .map_err(db)?;
                    tx.execute(
                        "INSERT INTO checkin_partitions (name, starts_at, closed) VALUES ($1, $2, false)",
                        &[&name, &h],
                    )
                    .await
                    .map_err(db)?;
                    let past = !bulk && h + Duration::hours(1) + CLOSE_AFTER <= now;
                    if bulk {
                        loading.push(h);
                    }
                    if past {
                        tx.batch_execute(&close_sql(&name)).await.map_err(db)?;
                    }
                    past
                }
            };
            out.insert(h, closed);
        }
        tx.commit().await.map_err(db)?;
        let mut known = self
            .partitions
            .lock()
            .map_err(|_| StoreError::backend("partition cache poisoned"))?;
        known.extend(out.iter().map(|(h, c)| (*h, *c)));
        self.loading
            .lock()
            .map_err(|_| StoreError::backend("partition cache poisoned"))?
            .extend(loading);
        Ok(out)
    }

    /// Stores a bulk load: as `record` (`checkin_keys.rs`) without the keys, except that a missing partition is
    /// created open whatever its hour, and rows for any open hour are copied in unindexed (the
    /// closer or a flush indexes them, and removes duplicates, later).
    pub(crate) async fn load_checkins(&self, batch: &[CheckIn]) -> StoreResult<u64> {
        self.store_checkins(batch, true).await
    }

    async fn store_checkins(&self, batch: &[CheckIn], bulk: bool) -> StoreResult<u64> {
        let now = OffsetDateTime::now_utc();
        let mut seen = HashSet::with_capacity(batch.len());
        let rows: Vec<&CheckIn> = batch
            .iter()
            .filter(|c| seen.insert((c.device.0, c.seq)))
            .collect();
        let hours = self
            .ensure_hours(rows.iter().map(|c| hour_of(c.at)), now, bulk)
            .await?;
        let (fresh, late): (Vec<&CheckIn>, Vec<&CheckIn>) = rows.into_iter().partition(|c| {
            let h = hour_of(c.at);
            !hours.get(&h).copied().unwrap_or(true) && (bulk || h + Duration::hours(1) + LATE_AFTER > now)
        });
        let mut n = 0;
        if !fresh.is_empty() {
            match self.copy_rows(&fresh).await {
                Ok(k) => n += k,
                // Another node (or the closer) closed the hour meanwhile: its unique index
                // refused a duplicate.
                Err(_) => {
                    self.forget_hours(fresh.iter().map(|c| hour_of(c.at)))?;
                    n += self.insert_rows(&fresh).await?;
                }
            }
        }
        if !late.is_empty() {
            n += self.insert_rows(&late).await?;
        }
        Ok(n)
    }

    /// Forgets what is known of these hours' partitions (they were closed elsewhere, or dropped).
    pub(crate) fn forget_hours(&self, hours: impl Iterator<Item = OffsetDateTime>) -> StoreResult<()> {
        let mut known = self
            .partitions
            .lock()
            .map_err(|_| StoreError::backend("partition cache poisoned"))?;
        for h in hours {
            known.remove(&h);
        }
        Ok(())
    }

    /// COPYs rows straight into their hour's partition (no routing through the parent).
    async fn copy_rows(&self, rows: &[&CheckIn]) -> StoreResult<u64> {
        let mut c = self.pool.get().await.map_err(pool_err)?;
        let tx = c.transaction().await.map_err(db)?;
        let n = copy_rows(&tx, rows).await?;
        tx.commit().await.map_err(db)?;
        Ok(n)
    }

    async fn insert_rows(&self, rows: &[&CheckIn]) -> StoreResult<u64> {
        let devices: Vec<i64> = rows.iter().map(|c| c.device.0).collect();
        let seqs: Vec<i64> = rows.iter().map(|c| c.seq).collect();
        let holders: Vec<&[u8]> = rows.iter().map(|c| c.holder.as_bytes()).collect();
        let venues: Vec<i64> = rows.iter().map(|c| c.venue.0).collect();
        let ats: Vec<OffsetDateTime> = rows.iter().map(|c| c.at).collect();
        let outs: Vec<Option<OffsetDateTime>> = rows.iter().map(|c| c.out).collect();
        let c = self.pool.get().await.map_err(pool_err)?;
        let stmt = c
            .prepare_cached(
                "INSERT INTO checkins (device, seq, holder, venue, at, out)
                 SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::bytea[], $4::bigint[], $5::timestamptz[], $6::timestamptz[])
                 ON CONFLICT DO NOTHING",
            )
            .await
            .map_err(db)?;
        c.execute(&stmt, &[&devices, &seqs, &holders, &venues, &ats, &outs])
            .await
            .map_err(db)
    }

    /// Deletes the check-ins from before `before` in the caller's transaction `tx`: the partitions
    /// of whole hours before it are dropped, the rest of the cut-off's own hour deleted row by
    /// row. An open partition may hold a scan twice, so scans are counted by `(device, seq)`.
    /// Returns how many, and the hours dropped (to forget once `tx` commits).
    pub(crate) async fn purge_checkins(
        &self,
        tx: &impl GenericClient,
        before: OffsetDateTime,
    ) -> StoreResult<(u64, Vec<OffsetDateTime>)> {
        let parts = tx
            .query(
                "SELECT name, starts_at FROM checkin_partitions WHERE starts_at + interval '1 hour' <= $1",
                &[&before],
            )
            .await
            .map_err(db)?;
        let mut purged = 0u64;
        let mut dropped = Vec::new();
        for (name, start) in each(&parts, |r| Ok((r.text(0)?.to_owned(), r.time(1)?)))? {
            let n: i64 = tx
                .query_one(
                    &format!("SELECT count(*) FROM (SELECT DISTINCT device, seq FROM {name}) d"),
                    &[],
                )
                .await
                .and_then(|r| r.try_get(0))
                .map_err(db)?;
            tx.batch_execute(&format!(
                "DROP TABLE {name}; DELETE FROM checkin_partitions WHERE name = '{name}';"
            ))
            .await
            .map_err(db)?;
            purged += n as u64;
            dropped.push(start);
        }
        let n: i64 = tx
            .query_one(
                "WITH d AS (DELETE FROM checkins WHERE at < $1 RETURNING device, seq)
                 SELECT count(*) FROM (SELECT DISTINCT device, seq FROM d) x",
                &[&before],
            )
            .await
            .and_then(|r| r.try_get(0))
            .map_err(db)?;
        Ok((purged + n as u64, dropped))
    }

    /// Closes every open partition whose hour ended `CLOSE_AFTER` before `now` (all of them when
    /// `force`). Returns how many it closed.
    pub(crate) async fn close_due(&self, now: OffsetDateTime, force: bool) -> StoreResult<u64> {
        let c = self.pool.get().await.map_err(pool_err)?;
        let rows = c
            .query(
                "SELECT name, starts_at FROM checkin_partitions WHERE NOT closed ORDER BY starts_at",
                &[],
            )
            .await
            .map_err(db)?;
        drop(c);
        let loading = self
            .loading
            .lock()
            .map_err(|_| StoreError::backend("partition cache poisoned"))?
            .clone();
        let due: VecDeque<(String, OffsetDateTime)> = rows
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .filter(|(_, start): &(String, OffsetDateTime)| {
                force || (*start + Duration::hours(1) + CLOSE_AFTER <= now && !loading.contains(start))
            })
            .collect();
        let closed = due.len() as u64;
        let queue = Mutex::new(due);
        // Several at once: each is one transaction on a connection of its own.
        let closers = (0..CLOSERS).map(|_| async {
            loop {
                let next = match queue.lock() {
                    Ok(mut q) => q.pop_front(),
                    Err(_) => None,
                };
                let Some((name, start)) = next else {
                    return Ok::<(), StoreError>(());
                };
                self.close_one(&name).await?;
                self.partitions
                    .lock()
                    .map_err(|_| StoreError::backend("partition cache poisoned"))?
                    .insert(start, true);
                self.loading
                    .lock()
                    .map_err(|_| StoreError::backend("partition cache poisoned"))?
                    .remove(&start);
            }
        });
        futures_util::future::try_join_all(closers).await?;
        Ok(closed)
    }

    /// Closes one partition. Most hours hold no scan twice, so the unique index is tried first;
    /// only if it finds a duplicate are duplicates removed (a self-join) before it is built.
    async fn close_one(&self, name: &str) -> StoreResult<()> {
        let mut c = self.pool.get().await.map_err(pool_err)?;
        let tx = c.transaction().await.map_err(db)?;
        tx.batch_execute(&format!(
            "LOCK TABLE {name} IN ACCESS EXCLUSIVE MODE; SAVEPOINT before_unique"
        ))
        .await
        .map_err(db)?;
        let quick = format!(
            "CREATE UNIQUE INDEX IF NOT EXISTS {name}_device_seq ON {name} (device, seq);
             CREATE INDEX IF NOT EXISTS {name}_venue_at ON {name} (venue, at);
             CREATE INDEX IF NOT EXISTS {name}_holder_at ON {name} (holder, at);
             UPDATE checkin_partitions SET closed = true WHERE name = '{name}';"
        );
        if tx.batch_execute(&quick).await.is_err() {
            tx.batch_execute(&format!(
                "ROLLBACK TO SAVEPOINT before_unique; {}",
                close_sql(name)
            ))
            .await
            .map_err(db)?;
        }
        tx.commit().await.map_err(db)
    }
}

/// Partitions closed at once by [`PgInner::close_due`].
const CLOSERS: usize = 2;

/// Partitions read at once by [`scan`].
const SCANNERS: usize = 2;
/// Check-ins handed over at once by [`scan`].
const SCAN_BATCH: usize = 20_000;

/// Every check-in with `from <= at < to`, each `(device, seq)` once: the hours' partitions read
/// [`SCANNERS`] at a time, each by one streamed query (`DISTINCT ON (device, seq)` where the hour
/// is still open), handed to `each` in batches as they come.
pub(crate) async fn scan(
    inner: &Arc<PgInner>,
    from: OffsetDateTime,
    to: OffsetDateTime,
    each: &mut (dyn FnMut(Vec<CheckIn>) + Send),
) -> StoreResult<u64> {
    let c = inner.pool.get().await.map_err(pool_err)?;
    let parts: VecDeque<(String, bool)> = c
        .query(
            "SELECT name, closed FROM checkin_partitions
             WHERE starts_at < $2 AND starts_at + interval '1 hour' > $1 ORDER BY starts_at",
            &[&from, &to],
        )
        .await
        .map_err(db)?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    drop(c);
    let queue = Arc::new(Mutex::new(parts));
    let (tx, mut rx) = tokio::sync::mpsc::channel::<StoreResult<Vec<CheckIn>>>(2 * SCANNERS);
    for _ in 0..SCANNERS {
        let (inner, queue, tx) = (inner.clone(), queue.clone(), tx.clone());
        tokio::spawn(async move {
            loop {
                let next = match queue.lock() {
                    Ok(mut q) => q.pop_front(),
                    Err(_) => None,
                };
                let Some((name, closed)) = next else { return };
                if let Err(e) = scan_partition(&inner, &name, closed, from, to, &tx).await {
                    // The reader may have stopped already; then nobody is waiting for this.
                    let _ = tx.send(Err(e)).await;
                    return;
                }
            }
        });
    }
    drop(tx);
    let mut n = 0;
    // Dropping the receiver on an error stops the scanners at their next batch.
    while let Some(batch) = rx.recv().await {
        let batch = batch?;
        n += batch.len() as u64;
        each(batch);
    }
    Ok(n)
}

async fn scan_partition(
    inner: &PgInner,
    name: &str,
    closed: bool,
    from: OffsetDateTime,
    to: OffsetDateTime,
    tx: &tokio::sync::mpsc::Sender<StoreResult<Vec<CheckIn>>>,
) -> StoreResult<()> {
    // A closed hour has a unique index on (device, seq); an open one may hold a scan twice.
    let distinct = if closed { "" } else { "DISTINCT ON (device, seq)" };
    let c = inner.pool.get().await.map_err(pool_err)?;
    let stmt = c
        .prepare(&format!(
            "SELECT {distinct} {CHECKIN_COLS} FROM {name} WHERE at >= $1 AND at < $2"
        ))
        .await
        .map_err(db)?;
    let rows = c.query_raw(&stmt, [&from, &to]).await.map_err(db)?;
    futures_util::pin_mut!(rows);
    let mut batch = Vec::with_capacity(SCAN_BATCH);
    while let Some(r) = rows.next().await {
        batch.push(checkin_row(&Cols(&r.map_err(db)?))?);
        if batch.len() == SCAN_BATCH {
            let full = std::mem::replace(&mut batch, Vec::with_capacity(SCAN_BATCH));
            if tx.send(Ok(full)).await.is_err() {
                return Ok(());
            }
        }
    }
    if !batch.is_empty() {
        // A closed channel means the reader stopped; there is nobody to hand this to.
        let _ = tx.send(Ok(batch)).await;
    }
    Ok(())
}

/// Closes due partitions every half minute while the store lives.
pub(crate) async fn closer(inner: std::sync::Weak<PgInner>) {
    loop {
        tokio::time::sleep(std::time::Duration::from_secs(30)).await;
        let Some(inner) = inner.upgrade() else { return };
        if let Err(e) = inner.close_due(OffsetDateTime::now_utc(), false).await {
            // Retried on the next round; the open partition keeps taking scans meanwhile.
            tracing::error!(
                error = &e as &dyn std::error::Error,
                "closing a check-in hour failed"
            );
        }
    }
}

impl PgStore {
    /// Closes every open check-in partition now (deduplicated and indexed), whatever its hour.
    pub async fn flush_checkins(&self) -> StoreResult<u64> {
        self.inner.close_due(OffsetDateTime::now_utc(), true).await
    }

    /// The check-ins whose `column` (a fixed column name) is `value`, with `from <= at < to`, by
    /// time, each `(device, seq)` once.
    async fn checkins_where(
        &self,
        column: &'static str,
        value: &(dyn ToSql + Sync),
        from: OffsetDateTime,
        to: OffsetDateTime,
    ) -> StoreResult<Vec<CheckIn>> {
        let c = self.conn().await?;
        let rows = c
            .query(
                &format!(
                    "SELECT * FROM (SELECT DISTINCT ON (device, seq) {CHECKIN_COLS} FROM checkins
                     WHERE {column} = $1 AND at >= $2 AND at < $3 ORDER BY device, seq) c ORDER BY at, device, seq"
                ),
                &[value, &from, &to],
            )
            .await
            .map_err(db)?;
        each(&rows, checkin_row)
    }
}

impl CheckinStore for PgStore {
    async fn insert_checkins(&self, batch: &[CheckIn]) -> StoreResult<u64> {
        if batch.is_empty() {
            return Ok(0);
        }
        let outcomes = self.inner.record(batch).await?;
        Ok(outcomes.iter().filter(|o| **o == Recorded::New).count() as u64)
    }

    async fn record_checkins(&self, batch: &[CheckIn]) -> StoreResult<Vec<Recorded>> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        self.inner.record(batch).await
    }

    async fn load_checkins(&self, batch: &[CheckIn]) -> StoreResult<u64> {
        if batch.is_empty() {
            return Ok(0);
        }
        self.inner.load_checkins(batch).await
    }

    async fn flush_checkins(&self) -> StoreResult<u64> {
        PgStore::flush_checkins(self).await
    }

    async fn checkins_at_venue(
        &self,
        venue: VenueId,
        from: OffsetDateTime,
        to: OffsetDateTime,
    ) -> StoreResult<Vec<CheckIn>> {
        self.checkins_where("venue", &venue.0, from, to).await
    }

    async fn checkins_of_holder(
        &self,
        holder: &HolderId,
        from: OffsetDateTime,
        to: OffsetDateTime,
    ) -> StoreResult<Vec<CheckIn>> {
        self.checkins_where("holder", &holder.as_bytes(), from, to).await
    }

    async fn scan_checkins(
        &self,
        from: OffsetDateTime,
        to: OffsetDateTime,
        each: &mut (dyn FnMut(Vec<CheckIn>) + Send),
    ) -> StoreResult<u64> {
        scan(&self.inner, from, to, each).await
    }
}
