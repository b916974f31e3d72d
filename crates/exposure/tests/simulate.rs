//! The synthetic city: the same seed gives the same city; popularity is heavy-tailed but capped.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use healthcode_domain::{Issuer, VenueId};
use healthcode_exposure::simulate::{CityParams, simulate};
use healthcode_store::conformance::crypto;
use healthcode_store::{CaseStore, CheckinStore};
use healthcode_store_sqlite::{OpenMode, SqliteStore};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

const END: OffsetDateTime = datetime!(2026-11-20 00:00 UTC);

fn params(seed: u64, csv: Option<std::path::PathBuf>) -> CityParams {
    CityParams {
        holders: 5_000,
        venues: 400,
        days: 2,
        per_day: 3,
        cases: 4,
        seed,
        end: END,
        region: Issuer::parse("CN-GD").unwrap(),
        csv_dir: csv,
    }
}

async fn city(
    seed: u64,
    csv: Option<std::path::PathBuf>,
) -> (
    tempfile::TempDir,
    SqliteStore,
    healthcode_exposure::simulate::CityReport,
) {
    let tmp = tempfile::tempdir().unwrap();
    let s = SqliteStore::open(&tmp.path().join("c.db"), OpenMode::Create).unwrap();
    let r = simulate(&s, &crypto(), &params(seed, csv), &|_, _, _| {})
        .await
        .unwrap();
    s.flush_checkins().unwrap();
    (tmp, s, r)
}

async fn all_checkins(s: &SqliteStore) -> Vec<(Vec<u8>, i64, i64, Option<i64>)> {
    let mut out = Vec::new();
    for v in 1..=400 {
        for c in s
            .checkins_at_venue(VenueId(v), END - Duration::days(3), END + Duration::days(1))
            .await
            .unwrap()
        {
            out.push((
                c.holder.as_bytes().to_vec(),
                c.venue.0,
                c.at.unix_timestamp(),
                c.out.map(|o| o.unix_timestamp()),
            ));
        }
    }
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_seed_gives_the_same_city() {
    let csv = tempfile::tempdir().unwrap();
    let (_a, sa, ra) = city(7, Some(csv.path().to_owned())).await;
    let (_b, sb, rb) = city(7, None).await;
    let (_c, sc, _) = city(8, None).await;
    assert_eq!((ra.holders, ra.venues, ra.checkins), (5_000, 400, 5_000 * 3 * 2));
    let (ca, cb, cc) = (
        all_checkins(&sa).await,
        all_checkins(&sb).await,
        all_checkins(&sc).await,
    );
    assert_eq!(ca.len(), 30_000);
    assert_eq!(ca, cb, "same seed, same check-ins");
    assert_ne!(ca, cc, "another seed, another city");
    assert_eq!(ra.cases.len(), 4);
    for (x, y) in ra.cases.iter().zip(&rb.cases) {
        assert_eq!(sa.case(*x).await.unwrap(), sb.case(*y).await.unwrap());
    }
    // Every check-in lies in the simulated days, and the CSV export holds the same rows.
    assert!(
        ca.iter()
            .all(|c| c.2 >= (END - Duration::days(2)).unix_timestamp() && c.2 < END.unix_timestamp())
    );
    let text = std::fs::read_to_string(csv.path().join("checkins.csv")).unwrap();
    assert_eq!(text.lines().count(), 30_000 + 1);
    // Heavy-tailed but capped: the busiest venue has many times the median visits, and none more
    // than 1% of the city's.
    let mut per_venue = std::collections::BTreeMap::<i64, usize>::new();
    for c in &ca {
        *per_venue.entry(c.1).or_default() += 1;
    }
    let mut counts: Vec<usize> = per_venue.values().copied().collect();
    counts.sort();
    let (median, max) = (counts[counts.len() / 2], *counts.last().unwrap());
    assert!(max >= 3 * median, "not heavy-tailed: max {max}, median {median}");
    assert!(
        max as f64 <= 12_000.0 / 30.0 * 1.25,
        "a venue took too large a share: {max}"
    );
}
