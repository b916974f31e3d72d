//! Venues, their scanner devices, and risk areas.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use healthcode_domain::{
    AdmissionPolicy, DeviceId, Issuer, RiskArea, RiskLevel, Venue, VenueCategory, VenueId,
};
use healthcode_store::{Act, Device, NewVenue, Store};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::auth::{Admins, DEVICE_KEY_PREFIX, Officers, Staff, new_secret, secret_hash};
use crate::problem::{ApiError, Json, Path, Problem};

use super::proposals::{ProposalView, propose};
use super::rfc;
use crate::{App, now};

/// A new venue.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VenueRequest {
    /// Name (1-200 characters).
    pub name: String,
    /// mall, hospital, clinic, transport, office, school, market, restaurant, other.
    pub category: String,
    /// green-only, green-or-yellow or all.
    pub admission: String,
}

/// A venue.
#[derive(Debug, Serialize, ToSchema)]
pub struct VenueView {
    /// Id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// Category.
    pub category: String,
    /// Region.
    pub region: String,
    /// Admission policy.
    pub admission: String,
}

impl From<Venue> for VenueView {
    fn from(v: Venue) -> VenueView {
        VenueView {
            id: v.id.0,
            name: v.name,
            category: v.category.as_str().into(),
            region: v.region.as_str().into(),
            admission: v.admission.as_str().into(),
        }
    }
}

/// Registers a venue in the server's region (admins).
#[utoipa::path(post, path = "/venues", tag = "venues", security(("officer" = [])), request_body = VenueRequest, responses(
    (status = 201, description = "created", body = VenueView),
))]
pub(crate) async fn create_venue<S: Store>(
    State(app): State<Arc<App<S>>>,
    me: Staff<Admins>,
    Json(req): Json<VenueRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let name = req.name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(ApiError::InvalidField("name: 1 to 200 characters".into()));
    }
    let category = VenueCategory::parse(&req.category)
        .ok_or_else(|| ApiError::InvalidField(format!("category: unknown category {:?}", req.category)))?;
    let admission = AdmissionPolicy::parse(&req.admission)
        .ok_or_else(|| ApiError::InvalidField("admission: green-only, green-or-yellow or all".into()))?;
    let v = app
        .store
        .insert_venue(&NewVenue {
            name: name.into(),
            category,
            region: app.keystore.issuer().clone(),
            admission,
        })
        .await?;
    app.audit(
        me.actor(),
        me.role.as_str(),
        "venue-create",
        None,
        format!("venue {} ({name})", v.id.0),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(VenueView::from(v))))
}

/// Venues.
#[utoipa::path(get, path = "/venues", tag = "venues", security(("officer" = [])), responses(
    (status = 200, description = "venues", body = Vec<VenueView>),
))]
pub(crate) async fn list_venues<S: Store>(
    State(app): State<Arc<App<S>>>,
    _me: Staff<Officers>,
) -> Result<Json<Vec<VenueView>>, ApiError> {
    Ok(Json(
        app.store
            .venues()
            .await?
            .into_iter()
            .map(VenueView::from)
            .collect(),
    ))
}

/// A new scanner device.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeviceRequest {
    /// Where it stands ("north gate"), 1-100 characters.
    pub label: String,
}

/// A device.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeviceView {
    /// Id.
    pub id: i64,
    /// Venue.
    pub venue: i64,
    /// Label.
    pub label: String,
    /// When an admin revoked its key (RFC 3339); absent while the key works.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<String>,
}

impl From<Device> for DeviceView {
    fn from(d: Device) -> DeviceView {
        DeviceView {
            id: d.id.0,
            venue: d.venue.0,
            label: d.label,
            revoked_at: d.revoked_at.map(rfc),
        }
    }
}

/// A created device and its key, shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeviceCreated {
    /// The device.
    pub device: DeviceView,
    /// Its key (`hcd_…`), for `Authorization: Bearer`. Not stored; not shown again.
    pub key: String,
}

/// Creates a scanner device for a venue; its key is shown once (admins).
#[utoipa::path(post, path = "/venues/{id}/devices", tag = "venues", security(("officer" = [])), request_body = DeviceRequest,
    params(("id" = i64, Path, description = "venue id")), responses(
    (status = 201, description = "created", body = DeviceCreated),
    (status = 404, description = "no such venue", body = Problem, content_type = "application/problem+json"),
))]
pub(crate) async fn create_device<S: Store>(
    State(app): State<Arc<App<S>>>,
    me: Staff<Admins>,
    Path(id): Path<i64>,
    Json(req): Json<DeviceRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let label = req.label.trim();
    if label.is_empty() || label.chars().count() > 100 {
        return Err(ApiError::InvalidField("label: 1 to 100 characters".into()));
    }
    let venue = app
        .store
        .venue(VenueId(id))
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no venue {id}")))?;
    let key = new_secret(DEVICE_KEY_PREFIX)?;
    let d = app
        .store
        .insert_device(venue.id, label, &secret_hash(&key))
        .await?;
    app.audit(
        me.actor(),
        me.role.as_str(),
        "device-create",
        None,
        format!("device {} at venue {}", d.id.0, venue.id.0),
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(DeviceCreated {
            device: DeviceView::from(d),
            key,
        }),
    ))
}

