//! A staff member changes their own password after the first sign-in (there was no way to): the
//! current one must be right, the new one hard to guess; every session of the account ends, so
//! a stolen session does not outlive the change, and a wrong guess through one ends it; audited.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{TestApp, problem_type};
use serde_json::json;

common::on_both_backends!(a_staff_member_changes_their_own_password_and_every_session_ends);

async fn a_staff_member_changes_their_own_password_and_every_session_ends(app: &TestApp) {
    let officer = app.officer().await.clone();
    // A second session of the same account, as someone who copied it would hold.
    let username = officer.username.clone();
    let other = app.sign_in_again(&officer).await;
    let change_with = async |token: &str, current: &str, new: &str| {
        app.call(
            "POST",
            "/api/v1/admin/me/password",
            Some(token),
            Some(json!({"current_password": current, "new_password": new})),
        )
        .await
    };
    let change = async |current: &str, new: &str| change_with(&officer.token, current, new).await;
    // A guessable or unchanged new one changes nothing.
    let (st, p) = change("correct horse battery", "111111111111").await;
    assert_eq!(
        (st.as_u16(), problem_type(&p)),
        (422, "urn:healthcode:problem:invalid-field"),
        "{p}"
    );
    let (st, p) = change("correct horse battery", "correct horse battery").await;
    assert_eq!(st.as_u16(), 422, "{p}");
    assert_eq!(
        app.call("GET", "/api/v1/admin/me", Some(&other), None).await.0,
        200
    );
    // Nor does a wrong current password; and it ends the session that guessed, so a copied
    // session cannot be used to find the password.
    let (st, p) = change_with(&other, "a wrong guess here", "lantern orbit mango vessel").await;
    assert_eq!(
        (st.as_u16(), problem_type(&p)),
        (401, "urn:healthcode:problem:unauthorized"),
        "{p}"
    );
    assert_eq!(
        app.call("GET", "/api/v1/admin/me", Some(&other), None).await.0,
        401
    );
    let (st, _) = change_with(&other, "correct horse battery", "lantern orbit mango vessel").await;
    assert_eq!(st.as_u16(), 401);
    assert_eq!(
        app.call("GET", "/api/v1/admin/me", Some(&officer.token), None)
            .await
            .0,
        200
    );
    // A session the change will end, as someone who copied it would hold.
    let other = app.sign_in_again(&officer).await;
    let before = app.audit_log().await.len();
    // The change: both sessions end.
    let (st, p) = change("correct horse battery", "lantern orbit mango vessel").await;
    assert_eq!(st.as_u16(), 204, "{p}");
    for token in [&officer.token, &other] {
        assert_eq!(
            app.call("GET", "/api/v1/admin/me", Some(token), None).await.0,
            401
        );
    }
    // The old password no longer opens the account; the new one does.
    let (st, _) = app
        .call(
            "POST",
            "/api/v1/admin/sessions",
            None,
            Some(json!({"username": username, "password": "correct horse battery", "code": "000000"})),
        )
        .await;
    assert_eq!(st.as_u16(), 401);
    app.post(
        "/api/v1/admin/sessions",
        None,
        json!({"username": username, "password": "lantern orbit mango vessel", "code": officer.next_code().await}),
    )
    .await;
    let changes: Vec<_> = app
        .audit_entries_after(before)
        .await
        .into_iter()
        .filter(|e| e["action"] == "password-change")
        .collect();
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!(changes[0]["actor"], officer.actor.as_str());
}
