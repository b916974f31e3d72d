//! Batched check-in inserts into PostgreSQL: batches of 1,000, realistic keys
//! (random holders over 20,000 venues): history in a closed hour, new scans in the open hour.
//! Target ≥ 250,000 a second. Two figures: criterion's time per batch of the current hour, and a
//! sustained run of 2,000,000 check-ins followed by closing the hour (deduplication and indexes). Needs HEALTHCODE_TEST_POSTGRES_URL; works in a schema of its own.
//!
//! HEALTHCODE_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test cargo bench -p healthcode-store-postgres --bench checkins

#![allow(clippy::unwrap_used, clippy::expect_used)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use healthcode_domain::CheckIn;
use healthcode_store::CheckinStore;
use healthcode_store_postgres::{DatabaseUrl, PgStore};

/// Scans of the current hour at a morning peak's pace, 25,000 a second; the run begins at the start
/// of an hour so that it stays within it.
fn batch(start: i64, t0: time::OffsetDateTime, state: &mut u64) -> Vec<CheckIn> {
    healthcode_store::conformance::synthetic_checkins(
        start,
        1000,
        t0,
        time::Duration::microseconds(40),
        state,
    )
}

fn bench(c: &mut Criterion) {
    let Ok(url) = std::env::var("HEALTHCODE_TEST_POSTGRES_URL") else {
        eprintln!("set HEALTHCODE_TEST_POSTGRES_URL to run this benchmark");
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let schema = format!("hc_bench_{}", std::process::id());
    let store = rt
        .block_on(PgStore::connect(&DatabaseUrl::new(url), Some(&schema), 8))
        .unwrap();
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let now = time::OffsetDateTime::now_utc();
    let this_hour = now.replace_time(time::Time::from_hms(now.hour(), 0, 0).unwrap());
    // History: the previous hour holds 1,000,000 check-ins, closed (deduplicated and indexed).
    let mut seq = 0i64;
    rt.block_on(async {
        for _ in 0..1000 {
            store
                .insert_checkins(&batch(seq, this_hour - time::Duration::hours(1), &mut state))
                .await
                .unwrap();
            seq += 1000;
        }
        store.flush_checkins().await.unwrap();
    });
    // The current hour: batches of 1,000 acknowledged as they arrive.
    let mut g = c.benchmark_group("postgres");
    g.throughput(Throughput::Elements(1000));
    let mut i = 0i64;
    g.bench_function("insert_checkins_batch_1000", |b| {
        b.iter_batched(
            || {
                let v = batch(10_000_000 + i, this_hour, &mut state);
                i += 1000;
                v
            },
            |v| rt.block_on(store.insert_checkins(&v)).unwrap(),
            criterion::BatchSize::SmallInput,
        )
    });
    g.finish();
    // Sustained: 2,000,000 more in the current hour, eight batches in flight at a time as eight
    // API requests would be (their commits share WAL flushes), then the hour closed.
    let started = std::time::Instant::now();
    rt.block_on(async {
        for k in 0..250 {
            let batches: Vec<Vec<CheckIn>> = (0..8)
                .map(|j| batch(20_000_000 + (k * 8 + j) * 1000, this_hour, &mut state))
                .collect();
            let done = futures_util::future::join_all(batches.iter().map(|b| store.insert_checkins(b))).await;
            assert!(done.iter().all(Result::is_ok));
        }
    });
    let acknowledged = started.elapsed();
    let closing = std::time::Instant::now();
    rt.block_on(store.flush_checkins()).unwrap();
    let closed = closing.elapsed();
    let rows: i64 = rt
        .block_on(store.raw_query("SELECT count(*) FROM checkins"))
        .unwrap()[0]
        .get(0);
    eprintln!(
        "sustained: 2,000,000 check-ins acknowledged in {:.2} s ({:.0}/s); closing the hour ({rows} rows in the table) took {:.2} s; {:.0}/s acknowledged and indexed",
        acknowledged.as_secs_f64(),
        2e6 / acknowledged.as_secs_f64(),
        closed.as_secs_f64(),
        2e6 / (acknowledged + closed).as_secs_f64()
    );
    rt.block_on(store.raw_query(&format!("DROP SCHEMA {schema} CASCADE")))
        .unwrap();
}

criterion_group!(benches, bench);
criterion_main!(benches);
