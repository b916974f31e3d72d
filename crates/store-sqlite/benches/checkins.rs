//! Batched check-in inserts into SQLite: batches of 1,000 in one transaction each, realistic keys
//! (random holders over 20,000 venues), both secondary indexes in place. Target ≥ 100,000 a second.
//!
//! Two figures: criterion's time to acknowledge a batch (appended to the inbox, durable), and a
//! sustained run that counts until every row is also merged into the indexed table.
//!
//! cargo bench -p healthcode-store-sqlite --bench checkins

#![allow(clippy::unwrap_used, clippy::expect_used)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use healthcode_domain::CheckIn;
use healthcode_store::CheckinStore;
use healthcode_store_sqlite::{OpenMode, SqliteStore};

fn batch(start: i64, state: &mut u64) -> Vec<CheckIn> {
    healthcode_store::conformance::synthetic_checkins(
        start,
        1000,
        time::macros::datetime!(2026-11-29 06:00:00 UTC),
        time::Duration::milliseconds(40),
        state,
    )
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("bench.db"), OpenMode::Create).unwrap();
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    // Start from a store that already holds a million check-ins, as on a busy morning.
    let mut seq = 0i64;
    rt.block_on(async {
        for _ in 0..1000 {
            store.insert_checkins(&batch(seq, &mut state)).await.unwrap();
            seq += 1000;
        }
    });
    store.flush_checkins().unwrap();
    // Sustained: 2,000,000 check-ins acknowledged and merged, the merger running beside.
    let started = std::time::Instant::now();
    rt.block_on(async {
        for _ in 0..2000 {
            store.insert_checkins(&batch(seq, &mut state)).await.unwrap();
            seq += 1000;
        }
    });
    let acknowledged = started.elapsed();
    store.flush_checkins().unwrap();
    let merged = started.elapsed();
    eprintln!(
        "sustained: 2,000,000 check-ins acknowledged in {:.2} s ({:.0}/s), all merged after {:.2} s ({:.0}/s)",
        acknowledged.as_secs_f64(),
        2e6 / acknowledged.as_secs_f64(),
        merged.as_secs_f64(),
        2e6 / merged.as_secs_f64()
    );
    let mut g = c.benchmark_group("sqlite");
    g.throughput(Throughput::Elements(1000));
    g.bench_function("insert_checkins_batch_1000", |b| {
        b.iter_batched(
            || {
                let v = batch(seq, &mut state);
                seq += 1000;
                v
            },
            |v| rt.block_on(store.insert_checkins(&v)).unwrap(),
            criterion::BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
