//! Colour policy versions. The policy in force is the newest one published in the store: the
//! configured policy file becomes the first version the first time a store is served, and every
//! later version is proposed by one officer (`POST /api/v1/admin/policies`) and published only
//! when a second approves it (`Act::PolicyPublish`, written in the approving transaction). Each
//! node follows the store: it checks for a newer version every few seconds and then computes every
//! colour again. Anyone can read every version, its SHA-256 and who signed it off.

use std::sync::{Arc, RwLock};
use std::time::Duration as StdDuration;

use axum::extract::State;
use healthcode_policy::Policy;
use healthcode_store::{AuditEntry, FirstPolicy, PublishedPolicy, Store};
use serde::Serialize;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::problem::{ApiError, Json, Path, Problem};
use crate::{App, StartError, now};

/// How often a node looks for a version published through another node.
const FOLLOW_EVERY: StdDuration = StdDuration::from_secs(5);

/// The policy this node computes colours with, and the publication it came from.
#[derive(Debug)]
pub(crate) struct PolicyState {
    current: RwLock<(Arc<Policy>, i64)>,
}

impl PolicyState {
    /// Starts with the configured policy, until the store says which version is in force.
    pub(crate) fn new(configured: Policy) -> PolicyState {
        PolicyState {
            current: RwLock::new((Arc::new(configured), 0)),
        }
    }

    /// The policy in force here.
    pub(crate) fn get(&self) -> Arc<Policy> {
        match self.current.read() {
            Ok(g) => g.0.clone(),
            Err(poisoned) => poisoned.into_inner().0.clone(),
        }
    }

    pub(crate) fn seq(&self) -> i64 {
        match self.current.read() {
            Ok(g) => g.1,
            Err(poisoned) => poisoned.into_inner().1,
        }
    }

    fn set(&self, policy: Policy, seq: i64) {
        let mut g = match self.current.write() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        *g = (Arc::new(policy), seq);
    }
}

