//! Text that a store cannot keep is refused at the edge, the same on both stores: a NUL character
//! (`\u0000`) in any field is a 422 naming the field, and nothing is stored. PostgreSQL used to
//! answer 500 for each of these (SQLite kept them).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{TestApp, problem_type, rfc3339};
use healthcode_server::now;
use serde_json::{Value, json};
use time::Duration;

common::on_both_backends!(text_with_a_nul_character_is_refused_naming_the_field_and_nothing_changes);

/// Sends `body` and expects a 422 that names `field`.
async fn refused(app: &TestApp, path: &str, token: Option<&str>, body: Value, field: &str) {
    let (st, p) = app.call("POST", path, token, Some(body)).await;
    assert_eq!(st.as_u16(), 422, "{path}: {p}");
    assert_eq!(problem_type(&p), "urn:healthcode:problem:invalid-field", "{p}");
    let detail = p["detail"].as_str().unwrap();
    assert!(detail.starts_with(&format!("{field}:")), "{path}: {detail}");
    assert!(detail.contains("NUL"), "{detail}");
}

async fn text_with_a_nul_character_is_refused_naming_the_field_and_nothing_changes(app: &TestApp) {
    // A staff username, before any sign-in.
    refused(
        app,
        "/api/v1/admin/sessions",
        None,
        json!({"username": "root\u{0}", "password": "anything at all"}),
        "username",
    )
    .await;
    let visitor = app.register_visitor().await;
    let admin = app.admin().await.token.clone();
    let officer = app.officer().await.token.clone();
    let mall = app.mall().await;
    let audit_before = app.audit_log().await.len();
    // A holder's appeal.
    refused(
        app,
        "/api/v1/me/appeals",
        Some(&visitor.token),
        json!({"text": "I was not\u{0} there"}),
        "text",
    )
    .await;
    assert_eq!(
        app.get("/api/v1/me/appeals", Some(&visitor.token)).await,
        json!([])
    );
    // A venue's name, and a device's label.
    let venues_before = app.get("/api/v1/admin/venues", Some(&admin)).await;
    refused(
        app,
        "/api/v1/admin/venues",
        Some(&admin),
        json!({"name": "Mall\u{0}", "category": "mall", "admission": "green-only"}),
        "name",
    )
    .await;
    assert_eq!(app.get("/api/v1/admin/venues", Some(&admin)).await, venues_before);
    let devices_path = format!("/api/v1/admin/venues/{}/devices", mall.id);
    let devices_before = app.get(&devices_path, Some(&admin)).await;
    refused(
        app,
        &devices_path,
        Some(&admin),
        json!({"label": "gate\u{0}"}),
        "label",
    )
    .await;
    assert_eq!(app.get(&devices_path, Some(&admin)).await, devices_before);
    // A laboratory's name, and an override's reason.
    refused(
        app,
        "/api/v1/admin/tests",
        Some(&officer),
        json!({"holder": visitor.hex, "positive": true, "sampled_at": rfc3339(now()), "lab": "CDC\u{0}"}),
        "lab",
    )
    .await;
    let until = rfc3339(now() + Duration::days(1));
    refused(
        app,
        "/api/v1/admin/overrides",
        Some(&officer),
        json!({"holder": visitor.hex, "colour": "red", "reason": "seen\u{0}", "expires_at": until}),
        "reason",
    )
    .await;
    // Deeper in a body: the path names the element.
    refused(
        app,
        "/api/v1/me/declarations",
        Some(&visitor.token),
        json!({"kind": "health", "symptoms": ["fever\u{0}"]}),
        "symptoms[0]",
    )
    .await;
    // Nothing of it was recorded: the holder is still green, and the audit log shows only reads
    // (the lists above), no change.
    assert_eq!(app.code(&visitor).await["colour"], "green");
    assert_eq!(
        app.get("/api/v1/admin/overrides", Some(&officer)).await,
        json!([])
    );
    let changes: Vec<Value> = app
        .audit_entries_after(audit_before)
        .await
        .into_iter()
        .filter(|e| {
            let action = e["action"].as_str().unwrap();
            ["create", "record", "propose", "add", "decide", "change"]
                .iter()
                .any(|verb| action.contains(verb))
        })
        .collect();
    assert!(changes.is_empty(), "{changes:?}");
    // A query string with %00 is refused too.
    let auditor = app.auditor().await.token.clone();
    let (st, p) = app
        .call("GET", "/api/v1/admin/audit?after=0%00", Some(&auditor), None)
        .await;
    assert_eq!(st.as_u16(), 422, "{p}");
}
