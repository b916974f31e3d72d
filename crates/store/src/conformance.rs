//! The conformance suite every backend passes. A backend's tests implement [`Harness`] (a fresh,
//! empty store per test, and two ways to look behind its back) and invoke
//! [`conformance_tests!`](crate::conformance_tests), which expands to one test per check.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::future::Future;

use healthcode_domain::*;
use time::macros::{date, datetime};
use time::{Duration, OffsetDateTime};

use crate::*;

/// A fresh store for one test, and access behind its back.
pub trait Harness: Send + Sync {
    /// The backend.
    type S: Store;
    /// The store under test.
    fn store(&self) -> &Self::S;
    /// Every stored byte of the holders table (or the whole database), as it lies on disk.
    fn raw_holder_bytes(&self) -> impl Future<Output = Vec<u8>> + Send;
    /// Overwrites the `action` of audit entry `seq` directly in the database.
    fn tamper_audit(&self, seq: i64, action: &str) -> impl Future<Output = ()> + Send;
    /// Moves every acknowledged check-in from the backend's inbox (if it has one) into its indexed
    /// table now.
    fn flush_checkins(&self) -> impl Future<Output = ()> + Send;
    /// Copies indexed check-ins with `seq < below` back into the inbox, as a crash between a
    /// merge's copy and its delete would leave them (nothing, for a backend without an inbox).
    fn duplicate_into_inbox(&self, below: i64) -> impl Future<Output = ()> + Send;
}

/// Expands to one `#[tokio::test]` per conformance check; `$make` is an async expression giving a
/// fresh [`Harness`], or `None` when the backend is not available here (the test then passes with
/// a note: a backend's own harness decides when that is allowed).
#[macro_export]
macro_rules! conformance_tests {
    ($make:expr) => {
        $crate::conformance_tests!(@each $make;
            holders_round_trip_and_stay_unique,
            personal_data_is_never_stored_in_plaintext,
            venues_and_devices,
            checkins_are_idempotent_and_found_by_venue_and_holder,
            facts_come_back_for_the_colour_rules,
            exposures_are_recorded_once,
            overrides_need_two_officers,
            appeals_are_kept,
            purge_deletes_what_is_older_than_retention,
                        audit_chain_verifies_and_names_a_tampered_entry,
            checkins_survive_the_merge_and_stay_unique,
        );
    };
    (@each $make:expr; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let Some(harness) = $make.await else { return };
                $crate::conformance::$name(&harness).await;
            }
        )*
    };
}

/// Fixed keys so failures repeat.
pub fn crypto() -> Crypto {
    Crypto::new(&[(1, [7; 32])], 1, [3; 32]).unwrap()
}

const T: OffsetDateTime = datetime!(2026-11-20 08:00:00 UTC);

fn hid(n: u8) -> HolderId {
    HolderId::from_bytes(&[n; 8]).unwrap()
}

pub fn resident(n: u8) -> (SealedHolder, PersonalData) {
    let data = PersonalData {
        name: format!("Zhang Wei{n}"),
        resident_id: Some(format!("1101011990030780{n:02}")),
        passport: None,
        nationality: None,
        birth_date: date!(1990 - 03 - 07),
        phone: format!("+86138001380{n:02}"),
        arrival: None,
    };
    let sealed = crypto()
        .seal_holder(hid(n), HolderKind::Resident, &data, "Z*** W.", T)
        .unwrap();
    (sealed, data)
}

pub fn visitor(n: u8) -> (SealedHolder, PersonalData) {
    let data = PersonalData {
        name: format!("Anna Eriksson{n}"),
        resident_id: None,
        passport: Some(format!("L8989{n:02}C3")),
        nationality: Some("SWE".into()),
        birth_date: date!(1974 - 08 - 12),
        phone: format!("+4670123456{n}"),
        arrival: Some(("SK997".into(), date!(2026 - 11 - 18))),
    };
    let sealed = crypto()
        .seal_holder(hid(n), HolderKind::Visitor, &data, "A*** E.", T)
        .unwrap();
    (sealed, data)
}

async fn venue<S: Store>(s: &S, name: &str, category: VenueCategory) -> Venue {
    s.insert_venue(&NewVenue {
        name: name.into(),
        category,
        region: Issuer::parse("CN-ZJ").unwrap(),
        admission: AdmissionPolicy::GreenOnly,
    })
    .await
    .unwrap()
}

