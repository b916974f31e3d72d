//! Purposes bound to records, and what the holder is told: `lab` (lab reports an officer
//! records, which a lab-result purpose names), `officer` (consent obtained by an officer: by a
//! one-time code texted to the holder, or in person, attested), `holder` (the holder's own
//! consents: give, list, revoke), `told` (the holder's list of what happened to their colour,
//! data and consents, and the daily text of reads). This file names the routes and the OpenAPI
//! part.

mod holder;
mod lab;
mod officer;
pub mod told;

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};
use healthcode_store::{Consent, ConsentScope, MAX_CONSENT, Store};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{OpenApi, ToSchema};

use crate::App;
use crate::problem::ApiError;

pub use holder::*;
pub use lab::*;
pub use officer::*;
pub use told::*;

/// The consent, lab-report and notification endpoints' part of the OpenAPI document.
#[derive(Debug, OpenApi)]
#[openapi(
    paths(
        record_lab_report,
        request_consent_code,
        confirm_consent_code,
        attest_consent,
        my_consents,
        give_consent,
        revoke_consent,
        my_notifications
    ),
    components(schemas(
        LabReportRequest,
        LabReportView,
        Scope,
        ConsentView,
        ConsentCodeRequest,
        ConsentCodeSent,
        ConsentCodeConfirm,
        InPersonConsent,
        ConsentRequest,
        Notification
    ))
)]
pub struct ConsentApi;

/// The routes.
pub fn routes<S: Store>() -> Router<Arc<App<S>>> {
    Router::new()
        .route("/api/v1/admin/lab-reports", post(record_lab_report::<S>))
        .route(
            "/api/v1/admin/consents/code-requests",
            post(request_consent_code::<S>),
        )
        .route(
            "/api/v1/admin/consents/code-confirmations",
            post(confirm_consent_code::<S>),
        )
        .route("/api/v1/admin/consents/in-person", post(attest_consent::<S>))
        .route(
            "/api/v1/me/consents",
            get(my_consents::<S>).post(give_consent::<S>),
        )
        .route("/api/v1/me/consents/{id}/revoke", post(revoke_consent::<S>))
        .route("/api/v1/me/notifications", get(my_notifications::<S>))
}

/// What a consent allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Scope {
    /// An officer reads the holder's record for someone acting for the holder.
    Proxy,
    /// An officer issues a printed code for the holder.
    PrintedCode,
}

impl From<Scope> for ConsentScope {
    fn from(s: Scope) -> ConsentScope {
        match s {
            Scope::Proxy => ConsentScope::Proxy,
            Scope::PrintedCode => ConsentScope::PrintedCode,
        }
    }
}

/// A consent record.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConsentView {
    /// Its id: what a purpose names (`{"purpose": "proxy-with-consent", "consent": id}`).
    pub id: i64,
    /// Whose (hex).
    pub holder: String,
    /// `proxy` or `printed-code`.
    pub scope: String,
    /// The one staff account it is given to (`staff:<id>`), or none: any officer.
    pub granted_to: Option<String>,
    /// How it was given: `app`, `one-time-code` or `in-person`.
    pub given: String,
    /// The officer who obtained it (`staff:<id>`), for a code or in person.
    pub obtained_by: Option<String>,
    /// Given at.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Until.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    /// Revoked at, if it was.
    #[serde(with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
    /// `active`, `expired` or `revoked`, now.
    pub state: String,
}

impl ConsentView {
    pub(crate) fn of(c: &Consent, now: OffsetDateTime) -> ConsentView {
        let n = &c.consent;
        let state = if c.revoked_at.is_some() {
            "revoked"
        } else if n.expires_at <= now {
            "expired"
        } else {
            "active"
        };
        ConsentView {
            id: c.id,
            holder: n.holder.to_hex(),
            scope: n.scope.as_str().into(),
            granted_to: n.granted_to.map(|o| format!("staff:{}", o.0)),
            given: n.given.as_str().into(),
            obtained_by: n.obtained_by.map(|o| format!("staff:{}", o.0)),
            created_at: n.created_at,
            expires_at: n.expires_at,
            revoked_at: c.revoked_at,
            state: state.into(),
        }
    }
}

/// A consent's days, checked: 1 to 30.
pub(crate) fn consent_days(days: u16) -> Result<time::Duration, ApiError> {
    let d = time::Duration::days(days.into());
    if days == 0 || d > MAX_CONSENT {
        return Err(ApiError::InvalidField(format!(
            "days: a consent lasts 1 to {} days",
            MAX_CONSENT.whole_days()
        )));
    }
    Ok(d)
}

/// The audit log's action for a consent recorded (by the holder or by an officer).
pub const CONSENT_RECORD: &str = "consent-record";
/// The audit log's action for a consent revoked by its holder.
pub const CONSENT_REVOKE: &str = "consent-revoke";
