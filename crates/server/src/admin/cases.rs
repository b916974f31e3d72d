//! Confirmed cases, tracing and the review of exposures.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use healthcode_domain::VenueId;
use healthcode_store::{Act, ExposureState, Store};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::auth::{Officers, Staff};
use crate::problem::{ApiError, Json, Path, Problem, Query};

use super::holder_id;
use super::proposals::{ProposalView, propose};
use super::records::require_holder;
use crate::{App, now};

/// A confirmed case.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CaseRequest {
    /// Holder id (hex).
    pub holder: String,
    /// Symptom onset (or sample time when without symptoms).
    #[serde(with = "time::serde::rfc3339")]
    pub onset: OffsetDateTime,
}

/// A case.
#[derive(Debug, Serialize, ToSchema)]
pub struct CaseView {
    /// Id.
    pub id: i64,
    /// Whose (hex).
    pub holder: String,
    /// Onset.
    #[serde(with = "time::serde::rfc3339")]
    pub onset: OffsetDateTime,
    /// Confirmed at.
    #[serde(with = "time::serde::rfc3339")]
    pub confirmed_at: OffsetDateTime,
}

/// Records a confirmed case, confirmed now (officers), and starts tracing its contacts. The case
/// opens no one's personal data to the officer who recorded it: another officer investigates.
#[utoipa::path(post, path = "/cases", tag = "cases", security(("officer" = [])), request_body = CaseRequest, responses(
    (status = 201, description = "recorded", body = CaseView),
))]
pub(crate) async fn add_case<S: Store>(
    State(app): State<Arc<App<S>>>,
    me: Staff<Officers>,
    Json(req): Json<CaseRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let id = require_holder(&app, &req.holder).await?;
    let t = now();
    app.plausible("onset", req.onset, t, false)?;
    let c = app.store.add_case_by(&id, req.onset, t, Some(me.id)).await?;
    app.statuses.invalidate(&id);
    app.audit(
        me.actor(),
        me.role.as_str(),
        "case-record",
        Some(id.clone()),
        format!("case {}", c.id.0),
    )
    .await?;
    // Tracing starts at once, in the background: the answer does not wait for it.
    let (weak, case_id) = (Arc::downgrade(&app), c.id);
    tokio::spawn(async move {
        let Some(app) = weak.upgrade() else { return };
        // A database that is away for a while does not lose the case's contacts: tracing is
        // idempotent, so it is tried again, for up to about ten minutes.
        let mut wait = std::time::Duration::from_secs(5);
        for _ in 0..8 {
            match run_trace(&app, &[case_id], "system:tracing".into(), "system").await {
                Err(ApiError::Unavailable(..)) => {
                    tracing::warn!(
                        case = case_id.0,
                        retry_in = wait.as_secs(),
                        "tracing a new case waits for the database"
                    );
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(std::time::Duration::from_secs(120));
                }
                Err(e) => {
                    tracing::error!(case = case_id.0, error = %crate::problem::ErrorChain(&e), "tracing a new case failed");
                    return;
                }
                Ok(_) => return,
            }
        }
        tracing::error!(
            case = case_id.0,
            "tracing a new case gave up: trace it on request once the database is back"
        );
    });
    Ok((
        StatusCode::CREATED,
        Json(CaseView {
            id: c.id.0,
            holder: id.to_hex(),
            onset: c.onset,
            confirmed_at: c.confirmed_at,
        }),
    ))
}

/// Which cases.
#[derive(Debug, Deserialize)]
pub(crate) struct CasesQuery {
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub(crate) since: Option<OffsetDateTime>,
}

/// Cases confirmed since a time (default: the last 28 days).
#[utoipa::path(get, path = "/cases", tag = "cases", security(("officer" = [])),
    params(("since" = Option<String>, Query, description = "RFC 3339")), responses(
    (status = 200, description = "cases", body = Vec<CaseView>),
))]
pub(crate) async fn list_cases<S: Store>(
    State(app): State<Arc<App<S>>>,
    _me: Staff<Officers>,
    Query(q): Query<CasesQuery>,
) -> Result<Json<Vec<CaseView>>, ApiError> {
    let since = q.since.unwrap_or_else(|| now() - app.settings.retention);
    Ok(Json(
        app.store
            .cases(since)
            .await?
            .into_iter()
            .map(|(h, c)| CaseView {
                id: c.id.0,
                holder: h.to_hex(),
                onset: c.onset,
                confirmed_at: c.confirmed_at,
            })
            .collect(),
    ))
}

