//! On random small cities the engine's contacts and grades equal a brute-force comparison of
//! every pair of check-ins.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use healthcode_domain::{CaseId, CheckIn, DeviceId, ExposureGrade, HolderId, VenueCategory, VenueId};
use healthcode_exposure::{TracingIndex, grade, presence, trace_case};
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
    ) {
        // (device, seq) is unique in a store.
        for (i, c) in all.iter_mut().enumerate() {
            c.seq = i as i64;
        }
        let policy = Policy::default_policy();
        let p = policy.tracing();
        let case_holder = hid(0);
        let window = (
            OffsetDateTime::from_unix_timestamp(T0 + from * 60).unwrap(),
            OffsetDateTime::from_unix_timestamp(T0 + (from + len) * 60).unwrap(),
        );
        let found = trace_case(p, CaseId(1), &case_holder, window, &all, &all, &category);
        let engine: Found = found
            .iter()
            .map(|(h, e)| ((h.clone(), e.venue.0, e.contact_interval.0), (e.grade, e.overlap_minutes)))
            .collect();
        prop_assert_eq!(engine.len(), found.len(), "one exposure per contact check-in");
        prop_assert_eq!(engine, brute_force(p, &case_holder, window, &all));
        // The in-memory index finds exactly the same exposures.
        let ix = TracingIndex::from_checkins(p, OffsetDateTime::from_unix_timestamp(T0).unwrap(), &all, &category);
        prop_assert_eq!(ix.len(), all.len());
        let from_index = ix.trace_case(p, CaseId(1), &case_holder, window, &all, &category);
        prop_assert_eq!(&from_index, &found);
        let job = healthcode_exposure::CaseJob { case: CaseId(1), holder: case_holder.clone(), window, own: all.clone() };
        let many = ix.trace_many(p, &[job.clone(), job], &category, 2);
        prop_assert_eq!(&many[0], &found);
        prop_assert_eq!(&many[1], &found);
        for (h, e) in &found {
            prop_assert!(h != &case_holder, "the case is not its own contact");
            prop_assert!(e.case_interval.0 >= window.0 && e.case_interval.1 <= window.1);
        }
    }
}
