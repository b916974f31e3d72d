//! Lab reports, consents, the reach of a case, read digests.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use super::*;

pub async fn lab_reports_are_unique_and_found_by_reference<H: Harness>(h: &H) {
    let s = h.store();
    let report = LabReport {
        reference: "LAB-1".into(),
        lab: "Zhejiang CDC".into(),
        identity_hash: [9; 32],
        recorded_by: OfficerId(3),
        recorded_at: T,
    };
    s.add_lab_report(&report).await.unwrap();
    assert_eq!(s.lab_report("LAB-1").await.unwrap(), Some(report.clone()));
    assert_eq!(s.lab_report("LAB-2").await.unwrap(), None);
    // A second report under the same reference (naming someone else) is refused, and the first
    // stays as it was.
    let again = LabReport {
        identity_hash: [8; 32],
        ..report.clone()
    };
    assert!(matches!(
        s.add_lab_report(&again).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(s.lab_report("LAB-1").await.unwrap(), Some(report));
}

pub async fn a_case_reaches_its_holder_and_exposed_contacts_only<H: Harness>(h: &H) {
    let s = h.store();
    let case = s.add_case(&hid(1), T - Duration::days(1), T).await.unwrap();
    let other = s.add_case(&hid(4), T - Duration::days(1), T).await.unwrap();
    let v = venue(s, "Mall", VenueCategory::Mall).await;
    s.add_exposures(&[(
        hid(2),
        exposure(case.id, v.id, T - Duration::hours(5), ExposureGrade::Close),
    )])
    .await
    .unwrap();
    s.add_exposures_as(
        &[(
            hid(3),
            exposure(case.id, v.id, T - Duration::hours(5), ExposureGrade::SamePlace),
        )],
        ExposureState::Pending,
    )
    .await
    .unwrap();
    assert!(s.case_reaches(case.id, &hid(1)).await.unwrap());
    assert!(s.case_reaches(case.id, &hid(2)).await.unwrap());
    assert!(
        s.case_reaches(case.id, &hid(3)).await.unwrap(),
        "pending exposures count"
    );
    assert!(!s.case_reaches(case.id, &hid(4)).await.unwrap());
    assert!(!s.case_reaches(other.id, &hid(1)).await.unwrap());
    assert!(!s.case_reaches(CaseId(case.id.0 + 1000), &hid(1)).await.unwrap());
    // Who recorded a case is kept (a case opens nothing to them); none for a case recorded
    // without an officer, or no such case.
    let recorded = s
        .add_case_by(&hid(5), T - Duration::days(1), T, Some(OfficerId(7)))
        .await
        .unwrap();
    assert_eq!(s.case_recorded_by(recorded.id).await.unwrap(), Some(OfficerId(7)));
    assert_eq!(s.case_recorded_by(case.id).await.unwrap(), None);
    assert_eq!(s.case_recorded_by(CaseId(case.id.0 + 1000)).await.unwrap(), None);
    assert!(s.case_reaches(recorded.id, &hid(5)).await.unwrap());
}

fn new_consent(holder: u8, scope: ConsentScope, given: ConsentGiven) -> NewConsent {
    NewConsent {
        holder: hid(holder),
        scope,
        granted_to: (given != ConsentGiven::App).then_some(OfficerId(7)),
        given,
        obtained_by: (given != ConsentGiven::App).then_some(OfficerId(7)),
        created_at: T,
        expires_at: T + Duration::days(7),
    }
}

pub async fn consents_are_kept_listed_and_revoked_by_their_holder_only<H: Harness>(h: &H) {
    let s = h.store();
    let a = s
        .add_consent(&new_consent(1, ConsentScope::Proxy, ConsentGiven::App))
        .await
        .unwrap();
    let b = s
        .add_consent(&new_consent(
            1,
            ConsentScope::PrintedCode,
            ConsentGiven::OneTimeCode,
        ))
        .await
        .unwrap();
    let c = s
        .add_consent(&new_consent(2, ConsentScope::Proxy, ConsentGiven::InPerson))
        .await
        .unwrap();
    assert_ne!(a.id, b.id);
    assert_eq!(s.consent(a.id).await.unwrap(), Some(a.clone()));
    assert_eq!(s.consent(c.id).await.unwrap(), Some(c.clone()));
    assert_eq!(s.consents_of(&hid(1)).await.unwrap(), vec![b.clone(), a.clone()]);
    assert_eq!(s.consent(c.id + 1000).await.unwrap(), None);
    // Longer than allowed, or an in-person consent that names no officer: refused by the schema.
    let long = NewConsent {
        expires_at: T + Duration::days(31),
        ..new_consent(1, ConsentScope::Proxy, ConsentGiven::App)
    };
    assert!(s.add_consent(&long).await.is_err());
    let unattested = NewConsent {
        obtained_by: None,
        ..new_consent(1, ConsentScope::Proxy, ConsentGiven::InPerson)
    };
    assert!(s.add_consent(&unattested).await.is_err());
    assert_eq!(s.consents_of(&hid(1)).await.unwrap().len(), 2);
    // Another holder cannot revoke it; its holder can, once.
    let at = T + Duration::hours(1);
    assert!(!s.revoke_consent(&hid(2), a.id, at).await.unwrap());
    assert_eq!(s.consent(a.id).await.unwrap().unwrap().revoked_at, None);
    assert!(s.revoke_consent(&hid(1), a.id, at).await.unwrap());
    assert!(
        !s.revoke_consent(&hid(1), a.id, at + Duration::hours(1))
            .await
            .unwrap()
    );
    let revoked = s.consent(a.id).await.unwrap().unwrap();
    assert_eq!(revoked.revoked_at, Some(at));
    assert_eq!(
        revoked.opens(&hid(1), ConsentScope::Proxy, OfficerId(7), at),
        Err(ConsentRefusal::Revoked)
    );
    assert_eq!(
        s.consent(b.id)
            .await
            .unwrap()
            .unwrap()
            .opens(&hid(1), ConsentScope::PrintedCode, OfficerId(7), at),
        Ok(())
    );
}

pub async fn reads_are_counted_for_the_digest_which_is_sent_once_a_day<H: Harness>(h: &H) {
    let s = h.store();
    let read = |who: &str, role: &str, subject: u8, at: OffsetDateTime| AuditEntry {
        at,
        actor: who.into(),
        role: role.into(),
        action: "read-personal-data".into(),
        subject: Some(hid(subject)),
        purpose: "case investigation (case 1)".into(),
    };
    for e in [
        read("officer:1:zhao", "officer", 1, T + Duration::hours(1)),
        read("officer:2:qian", "officer", 1, T + Duration::hours(2)),
        read("officer:3:sun", "admin", 1, T + Duration::hours(3)),
        read("officer:1:zhao", "officer", 2, T + Duration::hours(3)),
        // Not counted: the holder's own export, a system read, another action, outside the window.
        read("holder:0101010101010101", "holder", 1, T + Duration::hours(1)),
        read("system:consent", "system", 1, T + Duration::hours(1)),
        AuditEntry {
            action: "holder-search".into(),
            ..read("officer:1:zhao", "officer", 1, T + Duration::hours(1))
        },
        read("officer:1:zhao", "officer", 1, T + Duration::days(2)),
    ] {
        s.append_audit(&e).await.unwrap();
    }
    let counts = s.reads_between(T, T + Duration::days(1)).await.unwrap();
    let mut got: Vec<(HolderId, String, u64)> =
        counts.into_iter().map(|c| (c.holder, c.role, c.reads)).collect();
    got.sort();
    let mut want = vec![
        (hid(1), "admin".to_owned(), 1),
        (hid(1), "officer".to_owned(), 2),
        (hid(2), "officer".to_owned(), 1),
    ];
    want.sort();
    assert_eq!(got, want);
    let day = T.date();
    assert!(s.mark_digest_sent(&hid(1), day).await.unwrap());
    assert!(!s.mark_digest_sent(&hid(1), day).await.unwrap());
    assert!(s.mark_digest_sent(&hid(2), day).await.unwrap());
    assert!(
        s.mark_digest_sent(&hid(1), day.next_day().unwrap())
            .await
            .unwrap()
    );
}
