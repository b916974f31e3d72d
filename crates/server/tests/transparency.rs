//! The transparency log, each test on a server of its own on SQLite and on PostgreSQL: signed tree
//! heads, inclusion proofs for a holder's access-log entries, consistency proofs, the witness
//! (`healthcode audit witness` is a thin wrapper over `ops::witness::witness`), and the insider's
//! rewrite of the audit rows caught by the witness and by `audit verify`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{TestApp, problem_type};
use healthcode_server::Config;
use healthcode_server::ops::witness::{WitnessError, witness};
use healthcode_server::transparency::{InclusionView, TreeHeadView, hash_from_b64};
use healthcode_store::transparency::{verify_consistency, verify_inclusion};
use healthcode_store::{AuditRecord, all_audit_records};
use healthcode_token::TrustList;
use healthcode_token::keys::{VerifyingKey, public_key_from_text};
use serde_json::Value;

fn quick_heads(c: &mut Config) {
    c.tree_head_interval_ms = 200;
}

common::on_both_backends!(configured by quick_heads;
    the_witness_and_audit_verify_catch_a_rewrite_of_the_audit_rows,
    a_holders_entries_are_proved_in_the_published_log,
    heads_are_signed_by_the_audit_log_key_and_proofs_refuse_bad_requests,
);

fn root_key(app: &TestApp) -> VerifyingKey {
    let root = std::fs::read_to_string(app.config.data_dir.join("keys/root.pub")).unwrap();
    public_key_from_text(&root).unwrap()
}

async fn head(app: &TestApp) -> TreeHeadView {
    serde_json::from_value(app.get("/api/v1/transparency/head", None).await).unwrap()
}

