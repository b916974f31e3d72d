//! A new colour policy version, tried as a dishonest insider would: one officer publishing a
//! softer (or harsher) policy alone, approving their own proposal, replacing a published version
//! under its old name, slipping in a broken file, or editing the server's policy file and
//! restarting; and the legitimate path: two officers publish it, colours follow it at once, the
//! holder's page names the version that decided their colour, and anyone can read every version
//! with its SHA-256 and who signed it off.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{TestApp, problem_type};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

common::on_both_backends!(
    a_new_policy_takes_effect_only_when_a_second_officer_approves_it,
    a_broken_file_or_a_reused_version_changes_nothing,
);

const FIRST: &str = "default-2026.1";

/// The policy in force, from the public endpoint.
async fn in_force(app: &TestApp) -> Value {
    app.get("/api/v1/policy", None).await
}

/// The default policy under `version`, where a confirmed case and a positive test are yellow
/// instead of red.
async fn softer(app: &TestApp, version: &str) -> String {
    let now = in_force(app).await;
    let source = now["source"].as_str().unwrap().to_owned();
    let renamed = source.replace(
        &format!("version = \"{}\"", now["version"].as_str().unwrap()),
        &format!("version = \"{version}\""),
    );
    // The first two rules are the confirmed case's and the positive test's (already yellow
    // when the version in force is itself a softer one: then only the version differs).
    let softer = renamed.replacen("colour = \"red\"", "colour = \"yellow\"", 2);
    assert_ne!(softer, source);
    softer
}

/// A page as a browser gets it, with the holder's session when given.
async fn page(app: &TestApp, path: &str, token: Option<&str>) -> String {
    let mut req = reqwest::Client::new().get(app.url(path));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.unwrap();
    assert_eq!(resp.status(), 200, "{path}");
    resp.text().await.unwrap()
}