/// What a tracing run found.
#[derive(Debug, Serialize, ToSchema)]
pub struct TraceView {
    /// Cases traced.
    pub cases: usize,
    /// Exposures found.
    pub exposures: usize,
    /// Contacts graded close.
    pub close_contacts: usize,
    /// Contacts graded same-place only.
    pub same_place_contacts: usize,
    /// Venues involved.
    pub venues: usize,
    /// Exposures recorded now (0 when traced before).
    pub new_exposures: u64,
    /// applied (colours changed at once) or pending (waiting for review), by the policy.
    pub recorded_as: String,
    /// Time taken, milliseconds.
    pub millis: f64,
}

/// Traces cases, records their exposures and forgets the contacts' cached colours.
pub(crate) async fn run_trace<S: Store>(
    app: &App<S>,
    cases: &[healthcode_domain::CaseId],
    actor: String,
    role: &str,
) -> Result<TraceView, ApiError> {
    let failed = |e: healthcode_exposure::TraceError| match e {
        healthcode_exposure::TraceError::NoCase(id) => ApiError::NotFound(format!("no case {id}")),
        // An unavailable database is a 503 here as everywhere.
        healthcode_exposure::TraceError::Store(e) => ApiError::from(e),
        other => ApiError::internal("tracing failed", other),
    };
    let policy = app.policy();
    let tracer = healthcode_exposure::Tracer::new(app.store(), policy.tracing())
        .await
        .map_err(failed)?;
    let (r, contacts) = tracer.trace(app.store(), cases).await.map_err(failed)?;
    for h in &contacts {
        app.statuses.invalidate(h);
    }
    let recorded_as = healthcode_exposure::recorded_state(policy.tracing()).as_str();
    app.audit(
        actor,
        role,
        "trace",
        None,
        format!(
            "cases {:?}: {} close, {} same-place contacts, {} new exposures ({recorded_as})",
            cases.iter().map(|c| c.0).collect::<Vec<_>>(),
            r.close_contacts,
            r.same_place_contacts,
            r.new_exposures
        ),
    )
    .await?;
    Ok(TraceView {
        cases: r.cases,
        exposures: r.exposures,
        close_contacts: r.close_contacts,
        same_place_contacts: r.same_place_contacts,
        venues: r.venues,
        new_exposures: r.new_exposures,
        recorded_as: recorded_as.into(),
        millis: r.elapsed.as_secs_f64() * 1000.0,
    })
}

/// Traces a case now: every holder whose presence overlapped the case's at a venue during its
/// infectious window is recorded as exposed, graded by the policy (officers). Idempotent.
#[utoipa::path(post, path = "/cases/{id}/trace", tag = "cases", security(("officer" = [])),
    params(("id" = i64, Path, description = "case id")), responses(
    (status = 200, description = "traced", body = TraceView),
    (status = 404, description = "no such case", body = Problem, content_type = "application/problem+json"),
))]
pub(crate) async fn trace_case<S: Store>(
    State(app): State<Arc<App<S>>>,
    me: Staff<Officers>,
    Path(id): Path<i64>,
) -> Result<Json<TraceView>, ApiError> {
    Ok(Json(
        run_trace(
            &app,
            &[healthcode_domain::CaseId(id)],
            me.actor(),
            me.role.as_str(),
        )
        .await?,
    ))
}

/// An exposure as officers review it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ExposureView {
    /// The contact (holder id, hex).
    pub holder: String,
    /// The case.
    pub case: i64,
    /// The venue.
    pub venue: i64,
    /// close or same-place.
    pub grade: String,
    /// The case's presence.
    #[serde(with = "time::serde::rfc3339")]
    pub case_from: OffsetDateTime,
    /// The case's presence, end.
    #[serde(with = "time::serde::rfc3339")]
    pub case_until: OffsetDateTime,
    /// The contact's presence.
    #[serde(with = "time::serde::rfc3339")]
    pub contact_from: OffsetDateTime,
    /// The contact's presence, end.
    #[serde(with = "time::serde::rfc3339")]
    pub contact_until: OffsetDateTime,
    /// Minutes together.
    pub overlap_minutes: i64,
    /// applied, pending or dismissed.
    pub state: String,
}

fn exposure_view(e: healthcode_store::StoredExposure) -> ExposureView {
    ExposureView {
        holder: e.holder.to_hex(),
        case: e.exposure.case.0,
        venue: e.exposure.venue.0,
        grade: e.exposure.grade.as_str().into(),
        case_from: e.exposure.case_interval.0,
        case_until: e.exposure.case_interval.1,
        contact_from: e.exposure.contact_interval.0,
        contact_until: e.exposure.contact_interval.1,
        overlap_minutes: e.exposure.overlap_minutes,
        state: e.state.as_str().into(),
    }
}

