//! The web interface in a real browser, and the browser's verifier against the test vectors.
//!
//! `web/tests/browser.mjs` drives Debian's Chromium with Playwright against a `healthcode demo`
//! started here; `web/tests/vectors.mjs` and `web/tests/qr.mjs` run the browser modules (the HC1
//! verifier and the QR drawing) under Node. They need Node.js, Chromium and `npm ci` in `web/`.
//! Where those are missing the tests say so and pass, unless `HEALTHCODE_BROWSER_TESTS=1` (as in
//! CI), which makes a missing piece a failure.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

fn required() -> bool {
    std::env::var("HEALTHCODE_BROWSER_TESTS").is_ok_and(|v| v == "1")
}

/// Whether the test can run here; when it cannot and is not required, says why.
fn available(what: &str, present: bool) -> bool {
    if present {
        return true;
    }
    assert!(!required(), "{what} is missing and HEALTHCODE_BROWSER_TESTS=1");
    eprintln!("skipped: {what} is missing (set HEALTHCODE_BROWSER_TESTS=1 to require it)");
    false
}

fn has_node() -> bool {
    Command::new("node")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn chromium() -> PathBuf {
    std::env::var_os("HC_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"))
}

fn node(script: &str, envs: &[(&str, &Path)]) {
    let out = Command::new("node")
        .arg(root().join(script))
        .current_dir(root().join("web"))
        .envs(envs.iter().map(|(k, v)| (*k, v.as_os_str())))
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{text}");
    assert!(out.status.success(), "{script} failed:\n{text}");
}

#[test]
fn browser_verifier_agrees_with_the_test_vectors() {
    if !available("Node.js", has_node()) {
        return;
    }
    node("web/tests/vectors.mjs", &[]);
    node("web/tests/qr.mjs", &[]);
}

/// The browser's transparency-log checks (`transparency.js`, `verifyTreeHeadSignature`) against
/// proofs and a signed tree head made by the server's own code.
#[test]
fn browser_transparency_checks_agree_with_the_server() {
    use healthcode_server::transparency::TreeHeadView;
    use healthcode_store::transparency::LogTree;
    use healthcode_token::keystore::{Keystore, read_private_key};
    use healthcode_token::{Issuer, TreeHead, TreeHeadSigner};
    use serde_json::json;

    if !available("Node.js", has_node()) {
        return;
    }
    let b64 = |h: &[u8]| data_encoding::BASE64.encode(h);
    let leaves: Vec<[u8; 32]> = (0..40u8)
        .map(|i| {
            let mut h = [i.wrapping_mul(37); 32];
            h[0] = i;
            h
        })
        .collect();
    let full = LogTree::of(&leaves);
    let mut inclusion = Vec::new();
    let mut consistency = Vec::new();
    for n in 1..=leaves.len() as u64 {
        let root = full.root_at(n).unwrap();
        for i in 0..n {
            inclusion.push(json!({
                "index": i, "tree_size": n, "leaf": b64(&leaves[i as usize]), "root": b64(&root),
                "proof": full.inclusion(i, n).unwrap().iter().map(|h| b64(h)).collect::<Vec<_>>(),
            }));
        }
        for m in 1..n {
            consistency.push(json!({
                "first": m, "second": n, "first_root": b64(&full.root_at(m).unwrap()), "second_root": b64(&root),
                "proof": full.consistency(m, n).unwrap().iter().map(|h| b64(h)).collect::<Vec<_>>(),
            }));
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let now = time::OffsetDateTime::now_utc();
    let keys = Keystore::generate(
        &dir.path().join("keys"),
        Issuer::parse("CN-ZJ").unwrap(),
        time::Duration::days(30),
        now,
    )
    .unwrap();
    let head = TreeHead {
        tree_size: full.len(),
        root_hash: full.root(),
        timestamp: u64::try_from(now.unix_timestamp()).unwrap() * 1000,
    };
    let signed = keys.audit_log_signer().unwrap().sign(head);
    let issuer_key = read_private_key(
        &dir.path()
            .join(format!("keys/signing-{}.key.pem", keys.keys()[0].kid)),
    )
    .unwrap();
    let by_issuer = TreeHeadSigner::new(issuer_key).sign(head);
    let cases = json!({
        "inclusion": inclusion,
        "consistency": consistency,
        "trust_list": keys.export_trust_list(now, time::Duration::days(1)).unwrap(),
        "root_public_key": keys.root_public(),
        "head": TreeHeadView::from(&signed),
        "head_by_issuer_key": TreeHeadView::from(&by_issuer),
    });
    let file = dir.path().join("cases.json");
    std::fs::write(&file, cases.to_string()).unwrap();
    node("web/tests/transparency.mjs", &[("HC_TRANSPARENCY_CASES", &file)]);
}

/// Kills the demo server when the test ends, however it ends.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn web_interface_in_chromium() {
    if !available("Node.js", has_node())
        || !available("Chromium", chromium().exists())
        || !available(
            "web/node_modules (run npm ci in web/)",
            root().join("web/node_modules/playwright-core").exists(),
        )
    {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let log = dir.path().join("server.log");
    let log_file = std::fs::File::create(&log).unwrap();
    let demo = dir.path().join("demo");
    // The default policy, except that exposures wait for an officer's review.
    let policy = dir.path().join("policy.toml");
    let default = include_str!("../../policy/default-policy.toml");
    assert!(default.contains("\napply = \"automatic\"\n"));
    std::fs::write(
        &policy,
        default.replace("\napply = \"automatic\"\n", "\napply = \"review\"\n"),
    )
    .unwrap();
    let _server = Server(
        Command::new(env!("CARGO_BIN_EXE_healthcode"))
            .args(["demo", "--listen", &format!("127.0.0.1:{port}"), "--dir"])
            .arg(&demo)
            .arg("--policy")
            .arg(&policy)
            .env("RUST_LOG", "warn")
            .env("NO_COLOR", "1")
            .stdout(log_file.try_clone().unwrap())
            .stderr(log_file)
            .spawn()
            .unwrap(),
    );
    let base = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    loop {
        let ready =
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() && demo.join("demo.json").exists();
        if ready {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the demo did not start:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let shots = root().join("web/screenshots");
    node(
        "web/tests/browser.mjs",
        &[
            ("HC_BASE", Path::new(&base)),
            ("HC_DEMO_JSON", &demo.join("demo.json")),
            ("HC_LOG", &log),
            ("HC_SHOTS", &shots),
            ("HC_CHROMIUM", &chromium()),
        ],
    );
    // Every page at both sizes.
    let count = std::fs::read_dir(&shots)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.file_name().to_string_lossy().ends_with("-360x640.png"))
        })
        .count();
    assert!(count >= 20, "only {count} pages were photographed");
}