/// SHA-256 of a policy file, lower-case hex: what the two officers sign off and what anyone can
/// check the published text against.
pub fn sha256_hex(source: &str) -> String {
    Sha256::digest(source.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Before the server starts on a store: publishes the configured policy as the first version if
/// the store has none (audited: by `system` on a new store, by `operator` when a store with
/// holders needed the file's hash named in `policy_first_sha256`); refuses to start when such a
/// store's file is not named, or named wrongly.
pub(crate) async fn publish_first<S: Store>(
    store: &S,
    configured: &Policy,
    pin: Option<&str>,
) -> Result<(), StartError> {
    let sha = sha256_hex(configured.source());
    let pinned = pin.is_some_and(|p| p.trim().eq_ignore_ascii_case(&sha));
    if let Some(p) = pin
        && !pinned
    {
        return Err(StartError::msg(format!(
            "policy_first_sha256 is {p}, but the policy file {} hashes to {sha}",
            configured.version()
        )));
    }
    let t = now();
    let first = store
        .publish_first_policy(configured.version(), &sha, configured.source(), t, pinned)
        .await
        .map_err(|e| StartError::caused("cannot publish the first colour policy", e))?;
    let (actor, how) = match first {
        FirstPolicy::Exists => return Ok(()),
        FirstPolicy::NeedsPin => {
            return Err(StartError::msg(format!(
                "this store has holders but no published colour policy; check the policy file {} and name its hash to publish it as the first version: policy_first_sha256 = \"{sha}\"",
                configured.version()
            )));
        }
        FirstPolicy::Published if pinned => ("operator", "named by its hash in the configuration"),
        FirstPolicy::Published => ("system", "a new store"),
    };
    store
        .append_audit(&AuditEntry {
            at: t,
            actor: actor.into(),
            role: actor.into(),
            action: "policy-first-published".into(),
            subject: None,
            purpose: format!(
                "the configured policy {} (sha256 {sha}) is the first version: {how}",
                configured.version()
            ),
        })
        .await
        .map_err(|e| StartError::caused("cannot audit the first colour policy", e))?;
    Ok(())
}

/// Once the server's state is up: takes the version in force. A configured file that differs
/// from it is not used: a new version takes effect only when two officers publish it, which the
/// log says.
pub(crate) async fn adopt<S: Store>(app: &App<S>) -> Result<(), StartError> {
    let configured = app.policy();
    follow_once(app)
        .await
        .map_err(|e| StartError::msg(format!("cannot read the published colour policy: {e}")))?;
    let in_force = app.policy();
    if in_force.source() != configured.source() {
        tracing::warn!(
            configured = configured.version(),
            in_force = in_force.version(),
            "the configured policy file is not the published version in force, which stays in force; a new version takes effect only when proposed and approved by two officers (POST /api/v1/admin/policies)"
        );
    }
    Ok(())
}

/// For a tool that fills a store it made (the demo, `simulate`): the configured policy becomes
/// the store's first version before any holder is added, as the operator's choice, audited.
pub async fn publish_for_tool<S: Store>(store: &S, policy: &Policy, tool: &str) -> Result<(), StartError> {
    let sha = sha256_hex(policy.source());
    let t = now();
    let first = store
        .publish_first_policy(policy.version(), &sha, policy.source(), t, true)
        .await
        .map_err(|e| StartError::caused("cannot publish the first colour policy", e))?;
    if first == FirstPolicy::Published {
        store
            .append_audit(&AuditEntry {
                at: t,
                actor: "operator".into(),
                role: "operator".into(),
                action: "policy-first-published".into(),
                subject: None,
                purpose: format!(
                    "the configured policy {} (sha256 {sha}) is the first version: {tool}",
                    policy.version()
                ),
            })
            .await
            .map_err(|e| StartError::caused("cannot audit the first colour policy", e))?;
    }
    Ok(())
}

/// A published version's policy, if its text still hashes to what was signed off and parses.
fn usable(p: &PublishedPolicy) -> Result<Policy, String> {
    if sha256_hex(&p.source) != p.sha256 {
        return Err(format!(
            "published policy {} no longer hashes to its recorded SHA-256",
            p.version
        ));
    }
    Policy::parse(&p.source).map_err(|e| format!("published policy {} does not parse: {e}", p.version))
}

/// The newest usable published version in `store`, or `configured` when none is (a store never
/// served): for the command line's work on a store.
pub async fn in_force<S: Store>(store: &S, configured: Policy) -> Result<Policy, ApiError> {
    let all = store.published_policies().await?;
    Ok(all
        .iter()
        .rev()
        .find_map(|p| usable(p).ok())
        .unwrap_or(configured))
}

/// Takes the newest published version if it is not the one in force here; says whether it did.
/// A version whose text no longer hashes to what was signed off, or no longer parses (a rollback
/// of the binary, a tampered row), is passed over for the newest one before it that is usable,
/// with an error in the log: the server keeps serving colours.
pub(crate) async fn follow_once<S: Store>(app: &App<S>) -> Result<bool, ApiError> {
    let all = app.store().published_policies().await?;
    for p in all.iter().rev() {
        if p.seq == app.policies.seq() {
            return Ok(false);
        }
        match usable(p) {
            Ok(policy) => {
                tracing::info!(version = p.version, "colour policy in force");
                app.policies.set(policy, p.seq);
                app.statuses.invalidate_all();
                return Ok(true);
            }
            Err(e) => tracing::error!(error = %e, "a published colour policy is passed over"),
        }
    }
    Ok(false)
}

/// Follows the store's published versions while the server lives.
pub(crate) async fn follow_task<S: Store>(app: std::sync::Weak<App<S>>) {
    let mut tick = tokio::time::interval(FOLLOW_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let Some(app) = app.upgrade() else { return };
        if let Err(e) = follow_once(&app).await {
            tracing::warn!(error = %e, "cannot read the published colour policies; the version in force stays");
        }
    }
}

/// The colour policy in force.
#[derive(Debug, Serialize, ToSchema)]
pub struct PolicyDocument {
    /// The version recorded with every colour it produces.
    pub version: String,
    /// SHA-256 of `source`, hex.
    pub sha256: String,
    /// The policy file as published, every rule stated.
    pub source: String,
}

/// A published version.
#[derive(Debug, Serialize, ToSchema)]
pub struct PublishedVersion {
    /// The order of publication, 1 for the first.
    pub seq: i64,
    /// The version.
    pub version: String,
    /// SHA-256 of the file, hex.
    pub sha256: String,
    /// When it took effect.
    #[serde(with = "time::serde::rfc3339")]
    pub published_at: OffsetDateTime,
    /// Whether it is the version this node computes colours with.
    pub in_force: bool,
    /// The proposal that published it; absent for the configured first version.
    pub proposal: Option<i64>,
    /// The staff id of the officer who proposed it.
    pub proposed_by: Option<i64>,
    /// The staff id of the second officer, who approved it.
    pub approved_by: Option<i64>,
}

impl PublishedVersion {
    fn of(p: &PublishedPolicy, here: i64) -> PublishedVersion {
        PublishedVersion {
            seq: p.seq,
            version: p.version.clone(),
            sha256: p.sha256.clone(),
            published_at: p.published_at,
            in_force: p.seq == here,
            proposal: p.proposal.map(|(id, _, _)| id),
            proposed_by: p.proposal.map(|(_, by, _)| by.0),
            approved_by: p.proposal.map(|(_, _, by)| by.0),
        }
    }
}

/// A published version with its text.
#[derive(Debug, Serialize, ToSchema)]
pub struct PublishedPolicyText {
    /// The version, its hash and who published it.
    #[serde(flatten)]
    pub published: PublishedVersion,
    /// The policy file.
    pub source: String,
}

/// Every published version, oldest first, with who signed it off.
pub(crate) async fn versions<S: Store>(app: &App<S>) -> Result<Vec<PublishedVersion>, ApiError> {
    let all = app.store().published_policies().await?;
    let here = app.policies.seq();
    Ok(all.iter().map(|p| PublishedVersion::of(p, here)).collect())
}

/// The colour policy in force on this node.
#[utoipa::path(get, path = "/api/v1/policy", responses((status = 200, description = "the policy", body = PolicyDocument)))]
pub(crate) async fn policy<S: Store>(State(app): State<Arc<App<S>>>) -> axum::Json<PolicyDocument> {
    let p = app.policy();
    axum::Json(PolicyDocument {
        version: p.version().to_owned(),
        sha256: sha256_hex(p.source()),
        source: p.source().to_owned(),
    })
}

/// Every published colour policy version, oldest first: its SHA-256, when it took effect, and
/// the two officers (by staff id) who proposed and approved it.
#[utoipa::path(get, path = "/api/v1/policies", responses((status = 200, description = "the published versions", body = Vec<PublishedVersion>)))]
pub(crate) async fn list<S: Store>(
    State(app): State<Arc<App<S>>>,
) -> Result<Json<Vec<PublishedVersion>>, ApiError> {
    Ok(Json(versions(&app).await?))
}

/// One published version with its text.
#[utoipa::path(get, path = "/api/v1/policies/{version}",
    params(("version" = String, Path, description = "the version")), responses(
    (status = 200, description = "the version and its text", body = PublishedPolicyText),
    (status = 404, description = "no such version was published", body = Problem, content_type = "application/problem+json"),
))]
pub(crate) async fn one<S: Store>(
    State(app): State<Arc<App<S>>>,
    Path(version): Path<String>,
) -> Result<Json<PublishedPolicyText>, ApiError> {
    published(&app, &version).await.map(Json)
}

/// A published version with its text, or 404.
pub(crate) async fn published<S: Store>(
    app: &App<S>,
    version: &str,
) -> Result<PublishedPolicyText, ApiError> {
    let all = app.store().published_policies().await?;
    let here = app.policies.seq();
    all.iter()
        .find(|p| p.version == version)
        .map(|p| PublishedPolicyText {
            published: PublishedVersion::of(p, here),
            source: p.source.clone(),
        })
        .ok_or_else(|| ApiError::NotFound(format!("no policy version {version:?} was published")))
}
