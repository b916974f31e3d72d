//! `healthcode backup` while a server takes scans, then `healthcode restore` into a new directory:
//! the restored directory passes `healthcode audit verify`, a server started on it serves the
//! holders' codes, and every scan acknowledged before the backup began is in it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use healthcode_domain::{DeviceId, VenueId};
use healthcode_store::CheckinStore;
use healthcode_store_sqlite::{OpenMode, SqliteStore};
use serde_json::{Value, json};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn spawn(args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_healthcode"))
        .args(args)
        .env("RUST_LOG", "error")
        // Every scan here is its own check-in: the same code again at the same door is not
        // folded into one visit, so each acknowledged sequence number must be stored.
        .env("HEALTHCODE__LIMITS__SAME_VISIT_SECONDS", "0")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_healthcode"))
        .args(args)
        .env("RUST_LOG", "error")
        // Every scan here is its own check-in: the same code again at the same door is not
        // folded into one visit, so each acknowledged sequence number must be stored.
        .env("HEALTHCODE__LIMITS__SAME_VISIT_SECONDS", "0")
        .output()
        .unwrap()
}

async fn wait_ready(c: &reqwest::Client, base: &str) {
    for _ in 0..600 {
        if let Ok(r) = c.get(format!("{base}/readyz")).send().await
            && r.status().is_success()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the server did not become ready");
}

async fn code(c: &reqwest::Client, base: &str, session: &str) -> Value {
    let r = c
        .get(format!("{base}/api/v1/me/code"))
        .bearer_auth(session)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

fn stored_seqs(dir: &Path, venue: i64, device: i64) -> BTreeSet<i64> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = SqliteStore::open(&dir.join("healthcode.db"), OpenMode::MustExist).unwrap();
        let now = time::OffsetDateTime::now_utc();
        store
            .checkins_at_venue(
                VenueId(venue),
                now - time::Duration::days(1),
                now + time::Duration::days(1),
            )
            .await
            .unwrap()
            .into_iter()
            .filter(|c| c.device == DeviceId(device))
            .map(|c| c.seq)
            .collect()
    })
}

#[test]
fn a_backup_taken_under_load_restores_to_a_server_that_verifies_and_serves() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("demo");
    let listen = format!("127.0.0.1:{}", free_port());
    let base = format!("http://{listen}");
    let mut server = spawn(&[
        "demo",
        "--dir",
        dir.to_str().unwrap(),
        "--listen",
        &listen,
        "--holders",
        "10",
    ]);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let c = reqwest::Client::new();
    let backup_dir = tmp.path().join("backup");
    let (venue, device, session, before_backup, after_backup) = rt.block_on(async {
        wait_ready(&c, &base).await;
        let demo: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("demo.json")).unwrap()).unwrap();
        let d = demo["devices"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["admission"] == "all")
            .unwrap()
            .clone();
        let (venue, device, key) = (
            d["venue"].as_i64().unwrap(),
            d["device"].as_i64().unwrap(),
            d["key"].as_str().unwrap().to_owned(),
        );
        let session = demo["holders"][0]["session"].as_str().unwrap().to_owned();
        let token = code(&c, &base, &session).await["token"]
            .as_str()
            .unwrap()
            .to_owned();
        // Four clients stream scans while the backup runs.
        let next = Arc::new(AtomicI64::new(1_000_000));
        let acked = Arc::new(Mutex::new(BTreeSet::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let mut tasks = Vec::new();
        for _ in 0..4 {
            let (c, base, key, token) = (c.clone(), base.clone(), key.clone(), token.clone());
            let (next, acked, stop) = (next.clone(), acked.clone(), stop.clone());
            tasks.push(tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let seq = next.fetch_add(1, Ordering::Relaxed);
                    let r = c
                        .post(format!("{base}/api/v1/scans"))
                        .bearer_auth(&key)
                        .json(&json!({"venue": venue, "token": token, "seq": seq}))
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(r.status(), 200);
                    acked.lock().unwrap().insert(seq);
                }
            }));
        }
        tokio::time::sleep(Duration::from_millis(700)).await;
        let before_backup = acked.lock().unwrap().clone();
        let backup_dir = backup_dir.clone();
        let dir = dir.clone();
        let out = tokio::task::spawn_blocking(move || {
            run(&[
                "backup",
                backup_dir.to_str().unwrap(),
                "--data-dir",
                dir.to_str().unwrap(),
            ])
        })
        .await
        .unwrap();
        assert!(
            out.status.success(),
            "backup failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let after_backup = acked.lock().unwrap().len();
        tokio::time::sleep(Duration::from_millis(300)).await;
        stop.store(true, Ordering::Relaxed);
        for t in tasks {
            t.await.unwrap();
        }
        (venue, device, session, before_backup, after_backup)
    });
    assert!(
        after_backup > before_backup.len() && before_backup.len() > 20,
        "scans were not flowing during the backup: {} before, {after_backup} after",
        before_backup.len()
    );
    server.kill().unwrap();
    server.wait().unwrap();

    // A backup never overwrites.
    let again = run(&[
        "backup",
        backup_dir.to_str().unwrap(),
        "--data-dir",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("exists already"));

    let restored = tmp.path().join("restored");
    let out = run(&[
        "restore",
        backup_dir.to_str().unwrap(),
        "--data-dir",
        restored.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = run(&["audit", "verify", "--data-dir", restored.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("VALID audit chain"));
    let seqs = stored_seqs(&restored, venue, device);
    let missing: Vec<_> = before_backup.difference(&seqs).collect();
    assert!(
        missing.is_empty(),
        "acknowledged before the backup, missing from it: {missing:?}"
    );

    // A server on the restored directory serves the holders' codes.
    let listen = format!("127.0.0.1:{}", free_port());
    let base = format!("http://{listen}");
    let mut server = spawn(&[
        "serve",
        "--data-dir",
        restored.to_str().unwrap(),
        "--listen",
        &listen,
    ]);
    rt.block_on(async {
        wait_ready(&c, &base).await;
        let v = code(&c, &base, &session).await;
        assert!(v["token"].as_str().unwrap().starts_with("HC1:"), "{v}");
    });
    server.kill().unwrap();
    server.wait().unwrap();
    // Restoring onto a directory that exists is refused.
    let out = run(&[
        "restore",
        backup_dir.to_str().unwrap(),
        "--data-dir",
        restored.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
}
