//! The lifecycle of staff credentials: a disabled account's live session is refused at once, a
//! password reset ends sessions and must be replaced, the last admin stays, sessions are listed
//! without their tokens and ended one or all, idle sessions end, a rotated device key is refused
//! at once; no officer can reach any of it, and all of it is audited.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{TestApp, masked, staff_phone};
use healthcode_server::Config;
use serde_json::json;

common::on_both_backends!(
    a_disabled_accounts_live_session_is_refused_at_once,
    a_password_reset_ends_sessions_and_must_be_replaced,
    no_admin_can_remove_themselves_or_the_last_admin,
    a_plain_officer_cannot_call_any_admin_lifecycle_endpoint,
    sessions_are_listed_without_tokens_and_ended_one_or_all,
    a_rotated_device_key_is_refused_at_once,
);

async fn a_disabled_accounts_live_session_is_refused_at_once(app: &TestApp) {
    let admin = app.admin().await.token.clone();
    let officer = app.officer().await.clone();
    app.get("/api/v1/admin/cases", Some(&officer.token)).await;
    let before = app.audit_log().await.len();
    let v = app
        .post(
            &format!("/api/v1/admin/officers/{}/disable", officer.id),
            Some(&admin),
            json!({}),
        )
        .await;
    assert_eq!(v["disabled"], true, "{v}");
    // The session that was just working is refused at the next request.
    let (st, _) = app
        .call("GET", "/api/v1/admin/cases", Some(&officer.token), None)
        .await;
    assert_eq!(st, 401);
    // Nor can it sign in, even with everything right.
    let (st, p) = app
        .call(
            "POST",
            "/api/v1/admin/sessions",
            None,
            Some(json!({"username": officer.username, "password": officer.password, "code": officer.next_code().await})),
        )
        .await;
    assert_eq!(st, 403, "{p}");
    assert!(p["detail"].as_str().unwrap().contains("disabled"), "{p}");
    let (st, _) = app
        .call(
            "POST",
            &format!("/api/v1/admin/officers/{}/disable", officer.id),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(st, 409);
    // Re-enabling restores powers, so one admin only proposes it: still disabled until a
    // second admin approves; the proposer cannot approve it.
    let (st, proposal) = app
        .call(
            "POST",
            &format!("/api/v1/admin/officers/{}/enable", officer.id),
            Some(&admin),
            Some(json!({})),
        )
        .await;
    assert_eq!(st, 202, "{proposal}");
    let id = proposal["id"].as_i64().unwrap();
    let again = json!({"username": officer.username, "password": officer.password, "code": officer.next_code().await});
    let (st, _) = app
        .call("POST", "/api/v1/admin/sessions", None, Some(again))
        .await;
    assert_eq!(st, 403, "enabled by one admin alone");
    let (st, _) = app
        .call(
            "POST",
            &format!("/api/v1/admin/proposals/{id}/approve"),
            Some(&admin),
            Some(json!({})),
        )
        .await;
    assert_eq!(st, 409, "the proposer approved their own proposal");
    app.approve(app.second_admin().await, id).await;
    // Enabled again, it signs in.
    let token = app.sign_in_again(&officer).await;
    app.get("/api/v1/admin/cases", Some(&token)).await;
    let actions: Vec<String> = app
        .audit_entries_after(before)
        .await
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_owned())
        .collect();
    assert!(actions.contains(&"account-disable".to_owned()), "{actions:?}");
    assert!(
        actions.contains(&"propose-account-enable".to_owned()),
        "{actions:?}"
    );
    assert!(
        actions.contains(&"approve-account-enable".to_owned()),
        "{actions:?}"
    );
}