/// A case's exposures with their review state (officers). Pseudonymous ids only.
#[utoipa::path(get, path = "/cases/{id}/exposures", tag = "cases", security(("officer" = [])),
    params(("id" = i64, Path, description = "case id")), responses(
    (status = 200, description = "exposures", body = Vec<ExposureView>),
))]
pub(crate) async fn case_exposures<S: Store>(
    State(app): State<Arc<App<S>>>,
    _me: Staff<Officers>,
    Path(id): Path<i64>,
) -> Result<Json<Vec<ExposureView>>, ApiError> {
    Ok(Json(
        app.store
            .exposures_of_case(healthcode_domain::CaseId(id))
            .await?
            .into_iter()
            .map(exposure_view)
            .collect(),
    ))
}

/// Exposures waiting for review (officers), oldest case first, at most 500.
#[utoipa::path(get, path = "/exposures/pending", tag = "cases", security(("officer" = [])), responses(
    (status = 200, description = "pending exposures", body = Vec<ExposureView>),
))]
pub(crate) async fn pending_exposures<S: Store>(
    State(app): State<Arc<App<S>>>,
    _me: Staff<Officers>,
) -> Result<Json<Vec<ExposureView>>, ApiError> {
    Ok(Json(
        app.store
            .pending_exposures(500)
            .await?
            .into_iter()
            .map(exposure_view)
            .collect(),
    ))
}

/// A review decision on one exposure.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExposureDecision {
    /// The contact (holder id, hex).
    pub holder: String,
    /// The case.
    pub case: i64,
    /// The venue.
    pub venue: i64,
    /// The contact's arrival.
    #[serde(with = "time::serde::rfc3339")]
    pub contact_from: OffsetDateTime,
    /// true: apply (it counts for the colour); false: dismiss.
    pub apply: bool,
    /// Why, for the audit log (1-500 characters).
    pub note: String,
}

/// The audit log's actions for one exposure decided on its own.
const SINGLE_DECISIONS: [&str; 2] = ["exposure-apply", "exposure-dismiss"];

/// Refuses `adding` more exposure decisions by `me` alone when with those of the hour before
/// (counted from the audit log, one record an exposure) they would pass `[governance]
/// bulk_exposure_two_person_above`: one at a time in a loop, or a case's few at a time, is how
/// a bulk decision would otherwise avoid its second officer. 429 with Retry-After (when the
/// oldest of the hour's decisions leaves the hour).
async fn single_decisions_left<S: Store>(
    app: &App<S>,
    me: &Staff<Officers>,
    adding: u64,
) -> Result<(), ApiError> {
    let cap = u64::from(app.governance.bulk_exposure_two_person_above);
    let t = now();
    let hour = time::Duration::hours(1);
    let (mut made, mut oldest) = (0, None::<OffsetDateTime>);
    for action in SINGLE_DECISIONS {
        let (n, first) = app.store.audit_count(&me.actor(), action, t - hour).await?;
        made += n;
        oldest = match (oldest, first) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
    if made + adding <= cap {
        return Ok(());
    }
    let wait = oldest.map_or(hour, |o| o + hour - t);
    Err(ApiError::RateLimited(
        format!(
            "{made} exposures decided by you alone in the last hour; {adding} more would pass the most one officer may ({cap}); \
             to decide more, propose a bulk decision for a second officer to approve (POST /api/v1/admin/cases/{{id}}/exposures/decision)"
        ),
        u64::try_from(wait.whole_seconds()).unwrap_or(0).max(1),
    ))
}

/// Applies or dismisses a pending exposure (officers); audited. One officer decides at most
/// `[governance] bulk_exposure_two_person_above` this way in an hour (429 after: propose a bulk
/// decision instead).
#[utoipa::path(post, path = "/exposures/decision", tag = "cases", security(("officer" = [])), request_body = ExposureDecision, responses(
    (status = 200, description = "decided", body = ExposureView),
    (status = 409, description = "not pending", body = Problem, content_type = "application/problem+json"),
    (status = 429, description = "this officer decided the hour's most one at a time: propose a bulk decision, or retry after the Retry-After seconds", body = Problem, content_type = "application/problem+json"),
))]
pub(crate) async fn decide_exposure<S: Store>(
    State(app): State<Arc<App<S>>>,
    me: Staff<Officers>,
    Json(req): Json<ExposureDecision>,
) -> Result<Json<ExposureView>, ApiError> {
    let note = req.note.trim();
    if note.is_empty() || note.chars().count() > 500 {
        return Err(ApiError::InvalidField("note: 1 to 500 characters".into()));
    }
    // One decision at a time on this node, so that decisions sent at once cannot all pass the
    // count before any is recorded.
    let _turn = app.single_decisions.lock().await;
    single_decisions_left(&app, &me, 1).await?;
    let holder = holder_id(&req.holder)?;
    let key = healthcode_store::ExposureKey {
        holder: holder.clone(),
        case: healthcode_domain::CaseId(req.case),
        venue: VenueId(req.venue),
        contact_start: req.contact_from,
    };
    let state = if req.apply {
        healthcode_store::ExposureState::Applied
    } else {
        healthcode_store::ExposureState::Dismissed
    };
    let e = app.store.set_exposure_state(&key, state).await?;
    app.statuses.invalidate(&holder);
    app.audit(
        me.actor(),
        me.role.as_str(),
        if req.apply {
            "exposure-apply"
        } else {
            "exposure-dismiss"
        },
        Some(holder),
        format!("case {} venue {}: {note}", req.case, req.venue),
    )
    .await?;
    Ok(Json(exposure_view(e)))
}

