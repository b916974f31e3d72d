//! Readiness: a store in order takes the probe write, again and again.

use super::*;

pub async fn a_store_in_order_takes_the_readiness_write<H: Harness>(h: &H) {
    let s = h.store();
    for _ in 0..3 {
        s.check_writable().await.unwrap();
    }
    // Writes of every other kind still work after it.
    s.append_audit(&AuditEntry {
        at: T,
        actor: "system".into(),
        role: "system".into(),
        action: "probe".into(),
        subject: None,
        purpose: "readiness".into(),
    })
    .await
    .unwrap();
    assert_eq!(s.audit_records(0, 10).await.unwrap().len(), 1);
}
