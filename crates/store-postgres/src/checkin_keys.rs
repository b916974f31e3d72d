//! Which scan holds a `(device, seq)`: the indexed `checkin_keys` table beside the hourly
//! partitions. The open hour's partition has no index (scans are `COPY`ed in), so it cannot say
//! whether a key is taken; `checkin_keys` can, in the same transaction as the `COPY`. One
//! statement a group commit inserts the batch's keys and returns, for each, whether it was new
//! and, if not, whose check-in holds it; only the new ones are copied. A scan is answered
//! "stored" only when its row is in the same committed transaction as its key.

use std::collections::{HashMap, HashSet};

use deadpool_postgres::Transaction;
use healthcode_domain::{CheckIn, HolderId};
use healthcode_store::{Recorded, StoreError, StoreResult, rules};
use time::{Duration, OffsetDateTime};

use crate::PgInner;
use crate::checkins::{LATE_AFTER, copy_rows, hour_of};
use crate::rows::{db, pool_err};

/// Inserts the keys; answers each with whether it is new, and the holder of an older one.
const CLAIM_KEYS: &str = "WITH k AS (
         SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bytea[], $4::timestamptz[]) AS k(device, seq, holder, at)
     ), ins AS (
         INSERT INTO checkin_keys (device, seq, holder, at) SELECT device, seq, holder, at FROM k
         ON CONFLICT (device, seq) DO NOTHING RETURNING device, seq
     )
     SELECT k.device, k.seq, ins.seq IS NOT NULL, old.holder
     FROM k LEFT JOIN ins ON ins.device = k.device AND ins.seq = k.seq
            LEFT JOIN checkin_keys old ON old.device = k.device AND old.seq = k.seq";

/// The holders of keys another transaction committed while the claim ran.
const HOLDERS_OF_KEYS: &str = "SELECT device, seq, holder FROM checkin_keys
     WHERE (device, seq) IN (SELECT * FROM unnest($1::bigint[], $2::bigint[]))";

fn holder(bytes: &[u8]) -> StoreResult<HolderId> {
    HolderId::from_bytes(bytes).map_err(|e| StoreError::Corrupt(format!("check-in key holder: {e}")))
}

impl PgInner {
    /// Records scans (see [`healthcode_store::CheckinStore::record_checkins`]).
    pub(crate) async fn record(&self, batch: &[CheckIn]) -> StoreResult<Vec<Recorded>> {
        let now = OffsetDateTime::now_utc();
        let hours = self
            .ensure_hours(batch.iter().map(|c| hour_of(c.at)), now, false)
            .await?;
        // Each key once, as the batch first names it.
        let mut seen = HashSet::with_capacity(batch.len());
        let firsts: Vec<&CheckIn> = batch
            .iter()
            .filter(|c| seen.insert((c.device.0, c.seq)))
            .collect();
        let mut c = self.pool.get().await.map_err(pool_err)?;
        let mut tx = c.transaction().await.map_err(db)?;
        let held = claim(&tx, &firsts).await?;
        let (outcomes, fresh) = rules::sort_checkins(batch, |d, s| Ok(held.get(&(d, s)).cloned().flatten()))?;
        let fresh: Vec<&CheckIn> = fresh.iter().map(|&i| &batch[i]).collect();
        let (open, late): (Vec<&CheckIn>, Vec<&CheckIn>) = fresh.into_iter().partition(|c| {
            let h = hour_of(c.at);
            !hours.get(&h).copied().unwrap_or(true) && h + Duration::hours(1) + LATE_AFTER > now
        });
        let mut missed = Vec::new();
        if !open.is_empty() {
            // A savepoint: a COPY refused by an index (the hour closed meanwhile and a bulk load
            // holds the key) falls back to the insert below.
            let sp = tx.transaction().await.map_err(db)?;
            match copy_rows(&sp, &open).await {
                Ok(_) => sp.commit().await.map_err(db)?,
                Err(_) => {
                    drop(sp);
                    self.forget_hours(open.iter().map(|c| hour_of(c.at)))?;
                    missed.extend(insert_missing(&tx, &open).await?);
                }
            }
        }
        if !late.is_empty() {
            missed.extend(insert_missing(&tx, &late).await?);
        }
        let outcomes = if missed.is_empty() {
            outcomes
        } else {
            settle_missed(&tx, batch, outcomes, &missed).await?
        };
        tx.commit().await.map_err(db)?;
        Ok(outcomes)
    }
}

