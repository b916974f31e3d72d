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
    // Counted by actor and action from a time on, with the earliest counted: officer-1 read at
    // minutes 1, 4, 7 and 10.
    assert_eq!(
        s.audit_count("officer-1", "read-personal-data", T).await.unwrap(),
        (4, Some(T + Duration::minutes(1)))
    );
    assert_eq!(
        s.audit_count("officer-1", "read-personal-data", T + Duration::minutes(5))
            .await
            .unwrap(),
        (2, Some(T + Duration::minutes(7)))
    );
    assert_eq!(s.audit_count("officer-1", "purge", T).await.unwrap(), (0, None));
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

pub async fn tree_heads_are_kept_and_show_a_rewrite_under_them<H: Harness>(h: &H) {
    use crate::transparency::{LogTree, StoredTreeHead};
    let s = h.store();
    assert_eq!(s.latest_tree_head().await.unwrap(), None);
    let head_of = |tree: &LogTree, at: u64| StoredTreeHead {
        tree_size: tree.len(),
        root_hash: tree.root(),
        signed_at_ms: at,
        key_id: [1, 2, 3, 4, 5, 6, 7, 8],
        signature: [0x5a; 64],
    };
    let mut tree = LogTree::new();
    // An empty log has a head too.
    s.save_tree_head(&head_of(&tree, 1_000)).await.unwrap();
    for i in 0..9 {
        let r = s
            .append_audit(&AuditEntry {
                at: T + Duration::minutes(i),
                actor: "officer-1".into(),
                role: "officer".into(),
                action: "read-personal-data".into(),
                subject: Some(hid(1)),
                purpose: "case investigation".into(),
            })
            .await
            .unwrap();
        assert!(tree.push_record(&r), "record {} follows the tree", r.seq);
        if i == 4 || i == 8 {
            s.save_tree_head(&head_of(&tree, 2_000 + i as u64)).await.unwrap();
        }
    }
    let heads = s.tree_heads().await.unwrap();
    assert_eq!(
        heads.iter().map(|h| h.tree_size).collect::<Vec<_>>(),
        vec![0, 5, 9]
    );
    assert_eq!(heads[2], head_of(&tree, 2_008), "a head comes back byte for byte");
    assert_eq!(s.latest_tree_head().await.unwrap().as_ref(), heads.last());
    let records = crate::audit::all_audit_records(s).await.unwrap();
    let rebuilt = verify_tree_heads(&records, &heads).unwrap();
    assert_eq!(rebuilt.root(), tree.root());
    // The attacker's rewrite: drop record 3 and re-chain the rest with correct hashes. The chain
    // verifies again; the heads kept over the old rows do not.
    let mut rewritten: Vec<AuditRecord> = Vec::new();
    for r in records.iter().filter(|r| r.seq != 3) {
        let head = rewritten.last().map(|p: &AuditRecord| (p.seq, p.hash));
        rewritten.push(AuditRecord::next(head, &r.entry));
    }
    assert_eq!(verify_chain(rewritten.clone()), Ok(8));
    let mismatch = verify_tree_heads(&rewritten, &heads).unwrap_err();
    assert_eq!(mismatch.tree_size, 5, "{mismatch}");
}
