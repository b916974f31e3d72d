//! Manual changes of colour (two officers) and holders' appeals.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use healthcode_domain::{AppealId, Colour, HolderId, OverrideId};
use healthcode_store::{NewOverride, Store, StoreError};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::auth::{Officers, Staff};
use crate::holders::AppealView;
use crate::limits::{PageQuery, next_link};
use crate::problem::{ApiError, Json, Path, Problem, Query};

use super::records::require_holder;
use crate::{App, now};

/// A proposed manual change.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OverrideRequest {
    /// Holder id (hex).
    pub holder: String,
    /// The colour to set.
    pub colour: String,
    /// Why (shown to the holder), 5-500 characters.
    pub reason: String,
    /// When it ends (at most 30 days ahead).
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

/// A manual change.
#[derive(Debug, Serialize, ToSchema)]
pub struct OverrideView {
    /// Id.
    pub id: i64,
    /// Whose.
    pub holder: String,
    /// Colour.
    pub colour: String,
    /// Reason.
    pub reason: String,
    /// Proposer's id.
    pub proposed_by: i64,
    /// Approver's id, once approved.
    pub approved_by: Option<i64>,
    /// End.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

fn override_view(h: HolderId, o: healthcode_domain::Override) -> OverrideView {
    OverrideView {
        id: o.id.0,
        holder: h.to_hex(),
        colour: o.colour.as_str().into(),
        reason: o.reason,
        proposed_by: o.proposed_by.0,
        approved_by: o.approval.map(|(a, _)| a.0),
        expires_at: o.expires_at,
    }
}

/// Proposes a manual colour change; it takes effect only when a different officer approves it.
#[utoipa::path(post, path = "/overrides", tag = "cases", security(("officer" = [])), request_body = OverrideRequest, responses(
    (status = 201, description = "proposed, awaiting a second officer", body = OverrideView),
))]
pub(crate) async fn propose_override<S: Store>(
    State(app): State<Arc<App<S>>>,
    me: Staff<Officers>,
    Json(req): Json<OverrideRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let id = require_holder(&app, &req.holder).await?;
    let colour: Colour = req
        .colour
        .parse()
        .map_err(|_| ApiError::InvalidField("colour: green, yellow or red".into()))?;
    let reason = req.reason.trim();
    if !(5..=500).contains(&reason.chars().count()) {
        return Err(ApiError::InvalidField("reason: 5 to 500 characters".into()));
    }
    let t = now();
    if req.expires_at <= t || req.expires_at > t + time::Duration::days(30) {
        return Err(ApiError::InvalidField(
            "expires_at must lie within the next 30 days".into(),
        ));
    }
    let o = app
        .store
        .propose_override(&NewOverride {
            holder: id.clone(),
            colour,
            reason: reason.into(),
            proposed_by: me.id,
            proposed_at: t,
            expires_at: req.expires_at,
        })
        .await?;
    app.audit(
        me.actor(),
        me.role.as_str(),
        "override-propose",
        Some(id.clone()),
        format!("override {} to {}: {reason}", o.id.0, colour.as_str()),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(override_view(id, o))))
}

/// Which overrides, and which page.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct PendingQuery {
    #[serde(default)]
    pub(crate) pending: bool,
    #[serde(default)]
    pub(crate) after: i64,
    pub(crate) limit: Option<u32>,
}

/// Manual changes (`?pending=true`: those awaiting approval), by id, a page at a time: a full
/// page links the next in its `Link` header.
#[utoipa::path(get, path = "/overrides", tag = "cases", security(("officer" = [])),
    params(
        ("pending" = Option<bool>, Query, description = "only those awaiting approval"),
        ("after" = Option<i64>, Query, description = "start after this id (the last of the previous page)"),
        ("limit" = Option<u32>, Query, description = "items in the page, at most [limits] page_max (the default)"),
    ), responses(
    (status = 200, description = "a page of overrides", body = Vec<OverrideView>,
        headers(("Link" = String, description = "rel=\"next\": the next page, when this one is full"))),
))]
pub(crate) async fn list_overrides<S: Store>(
    State(app): State<Arc<App<S>>>,
    _me: Staff<Officers>,
    Query(q): Query<PendingQuery>,
) -> Result<(HeaderMap, Json<Vec<OverrideView>>), ApiError> {
    let size = PageQuery::new(q.after, q.limit).size(app.limits().page_max)?;
    let page = app.store.overrides(q.pending, q.after, size).await?;
    let link = next_link(
        &format!("/api/v1/admin/overrides?pending={}&", q.pending),
        page.last().map(|(_, o)| o.id.0),
        page.len(),
        size,
    );
    let views: Vec<OverrideView> = page.into_iter().map(|(h, o)| override_view(h, o)).collect();
    Ok((link, Json(views)))
}

