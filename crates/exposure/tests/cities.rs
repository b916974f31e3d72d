//! Small hand-made cities whose contacts are known exactly, traced on SQLite and on PostgreSQL:
//! touching intervals, check-outs, the edges of the infectious window, the case's own check-ins,
//! one holder at two venues, two cases sharing contacts, a repeat run, and review before colours.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use healthcode_domain::*;
use healthcode_exposure::Tracer;
use healthcode_policy::{Policy, evaluate};
use healthcode_store::conformance::resident;
use healthcode_store::{ExposureState, NewVenue, Store};
use healthcode_store_postgres::testing::TestSchema;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

const D: OffsetDateTime = datetime!(2026-11-20 00:00 UTC);

fn h(n: u8) -> HolderId {
    HolderId::from_bytes(&[n; 8]).unwrap()
}

fn at(day: i64, hh: i64, mm: i64) -> OffsetDateTime {
    D + Duration::days(day) + Duration::hours(hh) + Duration::minutes(mm)
}

struct City {
    clinic: Venue,
    mall: Venue,
    case1: CaseId,
    case2: CaseId,
}

const C: u8 = 1;
const A: u8 = 2;
const B: u8 = 3;
const E: u8 = 4;
const F: u8 = 5;
const G: u8 = 6;
const HH: u8 = 7;
const K: u8 = 8;

async fn build<S: Store>(s: &S) -> City {
    for n in [C, A, B, E, F, G, HH, K] {
        s.insert_holder(&resident(n).0).await.unwrap();
    }
    let venue = |name: &str, category| NewVenue {
        name: name.into(),
        category,
        region: Issuer::parse("CN-ZJ").unwrap(),
        admission: AdmissionPolicy::All,
    };
    let clinic = s
        .insert_venue(&venue("clinic", VenueCategory::Clinic))
        .await
        .unwrap();
    let mall = s.insert_venue(&venue("mall", VenueCategory::Mall)).await.unwrap();
    let mut seq = 0;
    let mut ci = |holder: u8, v: &Venue, t: OffsetDateTime, out: Option<OffsetDateTime>| {
        seq += 1;
        CheckIn {
            holder: h(holder),
            venue: v.id,
            device: DeviceId(1),
            seq,
            at: t,
            out,
        }
    };
    let rows = vec![
        // The case C: infectious from day -2 10:00 (onset day 0 10:00) until confirmed day 1 12:00.
        ci(C, &clinic, at(0, 9, 0), Some(at(0, 9, 30))),
        ci(C, &mall, at(-1, 14, 0), None),  // 14:00-15:30 (mall dwell 90)
        ci(C, &mall, at(-1, 14, 30), None), // the case again: never its own contact
        ci(C, &mall, at(-3, 14, 0), None),  // before the window
        ci(C, &clinic, at(1, 12, 0), None), // at confirmation: the window has ended
        // A arrives as C leaves: touching, no overlap.
        ci(A, &clinic, at(0, 9, 30), Some(at(0, 10, 0))),
        // B: 20 minutes together in a clinic: close.
        ci(B, &clinic, at(0, 8, 50), Some(at(0, 9, 20))),
        // E: 5 minutes in the clinic: same place.
        ci(E, &clinic, at(0, 9, 25), None),
        // F: at two venues, same place at both.
        ci(F, &mall, at(-1, 15, 0), None),
        ci(F, &clinic, at(0, 9, 0), Some(at(0, 9, 10))),
        // G and HH overlap only C's visits outside the window.
        ci(G, &mall, at(-3, 14, 0), None),
        ci(HH, &clinic, at(1, 12, 0), None),
        // K, the second case, at the mall after C.
        ci(K, &mall, at(-1, 15, 10), None),
    ];
    s.insert_checkins(&rows).await.unwrap();
    let case1 = s.add_case(&h(C), at(0, 10, 0), at(1, 12, 0)).await.unwrap().id;
    let case2 = s.add_case(&h(K), at(0, 8, 0), at(1, 9, 0)).await.unwrap().id;
    City {
        clinic,
        mall,
        case1,
        case2,
    }
}

