//! Limits and erasure, as an insider or a flooder would try them: 300 appeals in a second, a
//! list view that wrote one audit entry per appeal, a scanner's sequence number reused with
//! another person's code (answered "recorded" while nothing was stored), onsets in the year 337,
//! and a holder's erasure with and without a hold in force.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Holder, TestApp, problem_type, rfc3339};
use serde_json::{Value, json};

common::on_both_backends!(
    a_flood_of_appeals_stores_at_most_the_cap,
    listing_appeals_writes_one_audit_entry_a_page,
    a_reused_sequence_number_is_a_conflict_and_stores_nothing,
    implausible_dates_are_refused_naming_the_field,
    a_holder_erases_their_account_once_no_hold_is_in_force,
    erasure_is_refused_while_a_hold_is_in_force,
);

/// Another resident, `n`, with their own document and phone.
async fn person(app: &TestApp, n: u32) -> Holder {
    app.register(json!({"kind": "resident", "name": format!("李四{n}"),
        "resident_id": common::resident_id(&format!("11010119900307{n:03}")),
        "phone": format!("+86139{n:08}")}))
        .await
}

async fn a_flood_of_appeals_stores_at_most_the_cap(app: &TestApp) {
    let holder = app.register_resident().await;
    // Three hundred at once, each on its own task.
    let mut set = tokio::task::JoinSet::new();
    for i in 0..300 {
        let (client, url, token) = (
            app.client.clone(),
            app.url("/api/v1/me/appeals"),
            holder.token.clone(),
        );
        set.spawn(async move {
            let r = client
                .post(url)
                .bearer_auth(token)
                .json(&json!({"text": format!("appeal number {i}")}))
                .send()
                .await
                .unwrap();
            let status = r.status();
            (status, r.json::<Value>().await.unwrap())
        });
    }
    let tries = set.join_all().await;
    // Each was stored, refused by the cap, or shed by the server's load limit: at most three
    // stored, and the filings after the flood are refused too.
    let filed = tries.iter().filter(|(s, _)| *s == 201).count();
    assert!(filed <= 3, "{filed} stored");
    for (s, v) in tries.iter().filter(|(s, _)| *s != 201) {
        assert!(*s == 409 || *s == 503, "{v}");
        if *s == 409 {
            assert!(problem_type(v).ends_with("refused"), "{v}");
            assert!(
                v["detail"].as_str().unwrap().contains("wait for a decision"),
                "{v}"
            );
        }
    }
    for i in filed..5 {
        let (s, v) = app
            .call(
                "POST",
                "/api/v1/me/appeals",
                Some(&holder.token),
                Some(json!({"text": format!("later {i}")})),
            )
            .await;
        assert_eq!(s, if i < 3 { 201 } else { 409 }, "{v}");
    }
    let mine = app.get("/api/v1/me/appeals", Some(&holder.token)).await;
    assert_eq!(mine.as_array().unwrap().len(), 3);
    // Too long is refused before anything is counted.
    let (s, v) = app
        .call(
            "POST",
            "/api/v1/me/appeals",
            Some(&holder.token),
            Some(json!({"text": "x".repeat(2001)})),
        )
        .await;
    assert_eq!(s, 422, "{v}");
    // A decision makes room for one more.
    let officer = app.officer().await.token.clone();
    let first = mine[0]["id"].as_i64().unwrap();
    app.post(
        &format!("/api/v1/admin/appeals/{first}/decision"),
        Some(&officer),
        json!({"upheld": false, "note": "the scanner log shows the visit"}),
    )
    .await;
    let (s, _) = app
        .call(
            "POST",
            "/api/v1/me/appeals",
            Some(&holder.token),
            Some(json!({"text": "again"})),
        )
        .await;
    assert_eq!(s, 201);
}

/// Follows `Link: <…>; rel="next"` from `path`; returns the pages.
async fn walk(app: &TestApp, token: &str, path: &str) -> Vec<Vec<Value>> {
    let mut pages = Vec::new();
    let mut next = Some(path.to_owned());
    while let Some(p) = next.take() {
        let resp = app
            .client
            .get(app.url(&p))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        next = resp
            .headers()
            .get("link")
            .map(|l| l.to_str().unwrap().to_owned())
            .map(|l| {
                assert!(l.ends_with("rel=\"next\""), "{l}");
                l[1..l.find('>').unwrap()].to_owned()
            });
        pages.push(resp.json::<Vec<Value>>().await.unwrap());
        assert!(pages.len() < 20, "no end to the pages");
    }
    pages
}