/// Claims the keys of `rows` (each key once); returns, per key, `None` when it was new and the
/// holder of the check-in holding it otherwise.
async fn claim(
    tx: &Transaction<'_>,
    rows: &[&CheckIn],
) -> StoreResult<HashMap<(i64, i64), Option<HolderId>>> {
    let devices: Vec<i64> = rows.iter().map(|c| c.device.0).collect();
    let seqs: Vec<i64> = rows.iter().map(|c| c.seq).collect();
    let holders: Vec<&[u8]> = rows.iter().map(|c| c.holder.as_bytes()).collect();
    let ats: Vec<OffsetDateTime> = rows.iter().map(|c| c.at).collect();
    let stmt = tx.prepare_cached(CLAIM_KEYS).await.map_err(db)?;
    let answer = tx
        .query(&stmt, &[&devices, &seqs, &holders, &ats])
        .await
        .map_err(db)?;
    let mut held = HashMap::with_capacity(rows.len());
    let mut unknown: (Vec<i64>, Vec<i64>) = (Vec::new(), Vec::new());
    for r in &answer {
        let key: (i64, i64) = (r.try_get(0).map_err(db)?, r.try_get(1).map_err(db)?);
        let new: bool = r.try_get(2).map_err(db)?;
        let old: Option<&[u8]> = r.try_get(3).map_err(db)?;
        match (new, old) {
            (true, _) => {
                held.insert(key, None);
            }
            (false, Some(h)) => {
                held.insert(key, Some(holder(h)?));
            }
            // Taken by a transaction that committed after this statement's snapshot.
            (false, None) => {
                unknown.0.push(key.0);
                unknown.1.push(key.1);
            }
        }
    }
    if !unknown.0.is_empty() {
        for r in tx
            .query(HOLDERS_OF_KEYS, &[&unknown.0, &unknown.1])
            .await
            .map_err(db)?
        {
            let key: (i64, i64) = (r.try_get(0).map_err(db)?, r.try_get(1).map_err(db)?);
            let h: &[u8] = r.try_get(2).map_err(db)?;
            held.insert(key, Some(holder(h)?));
        }
    }
    Ok(held)
}

/// Inserts rows through the parent table, skipping keys an indexed partition holds already;
/// returns the keys of the rows it did not insert.
async fn insert_missing(tx: &Transaction<'_>, rows: &[&CheckIn]) -> StoreResult<Vec<(i64, i64)>> {
    let devices: Vec<i64> = rows.iter().map(|c| c.device.0).collect();
    let seqs: Vec<i64> = rows.iter().map(|c| c.seq).collect();
    let holders: Vec<&[u8]> = rows.iter().map(|c| c.holder.as_bytes()).collect();
    let venues: Vec<i64> = rows.iter().map(|c| c.venue.0).collect();
    let ats: Vec<OffsetDateTime> = rows.iter().map(|c| c.at).collect();
    let outs: Vec<Option<OffsetDateTime>> = rows.iter().map(|c| c.out).collect();
    let stmt = tx
        .prepare_cached(
            "INSERT INTO checkins (device, seq, holder, venue, at, out)
             SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::bytea[], $4::bigint[], $5::timestamptz[], $6::timestamptz[])
             ON CONFLICT DO NOTHING RETURNING device, seq",
        )
        .await
        .map_err(db)?;
    let inserted: HashSet<(i64, i64)> = tx
        .query(&stmt, &[&devices, &seqs, &holders, &venues, &ats, &outs])
        .await
        .map_err(db)?
        .iter()
        .map(|r| Ok((r.try_get(0).map_err(db)?, r.try_get(1).map_err(db)?)))
        .collect::<StoreResult<_>>()?;
    Ok(rows
        .iter()
        .map(|c| (c.device.0, c.seq))
        .filter(|k| !inserted.contains(k))
        .collect())
}

/// Scans whose rows were not inserted after all: the key is held by a check-in stored without a
/// key (a bulk load). Each becomes [`Recorded::Again`] or [`Recorded::Taken`] by that row's
/// holder, and the key row is corrected to name it.
async fn settle_missed(
    tx: &Transaction<'_>,
    batch: &[CheckIn],
    mut outcomes: Vec<Recorded>,
    missed: &[(i64, i64)],
) -> StoreResult<Vec<Recorded>> {
    let devices: Vec<i64> = missed.iter().map(|k| k.0).collect();
    let seqs: Vec<i64> = missed.iter().map(|k| k.1).collect();
    let rows = tx
        .query(
            "SELECT DISTINCT ON (device, seq) device, seq, holder FROM checkins
             WHERE (device, seq) IN (SELECT * FROM unnest($1::bigint[], $2::bigint[]))",
            &[&devices, &seqs],
        )
        .await
        .map_err(db)?;
    let mut stored: HashMap<(i64, i64), HolderId> = HashMap::with_capacity(rows.len());
    for r in &rows {
        let key: (i64, i64) = (r.try_get(0).map_err(db)?, r.try_get(1).map_err(db)?);
        let h: &[u8] = r.try_get(2).map_err(db)?;
        let h = holder(h)?;
        tx.execute(
            "UPDATE checkin_keys SET holder = $3 WHERE device = $1 AND seq = $2",
            &[&key.0, &key.1, &h.as_bytes()],
        )
        .await
        .map_err(db)?;
        stored.insert(key, h);
    }
    for (c, o) in batch.iter().zip(outcomes.iter_mut()) {
        if let Some(h) = stored.get(&(c.device.0, c.seq)) {
            *o = if *h == c.holder {
                Recorded::Again
            } else {
                Recorded::Taken
            };
        }
    }
    Ok(outcomes)
}
