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
            a_scan_reads_each_checkin_in_range_once,
            a_bulk_load_is_read_once_after_the_flush,
            one_time_codes_limit_guesses_and_sends,
            sessions_are_found_and_revoked,
            officers_are_unique_and_keep_roles,
            listings_and_appeal_decisions,
            purge_keeps_officers_and_live_sessions,
            exposures_wait_for_review,
            bulk_inserts,
            activity_counts_for_the_dashboard,
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

/// A valid resident ID number: the 17 digits given, then their check character.
fn with_check_char(seventeen: &str) -> String {
    let digits: &[u8; 17] = seventeen.as_bytes().try_into().unwrap();
    format!("{seventeen}{}", resident_id_check_char(digits))
}

pub fn resident(n: u8) -> (SealedHolder, PersonalData) {
    let data = PersonalData {
        name: format!("Zhang Wei{n}"),
        resident_id: Some(with_check_char(&format!("110101199003078{n:02}"))),
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
    // Cases read together come in the order asked, a missing one as none.
    let other = s.add_case(&hid(9), T - Duration::days(3), T).await.unwrap();
    let ids = [other.id, CaseId(other.id.0 + 100), case.id, other.id];
    let together = s.cases_by_id(&ids).await.unwrap();
    assert_eq!(together.len(), 4);
    for (id, got) in ids.iter().zip(&together) {
        assert_eq!(got, &s.case(*id).await.unwrap());
    }
    assert!(together[1].is_none());
    assert_eq!(
        together[2].as_ref().map(|(h, c)| (h, c.id)),
        Some((&case_holder.id, case.id))
    );
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

/// Scan number `i` of a run a scan every `apart`: five holders, three venues with a device each.
fn numbered_scan(i: i64, apart: Duration) -> CheckIn {
    CheckIn {
        holder: hid((i % 5) as u8),
        venue: VenueId(i % 3),
        device: DeviceId(i % 3),
        seq: i,
        at: T + apart * (i as i32),
        out: None,
    }
}

pub async fn checkins_survive_the_merge_and_stay_unique<H: Harness>(h: &H) {
    let s = h.store();
    let scan = |i: i64| numbered_scan(i, Duration::minutes(1));
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

pub async fn a_scan_reads_each_checkin_in_range_once<H: Harness>(h: &H) {
    let s = h.store();
    let scan = |i: i64, at: OffsetDateTime| CheckIn {
        holder: hid((i % 7) as u8),
        venue: VenueId(i % 4),
        device: DeviceId(10 + i % 4),
        seq: i,
        at,
        out: (i % 3 == 0).then(|| at + Duration::minutes(20)),
    };
    // Past hours (indexed at once on PostgreSQL; merged on SQLite), some also left in the inbox
    // as a crash between a merge's copy and its delete would leave them.
    let past: Vec<CheckIn> = (0..300).map(|i| scan(i, T + Duration::minutes(7 * i))).collect();
    assert_eq!(s.insert_checkins(&past).await.unwrap(), 300);
    h.flush_checkins().await;
    h.duplicate_into_inbox(40).await;
    // The current hour (unindexed on PostgreSQL, in the inbox on SQLite), sent twice.
    let now = OffsetDateTime::now_utc();
    let now = now.replace_nanosecond(0).unwrap_or(now);
    let recent: Vec<CheckIn> = (300..340)
        .map(|i| scan(i, now - Duration::seconds(340 - i)))
        .collect();
    s.insert_checkins(&recent).await.unwrap();
    s.insert_checkins(&recent).await.unwrap();
    let read = |from: OffsetDateTime, to: OffsetDateTime| async move {
        let mut got: Vec<CheckIn> = Vec::new();
        let mut batches = 0;
        let n = s
            .scan_checkins(from, to, &mut |b: Vec<CheckIn>| {
                batches += 1;
                got.extend(b);
            })
            .await
            .unwrap();
        assert_eq!(n as usize, got.len());
        assert!(batches <= got.len(), "no empty batches");
        got.sort_by_key(|c| (c.device, c.seq));
        got
    };
    let key = |c: &CheckIn| (c.device, c.seq);
    // Arrivals in [from, to): the first at `from` is in, the one at `to` is not.
    let (from, to) = (past[10].at, past[250].at);
    let mut want: Vec<CheckIn> = past[10..250].to_vec();
    want.sort_by_key(key);
    assert_eq!(read(from, to).await, want);
    // Everything, each scan once.
    let mut all: Vec<CheckIn> = past.iter().chain(&recent).cloned().collect();
    all.sort_by_key(key);
    assert_eq!(read(T, now + Duration::hours(1)).await, all);
    // Nothing in an empty range.
    assert!(read(from, from).await.is_empty());
}

pub async fn a_bulk_load_is_read_once_after_the_flush<H: Harness>(h: &H) {
    let s = h.store();
    let scan = |i: i64| numbered_scan(i, Duration::minutes(13));
    // Several past hours, loaded twice (a load resumed after a failure sends some again).
    let rows: Vec<CheckIn> = (0..200).map(scan).collect();
    assert_eq!(s.load_checkins(&rows).await.unwrap(), 200);
    s.load_checkins(&rows[50..120]).await.unwrap();
    h.flush_checkins().await;
    let mut got = Vec::new();
    for v in 0..3 {
        got.extend(
            s.checkins_at_venue(VenueId(v), T, T + Duration::days(3))
                .await
                .unwrap(),
        );
    }
    got.sort_by_key(|c| c.seq);
    assert_eq!(got, rows);
    // Indexed now: sent again, nothing is new, and a later scan still goes in.
    assert_eq!(s.insert_checkins(&rows[..10]).await.unwrap(), 0);
    assert_eq!(s.insert_checkins(&[scan(500)]).await.unwrap(), 1);
    let mine = s
        .checkins_of_holder(&hid(0), T, T + Duration::days(10))
        .await
        .unwrap();
    assert_eq!(mine.len(), 41);
}

pub async fn one_time_codes_limit_guesses_and_sends<H: Harness>(h: &H) {
    let s = h.store();
    // 5 minutes valid, 5 guesses, 60 s between sends, 5 sends an hour.
    let limits = OtpLimits::default();
    let sec = Duration::seconds;
    let phone = [1u8; 32];
    let (code1, code2, wrong) = ([11u8; 32], [12u8; 32], [99u8; 32]);
    assert_eq!(s.check_otp(&phone, &code1, T).await.unwrap(), OtpCheck::Missing);
    assert_eq!(s.issue_otp(&phone, &code1, T, &limits).await.unwrap(), Ok(()));
    // Too soon: the rest of the minute, and the code in force stays.
    assert_eq!(
        s.issue_otp(&phone, &code2, T + sec(20), &limits).await.unwrap(),
        Err(sec(40))
    );
    // Another phone is not held back.
    assert_eq!(
        s.issue_otp(&[2; 32], &code2, T + sec(20), &limits).await.unwrap(),
        Ok(())
    );
    // Wrong guesses count down to nothing; then even the right code is refused.
    for left in (0..5u8).rev() {
        assert_eq!(
            s.check_otp(&phone, &wrong, T + sec(30)).await.unwrap(),
            OtpCheck::Wrong { attempts_left: left }
        );
    }
    assert_eq!(
        s.check_otp(&phone, &wrong, T + sec(31)).await.unwrap(),
        OtpCheck::Exhausted
    );
    assert_eq!(
        s.check_otp(&phone, &code1, T + sec(32)).await.unwrap(),
        OtpCheck::Exhausted
    );
    // A new code after the interval replaces the old one and its guesses count anew.
    assert_eq!(
        s.issue_otp(&phone, &code2, T + sec(60), &limits).await.unwrap(),
        Ok(())
    );
    assert_eq!(
        s.check_otp(&phone, &code1, T + sec(61)).await.unwrap(),
        OtpCheck::Wrong { attempts_left: 4 },
        "the replaced code still works"
    );
    // The right code is accepted once, then is gone; the send limits still hold after it.
    assert_eq!(
        s.check_otp(&phone, &code2, T + sec(62)).await.unwrap(),
        OtpCheck::Accepted
    );
    assert_eq!(
        s.check_otp(&phone, &code2, T + sec(63)).await.unwrap(),
        OtpCheck::Missing
    );
    assert_eq!(
        s.issue_otp(&phone, &code1, T + sec(90), &limits).await.unwrap(),
        Err(sec(30))
    );
    // Five sends in the hour (at 0, 60, 120, 180, 240 s): the sixth waits for the window's end,
    // however long ago the last send was.
    for i in 2..5 {
        let code = [20 + i as u8; 32];
        assert_eq!(
            s.issue_otp(&phone, &code, T + sec(60 * i), &limits)
                .await
                .unwrap(),
            Ok(())
        );
    }
    assert_eq!(
        s.issue_otp(&phone, &code1, T + sec(300), &limits).await.unwrap(),
        Err(sec(3300))
    );
    assert_eq!(
        s.issue_otp(&phone, &code1, T + sec(3599), &limits).await.unwrap(),
        Err(sec(1))
    );
    // When both limits refuse, the wait is the longer one.
    assert_eq!(
        s.issue_otp(&phone, &code1, T + sec(250), &limits).await.unwrap(),
        Err(sec(3350))
    );
    // The last code sent (at 240 s) lasts five minutes to the second.
    let last = [24u8; 32];
    assert_eq!(
        s.check_otp(&phone, &wrong, T + sec(539)).await.unwrap(),
        OtpCheck::Wrong { attempts_left: 4 }
    );
    assert_eq!(
        s.check_otp(&phone, &last, T + sec(540)).await.unwrap(),
        OtpCheck::Expired
    );
    // A new window: five more sends, then refused again, so the count started over.
    for i in 0..5 {
        let code = [30 + i as u8; 32];
        let at = T + sec(3600 + 60 * i);
        assert_eq!(
            s.issue_otp(&phone, &code, at, &limits).await.unwrap(),
            Ok(()),
            "send {i}"
        );
    }
    assert_eq!(
        s.issue_otp(&phone, &code1, T + sec(3900), &limits).await.unwrap(),
        Err(sec(3300))
    );
    assert_eq!(
        s.check_otp(&phone, &[34; 32], T + sec(3901)).await.unwrap(),
        OtpCheck::Accepted
    );

    // Concurrent sends to one phone: one passes.
    let other = [3u8; 32];
    let codes: Vec<[u8; 32]> = (0..8u8).map(|i| [40 + i; 32]).collect();
    let sent = futures_util::future::join_all(codes.iter().map(|c| s.issue_otp(&other, c, T, &limits))).await;
    assert_eq!(
        sent.iter().filter(|r| matches!(r, Ok(Ok(())))).count(),
        1,
        "{sent:?}"
    );
    assert!(
        sent.iter().all(|r| matches!(r, Ok(Ok(())) | Ok(Err(_)))),
        "{sent:?}"
    );
    // And again once a code is stored: still one.
    let sent =
        futures_util::future::join_all(codes.iter().map(|c| s.issue_otp(&other, c, T + sec(60), &limits)))
            .await;
    assert_eq!(
        sent.iter().filter(|r| matches!(r, Ok(Ok(())))).count(),
        1,
        "{sent:?}"
    );
    // Concurrent guesses: exactly five count, each seeing a different number left.
    let winner = codes
        .iter()
        .zip(&sent)
        .find(|(_, r)| matches!(r, Ok(Ok(()))))
        .map(|(c, _)| *c)
        .unwrap();
    let guesses =
        futures_util::future::join_all((0..10).map(|_| s.check_otp(&other, &wrong, T + sec(61)))).await;
    let mut left: Vec<u8> = guesses
        .iter()
        .filter_map(|g| match g {
            Ok(OtpCheck::Wrong { attempts_left }) => Some(*attempts_left),
            _ => None,
        })
        .collect();
    left.sort_unstable();
    assert_eq!(left, vec![0, 1, 2, 3, 4], "{guesses:?}");
    assert_eq!(
        guesses
            .iter()
            .filter(|g| matches!(g, Ok(OtpCheck::Exhausted)))
            .count(),
        5
    );
    assert_eq!(
        s.check_otp(&other, &winner, T + sec(62)).await.unwrap(),
        OtpCheck::Exhausted
    );
}

pub async fn sessions_are_found_and_revoked<H: Harness>(h: &H) {
    let s = h.store();
    let session = |principal: Principal, created_at: OffsetDateTime| Session {
        principal,
        created_at,
        expires_at: created_at + Duration::hours(12),
    };
    let phone = session(Principal::Holder(hid(1)), T);
    let tablet = session(Principal::Holder(hid(1)), T + Duration::minutes(5));
    // Long expired: still returned, the caller decides.
    let officer = session(Principal::Officer(OfficerId(7)), T - Duration::days(3));
    let colleague = session(Principal::Officer(OfficerId(8)), T);
    let other_holder = session(Principal::Holder(hid(2)), T);
    for (token, sess) in [
        ([1u8; 32], &phone),
        ([2; 32], &tablet),
        ([3; 32], &officer),
        ([4; 32], &colleague),
        ([5; 32], &other_holder),
    ] {
        s.insert_session(&token, sess).await.unwrap();
    }
    assert_eq!(s.session(&[1; 32]).await.unwrap().as_ref(), Some(&phone));
    assert_eq!(s.session(&[2; 32]).await.unwrap().as_ref(), Some(&tablet));
    assert_eq!(s.session(&[3; 32]).await.unwrap().as_ref(), Some(&officer));
    assert!(s.session(&[9; 32]).await.unwrap().is_none());
    assert!(matches!(
        s.insert_session(&[1; 32], &colleague).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(s.session(&[1; 32]).await.unwrap().as_ref(), Some(&phone));
    // One session ends.
    assert!(s.revoke_session(&[1; 32]).await.unwrap());
    assert!(!s.revoke_session(&[1; 32]).await.unwrap());
    assert!(s.session(&[1; 32]).await.unwrap().is_none());
    assert_eq!(s.session(&[2; 32]).await.unwrap().as_ref(), Some(&tablet));
    // All of a principal's sessions end, and only theirs.
    assert_eq!(s.revoke_sessions_of(&Principal::Holder(hid(1))).await.unwrap(), 1);
    assert!(s.session(&[2; 32]).await.unwrap().is_none());
    assert_eq!(s.session(&[5; 32]).await.unwrap().as_ref(), Some(&other_holder));
    assert_eq!(
        s.revoke_sessions_of(&Principal::Officer(OfficerId(7)))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        s.revoke_sessions_of(&Principal::Officer(OfficerId(7)))
            .await
            .unwrap(),
        0
    );
    assert!(s.session(&[3; 32]).await.unwrap().is_none());
    assert_eq!(s.session(&[4; 32]).await.unwrap().as_ref(), Some(&colleague));
}

pub async fn officers_are_unique_and_keep_roles<H: Harness>(h: &H) {
    let s = h.store();
    let phc = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo";
    let admin = s
        .insert_officer("admin", Role::Admin, phc, true, T)
        .await
        .unwrap();
    let li = s
        .insert_officer(
            "li.na",
            Role::Officer,
            "$argon2id$li",
            false,
            T + Duration::minutes(1),
        )
        .await
        .unwrap();
    let audit = s
        .insert_officer("auditor", Role::Auditor, "$argon2id$au", false, T)
        .await
        .unwrap();
    assert_eq!(
        (
            admin.role,
            admin.username.as_str(),
            admin.password_hash.as_str(),
            admin.must_change_password
        ),
        (Role::Admin, "admin", phc, true)
    );
    assert!(admin.id != li.id && li.id != audit.id && admin.id != audit.id);
    assert_eq!(s.officer(admin.id).await.unwrap().as_ref(), Some(&admin));
    assert_eq!(s.officer(audit.id).await.unwrap().unwrap().role, Role::Auditor);
    assert_eq!(s.officer_by_username("li.na").await.unwrap().as_ref(), Some(&li));
    assert!(s.officer_by_username("li.n").await.unwrap().is_none());
    assert!(s.officer(OfficerId(999_999)).await.unwrap().is_none());
    assert_eq!(
        s.officers().await.unwrap(),
        vec![admin.clone(), li.clone(), audit.clone()]
    );
    // A username is taken once, whatever the role.
    assert!(matches!(
        s.insert_officer("li.na", Role::Auditor, "$argon2id$x", false, T)
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(s.officers().await.unwrap().len(), 3);
    // A new password replaces the old, and whether it must change; nothing else moves.
    s.set_officer_password(admin.id, "$argon2id$new", false)
        .await
        .unwrap();
    let back = s.officer(admin.id).await.unwrap().unwrap();
    assert_eq!(back.password_hash, "$argon2id$new");
    assert!(!back.must_change_password);
    assert_eq!(
        (back.id, back.username.as_str(), back.role, back.created_at),
        (admin.id, "admin", Role::Admin, T)
    );
    assert_eq!(s.officer(li.id).await.unwrap().as_ref(), Some(&li));
    s.set_officer_password(li.id, "$argon2id$reset", true)
        .await
        .unwrap();
    assert!(s.officer(li.id).await.unwrap().unwrap().must_change_password);
    assert!(matches!(
        s.set_officer_password(OfficerId(999_999), "$argon2id$x", false)
            .await,
        Err(StoreError::NotFound(_))
    ));
}

pub async fn listings_and_appeal_decisions<H: Harness>(h: &H) {
    let s = h.store();
    // Devices, all or by venue, by id.
    let mall = venue(s, "Mall", VenueCategory::Mall).await;
    let clinic = venue(s, "Clinic", VenueCategory::Clinic).await;
    let d1 = s.insert_device(mall.id, "north", &[1; 32]).await.unwrap();
    let d2 = s.insert_device(clinic.id, "door", &[2; 32]).await.unwrap();
    let d3 = s.insert_device(mall.id, "south", &[3; 32]).await.unwrap();
    assert_eq!(
        s.devices(None).await.unwrap(),
        vec![d1.clone(), d2.clone(), d3.clone()]
    );
    assert_eq!(s.devices(Some(mall.id)).await.unwrap(), vec![d1, d3]);
    assert_eq!(s.devices(Some(clinic.id)).await.unwrap(), vec![d2]);
    assert!(s.devices(Some(VenueId(999_999))).await.unwrap().is_empty());

    // Cases since a time, by confirmation time, then id.
    let late = s.add_case(&hid(1), T, T + Duration::hours(2)).await.unwrap();
    let first = s.add_case(&hid(2), T - Duration::days(1), T).await.unwrap();
    s.add_case(&hid(3), T - Duration::days(3), T - Duration::days(1))
        .await
        .unwrap();
    let second = s.add_case(&hid(4), T - Duration::days(1), T).await.unwrap();
    assert_eq!(
        s.cases(T).await.unwrap(),
        vec![(hid(2), first), (hid(4), second), (hid(1), late.clone())]
    );
    assert_eq!(
        s.cases(T + Duration::hours(2)).await.unwrap(),
        vec![(hid(1), late)]
    );
    assert!(s.cases(T + Duration::hours(3)).await.unwrap().is_empty());
    assert_eq!(s.cases(T - Duration::days(5)).await.unwrap().len(), 4);

    // Overrides by id, all or pending.
    let propose = |holder: HolderId, reason: &str| NewOverride {
        holder,
        colour: Colour::Green,
        reason: reason.into(),
        proposed_by: OfficerId(10),
        proposed_at: T,
        expires_at: T + Duration::days(7),
    };
    let o1 = s.propose_override(&propose(hid(1), "lab mix-up")).await.unwrap();
    let o2 = s.propose_override(&propose(hid(2), "wrong venue")).await.unwrap();
    let o1 = s.approve_override(o1.id, OfficerId(11), T).await.unwrap();
    assert_eq!(s.override_by_id(o2.id).await.unwrap(), Some((hid(2), o2.clone())));
    assert_eq!(s.override_by_id(o1.id).await.unwrap(), Some((hid(1), o1.clone())));
    assert!(s.override_by_id(OverrideId(999_999)).await.unwrap().is_none());
    assert_eq!(
        s.overrides(false).await.unwrap(),
        vec![(hid(1), o1), (hid(2), o2.clone())]
    );
    assert_eq!(s.overrides(true).await.unwrap(), vec![(hid(2), o2)]);

    // Appeals, all or open; a decision is made once.
    let a1 = s.add_appeal(&hid(1), "not me", T).await.unwrap();
    let a2 = s.add_appeal(&hid(2), "left before", T).await.unwrap();
    let a3 = s
        .add_appeal(&hid(1), "again", T + Duration::hours(1))
        .await
        .unwrap();
    assert_eq!(
        s.appeals(true).await.unwrap(),
        vec![a1.clone(), a2.clone(), a3.clone()]
    );
    let at = T + Duration::hours(2);
    let decided = s
        .decide_appeal(a2.id, OfficerId(10), true, "scanner log agrees", at)
        .await
        .unwrap();
    assert_eq!(
        decided,
        Appeal {
            decision: Some((OfficerId(10), true, "scanner log agrees".into(), at)),
            ..a2.clone()
        }
    );
    assert_eq!(s.appeals(true).await.unwrap(), vec![a1.clone(), a3.clone()]);
    assert_eq!(
        s.appeals(false).await.unwrap(),
        vec![a1.clone(), decided.clone(), a3.clone()]
    );
    assert!(matches!(
        s.decide_appeal(a2.id, OfficerId(11), false, "no", at + Duration::hours(1))
            .await,
        Err(StoreError::Refused(_))
    ));
    assert_eq!(s.appeals_of(&hid(2)).await.unwrap(), vec![decided]);
    assert!(matches!(
        s.decide_appeal(AppealId(999_999), OfficerId(11), false, "no", at)
            .await,
        Err(StoreError::NotFound(_))
    ));
    // Officers deciding at once: one decision stands, the others are refused.
    let notes: Vec<String> = (0..8).map(|i| format!("decision {i}")).collect();
    let tries = futures_util::future::join_all(
        notes
            .iter()
            .enumerate()
            .map(|(i, n)| s.decide_appeal(a1.id, OfficerId(20 + i as i64), i % 2 == 0, n, at)),
    )
    .await;
    let mut won: Vec<Appeal> = tries.iter().filter_map(|t| t.as_ref().ok().cloned()).collect();
    assert_eq!(won.len(), 1, "{tries:?}");
    assert!(
        tries
            .iter()
            .all(|t| t.is_ok() || matches!(t, Err(StoreError::Refused(_)))),
        "{tries:?}"
    );
    let won = won.remove(0);
    assert_eq!(s.appeals(false).await.unwrap()[0], won);
    assert_eq!(s.appeals(true).await.unwrap(), vec![a3]);
}

pub async fn purge_keeps_officers_and_live_sessions<H: Harness>(h: &H) {
    let s = h.store();
    let old = T - Duration::days(40);
    let cutoff = T - Duration::days(28);
    let officer = s
        .insert_officer("admin", Role::Admin, "$argon2id$a", false, old)
        .await
        .unwrap();
    let session = |expires_at| Session {
        principal: Principal::Officer(officer.id),
        created_at: old,
        expires_at,
    };
    let live = session(T + Duration::days(1));
    let lately = session(cutoff + Duration::days(1));
    s.insert_session(&[1; 32], &session(old + Duration::hours(12)))
        .await
        .unwrap();
    s.insert_session(&[2; 32], &live).await.unwrap();
    s.insert_session(&[3; 32], &lately).await.unwrap();
    let limits = OtpLimits::default();
    s.issue_otp(&[1; 32], &[11; 32], old, &limits)
        .await
        .unwrap()
        .unwrap();
    s.issue_otp(&[2; 32], &[12; 32], T, &limits)
        .await
        .unwrap()
        .unwrap();
    // None of it is counted as retention.
    assert_eq!(s.purge(cutoff).await.unwrap(), PurgeReport::default());
    assert_eq!(s.officers().await.unwrap(), vec![officer]);
    assert_eq!(s.session(&[2; 32]).await.unwrap(), Some(live));
    assert_eq!(s.session(&[3; 32]).await.unwrap(), Some(lately));
    assert!(
        s.session(&[1; 32]).await.unwrap().is_none(),
        "a long-dead session is kept"
    );
    // The long-dead code is gone; the fresh one still works.
    assert_eq!(
        s.check_otp(&[1; 32], &[11; 32], old + Duration::minutes(1))
            .await
            .unwrap(),
        OtpCheck::Missing
    );
    assert_eq!(
        s.check_otp(&[2; 32], &[12; 32], T + Duration::minutes(1))
            .await
            .unwrap(),
        OtpCheck::Accepted
    );
}

pub async fn exposures_wait_for_review<H: Harness>(h: &H) {
    use ExposureState::{Applied, Dismissed, Pending};
    let s = h.store();
    let first = s.add_case(&hid(1), T - Duration::days(2), T).await.unwrap();
    let second = s.add_case(&hid(5), T - Duration::days(1), T).await.unwrap();
    let v1 = venue(s, "Mall", VenueCategory::Mall).await;
    let v2 = venue(s, "Clinic", VenueCategory::Clinic).await;
    let stored = |(holder, exposure): &(HolderId, Exposure), state| StoredExposure {
        holder: holder.clone(),
        exposure: exposure.clone(),
        state,
    };
    // Traced in an order unlike any listing's.
    let a = (
        hid(3),
        exposure(first.id, v1.id, T - Duration::hours(5), ExposureGrade::SamePlace),
    );
    let b = (
        hid(2),
        exposure(first.id, v2.id, T - Duration::hours(30), ExposureGrade::Close),
    );
    let c = (
        hid(2),
        exposure(first.id, v1.id, T - Duration::hours(5), ExposureGrade::Close),
    );
    let d = (
        hid(2),
        exposure(first.id, v1.id, T - Duration::hours(20), ExposureGrade::SamePlace),
    );
    let e = (
        hid(1),
        exposure(second.id, v1.id, T - Duration::hours(2), ExposureGrade::Close),
    );
    let applied = (
        hid(2),
        exposure(second.id, v2.id, T - Duration::hours(3), ExposureGrade::Close),
    );
    let pending = [a.clone(), b.clone(), c.clone(), d.clone(), e.clone()];
    assert_eq!(s.add_exposures_as(&pending, Pending).await.unwrap(), 5);
    assert_eq!(s.add_exposures(std::slice::from_ref(&applied)).await.unwrap(), 1);

    // Pending exposures do not count for colours.
    assert_eq!(
        s.holder_facts(&hid(2)).await.unwrap().exposures,
        vec![applied.1.clone()]
    );
    assert!(s.holder_facts(&hid(3)).await.unwrap().exposures.is_empty());

    // Tracing again adds nothing, and each keeps the state it was first stored in.
    assert_eq!(s.add_exposures_as(&pending, Applied).await.unwrap(), 0);
    assert_eq!(s.add_exposures(&pending).await.unwrap(), 0);
    assert_eq!(
        s.add_exposures_as(std::slice::from_ref(&applied), Pending)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        s.holder_facts(&hid(2)).await.unwrap().exposures,
        vec![applied.1.clone()]
    );

    // A case's exposures by holder, venue, contact start; the queue by case first.
    assert_eq!(
        s.exposures_of_case(first.id).await.unwrap(),
        vec![
            stored(&d, Pending),
            stored(&c, Pending),
            stored(&b, Pending),
            stored(&a, Pending)
        ]
    );
    assert_eq!(
        s.exposures_of_case(second.id).await.unwrap(),
        vec![stored(&e, Pending), stored(&applied, Applied)]
    );
    assert!(s.exposures_of_case(CaseId(999_999)).await.unwrap().is_empty());
    assert_eq!(
        s.pending_exposures(100).await.unwrap(),
        vec![
            stored(&d, Pending),
            stored(&c, Pending),
            stored(&b, Pending),
            stored(&a, Pending),
            stored(&e, Pending)
        ]
    );
    assert_eq!(
        s.pending_exposures(2).await.unwrap(),
        vec![stored(&d, Pending), stored(&c, Pending)]
    );
    assert!(s.pending_exposures(0).await.unwrap().is_empty());

    // Applying one makes it count; dismissing one keeps it out.
    let key = |x: &(HolderId, Exposure)| stored(x, Pending).key();
    assert_eq!(
        key(&c),
        ExposureKey {
            holder: hid(2),
            case: first.id,
            venue: v1.id,
            contact_start: T - Duration::hours(5)
        }
    );
    assert_eq!(
        s.set_exposure_state(&key(&c), Applied).await.unwrap(),
        stored(&c, Applied)
    );
    assert_eq!(
        s.set_exposure_state(&key(&b), Dismissed).await.unwrap(),
        stored(&b, Dismissed)
    );
    assert_eq!(
        s.holder_facts(&hid(2)).await.unwrap().exposures,
        vec![c.1.clone(), applied.1.clone()]
    );

    // Only pending exposures are reviewed, and never back to pending.
    for (x, to) in [
        (&c, Applied),
        (&c, Dismissed),
        (&b, Applied),
        (&b, Dismissed),
        (&applied, Dismissed),
        (&d, Pending),
    ] {
        assert!(
            matches!(
                s.set_exposure_state(&key(x), to).await,
                Err(StoreError::Refused(_))
            ),
            "{x:?} to {to:?}"
        );
    }
    assert!(matches!(
        s.set_exposure_state(
            &ExposureKey {
                holder: hid(9),
                ..key(&d)
            },
            Applied
        )
        .await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        s.set_exposure_state(
            &ExposureKey {
                contact_start: T - Duration::hours(21),
                ..key(&d)
            },
            Dismissed
        )
        .await,
        Err(StoreError::NotFound(_))
    ));
    let reviewed = vec![
        stored(&d, Pending),
        stored(&c, Applied),
        stored(&b, Dismissed),
        stored(&a, Pending),
    ];
    assert_eq!(s.exposures_of_case(first.id).await.unwrap(), reviewed);
    assert_eq!(
        s.pending_exposures(100).await.unwrap(),
        vec![stored(&d, Pending), stored(&a, Pending), stored(&e, Pending)]
    );
    // Tracing the case again changes no decision.
    assert_eq!(s.add_exposures_as(&pending, Pending).await.unwrap(), 0);
    assert_eq!(s.exposures_of_case(first.id).await.unwrap(), reviewed);
    assert_eq!(
        s.holder_facts(&hid(2)).await.unwrap().exposures,
        vec![c.1.clone(), applied.1.clone()]
    );

    // Officers reviewing at once: one decision stands, the others are refused.
    let ka = key(&a);
    let tries = futures_util::future::join_all(
        (0..8).map(|i| s.set_exposure_state(&ka, if i % 2 == 0 { Applied } else { Dismissed })),
    )
    .await;
    let won: Vec<&StoredExposure> = tries.iter().filter_map(|t| t.as_ref().ok()).collect();
    assert_eq!(won.len(), 1, "{tries:?}");
    assert!(
        tries
            .iter()
            .all(|t| t.is_ok() || matches!(t, Err(StoreError::Refused(_)))),
        "{tries:?}"
    );
    assert_eq!(s.exposures_of_case(first.id).await.unwrap()[3], *won[0]);
    assert_eq!(
        s.holder_facts(&hid(3)).await.unwrap().exposures.len(),
        usize::from(won[0].state == Applied)
    );

    // Retention deletes old exposures whatever their state.
    let report = s.purge(T).await.unwrap();
    assert_eq!(
        report,
        PurgeReport {
            exposures: 6,
            ..PurgeReport::default()
        }
    );
    assert!(s.exposures_of_case(first.id).await.unwrap().is_empty());
    assert!(s.exposures_of_case(second.id).await.unwrap().is_empty());
    assert!(s.pending_exposures(100).await.unwrap().is_empty());
}

/// Residents `start..start + n` as a city's registry makes them, for bulk loads: each with its own
/// id (in no particular order), identity and phone, sealed with [`crypto`]'s keys.
pub fn synthetic_holders(start: u64, n: u64) -> Vec<SealedHolder> {
    let c = crypto();
    (start..start + n)
        .map(|i| {
            // A thousand residents a birthday, from 1 January 1950.
            let born = date!(1950 - 01 - 01) + Duration::days((i / 1000) as i64);
            let digits = format!(
                "330106{:04}{:02}{:02}{:03}",
                born.year(),
                u8::from(born.month()),
                born.day(),
                i % 1000
            );
            let data = PersonalData {
                name: format!("Resident {i}"),
                resident_id: Some(with_check_char(&digits)),
                passport: None,
                nationality: None,
                birth_date: date!(1990 - 03 - 07),
                phone: format!("+86139{i:08}"),
                arrival: None,
            };
            // splitmix64's finaliser: a bijection, so the ids are distinct but unordered.
            let mut z = i.wrapping_add(0x9E37_79B9_7F4A_7C15);
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            let id = HolderId::from_bytes(&z.to_be_bytes()).unwrap();
            c.seal_holder(id, HolderKind::Resident, &data, "R*** ", T)
                .unwrap()
        })
        .collect()
}

pub async fn bulk_inserts<H: Harness>(h: &H) {
    let s = h.store();
    let city = synthetic_holders(0, 1_000);
    assert_eq!(s.insert_holders(&city).await.unwrap(), 1_000);
    for i in [0, 1, 499, 998, 999] {
        assert_eq!(s.holder(&city[i].id).await.unwrap().as_ref(), Some(&city[i]));
    }
    let back = s.holder_by_phone(&city[123].phone_hash).await.unwrap().unwrap();
    assert_eq!(back, city[123]);
    assert_eq!(crypto().open_holder(&back).unwrap().phone, "+8613900000123");
    assert_eq!(
        s.holder_by_identity(&city[777].identity_hash)
            .await
            .unwrap()
            .as_ref(),
        Some(&city[777])
    );
    assert_eq!(s.insert_holders(&[]).await.unwrap(), 0);

    // All or nothing: a taken identity or phone, in the store or twice in the batch, refuses the
    // whole batch, wherever it is.
    let more = synthetic_holders(1_000, 10);
    let mut batches = Vec::new();
    let mut b = more.clone();
    b[7].identity_hash = city[3].identity_hash;
    batches.push(("an identity in the store", b));
    let mut b = more.clone();
    b[0].phone_hash = city[500].phone_hash;
    batches.push(("a phone in the store", b));
    let mut b = more.clone();
    b[9].identity_hash = b[2].identity_hash;
    batches.push(("an identity twice in the batch", b));
    let mut b = more.clone();
    b[6].phone_hash = b[5].phone_hash;
    batches.push(("a phone twice in the batch", b));
    let mut b = more.clone();
    b[8] = b[1].clone();
    batches.push(("a holder twice in the batch", b));
    for (what, batch) in &batches {
        assert!(
            matches!(s.insert_holders(batch).await, Err(StoreError::Conflict(_))),
            "{what}"
        );
        for m in &more {
            assert!(s.holder(&m.id).await.unwrap().is_none(), "{what}: a row was kept");
        }
    }
    assert_eq!(
        s.holder_by_identity(&city[3].identity_hash)
            .await
            .unwrap()
            .as_ref(),
        Some(&city[3])
    );
    // The refusals left nothing half-done: the batch goes in once its clashes are gone.
    assert_eq!(s.insert_holders(&more).await.unwrap(), 10);
    assert_eq!(s.holder(&more[7].id).await.unwrap().as_ref(), Some(&more[7]));

    // Venues come back with their ids, in input order.
    let region = Issuer::parse("CN-ZJ").unwrap();
    let before = venue(s, "Town Hall", VenueCategory::Office).await;
    let new: Vec<NewVenue> = (0..300)
        .map(|i| NewVenue {
            name: format!("Venue {i}"),
            category: VenueCategory::ALL[i % VenueCategory::ALL.len()],
            region: region.clone(),
            admission: [
                AdmissionPolicy::GreenOnly,
                AdmissionPolicy::GreenOrYellow,
                AdmissionPolicy::All,
            ][i % 3],
        })
        .collect();
    let made = s.insert_venues(&new).await.unwrap();
    assert_eq!(made.len(), new.len());
    for (v, n) in made.iter().zip(&new) {
        assert_eq!(
            (&v.name, v.category, &v.region, v.admission),
            (&n.name, n.category, &n.region, n.admission)
        );
        assert_eq!(s.venue(v.id).await.unwrap().as_ref(), Some(v));
    }
    let after = venue(s, "Station", VenueCategory::Transport).await;
    let ids: std::collections::HashSet<VenueId> =
        made.iter().map(|v| v.id).chain([before.id, after.id]).collect();
    assert_eq!(ids.len(), 302, "ids are unique");
    assert_eq!(s.venues().await.unwrap().len(), 302);
    assert!(s.insert_venues(&[]).await.unwrap().is_empty());
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

pub async fn activity_counts_for_the_dashboard<H: Harness>(h: &H) {
    let s = h.store();
    let since = T - Duration::days(1);
    let empty = s.activity(since, 100).await.unwrap();
    assert_eq!(empty, Activity::default());

    let city = synthetic_holders(0, 10);
    s.insert_holders(&city).await.unwrap();
    let mall = venue(s, "Mall", VenueCategory::Mall).await;
    let gate = s.insert_device(mall.id, "gate", &[7; 32]).await.unwrap();
    let at = |seq: i64, t: OffsetDateTime| CheckIn {
        holder: city[seq as usize % 10].id.clone(),
        venue: mall.id,
        device: gate.id,
        seq,
        at: t,
        out: None,
    };
    let batch = vec![
        at(0, T - Duration::days(2)),
        at(1, T),
        at(2, T + Duration::minutes(10)),
        at(3, T + Duration::minutes(59)),
        at(4, T + Duration::minutes(60)),
        at(5, T + Duration::minutes(90)),
    ];
    s.insert_checkins(&batch).await.unwrap();
    // A re-sent scan is counted once.
    s.insert_checkins(&batch[1..2]).await.unwrap();

    s.add_fact(
        &city[1].id,
        &Fact::Test(TestResult {
            positive: true,
            sampled_at: T,
            lab: "City Lab".into(),
        }),
    )
    .await
    .unwrap();
    s.add_fact(
        &city[9].id,
        &Fact::Test(TestResult {
            positive: false,
            sampled_at: T,
            lab: "City Lab".into(),
        }),
    )
    .await
    .unwrap();
    let case = s.add_case(&city[2].id, T - Duration::days(1), T).await.unwrap();
    let applied = (
        city[3].id.clone(),
        exposure(case.id, mall.id, T - Duration::hours(5), ExposureGrade::SamePlace),
    );
    let pending = (
        city[4].id.clone(),
        exposure(case.id, mall.id, T - Duration::hours(5), ExposureGrade::SamePlace),
    );
    s.add_exposures_as(&[applied], ExposureState::Applied)
        .await
        .unwrap();
    s.add_exposures_as(&[pending], ExposureState::Pending)
        .await
        .unwrap();

    let a = s.activity(since, 100).await.unwrap();
    assert_eq!(a.holders, 10);
    assert_eq!(
        a.checkins_per_hour,
        vec![(T, 3), (T + Duration::hours(1), 2)],
        "the scan before `since` is left out, the re-sent one counted once"
    );
    assert_eq!(a.exposures_per_hour, vec![(T - Duration::hours(5), 2)]);
    let mut want = vec![city[1].id.clone(), city[2].id.clone(), city[3].id.clone()];
    want.sort();
    assert_eq!(
        a.flagged, want,
        "a negative test and a pending exposure flag no one"
    );
    assert_eq!(s.activity(since, 2).await.unwrap().flagged.len(), 2);
}

/// For the backends' own tests of damaged data: stores one pending exposure (case 1, venue 1)
/// and returns it as stored.
pub async fn add_one_pending_exposure<S: Store>(s: &S) -> StoredExposure {
    let at = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
    let hour = Duration::hours(1);
    let stored = StoredExposure {
        holder: hid(1),
        exposure: Exposure {
            case: CaseId(1),
            venue: VenueId(1),
            case_interval: (at, at + hour),
            contact_interval: (at, at + hour),
            overlap_minutes: 60,
            grade: ExposureGrade::Close,
        },
        state: ExposureState::Pending,
    };
    s.add_exposures_as(
        &[(stored.holder.clone(), stored.exposure.clone())],
        ExposureState::Pending,
    )
    .await
    .unwrap();
    stored
}

/// After a backend's test damaged the state of `stored` to one this version does not know: it
/// is unreadable data, not a database failure, and never some other state.
pub async fn an_unknown_exposure_state_reads_as_corrupt<S: Store>(s: &S, stored: &StoredExposure) {
    assert!(matches!(
        s.exposures_of_case(stored.exposure.case).await,
        Err(StoreError::Corrupt(_))
    ));
    assert!(matches!(
        s.set_exposure_state(&stored.key(), ExposureState::Applied).await,
        Err(StoreError::Corrupt(_))
    ));
    assert!(s.pending_exposures(10).await.unwrap().is_empty());
    assert!(s.holder_facts(&stored.holder).await.unwrap().exposures.is_empty());
}