/// A venue's devices (admins).
#[utoipa::path(get, path = "/venues/{id}/devices", tag = "venues", security(("officer" = [])),
    params(("id" = i64, Path, description = "venue id")), responses(
    (status = 200, description = "devices", body = Vec<DeviceView>),
))]
pub(crate) async fn list_devices<S: Store>(
    State(app): State<Arc<App<S>>>,
    _me: Staff<Admins>,
    Path(id): Path<i64>,
) -> Result<Json<Vec<DeviceView>>, ApiError> {
    Ok(Json(
        app.store
            .devices(Some(VenueId(id)))
            .await?
            .into_iter()
            .map(DeviceView::from)
            .collect(),
    ))
}

/// Revokes a device's key (admins): the key is refused at once on this server, and within the
/// session cache's 30 seconds on any other. The device stays listed, with when it was revoked;
/// a venue that needs a scanner again gets a new device and key. Audited.
#[utoipa::path(delete, path = "/venues/{id}/devices/{device}", tag = "venues", security(("officer" = [])),
    params(("id" = i64, Path, description = "venue id"), ("device" = i64, Path, description = "device id")), responses(
    (status = 200, description = "revoked", body = DeviceView),
    (status = 404, description = "no such device at this venue", body = Problem, content_type = "application/problem+json"),
    (status = 409, description = "revoked already", body = Problem, content_type = "application/problem+json"),
))]
pub(crate) async fn revoke_device<S: Store>(
    State(app): State<Arc<App<S>>>,
    me: Staff<Admins>,
    Path((venue, device)): Path<(i64, i64)>,
) -> Result<Json<DeviceView>, ApiError> {
    let found = app
        .store
        .devices(Some(VenueId(venue)))
        .await?
        .into_iter()
        .find(|d| d.id == DeviceId(device))
        .ok_or_else(|| ApiError::NotFound(format!("venue {venue} has no device {device}")))?;
    // Recorded before it is done (as every read of personal data is), so that no revocation
    // can happen unaudited; a refused second one leaves an entry that says it was asked for.
    app.audit(
        me.actor(),
        me.role.as_str(),
        "device-revoke",
        None,
        format!("device {device} ({}) of venue {venue}", found.label),
    )
    .await?;
    // Whatever the store answers (revoked now, or already), this node forgets the key.
    app.auth.forget_device(&found.key_hash);
    let revoked = app.store.revoke_device(found.id, now()).await?;
    Ok(Json(DeviceView::from(revoked)))
}

/// A risk area to declare.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RiskAreaRequest {
    /// Region, ISO 3166-1 or 3166-2.
    pub region: String,
    /// low, medium or high.
    pub level: String,
    /// From.
    #[serde(with = "time::serde::rfc3339")]
    pub from: OffsetDateTime,
    /// Until (open when absent).
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub until: Option<OffsetDateTime>,
}

/// A risk area as listed.
#[derive(Debug, Serialize, ToSchema)]
pub struct RiskAreaView {
    /// Id (named by proposals to change its level or end it).
    pub id: i64,
    /// Region, ISO 3166-1 or 3166-2.
    pub region: String,
    /// low, medium or high.
    pub level: String,
    /// From.
    #[serde(with = "time::serde::rfc3339")]
    pub from: OffsetDateTime,
    /// Until (open when absent), as declared.
    #[serde(with = "time::serde::rfc3339::option")]
    pub until: Option<OffsetDateTime>,
    /// When two officers ended it: it is kept, and counts for no colour since.
    #[serde(with = "time::serde::rfc3339::option")]
    pub ended_at: Option<OffsetDateTime>,
}

fn level_of(s: &str) -> Result<RiskLevel, ApiError> {
    RiskLevel::parse(s.trim()).ok_or_else(|| ApiError::InvalidField("level: low, medium or high".into()))
}

