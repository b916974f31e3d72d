//! Exposures: recorded once, reviewed once, and damaged states read as corrupt.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use super::*;

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

/// An exposure as traced: whose, and what.
type Traced = (HolderId, Exposure);

/// `x` as stored in `state`.
fn stored((holder, exposure): &Traced, state: ExposureState) -> StoredExposure {
    StoredExposure {
        holder: holder.clone(),
        exposure: exposure.clone(),
        state,
    }
}

/// The key that names `x`.
fn key(x: &Traced) -> ExposureKey {
    stored(x, ExposureState::Pending).key()
}

/// What [`exposures_wait_for_review`] traces: two cases, five exposures waiting for review (`a`
/// to `e`, also as `pending`) and one applied.
struct Review {
    first: ConfirmedCase,
    second: ConfirmedCase,
    v1: Venue,
    a: Traced,
    b: Traced,
    c: Traced,
    d: Traced,
    e: Traced,
    applied: Traced,
    pending: [Traced; 5],
}

pub async fn exposures_wait_for_review<H: Harness>(h: &H) {
    let s = h.store();
    let r = trace_for_review(s).await;
    pending_exposures_are_listed_and_do_not_count(s, &r).await;
    a_review_is_made_once(s, &r).await;
    concurrent_reviews_and_retention(s, &r).await;
}

async fn trace_for_review<S: Store>(s: &S) -> Review {
    use ExposureState::Pending;
    let first = s.add_case(&hid(1), T - Duration::days(2), T).await.unwrap();
    let second = s.add_case(&hid(5), T - Duration::days(1), T).await.unwrap();
    let v1 = venue(s, "Mall", VenueCategory::Mall).await;
    let v2 = venue(s, "Clinic", VenueCategory::Clinic).await;
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
    Review {
        first,
        second,
        v1,
        a,
        b,
        c,
        d,
        e,
        applied,
        pending,
    }
}

async fn pending_exposures_are_listed_and_do_not_count<S: Store>(s: &S, r: &Review) {
    use ExposureState::{Applied, Pending};
    let Review {
        first,
        second,
        a,
        b,
        c,
        d,
        e,
        applied,
        pending,
        ..
    } = r;
    // Pending exposures do not count for colours.
    assert_eq!(
        s.holder_facts(&hid(2)).await.unwrap().exposures,
        vec![applied.1.clone()]
    );
    assert!(s.holder_facts(&hid(3)).await.unwrap().exposures.is_empty());

    // Tracing again adds nothing, and each keeps the state it was first stored in.
    assert_eq!(s.add_exposures_as(pending, Applied).await.unwrap(), 0);
    assert_eq!(s.add_exposures(pending).await.unwrap(), 0);
    assert_eq!(
        s.add_exposures_as(std::slice::from_ref(applied), Pending)
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
            stored(d, Pending),
            stored(c, Pending),
            stored(b, Pending),
            stored(a, Pending)
        ]
    );
    assert_eq!(
        s.exposures_of_case(second.id).await.unwrap(),
        vec![stored(e, Pending), stored(applied, Applied)]
    );
    assert!(s.exposures_of_case(CaseId(999_999)).await.unwrap().is_empty());
    assert_eq!(
        s.pending_exposures(100).await.unwrap(),
        vec![
            stored(d, Pending),
            stored(c, Pending),
            stored(b, Pending),
            stored(a, Pending),
            stored(e, Pending)
        ]
    );
    assert_eq!(
        s.pending_exposures(2).await.unwrap(),
        vec![stored(d, Pending), stored(c, Pending)]
    );
    assert!(s.pending_exposures(0).await.unwrap().is_empty());
}

async fn a_review_is_made_once<S: Store>(s: &S, r: &Review) {
    use ExposureState::{Applied, Dismissed, Pending};
    let Review {
        first,
        v1,
        a,
        b,
        c,
        d,
        e,
        applied,
        pending,
        ..
    } = r;
    // Applying one makes it count; dismissing one keeps it out.
    assert_eq!(
        key(c),
        ExposureKey {
            holder: hid(2),
            case: first.id,
            venue: v1.id,
            contact_start: T - Duration::hours(5)
        }
    );
    assert_eq!(
        s.set_exposure_state(&key(c), Applied).await.unwrap(),
        stored(c, Applied)
    );
    assert_eq!(
        s.set_exposure_state(&key(b), Dismissed).await.unwrap(),
        stored(b, Dismissed)
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
                ..key(d)
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
                ..key(d)
            },
            Dismissed
        )
        .await,
        Err(StoreError::NotFound(_))
    ));
    let reviewed = vec![
        stored(d, Pending),
        stored(c, Applied),
        stored(b, Dismissed),
        stored(a, Pending),
    ];
    assert_eq!(s.exposures_of_case(first.id).await.unwrap(), reviewed);
    assert_eq!(
        s.pending_exposures(100).await.unwrap(),
        vec![stored(d, Pending), stored(a, Pending), stored(e, Pending)]
    );
    // Tracing the case again changes no decision.
    assert_eq!(s.add_exposures_as(pending, Pending).await.unwrap(), 0);
    assert_eq!(s.exposures_of_case(first.id).await.unwrap(), reviewed);
    assert_eq!(
        s.holder_facts(&hid(2)).await.unwrap().exposures,
        vec![c.1.clone(), applied.1.clone()]
    );
}

async fn concurrent_reviews_and_retention<S: Store>(s: &S, r: &Review) {
    use ExposureState::{Applied, Dismissed};
    let Review { first, second, a, .. } = r;
    // Officers reviewing at once: one decision stands, the others are refused.
    let ka = key(a);
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