/// A decision on every pending exposure of a case at once.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkExposureDecision {
    /// true: apply them all (they count for the colour); false: dismiss them all.
    pub apply: bool,
    /// Why, for the audit log (1-500 characters).
    pub note: String,
}

/// What a bulk decision did: decided at once, or proposed for a second officer.
#[derive(Debug, Serialize, ToSchema)]
pub struct BulkExposureOutcome {
    /// How many pending exposures it covers.
    pub pending: u64,
    /// How many were decided now (none when it waits for a second officer).
    pub decided: u64,
    /// The proposal a second officer approves, when there were more than
    /// `[governance] bulk_exposure_two_person_above`.
    pub proposal: Option<ProposalView>,
}

/// Applies or dismisses every pending exposure of a case (officers). Up to
/// `[governance] bulk_exposure_two_person_above` are decided at once (200); more are a proposal
/// that a second officer approves (202), and nobody's colour changes before. Audited.
#[utoipa::path(post, path = "/cases/{id}/exposures/decision", tag = "cases", security(("officer" = [])), request_body = BulkExposureDecision,
    params(("id" = i64, Path, description = "case id")), responses(
    (status = 200, description = "decided", body = BulkExposureOutcome),
    (status = 202, description = "more than one officer may decide: proposed, awaiting a second", body = BulkExposureOutcome),
    (status = 409, description = "nothing pending", body = Problem, content_type = "application/problem+json"),
))]
pub(crate) async fn decide_case_exposures<S: Store>(
    State(app): State<Arc<App<S>>>,
    me: Staff<Officers>,
    Path(id): Path<i64>,
    Json(req): Json<BulkExposureDecision>,
) -> Result<(StatusCode, Json<BulkExposureOutcome>), ApiError> {
    let note = req.note.trim();
    if note.is_empty() || note.chars().count() > 500 {
        return Err(ApiError::InvalidField("note: 1 to 500 characters".into()));
    }
    let case = healthcode_domain::CaseId(id);
    if app.store.case(case).await?.is_none() {
        return Err(ApiError::NotFound(format!("no case {id}")));
    }
    let pending: Vec<_> = app
        .store
        .exposures_of_case(case)
        .await?
        .into_iter()
        .filter(|e| e.state == ExposureState::Pending)
        .collect();
    let count = pending.len() as u64;
    if count == 0 {
        return Err(ApiError::Refused(format!("case {id} has no pending exposures")));
    }
    let verb = if req.apply { "apply" } else { "dismiss" };
    if count > u64::from(app.governance.bulk_exposure_two_person_above) {
        // The proposal covers the exposures pending now, and none recorded after.
        let (count, upto) = app.store.pending_exposure_mark(case).await?;
        let act = Act::ExposureDecisions {
            case: id,
            apply: req.apply,
            count,
            upto,
            note: note.into(),
        };
        let what = format!("{verb} {count} pending exposures of case {id}: {note}");
        let p = propose(&app, &me, act, what).await?;
        return Ok((
            StatusCode::ACCEPTED,
            Json(BulkExposureOutcome {
                pending: count,
                decided: 0,
                proposal: Some(p),
            }),
        ));
    }
    let state = if req.apply {
        ExposureState::Applied
    } else {
        ExposureState::Dismissed
    };
    // These count against the same hourly budget as single decisions, one record an exposure
    // (each holder sees the decision on their own), so that a case's few at a time cannot add up
    // past it either.
    let _turn = app.single_decisions.lock().await;
    single_decisions_left(&app, &me, count).await?;
    let mut decided = 0;
    for e in &pending {
        match app.store.set_exposure_state(&e.key(), state).await {
            Ok(_) => decided += 1,
            // Decided meanwhile by someone else: left as they decided.
            Err(healthcode_store::StoreError::Refused(_)) => continue,
            Err(other) => return Err(other.into()),
        }
        app.statuses.invalidate(&e.holder);
        app.audit(
            me.actor(),
            me.role.as_str(),
            &format!("exposure-{verb}"),
            Some(e.holder.clone()),
            format!(
                "case {id} venue {}: {note} (the case's {count} pending, at once)",
                e.exposure.venue.0
            ),
        )
        .await?;
    }
    Ok((
        StatusCode::OK,
        Json(BulkExposureOutcome {
            pending: count,
            decided,
            proposal: None,
        }),
    ))
}