/// Waits until the published head covers at least `size` records.
async fn head_covering(app: &TestApp, size: u64) -> TreeHeadView {
    for _ in 0..100 {
        let h = head(app).await;
        if h.tree_size >= size {
            return h;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("no head covers {size} records");
}

/// How many audit records the store holds now.
async fn records(app: &TestApp) -> u64 {
    let auditor = app.auditor().await;
    let page = app
        .get("/api/v1/admin/audit?after=0&limit=1000", Some(&auditor.token))
        .await;
    page.as_array().unwrap().len() as u64
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The attacker's rewrite, as the issue describes it: with write access to the database, delete
/// the holder's `read-personal-data` entries and re-chain every record after them with correct
/// SHA-256 chain hashes, in plain SQL.
async fn rewrite_without_reads(app: &TestApp, subject_hex: &str) -> usize {
    let pg = app.config.database_url.clone();
    let sqlite = match &pg {
        None => Some(
            healthcode_store_sqlite::SqliteStore::open(
                &app.config.data_dir.join("healthcode.db"),
                healthcode_store_sqlite::OpenMode::MustExist,
            )
            .unwrap(),
        ),
        Some(_) => None,
    };
    let postgres = match &pg {
        Some(url) => Some(
            healthcode_store_postgres::PgStore::connect(
                &healthcode_store_postgres::DatabaseUrl::new(url.clone()),
                app.config.database_schema.as_deref(),
                1,
            )
            .await
            .unwrap(),
        ),
        None => None,
    };
    let all = match (&sqlite, &postgres) {
        (Some(s), _) => all_audit_records(s).await.unwrap(),
        (_, Some(p)) => all_audit_records(p).await.unwrap(),
        _ => unreachable!(),
    };
    let dropped: Vec<i64> = all
        .iter()
        .filter(|r| {
            r.entry.action == "read-personal-data"
                && r.entry.subject.as_ref().map(|s| s.to_hex()).as_deref() == Some(subject_hex)
        })
        .map(|r| r.seq)
        .collect();
    assert!(dropped.len() >= 2, "{dropped:?}");
    let from = dropped[0];
    let mut chain: Vec<AuditRecord> = all.iter().filter(|r| r.seq < from).cloned().collect();
    for r in all.iter().filter(|r| r.seq > from && !dropped.contains(&r.seq)) {
        let head = chain.last().map(|p| (p.seq, p.hash));
        chain.push(AuditRecord::next(head, &r.entry));
    }
    let blob = |b: &[u8]| match pg {
        None => format!("X'{}'", hex(b)),
        Some(_) => format!("'\\x{}'::bytea", hex(b)),
    };
    let text = |s: &str| format!("'{}'", s.replace('\'', "''"));
    let mut statements = vec![format!("DELETE FROM audit_log WHERE seq >= {from}")];
    for r in chain.iter().filter(|r| r.seq >= from) {
        statements.push(format!(
            "INSERT INTO audit_log (seq, at_ns, actor, role, action, subject, purpose, prev_hash, hash) \
             VALUES ({}, {}, {}, {}, {}, {}, {}, {}, {})",
            r.seq,
            r.at_ns().unwrap(),
            text(&r.entry.actor),
            text(&r.entry.role),
            text(&r.entry.action),
            r.entry
                .subject
                .as_ref()
                .map_or("NULL".to_owned(), |s| blob(s.as_bytes())),
            text(&r.entry.purpose),
            blob(&r.prev_hash),
            blob(&r.hash),
        ));
    }
    for sql in &statements {
        match (&sqlite, &postgres) {
            (Some(s), _) => {
                tokio::task::block_in_place(|| s.raw_execute(sql)).unwrap();
            }
            (_, Some(p)) => {
                p.raw_query(sql).await.unwrap();
            }
            _ => unreachable!(),
        }
    }
    // The rewritten chain verifies on its own: that is what made the attack work.
    let after = match (&sqlite, &postgres) {
        (Some(s), _) => all_audit_records(s).await.unwrap(),
        (_, Some(p)) => all_audit_records(p).await.unwrap(),
        _ => unreachable!(),
    };
    assert_eq!(
        healthcode_store::verify_chain(after).map(|n| n as usize),
        Ok(chain.len())
    );
    dropped.len()
}

async fn the_witness_and_audit_verify_catch_a_rewrite_of_the_audit_rows(app: &TestApp) {
    let resident = app.register_resident().await;
    let officer = app.officer().await;
    let case_id = app.confirm_case(app.second_officer().await, &resident).await;
    app.read_for_case(officer, &resident, case_id).await;
    app.read_for_case(officer, &resident, case_id).await;
    let state_dir = tempfile::tempdir().unwrap();
    let state = state_dir.path().join("witness.json");
    let root = root_key(app);

    // The witness keeps the first head it sees.
    head_covering(app, records(app).await).await;
    let first = witness(&app.base, &state, &root).await.unwrap();
    assert!(first.starts_with("KEPT first tree head"), "{first}");
    let kept: TreeHeadView = serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();

    // More is logged; the next head extends the kept one.
    app.read_for_case(officer, &resident, case_id).await;
    head_covering(app, kept.tree_size + 1).await;
    let line = witness(&app.base, &state, &root).await.unwrap();
    assert!(line.starts_with("CONSISTENT"), "{line}");
    assert!(
        line.contains(&format!("kept at size {}", kept.tree_size)),
        "{line}"
    );
    let kept: TreeHeadView = serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    // The store's own check agrees with the rows and the heads it kept.
    let verified = healthcode_server::ops::verify_audit_now(&app.config)
        .await
        .unwrap();
    assert!(verified.is_ok(), "{verified:?}");

    // The insider deletes the holder's reads and re-chains the rest: the chain alone is VALID again.
    let dropped = rewrite_without_reads(app, &resident.hex).await;
    assert!(dropped >= 3, "{dropped}");
    let log = app.get("/api/v1/me/access-log", Some(&resident.token)).await;
    assert!(
        log.as_array()
            .unwrap()
            .iter()
            .all(|e| e["action"] != "read-personal-data"),
        "{log}"
    );
    // Once the server has published a head of the rows as they now are, the witness reports the
    // rewrite and keeps its head.
    app.read_for_case(officer, &resident, case_id).await;
    tokio::time::sleep(std::time::Duration::from_millis(1000)).await;
    let line = match witness(&app.base, &state, &root).await {
        Err(WitnessError::Rejected(line)) => line,
        other => panic!("the witness missed the rewrite: {other:?}"),
    };
    assert!(line.starts_with("REWRITE"), "{line}");
    assert!(
        line.contains(&format!(
            "no longer contains the head kept at size {}",
            kept.tree_size
        )),
        "{line}"
    );
    let still: TreeHeadView = serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    assert_eq!(still, kept, "an inconsistent head is never kept");
    // And again on the next run: the witness does not get used to it.
    assert!(matches!(
        witness(&app.base, &state, &root).await,
        Err(WitnessError::Rejected(_))
    ));
    // `healthcode audit verify`: the chain verifies, the heads the store kept do not match.
    let broken = healthcode_server::ops::verify_audit_now(&app.config)
        .await
        .unwrap()
        .unwrap_err();
    assert!(
        matches!(broken, healthcode_server::ops::AuditBroken::Head(_)),
        "{broken}"
    );
    assert!(broken.to_string().contains("rewritten"), "{broken}");
}

async fn a_holders_entries_are_proved_in_the_published_log(app: &TestApp) {
    let resident = app.register_resident().await;
    let officer = app.officer().await;
    let case_id = app.confirm_case(app.second_officer().await, &resident).await;
    app.read_for_case(officer, &resident, case_id).await;
    let log = app.get("/api/v1/me/access-log", Some(&resident.token)).await;
    let entries = log.as_array().unwrap();
    assert!(!entries.is_empty(), "{log}");
    let last_index = entries
        .iter()
        .map(|e| e["leaf_index"].as_u64().unwrap())
        .max()
        .unwrap();
    let h = head_covering(app, last_index + 1).await;
    let root_hash = hash_from_b64(&h.root_hash).unwrap();
    for e in entries {
        let index = e["leaf_index"].as_u64().unwrap();
        let leaf = hash_from_b64(e["leaf"].as_str().unwrap()).unwrap();
        let p: InclusionView = serde_json::from_value(
            app.get(
                &format!(
                    "/api/v1/transparency/inclusion?index={index}&tree_size={}",
                    h.tree_size
                ),
                None,
            )
            .await,
        )
        .unwrap();
        assert_eq!(
            hash_from_b64(&p.leaf),
            Some(leaf),
            "the log holds the holder's entry at its place"
        );
        let proof: Vec<_> = p.proof.iter().map(|x| hash_from_b64(x).unwrap()).collect();
        assert!(
            verify_inclusion(&leaf, index, h.tree_size, &root_hash, &proof),
            "{e}"
        );
        // Another holder's entry or another place does not verify with this proof.
        let mut other = leaf;
        other[0] ^= 1;
        assert!(!verify_inclusion(&other, index, h.tree_size, &root_hash, &proof));
    }
    // Proofs to an older head still verify, and the newer head extends it.
    app.read_for_case(officer, &resident, case_id).await;
    let newer = head_covering(app, h.tree_size + 1).await;
    let c = app
        .get(
            &format!(
                "/api/v1/transparency/consistency?first={}&second={}",
                h.tree_size, newer.tree_size
            ),
            None,
        )
        .await;
    let proof: Vec<_> = c["proof"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| hash_from_b64(x.as_str().unwrap()).unwrap())
        .collect();
    assert!(verify_consistency(
        h.tree_size,
        &root_hash,
        newer.tree_size,
        &hash_from_b64(&newer.root_hash).unwrap(),
        &proof
    ));
}

async fn heads_are_signed_by_the_audit_log_key_and_proofs_refuse_bad_requests(app: &TestApp) {
    let root = root_key(app);
    let list = app.get("/api/v1/trust-list", None).await;
    let trust = TrustList::from_text(list.as_str().unwrap(), &root).unwrap();
    let audit_keys: Vec<_> = trust
        .keys()
        .filter(|k| k.purposes.contains(&healthcode_token::Purpose::AuditLog))
        .collect();
    assert_eq!(audit_keys.len(), 1, "one key signs the audit log");
    assert_eq!(
        audit_keys[0].purposes,
        vec![healthcode_token::Purpose::AuditLog],
        "and nothing else"
    );
    let h = head_covering(app, 1).await;
    let signed = h.parse().unwrap();
    assert_eq!(signed.key_id, audit_keys[0].kid);
    assert_eq!(signed.verify(&trust), Ok(()));
    // A head with a changed size or a flipped signature bit is refused.
    let mut bigger = signed.clone();
    bigger.head.tree_size += 1;
    assert!(bigger.verify(&trust).is_err());
    let mut flipped = signed.clone();
    flipped.signature[0] ^= 1;
    assert!(flipped.verify(&trust).is_err());

    let size = h.tree_size;
    for (path, status, kind) in [
        (
            format!("/api/v1/transparency/inclusion?index={size}&tree_size={size}"),
            422,
            "invalid-field",
        ),
        (
            format!(
                "/api/v1/transparency/inclusion?index=0&tree_size={}",
                size + 1_000_000
            ),
            404,
            "not-found",
        ),
        (
            "/api/v1/transparency/inclusion?index=-1&tree_size=2".into(),
            400,
            "",
        ),
        ("/api/v1/transparency/inclusion".into(), 400, ""),
        (
            format!(
                "/api/v1/transparency/consistency?first={}&second={size}",
                size + 1
            ),
            422,
            "invalid-field",
        ),
        (
            format!(
                "/api/v1/transparency/consistency?first=1&second={}",
                size + 1_000_000
            ),
            404,
            "not-found",
        ),
        (
            "/api/v1/transparency/consistency?first=x&second=2".into(),
            400,
            "",
        ),
    ] {
        let (st, p): (_, Value) = app.call("GET", &path, None, None).await;
        assert_eq!(st.as_u16(), status, "{path}: {p}");
        assert!(problem_type(&p).ends_with(kind), "{path}: {p}");
    }
    // The endpoints need no sign-in and give no personal data: only sizes and hashes.
    let p = app
        .get(
            &format!("/api/v1/transparency/inclusion?index=0&tree_size={size}"),
            None,
        )
        .await;
    let keys: Vec<&String> = p.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["index", "leaf", "proof", "tree_size"]);

    // A witness pinned to another root refuses the server's list, and a bad URL is bad input.
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("w.json");
    let stranger = healthcode_token::keys::generate_signing_key()
        .unwrap()
        .verifying_key();
    assert!(matches!(
        witness(&app.base, &state, &stranger).await,
        Err(WitnessError::Rejected(_))
    ));
    assert!(
        !state.exists(),
        "nothing is kept from a server that does not verify"
    );
    assert!(matches!(
        witness("ftp://example", &state, &root).await,
        Err(WitnessError::Failed(_))
    ));
    // A kept head that the server's log does not contain (as another log's would be) is a rewrite.
    let mut forged = signed.clone();
    forged.head.root_hash[7] ^= 0x20;
    std::fs::write(
        &state,
        serde_json::to_string(&TreeHeadView::from(&forged)).unwrap(),
    )
    .unwrap();
    match witness(&app.base, &state, &root).await {
        Err(WitnessError::Rejected(line)) => assert!(line.starts_with("REWRITE"), "{line}"),
        other => panic!("{other:?}"),
    }
}
