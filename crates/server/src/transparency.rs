//! The transparency log: the audit log's Merkle tree (`healthcode_store::transparency`), a tree
//! head signed with the audit-log key every `tree_head_interval_ms` (and when one is asked for and
//! none is recent), kept in the store, and the public endpoints a witness or a holder's page
//! checks it with: the head, inclusion proofs and consistency proofs (RFC 9162 §2.1, JSON as in
//! docs/governance.md). They need no sign-in and reveal no personal data: the leaves are hashes.
//!
//! The tree is built in one pass over the log at start and then extended by the records appended
//! since the last head. If the records under the tree change (the last leaf's record is gone or
//! has another hash, or a new record does not link to it), the rows were rewritten behind the
//! server's back: it says so in its log and rebuilds the tree from the rows, and the head it then
//! publishes no longer extends the heads published before, which every witness reports.

use std::sync::Arc;
use std::time::Duration as StdDuration;

use axum::extract::State;
use healthcode_store::transparency::{Hash, LogTree, ProofError};
use healthcode_store::{Store, StoredTreeHead};
use healthcode_token::{KeyId, SignedTreeHead, TreeHead, TreeHeadSigner};
use serde::{Deserialize, Serialize};
use tokio::sync::{Mutex, RwLock, Semaphore};
use utoipa::{OpenApi, ToSchema};

use crate::App;
use crate::problem::{ApiError, Json, Query};

/// The transparency endpoints of the OpenAPI document.
#[derive(Debug, OpenApi)]
#[openapi(
    paths(head, consistency, inclusion),
    components(schemas(TreeHeadView, ConsistencyView, InclusionView))
)]
pub struct TransparencyApi;

/// The log's state in the server.
pub struct Transparency {
    /// The tree at the newest head.
    tree: RwLock<LogTree>,
    /// The newest signed head.
    latest: std::sync::RwLock<Option<SignedTreeHead>>,
    signer: TreeHeadSigner,
    interval: StdDuration,
    /// One publication at a time.
    publishing: Mutex<()>,
    /// Proofs to an older size rebuild that prefix: one at a time.
    rebuilds: Semaphore,
}

impl std::fmt::Debug for Transparency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transparency")
            .field("signer", &self.signer)
            .field("interval", &self.interval)
            .finish_non_exhaustive()
    }
}

fn b64(h: &[u8]) -> String {
    data_encoding::BASE64.encode(h)
}

fn now_ms() -> u64 {
    u64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000).unwrap_or(0)
}

impl Transparency {
    /// An empty tree, to be filled by the first [`publish`].
    pub fn new(signer: TreeHeadSigner, interval: StdDuration) -> Transparency {
        Transparency {
            tree: RwLock::new(LogTree::new()),
            latest: std::sync::RwLock::new(None),
            signer,
            interval,
            publishing: Mutex::new(()),
            rebuilds: Semaphore::new(1),
        }
    }

    /// The newest signed head, if any was made.
    pub fn latest(&self) -> Option<SignedTreeHead> {
        self.latest.read().ok().and_then(|g| g.clone())
    }

    fn fresh(&self) -> Option<SignedTreeHead> {
        let latest = self.latest()?;
        let age = now_ms().saturating_sub(latest.head.timestamp);
        (u128::from(age) < self.interval.as_millis()).then_some(latest)
    }
}

