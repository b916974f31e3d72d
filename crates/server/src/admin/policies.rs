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

/// The largest policy file that can be proposed: a second officer must be able to read it all.
pub const MAX_SOURCE_BYTES: usize = 64 * 1024;
/// The most rules a version may have.
pub const MAX_RULES: usize = 64;
/// The longest rule description.
pub const MAX_DESCRIPTION_CHARS: usize = 500;
/// Policy proposals one officer may have pending at once.
pub const MAX_PENDING_PER_OFFICER: usize = 3;

/// A version names a file in URLs, on the holder's page and in the audit log: letters, digits,
/// `.`, `_` and `-`, starting with a letter or digit, at most 64; nothing that can look like
/// another version.
fn check_version(v: &str) -> Result<(), ApiError> {
    let ok = v.len() <= 64
        && v.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(ApiError::InvalidField(
            "source: the version must be 1-64 of A-Z, a-z, 0-9, '.', '_' and '-', starting with a letter or digit".into(),
        ))
    }
}

/// What a second officer can read as it is: a bounded file, no control or direction-changing
/// characters that would show other text than it holds.
fn check_source(source: &str, policy: &Policy) -> Result<(), ApiError> {
    if source.len() > MAX_SOURCE_BYTES {
        return Err(ApiError::InvalidField(format!(
            "source: at most {MAX_SOURCE_BYTES} bytes"
        )));
    }
    let hidden = |c: char| {
        (c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
            || matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}')
    };
    if let Some(c) = source.chars().find(|&c| hidden(c)) {
        return Err(ApiError::InvalidField(format!(
            "source: U+{:04X} is invisible or changes the text's direction; it is not allowed",
            u32::from(c)
        )));
    }
    if policy.rules().len() > MAX_RULES {
        return Err(ApiError::InvalidField(format!(
            "source: at most {MAX_RULES} rules"
        )));
    }
    if let Some(r) = policy
        .rules()
        .iter()
        .find(|r| r.description.chars().count() > MAX_DESCRIPTION_CHARS)
    {
        return Err(ApiError::InvalidField(format!(
            "source: rule {}: a description of at most {MAX_DESCRIPTION_CHARS} characters",
            r.id
        )));
    }
    check_version(policy.version())
}

/// Proposes a new colour policy version (officers). The file is checked now (a clear 422 names
/// what is wrong: it must parse, stay within 64 KiB and 64 rules, and name a plain new version);
/// nobody's colour changes until a second officer approves it, and then every colour is computed
/// by it. A version already published cannot be proposed again (409), nor more than three by one
/// officer at once; approval publishes it only while the version it was proposed in place of is
/// still in force.
#[utoipa::path(post, path = "/policies", tag = "governance", security(("officer" = [])), request_body = PolicyProposal, responses(
    (status = 202, description = "proposed, awaiting a second officer", body = ProposalView),
    (status = 409, description = "this version is already published, or this officer has three policy proposals pending", body = Problem, content_type = "application/problem+json"),
))]
pub(crate) async fn propose_policy<S: Store>(
    State(app): State<Arc<App<S>>>,
    me: Staff<Officers>,
    Json(req): Json<PolicyProposal>,
) -> Result<impl IntoResponse, ApiError> {
    if req.source.len() > MAX_SOURCE_BYTES {
        return Err(ApiError::InvalidField(format!(
            "source: at most {MAX_SOURCE_BYTES} bytes"
        )));
    }
    let policy = Policy::parse(&req.source).map_err(|e| ApiError::InvalidField(format!("source: {e}")))?;
    check_source(&req.source, &policy)?;
    let version = policy.version().to_owned();
    let published = app.store().published_policies().await?;
    if published.iter().any(|p| p.version == version) {
        return Err(ApiError::Conflict(format!(
            "policy version {version} is already published; a new file needs a new version"
        )));
    }
    let mine = app
        .store()
        .proposals(true, crate::now(), 0, 200)
        .await?
        .iter()
        .filter(|p| p.proposed_by == me.id && matches!(p.act, Act::PolicyPublish { .. }))
        .count();
    if mine >= MAX_PENDING_PER_OFFICER {
        return Err(ApiError::Conflict(format!(
            "you have {mine} policy proposals awaiting a second officer; withdraw one first"
        )));
    }
    let replaces = published.last().map_or(0, |p| p.seq);
    let in_place_of = published.last().map_or("none", |p| p.version.as_str());
    let sha256 = sha256_hex(&req.source);
    let what = format!("publish colour policy {version} in place of {in_place_of}, sha256 {sha256}");
    let act = Act::PolicyPublish {
        version,
        replaces,
        sha256,
        source: req.source,
    };
    let p = propose(&app, &me, act, what).await?;
    Ok((StatusCode::ACCEPTED, Json(p)))
}