async fn a_password_reset_ends_sessions_and_must_be_replaced(app: &TestApp) {
    let admin = app.admin().await.token.clone();
    let officer = app.officer().await.clone();
    let second = app.sign_in_again(&officer).await;
    let reset = app
        .post(
            &format!("/api/v1/admin/officers/{}/password-reset", officer.id),
            Some(&admin),
            json!({}),
        )
        .await;
    assert_eq!(reset["sessions_ended"], 2, "{reset}");
    // The new password went to the owner's phone; the admin's answer says where, not what.
    assert!(reset.get("one_time_password").is_none(), "{reset}");
    assert_eq!(reset["sent_to"], json!(masked(&staff_phone(&officer.username))));
    let one_time = app.gateway.password_for(&staff_phone(&officer.username));
    for token in [&officer.token, &second] {
        assert_eq!(
            app.call("GET", "/api/v1/admin/me", Some(token), None).await.0,
            401
        );
    }
    let sign_in =
        async |body: serde_json::Value| app.call("POST", "/api/v1/admin/sessions", None, Some(body)).await;
    // The old password is gone.
    let (st, _) =
        sign_in(json!({"username": officer.username, "password": officer.password, "code": "000000"})).await;
    assert_eq!(st, 401);
    // The new one must be replaced, and not by something guessable.
    let (st, p) = sign_in(json!({"username": officer.username, "password": one_time, "code": officer.next_code().await, "new_password": "111111111111"})).await;
    assert_eq!(st, 422, "{p}");
    let (st, v) = sign_in(json!({"username": officer.username, "password": one_time, "code": officer.next_code().await, "new_password": "quiet harbour lemon tractor"})).await;
    assert_eq!(st, 201, "{v}");
    app.get("/api/v1/admin/cases", Some(v["token"].as_str().unwrap()))
        .await;
    let log = app.audit_log().await;
    assert!(log.iter().any(|e| e["action"] == "password-reset"));
}

async fn no_admin_can_remove_themselves_or_the_last_admin(app: &TestApp) {
    let root = app.admin().await.clone();
    let second = app.second_admin().await.clone();
    let officer = app.officer().await.clone();
    // The auditor who reads the log at the end is made while root is an admin.
    app.auditor().await;
    // Alone: neither disabling nor demoting oneself.
    let (st, p) = app
        .call(
            "POST",
            &format!("/api/v1/admin/officers/{}/disable", root.id),
            Some(&root.token),
            None,
        )
        .await;
    assert_eq!(st, 409, "{p}");
    let role_of = |id: i64| format!("/api/v1/admin/officers/{id}/role");
    let (st, _) = app
        .call(
            "PUT",
            &role_of(root.id),
            Some(&root.token),
            Some(json!({"role": "officer"})),
        )
        .await;
    assert_eq!(st, 409);
    app.get("/api/v1/admin/officers", Some(&root.token)).await;
    // A promotion is a proposal; it takes effect once the second admin approves.
    let promote = app
        .ok(
            "PUT",
            &role_of(officer.id),
            Some(&root.token),
            Some(json!({"role": "admin"})),
        )
        .await;
    assert_eq!(
        (promote["kind"].as_str(), promote["state"].as_str()),
        (Some("role-grant"), Some("pending"))
    );
    let (st, _) = app
        .call("GET", "/api/v1/admin/officers", Some(&officer.token), None)
        .await;
    assert_eq!(st, 403, "promoted by one admin alone");
    app.approve(&second, promote["id"].as_i64().unwrap()).await;
    app.get("/api/v1/admin/officers", Some(&officer.token)).await;
    // Root is demoted on the new admin's proposal and the second admin's approval.
    let demote = app
        .ok(
            "PUT",
            &role_of(root.id),
            Some(&officer.token),
            Some(json!({"role": "officer"})),
        )
        .await;
    app.approve(&second, demote["id"].as_i64().unwrap()).await;
    let (st, _) = app
        .call("GET", "/api/v1/admin/officers", Some(&root.token), None)
        .await;
    assert_eq!(st, 403);
    // The second admin steps down on the other's proposal; the officer is then the last admin.
    let step_down = app
        .ok(
            "PUT",
            &role_of(second.id),
            Some(&officer.token),
            Some(json!({"role": "officer"})),
        )
        .await;
    app.approve(&second, step_down["id"].as_i64().unwrap()).await;
    let (st, _) = app
        .call(
            "POST",
            &format!("/api/v1/admin/officers/{}/disable", officer.id),
            Some(&officer.token),
            None,
        )
        .await;
    assert_eq!(st, 409);
    let (st, _) = app
        .call(
            "PUT",
            &role_of(officer.id),
            Some(&officer.token),
            Some(json!({"role": "nobody"})),
        )
        .await;
    assert_eq!(st, 422);
    // Every role change proposed and approved is audited.
    let log = app.audit_log().await;
    assert_eq!(
        log.iter().filter(|e| e["action"] == "propose-role-grant").count(),
        3
    );
    assert_eq!(
        log.iter().filter(|e| e["action"] == "approve-role-grant").count(),
        3
    );
}

