//! Lab reports: recorded by an officer when a lab's report arrives, naming one identity
//! document. A lab-result purpose names the report and reaches only the holder of that document.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use healthcode_store::{LabReport, Store, StoreError};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::admin::parse_document;
use crate::auth::{Officers, Staff};
use crate::problem::{ApiError, Json, Problem};
use crate::{App, now};

/// A lab's report as it arrived.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LabReportRequest {
    /// The lab's reference for the report (1-200 characters, unique).
    pub reference: String,
    /// The laboratory (1-200 characters).
    pub lab: String,
    /// The resident ID number the report names…
    #[serde(default)]
    pub resident_id: Option<String>,
    /// …or the passport number, with its nationality.
    #[serde(default)]
    pub passport: Option<String>,
    /// Nationality (alpha-3), with `passport`.
    #[serde(default)]
    pub nationality: Option<String>,
}

/// A recorded lab report (the document it names is kept only as its lookup hash).
#[derive(Debug, Serialize, ToSchema)]
pub struct LabReportView {
    /// The reference.
    pub reference: String,
    /// The lab.
    pub lab: String,
    /// Recorded by (`staff:<id>`).
    pub recorded_by: String,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub recorded_at: OffsetDateTime,
}

fn text(field: &str, v: &str) -> Result<String, ApiError> {
    let v = v.trim();
    if v.is_empty() || v.chars().count() > 200 || v.chars().any(char::is_control) {
        return Err(ApiError::InvalidField(format!(
            "{field}: 1 to 200 characters, no control characters"
        )));
    }
    Ok(v.to_owned())
}

/// Records a lab's report (officers), with the identity document it names; its reference is
/// then the purpose of a lab-result search or read, which reaches only that document's holder.
/// A reference recorded already is refused (a report cannot be made to name someone else).
/// Recorded in the audit log, against the document's holder when one is registered (who sees it).
#[utoipa::path(post, path = "/admin/lab-reports", tag = "cases", security(("officer" = [])), request_body = LabReportRequest, responses(
    (status = 201, description = "recorded", body = LabReportView),
    (status = 409, description = "a report with this reference is recorded already", body = Problem, content_type = "application/problem+json"),
    (status = 422, description = "a field is invalid", body = Problem, content_type = "application/problem+json"),
))]
pub(crate) async fn record_lab_report<S: Store>(
    State(app): State<Arc<App<S>>>,
    me: Staff<Officers>,
    Json(req): Json<LabReportRequest>,
) -> Result<(StatusCode, Json<LabReportView>), ApiError> {
    let reference = text("reference", &req.reference)?;
    let lab = text("lab", &req.lab)?;
    let doc = parse_document(&req.resident_id, &req.passport, &req.nationality)?;
    let identity_hash = app.vault.identity_hash(&doc);
    let report = LabReport {
        reference,
        lab,
        identity_hash,
        recorded_by: me.id,
        recorded_at: now(),
    };
    let subject = app
        .store()
        .holder_by_identity(&identity_hash)
        .await?
        .map(|h| h.id);
    match app.store().add_lab_report(&report).await {
        Ok(()) => {}
        Err(StoreError::Conflict(_)) => {
            return Err(ApiError::Conflict(format!(
                "lab report {} is recorded already",
                report.reference
            )));
        }
        Err(e) => return Err(e.into()),
    }
    app.audit(
        me.actor(),
        me.role.as_str(),
        "lab-report-record",
        subject,
        format!("lab report {} from {}", report.reference, report.lab),
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(LabReportView {
            reference: report.reference,
            lab: report.lab,
            recorded_by: format!("staff:{}", me.id.0),
            recorded_at: report.recorded_at,
        }),
    ))
}
