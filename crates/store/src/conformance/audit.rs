//! The audit chain.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use super::*;

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