/// Approves a proposed change as a second officer (the proposer cannot).
#[utoipa::path(post, path = "/overrides/{id}/approve", tag = "cases", security(("officer" = [])),
    params(("id" = i64, Path, description = "override id")), responses(
    (status = 200, description = "approved and in force", body = OverrideView),
    (status = 409, description = "the proposer cannot approve, or it was approved already", body = Problem, content_type = "application/problem+json"),
))]
pub(crate) async fn approve_override<S: Store>(
    State(app): State<Arc<App<S>>>,
    me: Staff<Officers>,
    Path(id): Path<i64>,
) -> Result<Json<OverrideView>, ApiError> {
    let (holder, _) = app
        .store
        .override_by_id(OverrideId(id))
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no override {id}")))?;
    let t = now();
    // Recorded by the store in the transaction that approves.
    let record = healthcode_store::AuditEntry {
        at: t,
        actor: me.actor(),
        role: me.role.as_str().to_owned(),
        action: "override-approve".into(),
        subject: Some(holder.clone()),
        purpose: format!("override {id}"),
    };
    let o = app
        .store
        .approve_override(OverrideId(id), me.id, t, app.governance.approval(), Some(&record))
        .await
        .map_err(|e| match e {
            StoreError::Refused(m) => ApiError::Refused(format!("a second officer must approve: {m}")),
            other => other.into(),
        })?;
    app.statuses.invalidate(&holder);
    Ok(Json(override_view(holder, o)))
}

/// Which appeals, and which page.
#[derive(Debug, Deserialize)]
pub(crate) struct OpenQuery {
    #[serde(default)]
    pub(crate) open: bool,
    #[serde(default)]
    pub(crate) after: i64,
    pub(crate) limit: Option<u32>,
}

/// Appeals (`?open=true`: undecided), by id, a page at a time: a full page links the next in its
/// `Link` header. Each page viewed is one audit entry naming the appeals shown (so a flood of
/// appeals cannot flood the log).
#[utoipa::path(get, path = "/appeals", tag = "cases", security(("officer" = [])),
    params(
        ("open" = Option<bool>, Query, description = "only undecided"),
        ("after" = Option<i64>, Query, description = "start after this id (the last of the previous page)"),
        ("limit" = Option<u32>, Query, description = "items in the page, at most [limits] page_max (the default)"),
    ), responses(
    (status = 200, description = "a page of appeals", body = Vec<AppealView>,
        headers(("Link" = String, description = "rel=\"next\": the next page, when this one is full"))),
))]
pub(crate) async fn list_appeals<S: Store>(
    State(app): State<Arc<App<S>>>,
    me: Staff<Officers>,
    Query(q): Query<OpenQuery>,
) -> Result<(HeaderMap, Json<Vec<AppealView>>), ApiError> {
    let size = PageQuery::new(q.after, q.limit).size(app.limits().page_max)?;
    let appeals = app.store.appeals(q.open, q.after, size).await?;
    let ids: Vec<String> = appeals.iter().map(|a| a.id.0.to_string()).collect();
    app.audit(
        me.actor(),
        me.role.as_str(),
        "appeals-page-read",
        None,
        format!(
            "appeal review: {} appeals after {} ({})",
            appeals.len(),
            q.after,
            if ids.is_empty() {
                "none".to_owned()
            } else {
                ids.join(",")
            }
        ),
    )
    .await?;
    let link = next_link(
        &format!("/api/v1/admin/appeals?open={}&", q.open),
        appeals.last().map(|a| a.id.0),
        appeals.len(),
        size,
    );
    let views: Vec<AppealView> = appeals.into_iter().map(AppealView::from).collect();
    Ok((link, Json(views)))
}

/// A decision on an appeal.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Decision {
    /// Upheld (the holder was right) or rejected.
    pub upheld: bool,
    /// What the holder reads, 1-1000 characters.
    pub note: String,
}

/// Decides an appeal (officers); an upheld appeal is followed by an override or a corrected fact.
#[utoipa::path(post, path = "/appeals/{id}/decision", tag = "cases", security(("officer" = [])), request_body = Decision,
    params(("id" = i64, Path, description = "appeal id")), responses(
    (status = 200, description = "decided", body = AppealView),
    (status = 409, description = "decided already", body = Problem, content_type = "application/problem+json"),
))]
pub(crate) async fn decide_appeal<S: Store>(
    State(app): State<Arc<App<S>>>,
    me: Staff<Officers>,
    Path(id): Path<i64>,
    Json(req): Json<Decision>,
) -> Result<Json<AppealView>, ApiError> {
    let note = req.note.trim();
    if note.is_empty() || note.chars().count() > 1000 {
        return Err(ApiError::InvalidField("note: 1 to 1000 characters".into()));
    }
    let a = app
        .store
        .decide_appeal(AppealId(id), me.id, req.upheld, note, now())
        .await?;
    app.audit(
        me.actor(),
        me.role.as_str(),
        "appeal-decide",
        Some(a.holder.clone()),
        format!("appeal {id} {}", if req.upheld { "upheld" } else { "rejected" }),
    )
    .await?;
    Ok(Json(AppealView::from(a)))
}
