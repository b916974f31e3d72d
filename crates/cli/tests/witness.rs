//! `healthcode audit witness`, the real binary against a real `healthcode serve` on SQLite: it
//! keeps the first head, finds the next consistent, and reports the insider's rewrite of the audit
//! rows (entries deleted, the chain recomputed so that the chain alone verifies) with exit 1, as
//! `healthcode audit verify` does from the heads the store kept. PostgreSQL is covered by the
//! server's tests (crates/server/tests/transparency.rs), which call the same function.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use healthcode_store::{AuditRecord, all_audit_records, verify_chain};
use healthcode_store_sqlite::{OpenMode, SqliteStore};

fn healthcode(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_healthcode"))
        .args(args)
        .env_remove("HEALTHCODE_TRUST_ROOT")
        .output()
        .unwrap()
}

fn line(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
    .trim_end()
    .to_owned()
}

/// The server, killed when the test ends however it ends.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Site {
    _tmp: tempfile::TempDir,
    data: PathBuf,
    config: PathBuf,
    port: u16,
}

impl Site {
    fn serve(&self) -> Server {
        let server = Server(
            Command::new(env!("CARGO_BIN_EXE_healthcode"))
                .args(["serve", "--config"])
                .arg(&self.config)
                .arg("--data-dir")
                .arg(&self.data)
                .env("RUST_LOG", "error")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "the server did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn admin(&self, name: &str) {
        let o = healthcode(&[
            "admin",
            "create",
            "--username",
            name,
            "--data-dir",
            self.data.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}", line(&o));
    }
}

fn site() -> Site {
    let tmp = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = tmp.path().join("healthcode.toml");
    std::fs::write(
        &config,
        format!("listen = \"127.0.0.1:{port}\"\ntree_head_interval_ms = 200\n"),
    )
    .unwrap();
    let data = tmp.path().join("data");
    Site {
        _tmp: tmp,
        data,
        config,
        port,
    }
}

fn witness(site: &Site, state: &Path) -> Output {
    healthcode(&[
        "audit",
        "witness",
        "--server",
        &site.url(),
        "--state",
        state.to_str().unwrap(),
        "--root-key",
        site.data.join("keys/root.pub").to_str().unwrap(),
    ])
}

/// Deletes the first record and re-chains every later one with correct chain hashes, in SQL.
fn rewrite(data: &Path) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = SqliteStore::open(&data.join("healthcode.db"), OpenMode::MustExist).unwrap();
        let all = all_audit_records(&store).await.unwrap();
        assert!(all.len() >= 2);
        let mut chain: Vec<AuditRecord> = Vec::new();
        for r in &all[1..] {
            let head = chain.last().map(|p| (p.seq, p.hash));
            chain.push(AuditRecord::next(head, &r.entry));
        }
        let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        let text = |s: &str| format!("'{}'", s.replace('\'', "''"));
        tokio::task::block_in_place(|| {
            store.raw_execute("DELETE FROM audit_log").unwrap();
            for r in &chain {
                store
                    .raw_execute(&format!(
                        "INSERT INTO audit_log (seq, at_ns, actor, role, action, subject, purpose, prev_hash, hash) \
                         VALUES ({}, {}, {}, {}, {}, {}, {}, X'{}', X'{}')",
                        r.seq,
                        r.at_ns().unwrap(),
                        text(&r.entry.actor),
                        text(&r.entry.role),
                        text(&r.entry.action),
                        r.entry
                            .subject
                            .as_ref()
                            .map_or("NULL".to_owned(), |s| format!("X'{}'", hex(s.as_bytes()))),
                        text(&r.entry.purpose),
                        hex(&r.prev_hash),
                        hex(&r.hash),
                    ))
                    .unwrap();
            }
        });
        let after = all_audit_records(&store).await.unwrap();
        assert_eq!(verify_chain(after), Ok(chain.len() as u64), "the rewritten chain verifies alone");
    });
}

#[test]
fn the_witness_keeps_consistent_heads_and_reports_a_rewrite() {
    let site = site();
    site.admin("root");
    let state_dir = tempfile::tempdir().unwrap();
    let state = state_dir.path().join("witness.json");

    let server = site.serve();
    let o = witness(&site, &state);
    assert_eq!(o.status.code(), Some(0), "{}", line(&o));
    assert!(line(&o).starts_with("KEPT first tree head"), "{}", line(&o));
    assert_eq!(line(&o).lines().count(), 1);
    drop(server);

    // More is logged while the server is down; the next head extends the kept one.
    site.admin("second-admin");
    let server = site.serve();
    let o = witness(&site, &state);
    assert_eq!(o.status.code(), Some(0), "{}", line(&o));
    assert!(line(&o).starts_with("CONSISTENT"), "{}", line(&o));
    let kept = std::fs::read_to_string(&state).unwrap();
    drop(server);
    let o = healthcode(&["audit", "verify", "--data-dir", site.data.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", line(&o));

    // The insider's rewrite: the chain verifies again, the log no longer contains the kept head.
    rewrite(&site.data);
    let _server = site.serve();
    let o = witness(&site, &state);
    assert_eq!(o.status.code(), Some(1), "{}", line(&o));
    let said = line(&o);
    assert!(said.starts_with("REWRITE: the tree at size"), "{said}");
    assert!(
        said.contains("no longer contains the head kept at size"),
        "{said}"
    );
    assert_eq!(said.lines().count(), 1, "{said}");
    assert_eq!(
        std::fs::read_to_string(&state).unwrap(),
        kept,
        "the inconsistent head is not kept"
    );
    let o = healthcode(&["audit", "verify", "--data-dir", site.data.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", line(&o));
    assert!(line(&o).contains("rewritten"), "{}", line(&o));
}

#[test]
fn bad_input_and_an_unreachable_server_exit_2() {
    let site = site();
    site.admin("root");
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("w.json");
    // Nothing listens on the port.
    let o = witness(&site, &state);
    assert_eq!(o.status.code(), Some(2), "{}", line(&o));
    assert!(line(&o).contains("cannot reach"), "{}", line(&o));
    // A root key that is no key, and a state file that is no head.
    let o = healthcode(&[
        "audit",
        "witness",
        "--server",
        &site.url(),
        "--state",
        "x.json",
        "--root-key",
        "nonsense",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", line(&o));
    std::fs::write(&state, "{}").unwrap();
    let o = witness(&site, &state);
    assert_eq!(o.status.code(), Some(2), "{}", line(&o));
    assert!(line(&o).contains("not a kept tree head"), "{}", line(&o));
}