/// Proposes a risk area (officers); nobody's colour changes until a second officer approves it
/// (`POST /proposals/{id}/approve`).
#[utoipa::path(post, path = "/risk-areas", tag = "cases", security(("officer" = [])), request_body = RiskAreaRequest, responses(
    (status = 202, description = "proposed, awaiting a second officer", body = ProposalView),
))]
pub(crate) async fn add_risk_area<S: Store>(
    State(app): State<Arc<App<S>>>,
    me: Staff<Officers>,
    Json(req): Json<RiskAreaRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let region = Issuer::parse(&req.region).map_err(|e| ApiError::InvalidField(format!("region: {e}")))?;
    let level = level_of(&req.level)?;
    if req.until.is_some_and(|u| u <= req.from) {
        return Err(ApiError::InvalidField("until must be after from".into()));
    }
    let t = crate::now();
    app.plausible("from", req.from, t, true)?;
    if let Some(until) = req.until {
        app.plausible("until", until, t, true)?;
    }
    let what = format!(
        "declare {} {} from {}",
        region.as_str(),
        level.as_str(),
        rfc(req.from)
    );
    let act = Act::RiskAreaDeclare {
        region: region.as_str().into(),
        level,
        from: req.from,
        until: req.until,
    };
    let p = propose(&app, &me, act, what).await?;
    Ok((StatusCode::ACCEPTED, Json(p)))
}

/// A risk area not ended, or 404.
async fn area_in_force<S: Store>(app: &App<S>, id: i64) -> Result<RiskArea, ApiError> {
    app.store
        .listed_risk_areas()
        .await?
        .into_iter()
        .find(|a| a.id == id && a.ended_at.is_none())
        .map(|a| a.area)
        .ok_or_else(|| ApiError::NotFound(format!("no risk area {id} in force")))
}

/// A new level for a risk area.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RiskLevelChange {
    /// low, medium or high.
    pub level: String,
}

/// Proposes a new level for a risk area in force (officers); it changes once a second officer
/// approves.
#[utoipa::path(post, path = "/risk-areas/{id}/level", tag = "cases", security(("officer" = [])), request_body = RiskLevelChange,
    params(("id" = i64, Path, description = "risk area id")), responses(
    (status = 202, description = "proposed, awaiting a second officer", body = ProposalView),
    (status = 404, description = "no such area in force", body = Problem, content_type = "application/problem+json"),
))]
pub(crate) async fn change_risk_level<S: Store>(
    State(app): State<Arc<App<S>>>,
    me: Staff<Officers>,
    Path(id): Path<i64>,
    Json(req): Json<RiskLevelChange>,
) -> Result<impl IntoResponse, ApiError> {
    let level = level_of(&req.level)?;
    let area = area_in_force(&app, id).await?;
    if area.level == level {
        return Err(ApiError::Refused(format!(
            "risk area {id} is {} already",
            level.as_str()
        )));
    }
    let what = format!(
        "risk area {id} ({}) from {} to {}",
        area.region.as_str(),
        area.level.as_str(),
        level.as_str()
    );
    let p = propose(&app, &me, Act::RiskAreaLevel { area: id, level }, what).await?;
    Ok((StatusCode::ACCEPTED, Json(p)))
}

/// Proposes ending a risk area (officers): once a second officer approves, it is ended at that
/// moment, stays listed with when, counts for no colour since, and holders' colours are
/// computed again.
#[utoipa::path(post, path = "/risk-areas/{id}/end", tag = "cases", security(("officer" = [])),
    params(("id" = i64, Path, description = "risk area id")), responses(
    (status = 202, description = "proposed, awaiting a second officer", body = ProposalView),
    (status = 404, description = "no such area in force", body = Problem, content_type = "application/problem+json"),
))]
pub(crate) async fn end_risk_area<S: Store>(
    State(app): State<Arc<App<S>>>,
    me: Staff<Officers>,
    Path(id): Path<i64>,
) -> Result<impl IntoResponse, ApiError> {
    let area = area_in_force(&app, id).await?;
    let what = format!(
        "end risk area {id} ({} {})",
        area.region.as_str(),
        area.level.as_str()
    );
    let p = propose(&app, &me, Act::RiskAreaEnd { area: id }, what).await?;
    Ok((StatusCode::ACCEPTED, Json(p)))
}

/// Risk areas, ended ones included.
#[utoipa::path(get, path = "/risk-areas", tag = "cases", security(("officer" = [])), responses(
    (status = 200, description = "risk areas", body = Vec<RiskAreaView>),
))]
pub(crate) async fn list_risk_areas<S: Store>(
    State(app): State<Arc<App<S>>>,
    _me: Staff<Officers>,
) -> Result<Json<Vec<RiskAreaView>>, ApiError> {
    Ok(Json(
        app.store
            .listed_risk_areas()
            .await?
            .into_iter()
            .map(|a| RiskAreaView {
                id: a.id,
                region: a.area.region.as_str().into(),
                level: a.area.level.as_str().into(),
                from: a.area.from,
                until: a.area.until,
                ended_at: a.ended_at,
            })
            .collect(),
    ))
}
