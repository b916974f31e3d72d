//! A new colour policy version: one officer proposes the whole file, a second approves it
//! (`POST /proposals/{id}/approve`), and only then is it published and in force
//! ([`crate::policies`]).

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use healthcode_policy::Policy;
use healthcode_store::{Act, Store};
use serde::Deserialize;
use utoipa::ToSchema;

use crate::App;
use crate::auth::{Officers, Staff};
use crate::policies::sha256_hex;
use crate::problem::{ApiError, Json, Problem};

use super::{ProposalView, propose};

/// A policy file proposed as the next version.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyProposal {
    /// The whole policy file (TOML, as `GET /api/v1/policy` shows the one in force); its
    /// `version` must be new.
    pub source: String,
}

/// Proposes a new colour policy version (officers). The file is checked now (a clear 422 names
/// what is wrong); nobody's colour changes until a second officer approves it, and then every
/// colour is computed by it. A version already published cannot be proposed again (409).
#[utoipa::path(post, path = "/policies", tag = "governance", security(("officer" = [])), request_body = PolicyProposal, responses(
    (status = 202, description = "proposed, awaiting a second officer", body = ProposalView),
    (status = 409, description = "this version is already published", body = Problem, content_type = "application/problem+json"),
))]
pub(crate) async fn propose_policy<S: Store>(
    State(app): State<Arc<App<S>>>,
    me: Staff<Officers>,
    Json(req): Json<PolicyProposal>,
) -> Result<impl IntoResponse, ApiError> {
    let policy = Policy::parse(&req.source).map_err(|e| ApiError::InvalidField(format!("source: {e}")))?;
    let version = policy.version().to_owned();
    if app
        .store()
        .published_policies()
        .await?
        .iter()
        .any(|p| p.version == version)
    {
        return Err(ApiError::Conflict(format!(
            "policy version {version} is already published; a new file needs a new version"
        )));
    }
    let sha256 = sha256_hex(&req.source);
    let what = format!(
        "publish colour policy {version} (sha256 {sha256}), in place of {}",
        app.policy().version()
    );
    let act = Act::PolicyPublish {
        version,
        sha256,
        source: req.source,
    };
    let p = propose(&app, &me, act, what).await?;
    Ok((StatusCode::ACCEPTED, Json(p)))
}
