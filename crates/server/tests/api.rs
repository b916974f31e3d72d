//! The server started for real on 127.0.0.1:0 and driven over HTTP.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use healthcode_server::{ApiDoc, Config};
use utoipa::OpenApi;

struct Running {
    base: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

async fn start(data_dir: &Path) -> Running {
    let config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: data_dir.to_owned(),
        ..Config::default()
    };
    let bound = healthcode_server::bind(&config).await.unwrap();
    let base = format!("http://{}", bound.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(bound.run(async move {
        let _ = rx.await;
    }));
    Running {
        base,
        stop: Some(tx),
        task,
    }
}

impl Running {
    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.task.await.unwrap().unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_trust_list_and_policy_are_served() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let s = start(&dir).await;
    let c = reqwest::Client::new();
    assert_eq!(
        c.get(format!("{}/healthz", s.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "ok"
    );
    assert_eq!(
        c.get(format!("{}/readyz", s.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "ready"
    );
    // The trust list verifies with the root key the data directory holds.
    let list = c
        .get(format!("{}/api/v1/trust-list", s.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let root = std::fs::read_to_string(dir.join("keys/root.pub")).unwrap();
    let root = healthcode_token::keys::public_key_from_text(&root).unwrap();
    let list = healthcode_token::TrustList::from_text(&list, &root).unwrap();
    assert_eq!(list.keys().count(), 1);
    let policy: serde_json::Value = c
        .get(format!("{}/api/v1/policy", s.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(policy["version"], "default-2026.1");
    assert!(
        policy["source"]
            .as_str()
            .unwrap()
            .contains("id = \"close-contact\"")
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_paths_are_problem_json() {
    let tmp = tempfile::tempdir().unwrap();
    let s = start(&tmp.path().join("data")).await;
    let r = reqwest::get(format!("{}/api/v1/nothing-here", s.base))
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let p: serde_json::Value = r.json().await.unwrap();
    assert_eq!(p["type"], "urn:healthcode:problem:not-found");
    assert_eq!(p["status"], 404);
    assert!(p["detail"].as_str().unwrap().contains("/api/v1/nothing-here"));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_carry_their_protections_and_redirect_only_here() {
    let tmp = tempfile::tempdir().unwrap();
    let s = start(&tmp.path().join("data")).await;
    let c = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = c.get(format!("{}/", s.base)).send().await.unwrap();
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
            .get(format!("{}/lang?to=zh&back={back}", s.base))
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
    let r = c.get(format!("{}/me", s.base)).send().await.unwrap();
    assert_eq!(r.headers()["location"], "/signin?next=%2Fme");
    // The service worker is named after the static files it keeps.
    let sw = c
        .get(format!("{}/sw.js", s.base))
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
    let r = c
        .get(format!("{}/static/js/hc1.js", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-type"], "text/javascript; charset=utf-8");
    let r = c
        .get(format!("{}/static/..%2F..%2FCargo.toml", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    s.stop().await;
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
    let tmp = tempfile::tempdir().unwrap();
    let s = start(&tmp.path().join("data")).await;
    let c = reqwest::Client::new();
    for _ in 0..3 {
        // Each try is told the same thing at once: no gateway (not "retry in 60 s").
        let r = c
            .post(format!("{}/api/v1/otp", s.base))
            .json(&serde_json::json!({"phone": "+8613800138000"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 503);
        let p: serde_json::Value = r.json().await.unwrap();
        assert!(p["detail"].as_str().unwrap().contains("no SMS gateway"), "{p}");
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_keeps_the_keys_and_a_broken_data_directory_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let s = start(&dir).await;
    let first = reqwest::get(format!("{}/api/v1/trust-list", s.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    s.stop().await;
    let s = start(&dir).await;
    let second = reqwest::get(format!("{}/api/v1/trust-list", s.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    s.stop().await;
    let root = std::fs::read_to_string(dir.join("keys/root.pub")).unwrap();
    let root = healthcode_token::keys::public_key_from_text(&root).unwrap();
    let kids = |t: &str| {
        healthcode_token::TrustList::from_text(t, &root)
            .unwrap()
            .keys()
            .map(|k| k.kid)
            .collect::<Vec<_>>()
    };
    assert_eq!(kids(&first), kids(&second));
    // The database gone from an existing data directory: refused, not silently recreated.
    std::fs::remove_file(dir.join("healthcode.db")).unwrap();
    let config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.clone(),
        ..Config::default()
    };
    // What the command line prints: the error and its causes.
    let err = healthcode_server::bind(&config).await.unwrap_err();
    let err = healthcode_server::problem::ErrorChain(&err).to_string();
    assert!(err.contains("does not exist"), "{err}");
    // A directory that exists but holds no keys: refused.
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let config = Config {
        data_dir: empty,
        ..config
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
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let s = start(&dir).await;
    s.stop().await;
    let config = Config {
        data_dir: dir.clone(),
        ..Config::default()
    };
    let report = healthcode_server::ops::purge_now(&config).await.unwrap();
    assert_eq!(report.total(), 0);
    // The server's own purge at start and this one.
    let n = healthcode_server::ops::verify_audit_now(&config)
        .await
        .unwrap()
        .unwrap();
    assert!(n >= 1, "{n}");
    let missing = Config {
        data_dir: tmp.path().join("not-there"),
        ..Config::default()
    };
    assert!(healthcode_server::ops::purge_now(&missing).await.is_err());
}