/// Brings the tree up to the store's records and signs a head of it (kept in the store when its
/// size or root differs from the newest kept one).
pub async fn publish<S: Store>(app: &App<S>) -> Result<SignedTreeHead, ApiError> {
    let t = &app.transparency;
    let _one = t.publishing.lock().await;
    let (size, last) = {
        let tree = t.tree.read().await;
        (tree.len(), tree.leaves().last().copied())
    };
    // The record under the last leaf must still be there, unchanged.
    let mut intact = match last {
        None => true,
        Some(leaf) => {
            let seq = i64::try_from(size).unwrap_or(i64::MAX);
            let under = app.store.audit_records(seq - 1, 1).await?;
            under.first().is_some_and(|r| r.seq == seq && r.hash == leaf)
        }
    };
    let mut fresh = Vec::new();
    if intact {
        let mut after = i64::try_from(size).unwrap_or(i64::MAX);
        loop {
            let page = app.store.audit_records(after, 10_000).await?;
            let Some(end) = page.last() else { break };
            after = end.seq;
            fresh.extend(page);
        }
    }
    {
        let mut tree = t.tree.write().await;
        for r in &fresh {
            if !tree.push_record(r) {
                intact = false;
                break;
            }
        }
        if !intact {
            tracing::error!(
                tree_size = size,
                "the audit log's rows no longer match the tree this server published: they were \
                 rewritten in the database; rebuilding the tree from the rows (witnesses will \
                 report the new head as inconsistent)"
            );
            let all = healthcode_store::all_audit_records(app.store()).await?;
            let leaves: Vec<Hash> = all.iter().map(|r| r.hash).collect();
            *tree = tokio::task::block_in_place(|| LogTree::of(&leaves));
        }
    }
    let (tree_size, root_hash) = {
        let tree = t.tree.read().await;
        (tree.len(), tree.root())
    };
    let previous = t.latest();
    let kept = app.store.latest_tree_head().await?;
    // The first head since start: the tree rebuilt from the rows must still contain the last head
    // this log kept, or the rows were rewritten (or removed) while the server was down.
    if previous.is_none()
        && let Some(k) = &kept
    {
        let tree = t.tree.read().await;
        let holds = k.tree_size <= tree_size
            && tokio::task::block_in_place(|| tree.root_at(k.tree_size)).is_ok_and(|r| r == k.root_hash);
        if !holds {
            tracing::error!(
                kept_size = k.tree_size,
                tree_size,
                "the audit log's rows no longer contain the last tree head this server kept: they \
                 were rewritten or removed while it was down (witnesses will report the new head as \
                 inconsistent)"
            );
        }
    }
    // Heads are dated strictly after the one before.
    let timestamp = now_ms().max(previous.as_ref().map_or(0, |p| p.head.timestamp + 1));
    let signed = t.signer.sign(TreeHead {
        tree_size,
        root_hash,
        timestamp,
    });
    if kept.is_none_or(|k| k.tree_size != tree_size || k.root_hash != root_hash) {
        app.store
            .save_tree_head(&StoredTreeHead {
                tree_size,
                root_hash,
                signed_at_ms: timestamp,
                key_id: signed.key_id.0,
                signature: signed.signature,
            })
            .await?;
    }
    if let Ok(mut g) = t.latest.write() {
        *g = Some(signed.clone());
    }
    Ok(signed)
}

/// Publishes a head at start and then every interval, until the server stops.
pub async fn publish_task<S: Store>(app: std::sync::Weak<App<S>>, interval: StdDuration) {
    loop {
        let Some(app) = app.upgrade() else { return };
        if let Err(e) = publish(&app).await {
            tracing::warn!(error = %crate::problem::ErrorChain(&e), "cannot publish the audit log's tree head");
        }
        drop(app);
        tokio::time::sleep(interval).await;
    }
}

/// A signed tree head.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TreeHeadView {
    /// Number of audit records in the tree.
    pub tree_size: u64,
    /// When it was signed, milliseconds since 1970.
    pub timestamp: u64,
    /// The Merkle tree hash (base64).
    pub root_hash: String,
    /// The audit-log key that signed it (hex; in the trust list with purpose `audit-log`).
    pub key_id: String,
    /// Ed25519 over `"healthcode tree head v1\n" ‖ timestamp ‖ tree_size ‖ root_hash` (base64).
    pub signature: String,
}

impl From<&SignedTreeHead> for TreeHeadView {
    fn from(s: &SignedTreeHead) -> TreeHeadView {
        TreeHeadView {
            tree_size: s.head.tree_size,
            timestamp: s.head.timestamp,
            root_hash: b64(&s.head.root_hash),
            key_id: s.key_id.to_hex(),
            signature: b64(&s.signature),
        }
    }
}

/// A hash from base64.
pub fn hash_from_b64(s: &str) -> Option<Hash> {
    data_encoding::BASE64.decode(s.as_bytes()).ok()?.try_into().ok()
}

impl TreeHeadView {
    /// The signed head it states (not yet verified), or why it is malformed.
    pub fn parse(&self) -> Result<SignedTreeHead, String> {
        let root_hash = hash_from_b64(&self.root_hash).ok_or("root_hash is not 32 bytes of base64")?;
        let key_id = KeyId::from_hex(&self.key_id).ok_or("key_id is not 16 hex digits")?;
        let signature: [u8; 64] = data_encoding::BASE64
            .decode(self.signature.as_bytes())
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or("signature is not 64 bytes of base64")?;
        Ok(SignedTreeHead {
            head: TreeHead {
                tree_size: self.tree_size,
                root_hash,
                timestamp: self.timestamp,
            },
            key_id,
            signature,
        })
    }
}

/// The newest signed tree head of the audit log (made now if none is recent).
#[utoipa::path(get, path = "/transparency/head", tag = "transparency", responses(
    (status = 200, description = "the newest signed tree head", body = TreeHeadView),
))]
pub(crate) async fn head<S: Store>(State(app): State<Arc<App<S>>>) -> Result<Json<TreeHeadView>, ApiError> {
    let signed = match app.transparency.fresh() {
        Some(s) => s,
        None => publish(&app).await?,
    };
    Ok(Json(TreeHeadView::from(&signed)))
}

