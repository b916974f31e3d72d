//! A scan answered "recorded" survives `kill -9`: a client streams scans at a running
//! `healthcode demo`, the server is killed mid-stream and started again with `healthcode serve`,
//! the client re-sends everything it sent, and the store holds every scan exactly once,
//! including every one acknowledged before the kill.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use healthcode_domain::{DeviceId, VenueId};
use healthcode_store::CheckinStore;
use healthcode_store_sqlite::{OpenMode, SqliteStore};
use serde_json::{Value, json};

const SEQ_BASE: i64 = 1_000_000;

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

async fn scan(c: &reqwest::Client, base: &str, key: &str, venue: i64, token: &str, seq: i64) -> Option<bool> {
    let r = c
        .post(format!("{base}/api/v1/scans"))
        .bearer_auth(key)
        .json(&json!({"venue": venue, "token": token, "seq": seq}))
        .send()
        .await
        .ok()?;
    if !r.status().is_success() {
        return None;
    }
    let v: Value = r.json().await.ok()?;
    v["recorded"].as_bool()
}

fn stored_seqs(dir: &Path, venue: i64, device: i64) -> Vec<i64> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = SqliteStore::open(&dir.join("healthcode.db"), OpenMode::MustExist).unwrap();
        store.flush_checkins().unwrap();
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
            .filter(|c| c.device == DeviceId(device) && c.seq >= SEQ_BASE)
            .map(|c| c.seq)
            .collect()
    })
}

/// `healthcode demo` with ten holders on a free port, and a runtime to talk to it.
struct Demo {
    _tmp: tempfile::TempDir,
    dir: std::path::PathBuf,
    listen: String,
    base: String,
    server: Child,
    rt: tokio::runtime::Runtime,
}

impl Demo {
    fn start() -> Demo {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("demo");
        let listen = format!("127.0.0.1:{}", free_port());
        let server = spawn(&[
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
        Demo {
            _tmp: tmp,
            dir,
            base: format!("http://{listen}"),
            listen,
            server,
            rt,
        }
    }
}

#[test]
fn acknowledged_scans_survive_kill_9_and_retries_store_them_once() {
    let Demo {
        _tmp,
        dir,
        listen,
        base,
        mut server,
        rt,
    } = Demo::start();
    let (venue, device, key, tokens, acked, sent) = rt.block_on(async {
        let c = reqwest::Client::new();
        wait_ready(&c, &base).await;
        let demo: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("demo.json")).unwrap()).unwrap();
        let device = demo["devices"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["admission"] == "all")
            .unwrap()
            .clone();
        let (venue, key) = (
            device["venue"].as_i64().unwrap(),
            device["key"].as_str().unwrap().to_owned(),
        );
        let device = device["device"].as_i64().unwrap();
        let mut tokens = Vec::new();
        for h in demo["holders"].as_array().unwrap() {
            let v: Value = c
                .get(format!("{base}/api/v1/me/code"))
                .bearer_auth(h["session"].as_str().unwrap())
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            tokens.push(v["token"].as_str().unwrap().to_owned());
        }
        // Stream scans from eight clients; kill the server after a second.
        let next = Arc::new(AtomicI64::new(SEQ_BASE));
        let acked = Arc::new(Mutex::new(BTreeSet::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let (c, base, key, tokens) = (c.clone(), base.clone(), key.clone(), tokens.clone());
            let (next, acked, stop) = (next.clone(), acked.clone(), stop.clone());
            tasks.push(tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let seq = next.fetch_add(1, Ordering::Relaxed);
                    let token = &tokens[(seq as usize) % tokens.len()];
                    match scan(&c, &base, &key, venue, token, seq).await {
                        Some(true) => {
                            acked.lock().unwrap().insert(seq);
                        }
                        Some(false) => panic!("a scan at a venue that admits everyone was not recorded"),
                        None => {}
                    }
                }
            }));
        }
        tokio::time::sleep(Duration::from_millis(1500)).await;
        server.kill().unwrap(); // SIGKILL
        server.wait().unwrap();
        stop.store(true, Ordering::Relaxed);
        for t in tasks {
            t.await.unwrap();
        }
        let sent = next.load(Ordering::Relaxed);
        let acked = acked.lock().unwrap().clone();
        (venue, device, key, tokens, acked, sent)
    });
    assert!(
        acked.len() > 50,
        "too few scans before the kill to mean anything: {}",
        acked.len()
    );
    // Everything acknowledged before the kill is in the store.
    let after_crash: BTreeSet<i64> = stored_seqs(&dir, venue, device).into_iter().collect();
    let lost: Vec<&i64> = acked.difference(&after_crash).collect();
    assert!(lost.is_empty(), "acknowledged scans lost in the crash: {lost:?}");

    // Restart and re-send every scan sent (acknowledged or not): each is stored once.
    let mut server = spawn(&["serve", "--data-dir", dir.to_str().unwrap(), "--listen", &listen]);
    rt.block_on(async {
        let c = reqwest::Client::new();
        wait_ready(&c, &base).await;
        for seq in SEQ_BASE..sent {
            let token = &tokens[(seq as usize) % tokens.len()];
            assert_eq!(
                scan(&c, &base, &key, venue, token, seq).await,
                Some(true),
                "retry of {seq}"
            );
        }
    });
    server.kill().unwrap();
    server.wait().unwrap();
    let all = stored_seqs(&dir, venue, device);
    let mut counts: BTreeMap<i64, usize> = BTreeMap::new();
    for s in &all {
        *counts.entry(*s).or_default() += 1;
    }
    let twice: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "stored more than once: {twice:?}");
    let expected: BTreeSet<i64> = (SEQ_BASE..sent).collect();
    let have: BTreeSet<i64> = counts.keys().copied().collect();
    assert_eq!(have, expected, "after the retries every scan sent is stored");
}

/// SIGTERM (what a service manager sends) drains instead of killing: new connections are refused,
/// a request half sent when the signal came is still answered, and the process exits 0.
#[test]
fn sigterm_finishes_the_requests_in_flight_and_exits_zero() {
    use std::io::{Read, Write};
    let Demo {
        _tmp,
        dir: _,
        listen,
        base,
        mut server,
        rt,
    } = Demo::start();
    rt.block_on(wait_ready(&reqwest::Client::new(), &base));
    // A one-time-code request whose body is only half sent.
    let mut slow = std::net::TcpStream::connect(&listen).unwrap();
    let body = br#"{"phone": "+8613800138123"}"#;
    write!(
        slow,
        "POST /api/v1/otp HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    slow.write_all(&body[..10]).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let term = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    std::thread::sleep(Duration::from_millis(500));
    // The server is draining: no new connections, but the one in flight is served.
    assert!(
        std::net::TcpStream::connect(&listen).is_err(),
        "a draining server still accepts connections"
    );
    slow.write_all(&body[10..]).unwrap();
    let mut answer = String::new();
    slow.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 202"), "{answer}");
    let status = server.wait().unwrap();
    assert_eq!(status.code(), Some(0), "healthcode demo ended with {status}");
}
