//! The audit log: append-only entries, each hash-chained to the one before, and a verifier that
//! walks the chain and names the first broken entry.
//!
//! What the chain proves: an entry changed or removed in place breaks it. What it does not: someone
//! who can write the database can rewrite an entry and every hash after it, or drop the newest
//! entries. Against that the records are also the leaves of a Merkle tree ([`crate::transparency`])
//! whose signed heads are published and kept by witnesses outside the database: a rewrite then
//! shows as a tree that no longer extends a head someone kept. The store keeps the heads too
//! ([`AuditStore::save_tree_head`]), and [`verify_tree_heads`] checks the rows against them.

use healthcode_domain::HolderId;
use sha2::{Digest, Sha256};
use std::future::Future;

use time::OffsetDateTime;

use crate::transparency::{LogTree, StoredTreeHead};
use crate::{StoreError, StoreResult};

/// One thing someone did with personal data or with a holder's colour.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// When.
    pub at: OffsetDateTime,
    /// Who: an officer's account name, a device id, `holder:<id>`, or `system`.
    pub actor: String,
    /// In which role: officer, admin, auditor, device, holder, system.
    pub role: String,
    /// What: `read-personal-data`, `override-approve`, `case-record`, …
    pub action: String,
    /// Whose data, if a holder's.
    pub subject: Option<HolderId>,
    /// Why: the recorded purpose of the access.
    pub purpose: String,
}

/// An entry as stored, with its place in the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    /// Position in the chain, from 1.
    pub seq: i64,
    /// The entry.
    pub entry: AuditEntry,
    /// The hash of the entry before (zeros for the first).
    pub prev_hash: [u8; 32],
    /// This entry's hash.
    pub hash: [u8; 32],
}

/// The hash of the first entry's predecessor.
pub const GENESIS: [u8; 32] = [0; 32];

/// `SHA-256(prev ‖ seq ‖ at ‖ actor ‖ role ‖ action ‖ subject ‖ purpose)`, each text field
/// length-prefixed so no two entries encode alike.
pub fn chain_hash(prev: &[u8; 32], seq: i64, e: &AuditEntry) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"healthcode-audit-v1");
    h.update(prev);
    h.update(seq.to_be_bytes());
    h.update(e.at.unix_timestamp_nanos().to_be_bytes());
    let subject = e.subject.as_ref().map(|s| s.to_hex()).unwrap_or_default();
    for field in [&e.actor, &e.role, &e.action, &subject, &e.purpose] {
        h.update((field.len() as u64).to_be_bytes());
        h.update(field.as_bytes());
    }
    h.finalize().into()
}

impl AuditRecord {
    /// The record that appends `entry` to a log whose newest record has `head` (its sequence
    /// number and hash; `None` for an empty log): the next number, linked to that hash.
    pub fn next(head: Option<(i64, [u8; 32])>, entry: &AuditEntry) -> AuditRecord {
        let (seq, prev_hash) = match head {
            Some((seq, hash)) => (seq + 1, hash),
            None => (1, GENESIS),
        };
        AuditRecord {
            seq,
            hash: chain_hash(&prev_hash, seq, entry),
            entry: entry.clone(),
            prev_hash,
        }
    }

    /// The entry's time as stored: nanoseconds since 1970 ([`StoreError::Refused`] past the
    /// year 2262, which they cannot count).
    pub fn at_ns(&self) -> StoreResult<i64> {
        i64::try_from(self.entry.at.unix_timestamp_nanos())
            .map_err(|_| StoreError::Refused("time out of range".into()))
    }
}

/// A time as the audit log stores it: nanoseconds since 1970 ([`StoreError::Refused`] past the
/// year 2262).
pub fn audit_ns(at: OffsetDateTime) -> StoreResult<i64> {
    i64::try_from(at.unix_timestamp_nanos()).map_err(|_| StoreError::Refused("time out of range".into()))
}

/// Where and why the chain is broken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("audit chain broken at entry {seq}: {reason}")]
pub struct ChainBreak {
    /// The first entry that does not verify.
    pub seq: i64,
    /// Why.
    pub reason: String,
}