fn sha256(s: &str) -> String {
    Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

async fn a_new_policy_takes_effect_only_when_a_second_officer_approves_it(app: &TestApp) {
    let (a, b) = (app.officer().await.clone(), app.second_officer().await.clone());
    let holder = app.register_resident().await;
    app.confirm_case(&a, &holder).await;
    let code = app.code(&holder).await;
    assert_eq!(
        (code["colour"].as_str(), code["policy_version"].as_str()),
        (Some("red"), Some(FIRST))
    );

    // The configured policy is the first published version, by nobody.
    let versions = app.get("/api/v1/policies", None).await;
    assert_eq!(versions.as_array().unwrap().len(), 1, "{versions}");
    assert_eq!(versions[0]["version"], FIRST);
    assert_eq!(versions[0]["in_force"], true);
    assert!(versions[0]["proposal"].is_null());
    assert_eq!(
        versions[0]["sha256"].as_str().unwrap(),
        sha256(in_force(app).await["source"].as_str().unwrap())
    );

    // One officer proposes: nothing changes yet, and they cannot approve it themselves.
    let source = softer(app, "city-2026.2").await;
    let (s, p) = app
        .call(
            "POST",
            "/api/v1/admin/policies",
            Some(&a.token),
            Some(json!({"source": source})),
        )
        .await;
    assert_eq!(s, 202, "{p}");
    assert_eq!(p["kind"], "policy-publish");
    assert_eq!(p["act"]["sha256"].as_str().unwrap(), sha256(&source));
    let id = p["id"].as_i64().unwrap();
    assert_eq!(in_force(app).await["version"], FIRST);
    assert_eq!(app.code(&holder).await["colour"], "red");
    let (s, v) = app
        .call(
            "POST",
            &format!("/api/v1/admin/proposals/{id}/approve"),
            Some(&a.token),
            None,
        )
        .await;
    assert_eq!(
        (s.as_u16(), problem_type(&v)),
        (409, "urn:healthcode:problem:refused"),
        "{v}"
    );
    assert_eq!(in_force(app).await["version"], FIRST);
    // The console's proposals page offers it to the second officer to approve, with the file's
    // hash and text, and to its proposer only to withdraw.
    let for_b = page(app, "/console/proposals", Some(&b.token)).await;
    assert!(
        for_b.contains(&format!("/api/v1/admin/proposals/{id}/approve")),
        "{for_b}"
    );
    assert!(for_b.contains(&sha256(&source)), "{for_b}");
    let for_a = page(app, "/console/proposals", Some(&a.token)).await;
    assert!(
        for_a.contains(&format!("/api/v1/admin/proposals/{id}/withdraw")),
        "{for_a}"
    );
    assert!(
        !for_a.contains(&format!("/api/v1/admin/proposals/{id}/approve")),
        "{for_a}"
    );

    // A second officer approves: in force at once, the holder's colour follows and names it.
    app.approve(&b, id).await;
    let now_in_force = in_force(app).await;
    assert_eq!(now_in_force["version"], "city-2026.2");
    assert_eq!(now_in_force["source"].as_str().unwrap(), source);
    let code = app.code(&holder).await;
    assert_eq!(
        (code["colour"].as_str(), code["policy_version"].as_str()),
        (Some("yellow"), Some("city-2026.2")),
        "{code}"
    );

    // Anyone can list both versions and who signed the new one off, and read the old one.
    let versions = app.get("/api/v1/policies", None).await;
    let list = versions.as_array().unwrap();
    assert_eq!(list.len(), 2, "{versions}");
    let new = &list[1];
    assert_eq!(new["version"], "city-2026.2");
    assert_eq!(new["in_force"], true);
    assert_eq!(list[0]["in_force"], false);
    assert_eq!(new["proposal"], id);
    assert_eq!(new["proposed_by"], a.id);
    assert_eq!(new["approved_by"], b.id);
    assert_eq!(new["sha256"].as_str().unwrap(), sha256(&source));
    let old = app.get(&format!("/api/v1/policies/{FIRST}"), None).await;
    assert!(old["source"].as_str().unwrap().contains(FIRST));
    let (s, v) = app
        .call("GET", "/api/v1/policies/never-published", None, None)
        .await;
    assert_eq!(s, 404, "{v}");

    // The holder's page links the version that decided the colour; that page shows it.
    let me = page(app, "/me", Some(&holder.token)).await;
    assert!(me.contains("/policy?version=city-2026.2"), "{me}");
    let shown = page(app, "/policy?version=city-2026.2", None).await;
    assert!(shown.contains(&sha256(&source)), "{shown}");
    assert!(
        shown.contains(&format!("staff:{}, staff:{}", a.id, b.id)),
        "{shown}"
    );
    let earlier = page(app, &format!("/policy?version={FIRST}"), None).await;
    assert!(earlier.contains("no longer in force"), "{earlier}");

    // The log says who proposed and who published, with the hash.
    let log = app.audit_log().await;
    assert!(
        log.iter()
            .any(|e| e["action"] == "propose-policy-publish" && e["actor"] == a.actor.as_str()),
        "{log:?}"
    );
    let done = log
        .iter()
        .find(|e| e["action"] == "approve-policy-publish")
        .expect("the approval is audited");
    assert_eq!(done["actor"], b.actor.as_str());
    assert!(
        done["purpose"].as_str().unwrap().contains(&sha256(&source)),
        "{done}"
    );
}

async fn a_broken_file_or_a_reused_version_changes_nothing(app: &TestApp) {
    let (a, b) = (app.officer().await.clone(), app.second_officer().await.clone());
    let proposals = async || {
        app.get("/api/v1/admin/proposals", Some(&a.token)).await["proposals"]
            .as_array()
            .unwrap()
            .len()
    };
    let before = proposals().await;
    // Not a policy at all, and a policy whose rule names an unknown colour: 422, nothing proposed.
    for broken in [
        "version = \"x\"\n[[rules]\n".to_owned(),
        softer(app, "city-bad")
            .await
            .replacen("colour = \"yellow\"", "colour = \"purple\"", 1),
    ] {
        let (s, v) = app
            .call(
                "POST",
                "/api/v1/admin/policies",
                Some(&a.token),
                Some(json!({"source": broken})),
            )
            .await;
        assert_eq!(s, 422, "{v}");
        assert!(v["detail"].as_str().unwrap().starts_with("source:"), "{v}");
    }
    // A version that could pass for another, a file too long to read, hidden characters: 422.
    let base = softer(app, "city-x").await;
    for (bad, says) in [
        (
            base.replace("version = \"city-x\"", "version = \"city-2026.2 \""),
            "the version must be",
        ),
        (
            base.replace("version = \"city-x\"", "version = \"city\u{200B}-x\""),
            "U+200B",
        ),
        (base.replacen("# healthcode", "# \u{202E}healthcode", 1), "U+202E"),
        (
            format!("{base}\n#{}\n", "x".repeat(70_000)),
            "at most 65536 bytes",
        ),
    ] {
        let (s, v) = app
            .call(
                "POST",
                "/api/v1/admin/policies",
                Some(&a.token),
                Some(json!({"source": bad})),
            )
            .await;
        assert_eq!(s, 422, "{v}");
        assert!(
            v["detail"].as_str().unwrap().contains(says),
            "{v} does not say {says:?}"
        );
    }
    // The version in force cannot be proposed again under its name with other rules.
    let (s, v) = app
        .call(
            "POST",
            "/api/v1/admin/policies",
            Some(&a.token),
            Some(json!({"source": softer(app, FIRST).await})),
        )
        .await;
    assert_eq!(s, 409, "{v}");
    assert_eq!(proposals().await, before);
    // Nor can two proposals of one version both be published: the second approval is refused
    // and undone.
    let source = softer(app, "city-2026.3").await;
    let mut ids = Vec::new();
    for _ in 0..2 {
        let p = app
            .post(
                "/api/v1/admin/policies",
                Some(&a.token),
                json!({"source": source}),
            )
            .await;
        ids.push(p["id"].as_i64().unwrap());
    }
    app.approve(&b, ids[0]).await;
    let (s, v) = app
        .call(
            "POST",
            &format!("/api/v1/admin/proposals/{}/approve", ids[1]),
            Some(&b.token),
            None,
        )
        .await;
    assert_eq!(s, 409, "{v}");
    // Refused as no longer in place of the version in force (the first one was published).
    assert!(v["detail"].as_str().unwrap().contains("in force now"), "{v}");
    assert_eq!(
        app.get("/api/v1/policies", None).await.as_array().unwrap().len(),
        2
    );
    let (s, _) = app
        .call(
            "POST",
            &format!("/api/v1/admin/proposals/{}/withdraw", ids[1]),
            Some(&a.token),
            None,
        )
        .await;
    assert_eq!(s, 200);

    // One officer cannot flood the proposals: three pending at most.
    for n in 0..3 {
        let (s, v) = app
            .call(
                "POST",
                "/api/v1/admin/policies",
                Some(&a.token),
                Some(json!({"source": softer(app, &format!("flood-{n}")).await})),
            )
            .await;
        assert_eq!(s, 202, "{v}");
    }
    let (s, v) = app
        .call(
            "POST",
            "/api/v1/admin/policies",
            Some(&a.token),
            Some(json!({"source": softer(app, "flood-3").await})),
        )
        .await;
    assert_eq!(s, 409, "{v}");
    assert!(v["detail"].as_str().unwrap().contains("withdraw one"), "{v}");
    // A proposal made before another version was published cannot roll it back.
    let pending = app
        .get("/api/v1/admin/proposals?pending=true", Some(&b.token))
        .await;
    let stale: Vec<i64> = pending["proposals"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["kind"] == "policy-publish")
        .map(|p| p["id"].as_i64().unwrap())
        .collect();
    assert_eq!(stale.len(), 3, "{pending}");
    app.approve(&b, stale[0]).await;
    let (s, v) = app
        .call(
            "POST",
            &format!("/api/v1/admin/proposals/{}/approve", stale[1]),
            Some(&b.token),
            None,
        )
        .await;
    assert_eq!(s, 409, "{v}");
    assert!(v["detail"].as_str().unwrap().contains("in force now"), "{v}");
    assert_eq!(in_force(app).await["version"], "flood-0");
}

/// A store from before policy versions (holders, no published version) does not take whatever
/// file is on disk: the server refuses to start until the operator names the file's hash.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_from_before_versions_publishes_the_file_only_when_its_hash_is_named() {
    let mut app = TestApp::sqlite().await;
    let holder = app.register_resident().await;
    let source = in_force(&app).await["source"].as_str().unwrap().to_owned();
    app.stop().await;
    let db = app.config.data_dir.join("healthcode.db");
    let old = healthcode_store_sqlite::SqliteStore::open(&db, healthcode_store_sqlite::OpenMode::MustExist)
        .unwrap();
    old.raw_execute("DROP TABLE policies").unwrap();
    old.raw_execute("DELETE FROM schema_migrations WHERE name = '0014_policies'")
        .unwrap();
    drop(old);
    let refused = healthcode_server::bind(&app.config)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains(&format!("policy_first_sha256 = \"{}\"", sha256(&source))),
        "{refused}"
    );
    // A wrong hash is refused too, naming the right one.
    app.config.policy_first_sha256 = Some("00".repeat(32));
    let refused = healthcode_server::bind(&app.config)
        .await
        .unwrap_err()
        .to_string();
    assert!(refused.contains(&sha256(&source)), "{refused}");
    app.config.policy_first_sha256 = Some(sha256(&source));
    app.start_again().await;
    assert_eq!(in_force(&app).await["version"], FIRST);
    assert_eq!(app.code(&holder).await["policy_version"], FIRST);
    let log = app.audit_log().await;
    // The first start's (by the system, a new store) and now the operator's.
    let first = log
        .iter()
        .rev()
        .find(|e| e["action"] == "policy-first-published")
        .unwrap();
    assert_eq!(first["actor"], "operator", "{first}");
    app.stop().await;
}

