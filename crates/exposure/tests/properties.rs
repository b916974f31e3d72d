//! On random small cities the engine's contacts and grades equal a brute-force comparison of
//! every pair of check-ins.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use healthcode_domain::{CaseId, CheckIn, DeviceId, ExposureGrade, HolderId, VenueCategory, VenueId};
use healthcode_exposure::{CaseJob, TracingIndex, grade, presence, trace_case};
use healthcode_policy::Policy;
use proptest::prelude::*;
use time::{Duration, OffsetDateTime};

const T0: i64 = 1_795_000_000;

fn hid(n: u8) -> HolderId {
    HolderId::from_bytes(&[n; 8]).unwrap()
}

fn category(v: VenueId) -> Option<VenueCategory> {
    Some(VenueCategory::ALL[(v.0 as usize) % VenueCategory::ALL.len()])
}

prop_compose! {
    fn checkin()(holder in 0u8..8, venue in 0i64..4, at in 0i64..(48 * 60), out in prop::option::of(-30i64..900), seq in any::<i64>())
        -> CheckIn {
        let at_t = OffsetDateTime::from_unix_timestamp(T0 + at * 60).unwrap();
        CheckIn {
            holder: hid(holder),
            venue: VenueId(venue),
            device: DeviceId(venue),
            seq,
            at: at_t,
            out: out.map(|m| at_t + Duration::minutes(m)),
        }
    }
}

type Found = BTreeMap<(HolderId, i64, OffsetDateTime), (ExposureGrade, i64)>;

fn brute_force(
    p: &healthcode_policy::TracingPolicy,
    case_holder: &HolderId,
    window: (OffsetDateTime, OffsetDateTime),
    all: &[CheckIn],
) -> Found {
    let mut out: BTreeMap<(HolderId, i64, OffsetDateTime), (ExposureGrade, Duration)> = BTreeMap::new();
    for c in all.iter().filter(|c| &c.holder == case_holder) {
        let cat = category(c.venue).unwrap();
        let (s, e) = presence(p, c, cat);
        let (s, e) = (s.max(window.0), e.min(window.1));
        if e <= s {
            continue;
        }
        for o in all
            .iter()
            .filter(|o| &o.holder != case_holder && o.venue == c.venue)
        {
            let (os, oe) = presence(p, o, cat);
            let overlap = oe.min(e) - os.max(s);
            if let Some(g) = grade(p, cat, overlap) {
                let key = (o.holder.clone(), o.venue.0, os);
                if out.get(&key).is_none_or(|(_, d)| *d < overlap) {
                    out.insert(key, (g, overlap));
                }
            }
        }
    }
    out.into_iter()
        .map(|(k, (g, d))| (k, (g, d.whole_minutes())))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]
    #[test]
    fn the_engine_equals_brute_force(
        mut all in prop::collection::vec(checkin(), 0..60),
        from in 0i64..(48 * 60),
        len in 0i64..(48 * 60),
        held in (0i64..(48 * 60), 0i64..(60 * 60)),
    ) {
        // (device, seq) is unique in a store.
        for (i, c) in all.iter_mut().enumerate() {
            c.seq = i as i64;
        }
        let policy = Policy::default_policy();
        let p = policy.tracing();
        let case_holder = hid(0);
        let at = |m: i64| OffsetDateTime::from_unix_timestamp(T0 + m * 60).unwrap();
        let window = (at(from), at(from + len));
        let found = trace_case(p, CaseId(1), &case_holder, window, &all, &all, &category);
        let engine: Found = found
            .iter()
            .map(|(h, e)| ((h.clone(), e.venue.0, e.contact_interval.0), (e.grade, e.overlap_minutes)))
            .collect();
        prop_assert_eq!(engine.len(), found.len(), "one exposure per contact check-in");
        prop_assert_eq!(engine, brute_force(p, &case_holder, window, &all));
        for (h, e) in &found {
            prop_assert!(h != &case_holder, "the case is not its own contact");
            prop_assert!(e.case_interval.0 >= window.0 && e.case_interval.1 <= window.1);
        }

        // The in-memory index of everything finds exactly the same exposures, with no other
        // input than the case, its holder and its window; alone and many at once.
        let ix = TracingIndex::from_checkins(p, at(-24 * 60), at(100 * 60), &all, &category).unwrap();
        prop_assert_eq!(ix.len(), all.len());
        prop_assert!(ix.covers(window));
        prop_assert_eq!(&ix.trace_case(CaseId(1), &case_holder, window), &found);
        let job = |h: u8| CaseJob { case: CaseId(i64::from(h)), holder: hid(h), window };
        let jobs: Vec<CaseJob> = (0..8).map(job).collect();
        let many = ix.trace_many(&jobs, 3);
        for (j, got) in jobs.iter().zip(&many) {
            let alone = trace_case(p, j.case, &j.holder, window, &all, &all, &category);
            prop_assert_eq!(got, &alone);
        }

        // An index of part of the time, [held.0, held.0 + held.1): what the engine finds from
        // the check-ins arriving then (the case's own among them), whether or not it covers the
        // window.
        let (lo, hi) = (at(held.0), at(held.0 + held.1));
        let part = TracingIndex::from_checkins(p, lo, hi, &all, &category).unwrap();
        let inside: Vec<CheckIn> = all.iter().filter(|c| c.at >= lo && c.at < hi).cloned().collect();
        prop_assert_eq!(part.len(), inside.len());
        prop_assert_eq!(
            part.trace_case(CaseId(1), &case_holder, window),
            trace_case(p, CaseId(1), &case_holder, window, &inside, &inside, &category)
        );
        if part.covers(window) {
            prop_assert_eq!(&part.trace_case(CaseId(1), &case_holder, window), &found);
        }
    }
}

#[test]
fn an_index_takes_a_scan_once_and_ignores_unknown_venues() {
    let policy = Policy::default_policy();
    let p = policy.tracing();
    let at = |m: i64| OffsetDateTime::from_unix_timestamp(T0 + m * 60).unwrap();
    let c = |holder: u8, venue: i64, seq: i64, m: i64| CheckIn {
        holder: hid(holder),
        venue: VenueId(venue),
        device: DeviceId(venue),
        seq,
        at: at(m),
        out: None,
    };
    // Holder 1 at venue 1 with the case (twice, the same scan), and at venue 9, which has no
    // category.
    let all = vec![
        c(0, 1, 1, 10),
        c(1, 1, 2, 20),
        c(1, 1, 2, 20),
        c(1, 9, 3, 10),
        c(0, 9, 4, 10),
    ];
    let known = |v: VenueId| (v.0 != 9).then(|| category(v)).flatten();
    let ix = TracingIndex::from_checkins(p, at(0), at(60), &all, &known).unwrap();
    assert_eq!(ix.len(), 2);
    let found = ix.trace_case(CaseId(1), &hid(0), (at(0), at(60)));
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].0, hid(1));
    assert_eq!(found[0].1.venue, VenueId(1));
    // A holder the index never saw has no contacts.
    assert!(ix.trace_case(CaseId(2), &hid(5), (at(0), at(60))).is_empty());
}