async fn listing_appeals_writes_one_audit_entry_a_page(app: &TestApp) {
    let mut filed = Vec::new();
    for n in 0..3 {
        let h = person(app, 11 + n).await;
        for i in 0..3 {
            let a = app
                .post(
                    "/api/v1/me/appeals",
                    Some(&h.token),
                    json!({"text": format!("wrong colour {i}")}),
                )
                .await;
            filed.push(a["id"].as_i64().unwrap());
        }
    }
    let officer = app.officer().await.token.clone();
    let before = app.audit_log().await.len();
    let pages = walk(app, &officer, "/api/v1/admin/appeals?open=true&limit=4").await;
    // 9 appeals in pages of 4: 4, 4, 1; every one seen once, in order.
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), vec![4, 4, 1]);
    let seen: Vec<i64> = pages
        .iter()
        .flatten()
        .map(|a| a["id"].as_i64().unwrap())
        .collect();
    assert_eq!(seen, filed);
    let written = app.audit_entries_after(before).await;
    let reads: Vec<&Value> = written
        .iter()
        .filter(|e| e["action"] == "appeals-page-read")
        .collect();
    assert_eq!(reads.len(), 3, "one entry a page, not one an appeal: {written:?}");
    assert_eq!(written.len(), 3, "{written:?}");
    assert!(
        reads[0]["purpose"]
            .as_str()
            .unwrap()
            .contains(&filed[0].to_string())
    );
    // Pages beyond the maximum, or empty, are refused.
    for bad in ["limit=0", "limit=101", "limit=x"] {
        let (s, v) = app
            .call(
                "GET",
                &format!("/api/v1/admin/appeals?{bad}"),
                Some(&officer),
                None,
            )
            .await;
        assert!(s == 422 || s == 400, "{bad}: {s} {v}");
    }
    // Overrides too.
    let h = app.register_resident().await;
    let expires = rfc3339(healthcode_server::now() + time::Duration::days(2));
    for _ in 0..3 {
        app.post(
            "/api/v1/admin/overrides",
            Some(&officer),
            json!({"holder": h.hex, "colour": "yellow", "reason": "contact abroad", "expires_at": expires}),
        )
        .await;
    }
    let pages = walk(app, &officer, "/api/v1/admin/overrides?limit=2").await;
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), vec![2, 1]);
}

async fn a_reused_sequence_number_is_a_conflict_and_stores_nothing(app: &TestApp) {
    let (alice, bob) = (app.register_resident().await, person(app, 21).await);
    let (ta, tb) = (app.token(&alice).await, app.token(&bob).await);
    let mall = app.mall().await;
    assert_eq!(app.scan(&mall, &ta, 1).await["recorded"], true);
    // Bob's code under Alice's number: refused, and Bob has no check-in.
    let (s, v) = app.try_scan(&mall.key, mall.id, &tb, 1).await;
    assert_eq!(s, 409, "{v}");
    assert!(problem_type(&v).ends_with("conflict"), "{v}");
    assert!(app.export(&bob).await["checkins"].as_array().unwrap().is_empty());
    // Alice's scan sent again: the same entry, stored once.
    let again = app.scan(&mall, &ta, 1).await;
    assert_eq!(again["recorded"], true);
    assert!(again.get("same_visit_as").is_none(), "{again}");
    // Alice's code again under a new number moments later: the same visit, under number 1.
    let twice = app.scan(&mall, &ta, 2).await;
    assert_eq!(twice["recorded"], true);
    assert_eq!(twice["same_visit_as"], 1);
    assert_eq!(app.export(&alice).await["checkins"].as_array().unwrap().len(), 1);
    // Two people's codes under one new number at once (at another door, where neither was
    // seen): one is stored, the other refused.
    let clinic = app.clinic().await;
    let (r1, r2) = tokio::join!(
        app.try_scan(&clinic.key, clinic.id, &ta, 7),
        app.try_scan(&clinic.key, clinic.id, &tb, 7)
    );
    let mut statuses = [r1.0.as_u16(), r2.0.as_u16()];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 409], "{r1:?} {r2:?}");
    // An offline upload: the reused number is a conflict item, the rest is stored.
    let at = healthcode_server::now();
    let up = app.upload(&mall, &[(&tb, 1), (&tb, 40)], at).await;
    assert_eq!(up["recorded"], 1, "{up}");
    let items = up["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{up}");
    assert_eq!(items[0]["seq"], 1);
    assert_eq!(items[0]["outcome"], "conflict");
    // Bob's check-ins at the mall: the new number only (his scan under Alice's number left none).
    let at_mall = app.export(&bob).await["checkins"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["venue"] == mall.id)
        .count();
    assert_eq!(at_mall, 1);
}

