//! Batched check-in inserts into PostgreSQL: batches of 1,000 in one statement each, realistic keys
//! (random holders over 20,000 venues), day partitions and both secondary indexes in place.
//! Target ≥ 250,000 a second. Two figures: criterion's time per batch, and a sustained run of
//! 2,000,000 check-ins. Needs HEALTHCODE_TEST_POSTGRES_URL; works in a schema of its own.
//!
//! HEALTHCODE_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test cargo bench -p healthcode-store-postgres --bench checkins

#![allow(clippy::unwrap_used, clippy::expect_used)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use healthcode_domain::CheckIn;
use healthcode_store::Store;
use healthcode_store_postgres::{DatabaseUrl, PgStore};

fn batch(start: i64, state: &mut u64) -> Vec<CheckIn> {
    healthcode_store::conformance::synthetic_checkins(start, 1000, state)
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
        .block_on(PgStore::connect(&DatabaseUrl::new(url), Some(&schema), 4))
        .unwrap();
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut seq = 0i64;
    rt.block_on(async {
        for _ in 0..1000 {
            store.insert_checkins(&batch(seq, &mut state)).await.unwrap();
            seq += 1000;
        }
    });
    // Sustained: 2,000,000 check-ins in batches of 1,000, one after the other.
    let started = std::time::Instant::now();
    rt.block_on(async {
        for _ in 0..2000 {
            store.insert_checkins(&batch(seq, &mut state)).await.unwrap();
            seq += 1000;
        }
    });
    let acknowledged = started.elapsed();
    eprintln!(
        "sustained: 2,000,000 check-ins stored in {:.2} s ({:.0}/s)",
        acknowledged.as_secs_f64(),
        2e6 / acknowledged.as_secs_f64()
    );
    let mut g = c.benchmark_group("postgres");
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
    rt.block_on(store.raw_query(&format!("DROP SCHEMA {schema} CASCADE")))
        .unwrap();
}

criterion_group!(benches, bench);
criterion_main!(benches);
