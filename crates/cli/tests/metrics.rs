//! `/metrics` behind a token when one is configured, and labelled only by methods HTTP defines:
//! invented methods make no series of their own.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Stdio};
use std::time::Duration;

#[test]
fn metrics_need_the_configured_token_and_invented_methods_make_no_series() {
    let tmp = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let base = format!("http://{listen}");
    let mut server = Command::new(env!("CARGO_BIN_EXE_healthcode"))
        .args([
            "serve",
            "--data-dir",
            tmp.path().join("d").to_str().unwrap(),
            "--listen",
            &listen,
        ])
        .env("HEALTHCODE_METRICS_TOKEN", "metrics-secret-1")
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let c = reqwest::Client::new();
        let mut up = false;
        for _ in 0..300 {
            if c.get(format!("{base}/healthz")).send().await.is_ok() {
                up = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(up, "the server did not start");
        for i in 0..20 {
            let method = reqwest::Method::from_bytes(format!("INVENTED{i}").as_bytes()).unwrap();
            let _ = c.request(method, format!("{base}/healthz")).send().await.unwrap();
        }
        let r = c.get(format!("{base}/metrics")).send().await.unwrap();
        assert_eq!(r.status(), 401);
        assert_eq!(r.headers()["content-type"], "application/problem+json");
        let r = c
            .get(format!("{base}/metrics"))
            .bearer_auth("a guess")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
        let r = c
            .get(format!("{base}/metrics"))
            .bearer_auth("metrics-secret-1")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let text = r.text().await.unwrap();
        assert!(!text.contains("INVENTED"), "{text}");
        assert!(text.contains("method=\"other\""), "{text}");
    });
    let _ = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status();
    let status = server.wait().unwrap();
    assert_eq!(status.code(), Some(0));
}