/// Someone with the server's configuration edits the policy file and restarts: the published
/// version stays in force, and a version two officers published survives the restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edited_policy_file_does_not_replace_the_published_version() {
    let mut app = TestApp::sqlite().await;
    let (a, b) = (app.officer().await.clone(), app.second_officer().await.clone());
    let holder = app.register_resident().await;
    app.confirm_case(&a, &holder).await;
    let edited = softer(&app, "edited-on-disk").await;
    let file = app.config.data_dir.join("edited-policy.toml");
    std::fs::write(&file, &edited).unwrap();
    app.config.policy_file = Some(file.clone());
    app.restart().await;
    assert_eq!(in_force(&app).await["version"], FIRST);
    assert_eq!(app.code(&holder).await["colour"], "red");
    assert_eq!(
        app.get("/api/v1/policies", None).await.as_array().unwrap().len(),
        1
    );

    // Published by two officers, a version survives a restart whatever the file says.
    let source = softer(&app, "city-2026.4").await;
    let p = app
        .post(
            "/api/v1/admin/policies",
            Some(&a.token),
            json!({"source": source}),
        )
        .await;
    app.approve(&b, p["id"].as_i64().unwrap()).await;
    app.restart().await;
    assert_eq!(in_force(&app).await["version"], "city-2026.4");
    assert_eq!(app.code(&holder).await["policy_version"], "city-2026.4");
    app.stop().await;
}