pub async fn holders_round_trip_and_stay_unique<H: Harness>(h: &H) {
    let s = h.store();
    let (r, rdata) = resident(1);
    let (v, vdata) = visitor(2);
    s.insert_holder(&r).await.unwrap();
    s.insert_holder(&v).await.unwrap();
    let back = s.holder(&r.id).await.unwrap().unwrap();
    assert_eq!(back, r);
    assert_eq!(crypto().open_holder(&back).unwrap(), rdata);
    let back = s.holder_by_phone(&v.phone_hash).await.unwrap().unwrap();
    assert_eq!(crypto().open_holder(&back).unwrap(), vdata);
    assert_eq!(
        s.holder_by_identity(&r.identity_hash).await.unwrap().unwrap().id,
        r.id
    );
    assert!(s.holder(&hid(9)).await.unwrap().is_none());
    assert!(s.holder_by_phone(&[0; 32]).await.unwrap().is_none());
    // The same identity, or the same phone, cannot register twice.
    let mut again = resident(3).0;
    again.identity_hash = r.identity_hash;
    assert!(matches!(
        s.insert_holder(&again).await,
        Err(StoreError::Conflict(_))
    ));
    let mut again = resident(4).0;
    again.phone_hash = r.phone_hash;
    assert!(matches!(
        s.insert_holder(&again).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(
        s.holder(&hid(3)).await.unwrap().is_none(),
        "a refused registration left a row"
    );
}

pub async fn personal_data_is_never_stored_in_plaintext<H: Harness>(h: &H) {
    let s = h.store();
    let (r, rdata) = resident(5);
    let (v, vdata) = visitor(6);
    s.insert_holder(&r).await.unwrap();
    s.insert_holder(&v).await.unwrap();
    let raw = h.raw_holder_bytes().await;
    assert!(!raw.is_empty());
    let needles = [
        rdata.name.clone(),
        rdata.resident_id.clone().unwrap(),
        rdata.phone.clone(),
        rdata.phone.trim_start_matches('+').to_owned(),
        "1990-03-07".into(),
        "19900307".into(),
        vdata.name.clone(),
        vdata.passport.clone().unwrap(),
        vdata.phone.clone(),
        "1974-08-12".into(),
        "SK997".into(),
    ];
    for n in needles {
        assert!(
            !raw.windows(n.len()).any(|w| w == n.as_bytes()),
            "found {n:?} in the stored bytes"
        );
    }
}

pub async fn venues_and_devices<H: Harness>(h: &H) {
    let s = h.store();
    let mall = venue(s, "West Lake Mall", VenueCategory::Mall).await;
    let hospital = venue(s, "No. 1 Hospital", VenueCategory::Hospital).await;
    assert_ne!(mall.id, hospital.id);
    assert_eq!(s.venue(mall.id).await.unwrap().unwrap(), mall);
    assert_eq!(s.venues().await.unwrap().len(), 2);
    assert!(s.venue(VenueId(999_999)).await.unwrap().is_none());
    let d = s.insert_device(mall.id, "north gate", &[5; 32]).await.unwrap();
    assert_eq!(d.venue, mall.id);
    assert_eq!(s.device_by_key_hash(&[5; 32]).await.unwrap().unwrap(), d);
    assert!(s.device_by_key_hash(&[6; 32]).await.unwrap().is_none());
    assert!(matches!(
        s.insert_device(VenueId(999_999), "x", &[7; 32]).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        s.insert_device(hospital.id, "dup", &[5; 32]).await,
        Err(StoreError::Conflict(_))
    ));
}

pub async fn checkins_are_idempotent_and_found_by_venue_and_holder<H: Harness>(h: &H) {
    let s = h.store();
    let mall = venue(s, "Mall", VenueCategory::Mall).await;
    let clinic = venue(s, "Clinic", VenueCategory::Clinic).await;
    let dm = s.insert_device(mall.id, "gate", &[1; 32]).await.unwrap();
    let dc = s.insert_device(clinic.id, "door", &[2; 32]).await.unwrap();
    // Three days of scans so that day-partitioned backends span partitions.
    let mut batch = Vec::new();
    for i in 0..300i64 {
        let (venue, device) = if i % 3 == 0 {
            (clinic.id, dc.id)
        } else {
            (mall.id, dm.id)
        };
        batch.push(CheckIn {
            holder: hid((i % 7) as u8),
            venue,
            device,
            seq: i,
            at: T + Duration::minutes(i * 15),
            out: (i % 2 == 0).then(|| T + Duration::minutes(i * 15 + 40)),
        });
    }
    assert_eq!(s.insert_checkins(&batch).await.unwrap(), 300);
    // A device re-sends the first 100 and 10 new ones: only the new ones count.
    let mut again = batch[..100].to_vec();
    for i in 300..310i64 {
        again.push(CheckIn {
            holder: hid(1),
            venue: mall.id,
            device: dm.id,
            seq: i,
            at: T + Duration::minutes(i * 15),
            out: None,
        });
    }
    assert_eq!(s.insert_checkins(&again).await.unwrap(), 10);
    assert_eq!(s.insert_checkins(&[]).await.unwrap(), 0);
    let day2 = T + Duration::days(1);
    let at_clinic = s
        .checkins_at_venue(clinic.id, day2, day2 + Duration::days(1))
        .await
        .unwrap();
    let expected: Vec<&CheckIn> = batch
        .iter()
        .filter(|c| c.venue == clinic.id && c.at >= day2 && c.at < day2 + Duration::days(1))
        .collect();
    assert_eq!(at_clinic.len(), expected.len());
    assert!(at_clinic.windows(2).all(|w| w[0].at <= w[1].at));
    assert_eq!(&at_clinic[0], expected[0]);
    let of_holder = s
        .checkins_of_holder(&hid(3), T, T + Duration::days(10))
        .await
        .unwrap();
    assert_eq!(
        of_holder.len(),
        batch.iter().filter(|c| c.holder == hid(3)).count()
    );
    assert!(of_holder.iter().all(|c| c.holder == hid(3)));
    // The range is half-open.
    let first = &batch[0];
    assert_eq!(
        s.checkins_at_venue(first.venue, first.at, first.at + Duration::seconds(1))
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(
        s.checkins_at_venue(first.venue, first.at - Duration::seconds(1), first.at)
            .await
            .unwrap()
            .is_empty()
    );
}

pub async fn facts_come_back_for_the_colour_rules<H: Harness>(h: &H) {
    let s = h.store();
    let (r, _) = resident(1);
    s.insert_holder(&r).await.unwrap();
    let zj = Issuer::parse("CN-ZJ").unwrap();
    let health = HealthDeclaration {
        at: T,
        symptoms: vec![Symptom::Cough, Symptom::Fever],
        temperature_c: Some(38.2),
    };
    let travel = TravelDeclaration {
        at: T,
        region: zj.clone(),
        from: date!(2026 - 11 - 15),
        until: date!(2026 - 11 - 17),
    };
    let report = DailyReport {
        at: T + Duration::days(1),
        well: true,
    };
    let test = TestResult {
        positive: false,
        sampled_at: T + Duration::hours(5),
        lab: "City Lab".into(),
    };
    for f in [
        Fact::Health(health.clone()),
        Fact::Travel(travel.clone()),
        Fact::Report(report.clone()),
        Fact::Test(test.clone()),
    ] {
        s.add_fact(&r.id, &f).await.unwrap();
    }
    let case = s.add_case(&r.id, T - Duration::days(1), T).await.unwrap();
    assert_eq!(
        s.case(case.id).await.unwrap().unwrap(),
        (r.id.clone(), case.clone())
    );
    let area = RiskArea {
        region: zj,
        level: RiskLevel::High,
        from: T,
        until: Some(T + Duration::days(7)),
    };
    s.add_risk_area(&area).await.unwrap();
    assert_eq!(s.risk_areas().await.unwrap(), vec![area]);
    let f = s.holder_facts(&r.id).await.unwrap();
    assert_eq!(f.declarations, vec![health]);
    assert_eq!(f.travels, vec![travel]);
    assert_eq!(f.reports, vec![report]);
    assert_eq!(f.tests, vec![test]);
    assert_eq!(f.cases, vec![case]);
    // Another holder's facts are not mixed in.
    let other = s.holder_facts(&hid(2)).await.unwrap();
    assert!(other.declarations.is_empty() && other.cases.is_empty() && other.tests.is_empty());
}

fn exposure(case: CaseId, venue: VenueId, start: OffsetDateTime, grade: ExposureGrade) -> Exposure {
    Exposure {
        case,
        venue,
        case_interval: (start - Duration::minutes(10), start + Duration::minutes(50)),
        contact_interval: (start, start + Duration::minutes(90)),
        overlap_minutes: 50,
        grade,
    }
}

pub async fn exposures_are_recorded_once<H: Harness>(h: &H) {
    let s = h.store();
    let (case_holder, _) = resident(1);
    s.insert_holder(&case_holder).await.unwrap();
    let case = s
        .add_case(&case_holder.id, T - Duration::days(1), T)
        .await
        .unwrap();
    let v = venue(s, "Hospital", VenueCategory::Hospital).await;
    let list = vec![
        (
            hid(2),
            exposure(case.id, v.id, T - Duration::hours(5), ExposureGrade::Close),
        ),
        (
            hid(3),
            exposure(case.id, v.id, T - Duration::hours(5), ExposureGrade::SamePlace),
        ),
        (
            hid(2),
            exposure(case.id, v.id, T - Duration::hours(30), ExposureGrade::SamePlace),
        ),
    ];
    assert_eq!(s.add_exposures(&list).await.unwrap(), 3);
    assert_eq!(
        s.add_exposures(&list).await.unwrap(),
        0,
        "tracing twice adds nothing"
    );
    let f = s.holder_facts(&hid(2)).await.unwrap();
    assert_eq!(f.exposures.len(), 2);
    assert!(f.exposures.contains(&list[0].1) && f.exposures.contains(&list[2].1));
}

pub async fn overrides_need_two_officers<H: Harness>(h: &H) {
    let s = h.store();
    let o = s
        .propose_override(&NewOverride {
            holder: hid(1),
            colour: Colour::Green,
            reason: "sample mix-up at the lab".into(),
            proposed_by: OfficerId(10),
            proposed_at: T,
            expires_at: T + Duration::days(7),
        })
        .await
        .unwrap();
    assert!(o.approval.is_none());
    assert!(matches!(
        s.approve_override(o.id, OfficerId(10), T).await,
        Err(StoreError::Refused(_))
    ));
    let f = s.holder_facts(&hid(1)).await.unwrap();
    assert_eq!(f.overrides.len(), 1);
    assert!(f.overrides[0].approval.is_none(), "a refused approval was stored");
    let approved = s
        .approve_override(o.id, OfficerId(11), T + Duration::minutes(3))
        .await
        .unwrap();
    assert_eq!(approved.approval, Some((OfficerId(11), T + Duration::minutes(3))));
    assert!(matches!(
        s.approve_override(o.id, OfficerId(12), T).await,
        Err(StoreError::Refused(_))
    ));
    assert!(matches!(
        s.approve_override(OverrideId(999_999), OfficerId(12), T).await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(s.holder_facts(&hid(1)).await.unwrap().overrides, vec![approved]);
}

pub async fn appeals_are_kept<H: Harness>(h: &H) {
    let s = h.store();
    let a = s
        .add_appeal(&hid(1), "I was not at the mall that day; 我那天不在商场", T)
        .await
        .unwrap();
    let b = s
        .add_appeal(&hid(1), "second", T + Duration::hours(1))
        .await
        .unwrap();
    s.add_appeal(&hid(2), "other", T).await.unwrap();
    assert_eq!(s.appeals_of(&hid(1)).await.unwrap(), vec![a, b]);
}

pub async fn purge_deletes_what_is_older_than_retention<H: Harness>(h: &H) {
    let s = h.store();
    let v = venue(s, "Market", VenueCategory::Market).await;
    let d = s.insert_device(v.id, "gate", &[9; 32]).await.unwrap();
    let old = T - Duration::days(30);
    let batch: Vec<CheckIn> = (0..40i64)
        .map(|i| CheckIn {
            holder: hid(1),
            venue: v.id,
            device: d.id,
            seq: i,
            at: if i < 25 {
                old + Duration::hours(i)
            } else {
                T + Duration::hours(i)
            },
            out: None,
        })
        .collect();
    s.insert_checkins(&batch).await.unwrap();
    s.add_fact(
        &hid(1),
        &Fact::Health(HealthDeclaration {
            at: old,
            symptoms: vec![],
            temperature_c: Some(36.6),
        }),
    )
    .await
    .unwrap();
    s.add_fact(
        &hid(1),
        &Fact::Health(HealthDeclaration {
            at: T,
            symptoms: vec![],
            temperature_c: Some(36.6),
        }),
    )
    .await
    .unwrap();
    s.add_fact(&hid(1), &Fact::Report(DailyReport { at: old, well: true }))
        .await
        .unwrap();
    let case = s.add_case(&hid(5), old, old).await.unwrap();
    s.add_exposures(&[(hid(1), exposure(case.id, v.id, old, ExposureGrade::SamePlace))])
        .await
        .unwrap();
    let cutoff = T - Duration::days(28);
    let report = s.purge(cutoff).await.unwrap();
    assert_eq!(
        report,
        PurgeReport {
            checkins: 25,
            declarations: 1,
            reports: 1,
            exposures: 1
        }
    );
    assert_eq!(report.total(), 28);
    assert_eq!(
        s.checkins_of_holder(&hid(1), old - Duration::days(1), T + Duration::days(5))
            .await
            .unwrap()
            .len(),
        15
    );
    let f = s.holder_facts(&hid(1)).await.unwrap();
    assert_eq!(f.declarations.len(), 1);
    assert!(f.reports.is_empty() && f.exposures.is_empty());
    // Cases are kept: they are not among what retention deletes.
    assert!(s.case(case.id).await.unwrap().is_some());
    assert_eq!(s.purge(cutoff).await.unwrap(), PurgeReport::default());
}

pub async fn audit_chain_verifies_and_names_a_tampered_entry<H: Harness>(h: &H) {
    let s = h.store();
    for i in 0..12 {
        let e = AuditEntry {
            at: T + Duration::minutes(i),
            actor: format!("officer-{}", i % 3),
            role: "officer".into(),
            action: "read-personal-data".into(),
            subject: Some(hid((i % 4) as u8)),
            purpose: "case investigation".into(),
        };
        let r = s.append_audit(&e).await.unwrap();
        assert_eq!(r.seq, i + 1);
        assert_eq!(r.entry, e);
    }
    assert_eq!(verify_audit(s).await.unwrap(), Ok(12));
    let page = s.audit_records(5, 3).await.unwrap();
    assert_eq!(page.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![6, 7, 8]);
    let mine = s.audit_of_subject(&hid(1)).await.unwrap();
    assert_eq!(mine.len(), 3);
    assert!(mine.iter().all(|r| r.entry.subject == Some(hid(1))));
    // Concurrent appends still form one chain.
    let entries: Vec<AuditEntry> = (0..20)
        .map(|i| AuditEntry {
            at: T + Duration::hours(1) + Duration::seconds(i),
            actor: "system".into(),
            role: "system".into(),
            action: "purge".into(),
            subject: None,
            purpose: "retention".into(),
        })
        .collect();
    let results = futures_util::future::join_all(entries.iter().map(|e| s.append_audit(e))).await;
    assert!(results.iter().all(Result::is_ok));
    assert_eq!(verify_audit(s).await.unwrap(), Ok(32));
    h.tamper_audit(7, "read-nothing").await;
    let broken = verify_audit(s).await.unwrap().unwrap_err();
    assert_eq!(broken.seq, 7, "{broken}");
}

pub async fn checkins_survive_the_merge_and_stay_unique<H: Harness>(h: &H) {
    let s = h.store();
    let scan = |i: i64| CheckIn {
        holder: hid((i % 5) as u8),
        venue: VenueId(i % 3),
        device: DeviceId(i % 3),
        seq: i,
        at: T + Duration::minutes(i),
        out: None,
    };
    let first: Vec<CheckIn> = (0..500).map(scan).collect();
    assert_eq!(s.insert_checkins(&first).await.unwrap(), 500);
    h.flush_checkins().await;
    // Re-sent after the merge: recognised against the indexed table.
    let again: Vec<CheckIn> = (400..600).map(scan).collect();
    assert_eq!(s.insert_checkins(&again).await.unwrap(), 100);
    // Part merged, part in the inbox: a range read sees each scan once.
    let all = s
        .checkins_at_venue(VenueId(1), T, T + Duration::days(1))
        .await
        .unwrap();
    assert_eq!(all.len(), (0..600).filter(|i| i % 3 == 1).count());
    // A crash between a merge's copy and its delete leaves rows in both places.
    h.flush_checkins().await;
    h.duplicate_into_inbox(50).await;
    let mine = s
        .checkins_of_holder(&hid(0), T, T + Duration::days(1))
        .await
        .unwrap();
    assert_eq!(mine.len(), 120);
    let report = s.purge(T + Duration::minutes(100)).await.unwrap();
    assert_eq!(report.checkins, 100, "rows in both places are counted once");
    h.flush_checkins().await;
    let left = s
        .checkins_at_venue(VenueId(0), T, T + Duration::days(1))
        .await
        .unwrap();
    assert_eq!(left.len(), (100..600).filter(|i| i % 3 == 0).count());
}

/// Check-ins as a busy city makes them, for the backends' benchmarks: `n` scans with sequence
/// numbers from `start`, random 8-byte holders over 20,000 venues (each with its own scanner),
/// scan `i` at `t0 + i × spacing`. `state` is the generator's state (xorshift), so runs repeat.
pub fn synthetic_checkins(
    start: i64,
    n: i64,
    t0: OffsetDateTime,
    spacing: Duration,
    state: &mut u64,
) -> Vec<CheckIn> {
    let mut next = || {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    };
    (start..start + n)
        .map(|i| {
            let venue = (next() % 20_000) as i64;
            CheckIn {
                holder: HolderId::from_bytes(&next().to_be_bytes()).unwrap(),
                venue: VenueId(venue),
                device: DeviceId(venue),
                seq: i,
                at: t0 + spacing * (i as i32),
                out: None,
            }
        })
        .collect()
}
