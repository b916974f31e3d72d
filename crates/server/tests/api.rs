//! The server started for real on 127.0.0.1:0 and driven over HTTP.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;

use common::TestApp;
use healthcode_server::{ApiDoc, Config};
use utoipa::OpenApi;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_trust_list_and_policy_are_served() {
    let mut app = TestApp::sqlite().await;
    assert_eq!(app.get("/healthz", None).await, "ok");
    assert_eq!(app.get("/readyz", None).await, "ready");
    // The trust list verifies with the root key the data directory holds.
    let list = app.get("/api/v1/trust-list", None).await;
    let root = std::fs::read_to_string(app.config.data_dir.join("keys/root.pub")).unwrap();
    let root = healthcode_token::keys::public_key_from_text(&root).unwrap();
    let list = healthcode_token::TrustList::from_text(list.as_str().unwrap(), &root).unwrap();
    // The code-signing key and the audit log's tree-head key, each for its own purpose.
    assert_eq!(list.keys().count(), 2);
    let policy = app.get("/api/v1/policy", None).await;
    assert_eq!(policy["version"], "default-2026.1");
    assert!(
        policy["source"]
            .as_str()
            .unwrap()
            .contains("id = \"close-contact\"")
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_paths_are_problem_json() {
    let mut app = TestApp::sqlite().await;
    // `call` checks that an error answer is problem+json.
    let (status, p) = app.call("GET", "/api/v1/nothing-here", None, None).await;
    assert_eq!(status, 404);
    assert_eq!(p["type"], "urn:healthcode:problem:not-found");
    assert_eq!(p["status"], 404);
    assert!(p["detail"].as_str().unwrap().contains("/api/v1/nothing-here"));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_carry_their_protections_and_redirect_only_here() {
    let mut app = TestApp::sqlite().await;
    let c = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = c.get(app.url("/")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert_eq!(r.headers()["cache-control"], "no-store");
    // The language switch goes back only to a path on this site.
    for (back, to) in [
        ("%2Fme%2Freports", "/me/reports"),
        ("%2F%09%2Fevil.example", "/"),
        ("%2F%2Fevil.example", "/"),
    ] {
        let r = c
            .get(app.url(&format!("/lang?to=zh&back={back}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.headers()["location"], to, "back={back}");
        assert!(
            r.headers()["set-cookie"]
                .to_str()
                .unwrap()
                .starts_with("hc_lang=zh")
        );
    }
    // A holder page without a session leads to sign-in.
    let r = c.get(app.url("/me")).send().await.unwrap();
    assert_eq!(r.headers()["location"], "/signin?next=%2Fme");
    // The service worker is named after the static files it keeps.
    let sw = c
        .get(app.url("/sw.js"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!sw.contains("__ASSETS__") && !sw.contains("__FILES__"));
    for kept in [
        "/static/js/page-scan.js",
        "/static/js/hc1.js",
        "/static/vendor/cborg/cborg.js",
        "/static/css/site.css",
    ] {
        assert!(sw.contains(&format!("\"{kept}\"")), "the worker keeps {kept}");
    }
    assert!(sw.contains("const CACHE = 'healthcode-"), "{sw}");
    // Static files are compiled in; nothing else is reachable through them.
    let r = c.get(app.url("/static/js/hc1.js")).send().await.unwrap();
    assert_eq!(r.headers()["content-type"], "text/javascript; charset=utf-8");
    let r = c
        .get(app.url("/static/..%2F..%2FCargo.toml"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_public_url_must_be_a_web_address() {
    let tmp = tempfile::tempdir().unwrap();
    let config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: tmp.path().join("data"),
        public_url: Some("healthcode.example".into()),
        ..Config::default()
    };
    let Err(e) = healthcode_server::bind(&config).await else {
        panic!("a public_url without a scheme was accepted");
    };
    assert!(
        e.to_string().contains("public_url must start with https://"),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_gateway_no_code_is_made_and_the_phone_is_not_held_back() {
    let mut app = TestApp::without_gateway().await;
    for _ in 0..3 {
        // Each try is told the same thing at once: no gateway (not "retry in 60 s").
        let (status, p) = app
            .call(
                "POST",
                "/api/v1/otp",
                None,
                Some(serde_json::json!({"phone": "+8613800138000"})),
            )
            .await;
        assert_eq!(status, 503);
        assert!(p["detail"].as_str().unwrap().contains("no SMS gateway"), "{p}");
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_keeps_the_keys_and_a_broken_data_directory_is_refused() {
    let mut app = TestApp::sqlite().await;
    let first = app.get("/api/v1/trust-list", None).await;
    app.restart().await;
    let second = app.get("/api/v1/trust-list", None).await;
    app.stop().await;
    let dir = app.config.data_dir.clone();
    let root = std::fs::read_to_string(dir.join("keys/root.pub")).unwrap();
    let root = healthcode_token::keys::public_key_from_text(&root).unwrap();
    let kids = |t: &serde_json::Value| {
        healthcode_token::TrustList::from_text(t.as_str().unwrap(), &root)
            .unwrap()
            .keys()
            .map(|k| k.kid)
            .collect::<Vec<_>>()
    };
    assert_eq!(kids(&first), kids(&second));
    // The database gone from an existing data directory: refused, not silently recreated.
    std::fs::remove_file(dir.join("healthcode.db")).unwrap();
    // What the command line prints: the error and its causes.
    let err = healthcode_server::bind(&app.config).await.unwrap_err();
    let err = healthcode_server::problem::ErrorChain(&err).to_string();
    assert!(err.contains("does not exist"), "{err}");
    // A directory that exists but holds no keys: refused.
    let empty = tempfile::tempdir().unwrap();
    let config = Config {
        data_dir: empty.path().to_owned(),
        ..app.config.clone()
    };
    let err = healthcode_server::bind(&config).await.unwrap_err();
    let err = healthcode_server::problem::ErrorChain(&err).to_string();
    assert!(err.contains("holds no keys"), "{err}");
}

/// docs/openapi.json is what the code generates; `HEALTHCODE_UPDATE_OPENAPI=1` rewrites it.
#[test]
fn the_committed_openapi_document_is_current() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json");
    let generated = ApiDoc::openapi().to_pretty_json().unwrap() + "\n";
    if std::env::var_os("HEALTHCODE_UPDATE_OPENAPI").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).expect("docs/openapi.json is missing");
    assert!(
        committed == generated,
        "docs/openapi.json is stale: rerun with HEALTHCODE_UPDATE_OPENAPI=1"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purges_are_recorded_in_a_chain_that_verifies() {
    let mut app = TestApp::sqlite().await;
    app.stop().await;
    let config = Config {
        data_dir: app.config.data_dir.clone(),
        ..Config::default()
    };
    let report = healthcode_server::ops::purge_now(&config).await.unwrap();
    assert_eq!(report.report.total(), 0);
    assert_eq!(report.personal, healthcode_store::PersonalPurge::default());
    // The server's own purge at start and this one.
    let n = healthcode_server::ops::verify_audit_now(&config)
        .await
        .unwrap()
        .unwrap();
    assert!(n >= 1, "{n}");
    let missing = Config {
        data_dir: app.config.data_dir.with_file_name("not-there"),
        ..Config::default()
    };
    assert!(healthcode_server::ops::purge_now(&missing).await.is_err());
}