async fn implausible_dates_are_refused_naming_the_field(app: &TestApp) {
    let holder = app.register_resident().await;
    let officer = app.officer().await.token.clone();
    let refused = |path: &'static str, body: Value, field: &'static str| {
        let officer = officer.clone();
        async move {
            let (s, v) = app.call("POST", path, Some(&officer), Some(body)).await;
            assert_eq!(s, 422, "{path}: {v}");
            assert!(v["detail"].as_str().unwrap().starts_with(field), "{path}: {v}");
        }
    };
    refused(
        "/api/v1/admin/cases",
        json!({"holder": holder.hex, "onset": "0337-05-01T00:00:00Z"}),
        "onset",
    )
    .await;
    refused(
        "/api/v1/admin/tests",
        json!({"holder": holder.hex, "positive": true, "sampled_at": "0299-01-01T00:00:00Z", "lab": "A"}),
        "sampled_at",
    )
    .await;
    refused(
        "/api/v1/admin/risk-areas",
        json!({"region": "CN-SH", "level": "high", "from": "0337-01-01T00:00:00Z"}),
        "from",
    )
    .await;
    let far = rfc3339(healthcode_server::now() + time::Duration::days(400));
    refused(
        "/api/v1/admin/risk-areas",
        json!({"region": "CN-SH", "level": "high", "from": rfc3339(healthcode_server::now()), "until": far}),
        "until",
    )
    .await;
    // Nothing was stored: the holder is green.
    assert_eq!(app.code(&holder).await["colour"], "green");
    // Within the window, the same requests go through.
    let recent = rfc3339(healthcode_server::now() - time::Duration::days(3));
    let (s, v) = app
        .call(
            "POST",
            "/api/v1/admin/tests",
            Some(&officer),
            Some(json!({"holder": holder.hex, "positive": false, "sampled_at": recent, "lab": "A"})),
        )
        .await;
    assert_eq!(s, 201, "{v}");
}

async fn a_holder_erases_their_account_once_no_hold_is_in_force(app: &TestApp) {
    let holder = app.register_resident().await;
    let other = person(app, 31).await;
    let mall = app.mall().await;
    let token = app.token(&holder).await;
    app.scan(&mall, &token, 1).await;
    app.post(
        "/api/v1/me/appeals",
        Some(&holder.token),
        json!({"text": "please check"}),
    )
    .await;
    let (s, v) = app
        .call(
            "POST",
            "/api/v1/me/erasure",
            Some(&holder.token),
            Some(json!({"confirm": false})),
        )
        .await;
    assert_eq!(s, 422, "{v}");
    let done = app
        .post(
            "/api/v1/me/erasure",
            Some(&holder.token),
            json!({"confirm": true}),
        )
        .await;
    assert_eq!(done["erased"], true);
    // The session ended at once, and nothing of the holder is left to reach.
    let (s, _) = app
        .call("GET", "/api/v1/me/code", Some(&holder.token), None)
        .await;
    assert_eq!(s, 401);
    let officer = app.officer().await.token.clone();
    let appeals = app.get("/api/v1/admin/appeals", Some(&officer)).await;
    assert!(
        appeals
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["holder"] != holder.hex.as_str())
    );
    let (s, _) = app
        .call(
            "POST",
            "/api/v1/admin/overrides",
            Some(&officer),
            Some(
                json!({"holder": holder.hex, "colour": "red", "reason": "no such person",
                "expires_at": rfc3339(healthcode_server::now() + time::Duration::days(1))}),
            ),
        )
        .await;
    assert_eq!(s, 404);
    // The other holder is untouched.
    assert_eq!(app.code(&other).await["colour"], "green");
    // The log keeps that it happened, with the id and nothing else.
    let log = app.audit_log().await;
    let erased: Vec<&Value> = log.iter().filter(|e| e["action"] == "holder-erased").collect();
    assert_eq!(erased.len(), 1, "{log:?}");
    assert_eq!(erased[0]["subject"], holder.hex.as_str());
    assert_eq!(erased[0]["purpose"], "the holder's own request");
    // The same device's number is free again for the next person.
    let other_token = app.token(&other).await;
    assert_eq!(app.scan(&mall, &other_token, 1).await["recorded"], true);
}

async fn erasure_is_refused_while_a_hold_is_in_force(app: &TestApp) {
    let holder = app.register_resident().await;
    let officer = app.officer().await.clone();
    app.confirm_case(&officer, &holder).await;
    assert_eq!(app.code(&holder).await["colour"], "red");
    let (s, v) = app
        .call(
            "POST",
            "/api/v1/me/erasure",
            Some(&holder.token),
            Some(json!({"confirm": true})),
        )
        .await;
    assert_eq!(s, 409, "{v}");
    assert!(v["detail"].as_str().unwrap().contains("hold is in force"), "{v}");
    // Nothing changed: still signed in, still red, and the refusal is on record.
    assert_eq!(app.code(&holder).await["colour"], "red");
    let log = app.audit_log().await;
    assert!(
        log.iter()
            .any(|e| e["action"] == "erasure-refused" && e["subject"] == holder.hex.as_str())
    );
    assert!(!log.iter().any(|e| e["action"] == "holder-erased"));
}
