//! The holder's own consents: given in the app (to any officer), listed with those officers
//! obtained, and revoked at once.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use healthcode_store::{ConsentGiven, NewConsent, Store};
use serde::Deserialize;
use utoipa::ToSchema;

use super::{CONSENT_RECORD, CONSENT_REVOKE, ConsentView, Scope, consent_days};
use crate::auth::HolderAuth;
use crate::problem::{ApiError, Json, Path, Problem};
use crate::{App, now};

/// The most consents a holder may have in force at once (against a flood of them).
pub const MAX_ACTIVE_CONSENTS: usize = 20;

/// A consent the holder gives in the app.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsentRequest {
    /// What it allows.
    pub scope: Scope,
    /// For how many days (1-30).
    pub days: u16,
}

/// The holder's consents, newest first: given in the app, by a code read out to an officer, or
/// in person; with their state now.
#[utoipa::path(get, path = "/me/consents", tag = "holders", security(("holder" = [])), responses(
    (status = 200, description = "the consents, newest first", body = Vec<ConsentView>),
))]
pub(crate) async fn my_consents<S: Store>(
    State(app): State<Arc<App<S>>>,
    me: HolderAuth,
) -> Result<Json<Vec<ConsentView>>, ApiError> {
    let t = now();
    Ok(Json(
        app.store()
            .consents_of(&me.holder)
            .await?
            .iter()
            .map(|c| ConsentView::of(c, t))
            .collect(),
    ))
}

/// Gives a consent in the app, to any officer, for 1 to 30 days; an officer then names its id as
/// the purpose. At most 20 in force at once.
#[utoipa::path(post, path = "/me/consents", tag = "holders", security(("holder" = [])), request_body = ConsentRequest, responses(
    (status = 201, description = "the consent", body = ConsentView),
    (status = 422, description = "a field is invalid, or too many consents are in force", body = Problem, content_type = "application/problem+json"),
))]
pub(crate) async fn give_consent<S: Store>(
    State(app): State<Arc<App<S>>>,
    me: HolderAuth,
    Json(req): Json<ConsentRequest>,
) -> Result<(StatusCode, Json<ConsentView>), ApiError> {
    let days = consent_days(req.days)?;
    let t = now();
    let active = app
        .store()
        .consents_of(&me.holder)
        .await?
        .iter()
        .filter(|c| c.revoked_at.is_none() && c.consent.expires_at > t)
        .count();
    if active >= MAX_ACTIVE_CONSENTS {
        return Err(ApiError::InvalidField(format!(
            "at most {MAX_ACTIVE_CONSENTS} consents can be in force at once; revoke one first"
        )));
    }
    let consent = app
        .store()
        .add_consent(&NewConsent {
            holder: me.holder.clone(),
            scope: req.scope.into(),
            granted_to: None,
            given: ConsentGiven::App,
            obtained_by: None,
            created_at: t,
            expires_at: t + days,
        })
        .await?;
    app.audit(
        format!("holder:{}", me.holder.to_hex()),
        "holder",
        CONSENT_RECORD,
        Some(me.holder.clone()),
        format!(
            "consent {} ({}) given in the app to any officer, for {} days",
            consent.id,
            consent.consent.scope.as_str(),
            req.days
        ),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(ConsentView::of(&consent, t))))
}

/// Revokes one of the holder's consents, at once: the next use is refused. Another holder's
/// consent is the same 404 as none.
#[utoipa::path(post, path = "/me/consents/{id}/revoke", tag = "holders", security(("holder" = [])),
    params(("id" = i64, Path, description = "the consent")), responses(
    (status = 200, description = "revoked", body = ConsentView),
    (status = 404, description = "no such consent of this holder's", body = Problem, content_type = "application/problem+json"),
    (status = 409, description = "revoked already", body = Problem, content_type = "application/problem+json"),
))]
pub(crate) async fn revoke_consent<S: Store>(
    State(app): State<Arc<App<S>>>,
    me: HolderAuth,
    Path(id): Path<i64>,
) -> Result<Json<ConsentView>, ApiError> {
    let t = now();
    let Some(c) = app
        .store()
        .consent(id)
        .await?
        .filter(|c| c.consent.holder == me.holder)
    else {
        return Err(ApiError::NotFound(format!("you have no consent {id}")));
    };
    if !app.store().revoke_consent(&me.holder, id, t).await? {
        return Err(ApiError::Conflict(format!("consent {} is revoked already", c.id)));
    }
    app.audit(
        format!("holder:{}", me.holder.to_hex()),
        "holder",
        CONSENT_REVOKE,
        Some(me.holder.clone()),
        format!("consent {id} revoked"),
    )
    .await?;
    let c = app
        .store()
        .consent(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("you have no consent {id}")))?;
    Ok(Json(ConsentView::of(&c, t)))
}