async fn check<S: Store>(s: &S) {
    let city = build(s).await;
    let policy = Policy::default_policy();
    let tracer = Tracer::new(s, policy.tracing()).await.unwrap();

    // Case 1 alone, exactly.
    let (holder, case) = s.case(city.case1).await.unwrap().unwrap();
    let (found, _) = tracer.contacts(s, &holder, &case).await.unwrap();
    let got: BTreeMap<(u8, i64), (ExposureGrade, i64)> = found
        .iter()
        .map(|(hid, e)| ((hid.as_bytes()[0], e.venue.0), (e.grade, e.overlap_minutes)))
        .collect();
    let want = BTreeMap::from([
        ((B, city.clinic.id.0), (ExposureGrade::Close, 20)),
        ((E, city.clinic.id.0), (ExposureGrade::SamePlace, 5)),
        ((F, city.clinic.id.0), (ExposureGrade::SamePlace, 10)),
        // F and K overlap both of C's mall visits: the larger overlap counts.
        ((F, city.mall.id.0), (ExposureGrade::SamePlace, 60)),
        ((K, city.mall.id.0), (ExposureGrade::SamePlace, 50)),
    ]);
    assert_eq!(got, want);
    // Provenance: the case's interval, the contact's, the overlap.
    let (_, b) = found.iter().find(|(hid, _)| hid == &h(B)).unwrap();
    assert_eq!(b.case, city.case1);
    assert_eq!(b.case_interval, (at(0, 9, 0), at(0, 9, 30)));
    assert_eq!(b.contact_interval, (at(0, 8, 50), at(0, 9, 20)));

    // Both cases at once: K's contacts include F (again) and the case C itself, at both of its
    // mall check-ins.
    let (report, _) = tracer.trace(s, &[city.case1, city.case2]).await.unwrap();
    assert_eq!(report.cases, 2);
    assert_eq!(report.close_contacts, 1, "{report:?}");
    assert_eq!(report.new_exposures as usize, report.exposures);
    let (_, k_case) = s.case(city.case2).await.unwrap().unwrap();
    let (k_found, _) = tracer.contacts(s, &h(K), &k_case).await.unwrap();
    let k_contacts: Vec<u8> = k_found.iter().map(|(hid, _)| hid.as_bytes()[0]).collect();
    assert_eq!(k_contacts, vec![C, C, F], "{k_found:?}");
    assert_eq!(report.exposures, 5 + 3);
    // Running it again records nothing new.
    let (again, _) = tracer.trace(s, &[city.case1, city.case2]).await.unwrap();
    assert_eq!(again.new_exposures, 0);
    assert_eq!(again.exposures, report.exposures);

    // The colours follow: B red (close contact), E yellow, A green.
    let areas = s.risk_areas().await.unwrap();
    let colour = |facts: &HolderFacts| evaluate(&policy, facts, &areas, at(1, 13, 0)).colour;
    assert_eq!(colour(&s.holder_facts(&h(B)).await.unwrap()), Colour::Red);
    assert_eq!(colour(&s.holder_facts(&h(E)).await.unwrap()), Colour::Yellow);
    assert_eq!(colour(&s.holder_facts(&h(A)).await.unwrap()), Colour::Green);
    assert_eq!(colour(&s.holder_facts(&h(G)).await.unwrap()), Colour::Green);
}

async fn check_review<S: Store>(s: &S) {
    let city = build(s).await;
    let source = Policy::default_policy()
        .source()
        .replace("apply = \"automatic\"", "apply = \"review\"");
    let policy = Policy::parse(&source).unwrap();
    let tracer = Tracer::new(s, policy.tracing()).await.unwrap();
    tracer.trace(s, &[city.case1]).await.unwrap();
    let areas = s.risk_areas().await.unwrap();
    let colour = |facts: &HolderFacts| evaluate(&policy, facts, &areas, at(1, 13, 0)).colour;
    // Pending: B's colour waits for an officer.
    assert_eq!(colour(&s.holder_facts(&h(B)).await.unwrap()), Colour::Green);
    let pending = s.exposures_of_case(city.case1).await.unwrap();
    assert_eq!(pending.len(), 5);
    assert!(pending.iter().all(|e| e.state == ExposureState::Pending));
    let b = pending.iter().find(|e| e.holder == h(B)).unwrap();
    s.set_exposure_state(&b.key(), ExposureState::Applied)
        .await
        .unwrap();
    assert_eq!(colour(&s.holder_facts(&h(B)).await.unwrap()), Colour::Red);
    let e = pending.iter().find(|e| e.holder == h(E)).unwrap();
    s.set_exposure_state(&e.key(), ExposureState::Dismissed)
        .await
        .unwrap();
    assert_eq!(colour(&s.holder_facts(&h(E)).await.unwrap()), Colour::Green);
}

fn sqlite() -> (tempfile::TempDir, healthcode_store_sqlite::SqliteStore) {
    let tmp = tempfile::tempdir().unwrap();
    let s = healthcode_store_sqlite::SqliteStore::open(
        &tmp.path().join("t.db"),
        healthcode_store_sqlite::OpenMode::Create,
    )
    .unwrap();
    (tmp, s)
}

async fn postgres() -> Option<(healthcode_store_postgres::PgStore, TestSchema)> {
    let schema = TestSchema::from_env("hc_trace")?;
    let store = schema.connect(4).await.unwrap();
    Some((store, schema))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_city() {
    let (_tmp, s) = sqlite();
    check(&s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_review() {
    let (_tmp, s) = sqlite();
    check_review(&s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_city() {
    let Some((s, _schema)) = postgres().await else {
        return;
    };
    check(&s).await;
    drop(s); // before the schema goes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_review() {
    let Some((s, _schema)) = postgres().await else {
        return;
    };
    check_review(&s).await;
    drop(s); // before the schema goes
}