/// Sizes of two trees.
#[derive(Debug, Deserialize)]
pub(crate) struct ConsistencyQuery {
    first: u64,
    second: u64,
}

/// A consistency proof (RFC 9162 §2.1.4).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ConsistencyView {
    /// The older tree's size.
    pub first: u64,
    /// The newer tree's size.
    pub second: u64,
    /// The proof's hashes, in order (base64).
    pub proof: Vec<String>,
}

fn proof_error(e: ProofError) -> ApiError {
    ApiError::NotFound(e.to_string())
}

/// Runs a proof against the tree: at once to the newest head's size, one at a time (or 503) when
/// it needs an older prefix rebuilt.
async fn with_tree<S: Store, T: Send>(
    app: &App<S>,
    size: u64,
    f: impl FnOnce(&LogTree) -> Result<T, ProofError> + Send,
) -> Result<T, ApiError> {
    let t = &app.transparency;
    let tree = t.tree.read().await;
    if size > tree.len() {
        return Err(ApiError::NotFound(format!(
            "no tree of {size} entries has been published; the newest has {}",
            tree.len()
        )));
    }
    if size == tree.len() {
        return f(&tree).map_err(proof_error);
    }
    let _turn = t
        .rebuilds
        .try_acquire()
        .map_err(|_| ApiError::Unavailable("another proof to an older tree is being made".into(), 1))?;
    tokio::task::block_in_place(|| f(&tree)).map_err(proof_error)
}

/// A proof that the tree of `first` records is a prefix of the tree of `second` records.
#[utoipa::path(get, path = "/transparency/consistency", tag = "transparency",
    params(("first" = u64, Query, description = "the older tree's size"), ("second" = u64, Query, description = "the newer tree's size, at most the newest head's")),
    responses(
        (status = 200, description = "the proof", body = ConsistencyView),
        (status = 404, description = "no such tree has been published", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 422, description = "first is larger than second", body = crate::problem::Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn consistency<S: Store>(
    State(app): State<Arc<App<S>>>,
    Query(q): Query<ConsistencyQuery>,
) -> Result<Json<ConsistencyView>, ApiError> {
    if q.first > q.second {
        return Err(ApiError::InvalidField("first: at most second".into()));
    }
    let proof = with_tree(&app, q.second, |t| t.consistency(q.first, q.second)).await?;
    Ok(Json(ConsistencyView {
        first: q.first,
        second: q.second,
        proof: proof.iter().map(|h| b64(h)).collect(),
    }))
}

/// A leaf and a tree size.
#[derive(Debug, Deserialize)]
pub(crate) struct InclusionQuery {
    index: u64,
    tree_size: u64,
}

/// An inclusion proof (RFC 9162 §2.1.3).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct InclusionView {
    /// The leaf's index (an audit record's `seq` − 1).
    pub index: u64,
    /// The tree's size.
    pub tree_size: u64,
    /// The leaf: the record's chain hash (base64); its leaf hash is SHA-256(0x00 ‖ leaf).
    pub leaf: String,
    /// The proof's hashes, from the leaf up (base64).
    pub proof: Vec<String>,
}

/// A proof that the record at `index` is in the tree of `tree_size` records.
#[utoipa::path(get, path = "/transparency/inclusion", tag = "transparency",
    params(("index" = u64, Query, description = "the leaf (an audit record's seq − 1)"), ("tree_size" = u64, Query, description = "the tree's size, at most the newest head's")),
    responses(
        (status = 200, description = "the proof", body = InclusionView),
        (status = 404, description = "no such leaf or tree has been published", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 422, description = "index is not below tree_size", body = crate::problem::Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn inclusion<S: Store>(
    State(app): State<Arc<App<S>>>,
    Query(q): Query<InclusionQuery>,
) -> Result<Json<InclusionView>, ApiError> {
    if q.index >= q.tree_size {
        return Err(ApiError::InvalidField("index: below tree_size".into()));
    }
    let (leaf, proof) = with_tree(&app, q.tree_size, |t| {
        let leaf = usize::try_from(q.index)
            .ok()
            .and_then(|i| t.leaves().get(i).copied())
            .ok_or_else(|| ProofError::OutOfRange("no such entry".into()))?;
        Ok((leaf, t.inclusion(q.index, q.tree_size)?))
    })
    .await?;
    Ok(Json(InclusionView {
        index: q.index,
        tree_size: q.tree_size,
        leaf: b64(&leaf),
        proof: proof.iter().map(|h| b64(h)).collect(),
    }))
}
