//! A venue's scanner key can be revoked by an admin: refused at once, even though the server had
//! it cached; nobody else may revoke; the device stays listed with when; the act is audited.
//! (Device keys could not be revoked at all: `DELETE …/devices` answered 405.)

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{TestApp, problem_type};
use serde_json::Value;

common::on_both_backends!(a_revoked_device_key_is_refused_at_once_and_only_an_admin_may_revoke);

async fn a_revoked_device_key_is_refused_at_once_and_only_an_admin_may_revoke(app: &TestApp) {
    let holder = app.register_resident().await;
    let token = app.token(&holder).await;
    let (mall, clinic) = (app.mall().await, app.clinic().await);
    // The key works (and is now in the server's cache).
    app.scan(&mall, &token, 1).await;
    let admin = app.admin().await.token.clone();
    let officer = app.officer().await.token.clone();
    let devices = app
        .get(&format!("/api/v1/admin/venues/{}/devices", mall.id), Some(&admin))
        .await;
    let device = devices[0]["id"].as_i64().unwrap();
    assert!(devices[0].get("revoked_at").is_none());
    let path = format!("/api/v1/admin/venues/{}/devices/{device}", mall.id);
    // An officer may not; another venue's id does not reach it.
    let (st, p) = app.call("DELETE", &path, Some(&officer), None).await;
    assert_eq!(st.as_u16(), 403, "{p}");
    let elsewhere = format!("/api/v1/admin/venues/{}/devices/{device}", clinic.id);
    let (st, p) = app.call("DELETE", &elsewhere, Some(&admin), None).await;
    assert_eq!(
        (st.as_u16(), problem_type(&p)),
        (404, "urn:healthcode:problem:not-found")
    );
    app.scan(&mall, &token, 2).await;
    // The admin revokes it: refused at once.
    let before = app.audit_log().await.len();
    let revoked = app.ok("DELETE", &path, Some(&admin), None).await;
    assert!(revoked["revoked_at"].is_string(), "{revoked}");
    let (st, p) = app.try_scan(&mall.key, mall.id, &token, 3).await;
    assert_eq!(
        (st.as_u16(), problem_type(&p)),
        (401, "urn:healthcode:problem:unauthorized"),
        "{p}"
    );
    assert!(p["detail"].as_str().unwrap().contains("revoked"), "{p}");
    // Twice is refused, and the first time stands.
    let (st, p) = app.call("DELETE", &path, Some(&admin), None).await;
    assert_eq!(
        (st.as_u16(), problem_type(&p)),
        (409, "urn:healthcode:problem:refused"),
        "{p}"
    );
    let listed = app
        .get(&format!("/api/v1/admin/venues/{}/devices", mall.id), Some(&admin))
        .await;
    assert_eq!(listed[0]["revoked_at"], revoked["revoked_at"]);
    // Another venue's key still works; the revocation is in the audit log.
    app.scan(&clinic, &token, 4).await;
    let entries: Vec<Value> = app.audit_entries_after(before).await;
    assert!(
        entries.iter().any(|e| e["action"] == "device-revoke"),
        "{entries:?}"
    );
}