/// Walks the records in order from the first: sequence numbers without gaps, each `prev_hash`
/// equal to the hash before, each hash recomputed from the entry. Returns the number checked.
pub fn verify_chain(records: impl IntoIterator<Item = AuditRecord>) -> Result<u64, ChainBreak> {
    let mut prev = GENESIS;
    let mut count = 0;
    for (expected_seq, r) in (1..).zip(records) {
        let brk = |reason: &str| ChainBreak {
            seq: r.seq,
            reason: reason.to_owned(),
        };
        if r.seq != expected_seq {
            return Err(ChainBreak {
                seq: expected_seq,
                reason: format!("entry missing (found {} next)", r.seq),
            });
        }
        if r.prev_hash != prev {
            return Err(brk("its link to the entry before does not match"));
        }
        if chain_hash(&prev, r.seq, &r.entry) != r.hash {
            return Err(brk("its content was changed after it was written"));
        }
        prev = r.hash;
        count += 1;
    }
    Ok(count)
}

/// The audit log.
pub trait AuditStore: Send + Sync + 'static {
    /// Appends to the audit log, chaining the entry to the last one.
    fn append_audit(&self, entry: &AuditEntry) -> impl Future<Output = StoreResult<AuditRecord>> + Send;
    /// Audit records with `seq > after`, in order, at most `limit`.
    fn audit_records(
        &self,
        after: i64,
        limit: u32,
    ) -> impl Future<Output = StoreResult<Vec<AuditRecord>>> + Send;
    /// How many entries `actor` made with `action` at or after `since`, and when the earliest of
    /// them was (what a cap per person and hour counts).
    fn audit_count(
        &self,
        actor: &str,
        action: &str,
        since: OffsetDateTime,
    ) -> impl Future<Output = StoreResult<(u64, Option<OffsetDateTime>)>> + Send;
    /// Audit records whose subject is this holder, in order.
    fn audit_of_subject(
        &self,
        holder: &HolderId,
    ) -> impl Future<Output = StoreResult<Vec<AuditRecord>>> + Send;
    /// Keeps a signed tree head the server published.
    fn save_tree_head(&self, head: &StoredTreeHead) -> impl Future<Output = StoreResult<()>> + Send;
    /// Every kept tree head, oldest first.
    fn tree_heads(&self) -> impl Future<Output = StoreResult<Vec<StoredTreeHead>>> + Send;
    /// The newest kept tree head.
    fn latest_tree_head(&self) -> impl Future<Output = StoreResult<Option<StoredTreeHead>>> + Send;
}

/// A kept tree head the rows no longer produce.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the tree head kept for size {tree_size} (signed at {signed_at_ms} ms) {reason}")]
pub struct HeadMismatch {
    /// The head's size.
    pub tree_size: u64,
    /// When it was signed.
    pub signed_at_ms: u64,
    /// What is wrong.
    pub reason: String,
}

/// Builds the Merkle tree of the records (in order, from the first) and checks each kept head
/// against it: the tree of that many records must have that root. One pass over the records,
/// each head checked when the tree reaches its size. Returns the tree.
pub fn verify_tree_heads(records: &[AuditRecord], heads: &[StoredTreeHead]) -> Result<LogTree, HeadMismatch> {
    let mut by_size: Vec<&StoredTreeHead> = heads.iter().collect();
    by_size.sort_by_key(|h| h.tree_size);
    let mut pending = by_size.into_iter().peekable();
    let mut tree = LogTree::new();
    let mut leaves = records.iter().map(|r| r.hash);
    loop {
        while let Some(h) = pending.next_if(|h| h.tree_size == tree.len()) {
            if tree.root() != h.root_hash {
                return Err(HeadMismatch {
                    tree_size: h.tree_size,
                    signed_at_ms: h.signed_at_ms,
                    reason: "does not match the records: they were rewritten after it was signed".into(),
                });
            }
        }
        match leaves.next() {
            Some(leaf) => tree.push(leaf),
            None => break,
        }
    }
    if let Some(h) = pending.next() {
        return Err(HeadMismatch {
            tree_size: h.tree_size,
            signed_at_ms: h.signed_at_ms,
            reason: format!(
                "is larger than the log, which has {} records: it was cut or rewritten after the head was signed",
                tree.len()
            ),
        });
    }
    Ok(tree)
}

/// Every audit record of a store, in order, read page by page.
pub async fn all_audit_records<S: AuditStore>(store: &S) -> StoreResult<Vec<AuditRecord>> {
    let mut all = Vec::new();
    let mut after = 0;
    loop {
        let page = store.audit_records(after, 10_000).await?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        all.extend(page);
    }
    Ok(all)
}

/// Walks the whole audit chain of a store, page by page.
pub async fn verify_audit<S: AuditStore>(store: &S) -> Result<Result<u64, ChainBreak>, StoreError> {
    Ok(verify_chain(all_audit_records(store).await?))
}
