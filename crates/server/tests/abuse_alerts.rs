//! Alerts for abuse: what an insider does shows in the auditors' view and in the metrics, on
//! both stores; only auditors see the view.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Holder, TestApp, on_both_backends, resident_id};
use healthcode_server::{Config, now};
use serde_json::{Value, json};

/// Low thresholds, a night that is now (local hours around the current one), metrics every second.
fn sensitive(c: &mut Config) {
    c.alerts.colour_changes_per_hour = 2;
    c.alerts.reads_per_day = 48; // two in the hour-long window asked for below
    c.alerts.venue_cluster_holders = 2;
    c.alerts.area_cluster_holders = 2;
    c.alerts.fresh_area_minutes = 60;
    c.alerts.utc_offset_hours = 0;
    let hour = now().hour();
    c.alerts.night_from = hour;
    c.alerts.night_until = (hour + 2) % 24;
    c.alerts.interval_seconds = 1;
}

/// The `n`th of several residents.
async fn resident(app: &TestApp, n: u32) -> Holder {
    app.register(json!({"kind": "resident", "name": format!("居民{n}"),
        "resident_id": resident_id(&format!("33010620000101{n:03}")),
        "phone": format!("+86139001{n:05}")}))
        .await
}

async fn alerts(app: &TestApp, hours: u32) -> Vec<Value> {
    let auditor = app.auditor().await;
    let r = app
        .get(
            &format!("/api/v1/admin/audit/alerts?hours={hours}"),
            Some(&auditor.token),
        )
        .await;
    r["alerts"].as_array().unwrap().clone()
}

fn of_kind<'a>(alerts: &'a [Value], kind: &str) -> Vec<&'a Value> {
    alerts.iter().filter(|a| a["kind"] == kind).collect()
}

