//! `healthcode audit witness`: what an auditor, another region or a newspaper runs against a
//! server to hold it to its audit log. It fetches the trust list (checked against the root key it
//! was given), the newest signed tree head (checked against the audit-log key of that list), and a
//! consistency proof from the head it kept in its state file; it keeps the new head only when the
//! new tree extends the kept one.

use std::path::Path;

use healthcode_store::transparency::verify_consistency;
use healthcode_token::keys::VerifyingKey;
use healthcode_token::{SignedTreeHead, TrustList};
use time::OffsetDateTime;

use crate::transparency::{ConsistencyView, TreeHeadView, hash_from_b64};

/// What a witness run found.
#[derive(Debug, thiserror::Error)]
pub enum WitnessError {
    /// The server's log was rewritten, or it showed something that does not verify (exit 1).
    #[error("{0}")]
    Rejected(String),
    /// Bad input, an unreadable state file, or the server cannot be reached (exit 2).
    #[error("{0}")]
    Failed(String),
}

fn when(ms: u64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| format!("{ms} ms"))
}

async fn get_text(client: &reqwest::Client, url: &str) -> Result<(u16, String), WitnessError> {
    let resp = client
        .get(url)
        .send()
        .await
        .map_err(|e| WitnessError::Failed(format!("cannot reach {url}: {e}")))?;
    let status = resp.status().as_u16();
    let text = resp
        .text()
        .await
        .map_err(|e| WitnessError::Failed(format!("cannot read the answer of {url}: {e}")))?;
    Ok((status, text))
}

async fn get_json<T: serde::de::DeserializeOwned>(
    client: &reqwest::Client,
    url: &str,
) -> Result<(u16, Option<T>), WitnessError> {
    let (status, text) = get_text(client, url).await?;
    if status != 200 {
        return Ok((status, None));
    }
    let value = serde_json::from_str(&text).map_err(|e| {
        WitnessError::Rejected(format!(
            "{url} answered something that is not the expected JSON: {e}"
        ))
    })?;
    Ok((status, Some(value)))
}

/// Reads the kept head, if the state file exists.
fn read_state(state: &Path) -> Result<Option<SignedTreeHead>, WitnessError> {
    let text = match std::fs::read_to_string(state) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(WitnessError::Failed(format!("{}: {e}", state.display()))),
    };
    let view: TreeHeadView = serde_json::from_str(&text)
        .map_err(|e| WitnessError::Failed(format!("{} is not a kept tree head: {e}", state.display())))?;
    view.parse()
        .map(Some)
        .map_err(|e| WitnessError::Failed(format!("{} is not a kept tree head: {e}", state.display())))
}

fn write_state(state: &Path, head: &SignedTreeHead) -> Result<(), WitnessError> {
    let fail = |e: std::io::Error| WitnessError::Failed(format!("{}: {e}", state.display()));
    let json = serde_json::to_string_pretty(&TreeHeadView::from(head))
        .map_err(|e| WitnessError::Failed(e.to_string()))?;
    let tmp = state.with_extension("tmp");
    std::fs::write(&tmp, format!("{json}\n")).map_err(fail)?;
    std::fs::rename(&tmp, state).map_err(fail)
}

/// Checks the server at `server` (its base URL) against the head kept in `state`, with the trust
/// list's root key `root`. Returns the line to print when the log is consistent.
pub async fn witness(server: &str, state: &Path, root: &VerifyingKey) -> Result<String, WitnessError> {
    let base = server.trim_end_matches('/');
    if !(base.starts_with("http://") || base.starts_with("https://")) {
        return Err(WitnessError::Failed(format!(
            "--server must be an http:// or https:// URL, not {server:?}"
        )));
    }
    let kept = read_state(state)?;
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(20))
        .build()
        .map_err(|e| WitnessError::Failed(e.to_string()))?;
    let (status, list) = get_text(&client, &format!("{base}/api/v1/trust-list")).await?;
    if status != 200 {
        return Err(WitnessError::Failed(format!(
            "the trust list is not served (HTTP {status})"
        )));
    }
    let trust = TrustList::from_text(&list, root)
        .map_err(|e| WitnessError::Rejected(format!("REJECTED: the server's trust list: {e}")))?;
    let (status, view) =
        get_json::<TreeHeadView>(&client, &format!("{base}/api/v1/transparency/head")).await?;
    let view = view.ok_or_else(|| WitnessError::Failed(format!("no tree head is served (HTTP {status})")))?;
    let head = view
        .parse()
        .map_err(|e| WitnessError::Rejected(format!("REJECTED: the tree head is malformed: {e}")))?;
    head.verify(&trust)
        .map_err(|e| WitnessError::Rejected(format!("REJECTED: {e}")))?;
    let new = head.head;
    let line = match &kept {
        None => format!(
            "KEPT first tree head: {} entries, signed {}",
            new.tree_size,
            when(new.timestamp)
        ),
        Some(old) => {
            let old = old.head;
            let rewrite = |why: &str| {
                WitnessError::Rejected(format!(
                    "REWRITE: the tree at size {} (signed {}) no longer contains the head kept at size {} (signed {}): {why}",
                    new.tree_size,
                    when(new.timestamp),
                    old.tree_size,
                    when(old.timestamp)
                ))
            };
            if new.timestamp < old.timestamp {
                return Err(WitnessError::Rejected(format!(
                    "REJECTED: the served head (signed {}) is older than the one kept (signed {})",
                    when(new.timestamp),
                    when(old.timestamp)
                )));
            }
            if new.tree_size < old.tree_size {
                return Err(rewrite("the log has fewer entries than before"));
            }
            let url = format!(
                "{base}/api/v1/transparency/consistency?first={}&second={}",
                old.tree_size, new.tree_size
            );
            let (status, proof) = get_json::<ConsistencyView>(&client, &url).await?;
            let proof = proof
                .ok_or_else(|| rewrite(&format!("the server gives no consistency proof (HTTP {status})")))?;
            let hashes = proof
                .proof
                .iter()
                .map(|h| hash_from_b64(h))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| rewrite("the consistency proof is malformed"))?;
            if !verify_consistency(
                old.tree_size,
                &old.root_hash,
                new.tree_size,
                &new.root_hash,
                &hashes,
            ) {
                return Err(rewrite("the consistency proof does not verify"));
            }
            format!(
                "CONSISTENT: the tree at size {} (signed {}) extends the head kept at size {} (signed {})",
                new.tree_size,
                when(new.timestamp),
                old.tree_size,
                when(old.timestamp)
            )
        }
    };
    write_state(state, &head)?;
    Ok(line)
}