async fn a_plain_officer_cannot_call_any_admin_lifecycle_endpoint(app: &TestApp) {
    let admin = app.admin().await.clone();
    let officer = app.officer().await.token.clone();
    let auditor = app.auditor().await.token.clone();
    let venue = app.mall().await;
    let device = app
        .get(
            &format!("/api/v1/admin/venues/{}/devices", venue.id),
            Some(&admin.token),
        )
        .await[0]["id"]
        .as_i64()
        .unwrap();
    let sessions = app.get("/api/v1/admin/me/sessions", Some(&admin.token)).await;
    let sid = sessions[0]["id"].as_str().unwrap().to_owned();
    let id = admin.id;
    let calls = [
        ("POST", format!("/api/v1/admin/officers/{id}/disable"), None),
        ("POST", format!("/api/v1/admin/officers/{id}/enable"), None),
        (
            "PUT",
            format!("/api/v1/admin/officers/{id}/role"),
            Some(json!({"role": "officer"})),
        ),
        (
            "POST",
            format!("/api/v1/admin/officers/{id}/password-reset"),
            None,
        ),
        (
            "DELETE",
            format!("/api/v1/admin/officers/{id}/second-factor"),
            None,
        ),
        ("POST", format!("/api/v1/admin/officers/{id}/unlock"), None),
        ("GET", format!("/api/v1/admin/officers/{id}/sessions"), None),
        ("DELETE", format!("/api/v1/admin/officers/{id}/sessions"), None),
        (
            "DELETE",
            format!("/api/v1/admin/officers/{id}/sessions/{sid}"),
            None,
        ),
        (
            "POST",
            format!("/api/v1/admin/venues/{}/devices/{device}/key", venue.id),
            None,
        ),
        ("GET", "/api/v1/admin/officers".to_owned(), None),
    ];
    for token in [&officer, &auditor] {
        for (method, path, body) in &calls {
            let (st, p) = app.call(method, path, Some(token), body.clone()).await;
            assert_eq!(st, 403, "{method} {path}: {p}");
        }
    }
    // Nothing changed: the admin still works, with the same device key and session (its
    // last use moves with the admin's own requests, so it is left out of the comparison).
    app.get("/api/v1/admin/officers", Some(&admin.token)).await;
    let kept = |v: &serde_json::Value| {
        v.as_array()
            .unwrap()
            .iter()
            .map(|s| (s["id"].clone(), s["created_at"].clone(), s["expires_at"].clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        kept(&app.get("/api/v1/admin/me/sessions", Some(&admin.token)).await),
        kept(&sessions)
    );
    let holder = app.register_resident().await;
    let token = app.token(&holder).await;
    app.scan(&venue, &token, 1).await;
}

async fn sessions_are_listed_without_tokens_and_ended_one_or_all(app: &TestApp) {
    let admin = app.admin().await.token.clone();
    let officer = app.officer().await.clone();
    let phone = app.sign_in_again(&officer).await;
    let list = app.get("/api/v1/admin/me/sessions", Some(&officer.token)).await;
    let list = list.as_array().unwrap().clone();
    assert_eq!(list.len(), 2);
    let text = serde_json::to_string(&list).unwrap();
    for token in [&officer.token, &phone] {
        assert!(!text.contains(token.as_str()), "a token is listed");
        assert!(!text.contains(&token[4..20]), "part of a token is listed");
    }
    let current: Vec<_> = list.iter().filter(|s| s["current"] == true).collect();
    assert_eq!(current.len(), 1);
    assert!(
        list.iter()
            .all(|s| s["client"] == "127.0.0.1" && s["last_used_at"].is_string())
    );
    let other = list.iter().find(|s| s["current"] == false).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Another person cannot end it through their own listing, nor guess one.
    let second = app.second_officer().await.token.clone();
    let (st, _) = app
        .call(
            "DELETE",
            &format!("/api/v1/admin/me/sessions/{other}"),
            Some(&second),
            None,
        )
        .await;
    assert_eq!(st, 404);
    let (st, _) = app
        .call(
            "DELETE",
            "/api/v1/admin/me/sessions/000000000000000000000000",
            Some(&officer.token),
            None,
        )
        .await;
    assert_eq!(st, 404);
    app.get("/api/v1/admin/me", Some(&phone)).await;
    // Its owner ends it: gone at once.
    let (st, _) = app
        .call(
            "DELETE",
            &format!("/api/v1/admin/me/sessions/{other}"),
            Some(&officer.token),
            None,
        )
        .await;
    assert_eq!(st, 204);
    assert_eq!(
        app.call("GET", "/api/v1/admin/me", Some(&phone), None).await.0,
        401
    );
    // An admin sees the rest and ends them all.
    let seen = app
        .get(
            &format!("/api/v1/admin/officers/{}/sessions", officer.id),
            Some(&admin),
        )
        .await;
    assert_eq!(seen.as_array().unwrap().len(), 1);
    let ended = app
        .ok(
            "DELETE",
            &format!("/api/v1/admin/officers/{}/sessions", officer.id),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(ended["ended"], 1);
    assert_eq!(
        app.call("GET", "/api/v1/admin/me", Some(&officer.token), None)
            .await
            .0,
        401
    );
    let log = app.audit_log().await;
    assert_eq!(log.iter().filter(|e| e["action"] == "session-end").count(), 2);
}

async fn a_rotated_device_key_is_refused_at_once(app: &TestApp) {
    let admin = app.admin().await.token.clone();
    let venue = app.clinic().await;
    let holder = app.register_resident().await;
    let token = app.token(&holder).await;
    app.scan(&venue, &token, 1).await;
    let devices = app
        .get(
            &format!("/api/v1/admin/venues/{}/devices", venue.id),
            Some(&admin),
        )
        .await;
    let device = devices[0]["id"].as_i64().unwrap();
    let path = format!("/api/v1/admin/venues/{}/devices/{device}/key", venue.id);
    let rotated = app.post(&path, Some(&admin), json!({})).await;
    let new_key = rotated["key"].as_str().unwrap().to_owned();
    assert!(new_key.starts_with("hcd_") && new_key != venue.key);
    // The old key, still cached from the scan a moment ago, is refused at once.
    let (st, _) = app.try_scan(&venue.key, venue.id, &token, 2).await;
    assert_eq!(st, 401);
    let (st, v) = app.try_scan(&new_key, venue.id, &token, 2).await;
    assert!(st.is_success(), "{v}");
    // Not for a device of another venue; not for a revoked one.
    let other = app.mall().await;
    let (st, _) = app
        .call(
            "POST",
            &format!("/api/v1/admin/venues/{}/devices/{device}/key", other.id),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(st, 404);
    app.ok(
        "DELETE",
        &format!("/api/v1/admin/venues/{}/devices/{device}", venue.id),
        Some(&admin),
        None,
    )
    .await;
    let (st, _) = app.call("POST", &path, Some(&admin), None).await;
    assert_eq!(st, 409);
    let log = app.audit_log().await;
    assert!(log.iter().any(|e| e["action"] == "device-key-rotate"));
}

fn two_second_idle(c: &mut Config) {
    c.staff.session_idle_seconds = 2;
}

mod idle {
    use super::*;

    common::on_both_backends!(configured by two_second_idle; a_session_unused_for_the_idle_time_ends);

    async fn a_session_unused_for_the_idle_time_ends(app: &TestApp) {
        let officer = app.officer().await.clone();
        let busy = app.sign_in_again(&officer).await;
        let quiet = app.sign_in_again(&officer).await;
        // One used every half second outlives the idle time; one left alone does not.
        for _ in 0..7 {
            app.get("/api/v1/admin/me", Some(&busy)).await;
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let (st, p) = app.call("GET", "/api/v1/admin/me", Some(&quiet), None).await;
        assert_eq!(st, 401, "{p}");
        assert!(p["detail"].as_str().unwrap().contains("without use"), "{p}");
        app.get("/api/v1/admin/me", Some(&busy)).await;
        // Ended for good: not listed, and not back after another request.
        assert_eq!(
            app.call("GET", "/api/v1/admin/me", Some(&quiet), None).await.0,
            401
        );
        let admin = app.sign_in_again(app.admin().await).await;
        let listed = app
            .get(
                &format!("/api/v1/admin/officers/{}/sessions", officer.id),
                Some(&admin),
            )
            .await;
        assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    }
}