async fn an_officer_reading_many_holders_at_night_is_flagged_by_name(app: &TestApp) {
    let officer = app.officer().await;
    let patient = resident(app, 1).await;
    let case = app.confirm_case(app.second_officer().await, &patient).await;
    for _ in 0..3 {
        app.read_for_case(officer, &patient, case).await;
    }
    let found = alerts(app, 1).await;
    let actor = officer.actor.clone();
    let many = of_kind(&found, "many-reads");
    assert_eq!(many.len(), 1, "{found:?}");
    assert_eq!(many[0]["actor"], actor.as_str());
    assert_eq!(many[0]["count"], 3);
    let night = of_kind(&found, "night-reads");
    assert_eq!(night.len(), 1, "{found:?}");
    assert_eq!(night[0]["actor"], actor.as_str());
    // The entries it points at are the reads.
    let log = app.audit_log().await;
    let first = many[0]["first_seq"].as_i64().unwrap();
    let entry = log.iter().find(|e| e["seq"] == first).unwrap();
    assert_eq!(entry["action"], "read-personal-data");
    // The metrics say so too, within the recomputation interval.
    let mut seen = String::new();
    for _ in 0..50 {
        seen = app.metrics().await;
        if seen.contains("healthcode_abuse_alerts{kind=\"night-reads\"} 1") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // (Over the last day, which the metrics cover, three reads are not many.)
    assert!(
        seen.contains("healthcode_abuse_alerts{kind=\"night-reads\"} 1")
            && seen.contains("healthcode_abuse_alerts{kind=\"many-reads\"} 0"),
        "{seen}"
    );
}

async fn many_colour_changes_by_one_officer_in_an_hour_are_flagged(app: &TestApp) {
    let officer = app.officer().await;
    for n in 0..3 {
        let h = resident(app, n).await;
        app.confirm_case(officer, &h).await;
    }
    let found = alerts(app, 1).await;
    let changes = of_kind(&found, "colour-changes");
    assert_eq!(changes.len(), 1, "{found:?}");
    // Three tests and three cases.
    assert_eq!(changes[0]["count"], 6, "{found:?}");
    assert_eq!(changes[0]["threshold"], 2);
}

async fn a_case_turning_a_venues_visitors_is_flagged(app: &TestApp) {
    let officer = app.officer().await;
    let mall = app.mall().await;
    let patient = resident(app, 1).await;
    let (a, b) = (resident(app, 2).await, resident(app, 3).await);
    // Moments ago (a code is not valid before it was issued).
    let at = now() - time::Duration::seconds(2);
    let up = app
        .upload(
            &mall,
            &[
                (&app.token(&patient).await, 1),
                (&app.token(&a).await, 2),
                (&app.token(&b).await, 3),
            ],
            at,
        )
        .await;
    assert_eq!(up["recorded"], 3, "{up}");
    let case = app.confirm_case(officer, &patient).await;
    let trace = app
        .ok(
            "POST",
            &format!("/api/v1/admin/cases/{case}/trace"),
            Some(&officer.token),
            None,
        )
        .await;
    let exposures = app
        .get(
            &format!("/api/v1/admin/cases/{case}/exposures"),
            Some(&officer.token),
        )
        .await;
    assert_eq!(exposures.as_array().unwrap().len(), 2, "{trace} {exposures}");
    let found = alerts(app, 1).await;
    let venue = of_kind(&found, "one-venue");
    assert_eq!(venue.len(), 1, "{found:?}");
    assert_eq!(venue[0]["count"], 2);
    assert!(
        venue[0]["detail"]
            .as_str()
            .unwrap()
            .contains(&format!("venue {}", mall.id)),
        "{venue:?}"
    );
}

async fn an_area_declared_to_take_effect_at_once_over_many_travellers_is_flagged(app: &TestApp) {
    let today = now().date();
    for n in 0..2 {
        let h = resident(app, n).await;
        app.post(
            "/api/v1/me/declarations",
            Some(&h.token),
            json!({"kind": "travel", "region": "CN-SH", "from": today.previous_day().unwrap().to_string(), "until": today.to_string()}),
        )
        .await;
    }
    // One traveller only to Beijing: below the threshold.
    let h = resident(app, 9).await;
    app.post(
        "/api/v1/me/declarations",
        Some(&h.token),
        json!({"kind": "travel", "region": "CN-BJ", "from": today.to_string(), "until": today.to_string()}),
    )
    .await;
    for region in ["CN-SH", "CN-BJ"] {
        app.declare_risk_area(region, "high", now()).await;
    }
    let found = alerts(app, 1).await;
    let areas = of_kind(&found, "fresh-area");
    assert_eq!(areas.len(), 1, "{found:?}");
    assert_eq!(areas[0]["count"], 2);
    assert!(
        areas[0]["detail"].as_str().unwrap().contains("CN-SH"),
        "{areas:?}"
    );
    // Ordinary, quiet work flags nothing else.
    assert!(of_kind(&found, "many-reads").is_empty(), "{found:?}");
}

async fn only_auditors_see_the_alerts_and_the_window_is_bounded(app: &TestApp) {
    let officer = app.officer().await;
    let (st, body) = app
        .call("GET", "/api/v1/admin/audit/alerts", Some(&officer.token), None)
        .await;
    assert_eq!(st, 403, "{body}");
    let holder = app.register_resident().await;
    let (st, _) = app
        .call("GET", "/api/v1/admin/audit/alerts", Some(&holder.token), None)
        .await;
    assert_eq!(st, 403);
    let auditor = app.auditor().await;
    for bad in ["0", "169", "x"] {
        let (st, body) = app
            .call(
                "GET",
                &format!("/api/v1/admin/audit/alerts?hours={bad}"),
                Some(&auditor.token),
                None,
            )
            .await;
        assert!(st == 400 || st == 422, "{bad}: {st} {body}");
    }
    // Looking is audited, once per view.
    let views = |log: Vec<Value>| log.iter().filter(|e| e["action"] == "alerts-read").count();
    let before = views(app.audit_log().await);
    alerts(app, 24).await;
    assert_eq!(views(app.audit_log().await), before + 1);
}

on_both_backends!(configured by sensitive;
    an_officer_reading_many_holders_at_night_is_flagged_by_name,
    many_colour_changes_by_one_officer_in_an_hour_are_flagged,
    a_case_turning_a_venues_visitors_is_flagged,
    an_area_declared_to_take_effect_at_once_over_many_travellers_is_flagged,
    only_auditors_see_the_alerts_and_the_window_is_bounded,
);
