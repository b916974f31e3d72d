//! The officers' side under `/api/v1/admin`: sign-in, accounts, venues and devices, risk areas,
//! test results, cases, overrides (two officers), appeals, personal data with a purpose, the
//! audit log and purge. Every change and every read of personal data is audited.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use healthcode_domain::{
    AdmissionPolicy, AppealId, Colour, HolderId, Issuer, OverrideId, RiskArea, RiskLevel, TestResult, Venue,
    VenueCategory, VenueId,
};
use healthcode_store::{
    Device, Fact, NewOverride, NewVenue, Principal, Role, Store, StoreError, verify_chain,
};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{OpenApi, ToSchema};

use crate::access::{Purpose, Reader};
use crate::auth::{
    Admins, AnyStaff, Auditors, DEVICE_KEY_PREFIX, Officers, Staff, check_new_password, hash_password,
    new_secret, one_time_password, secret_hash, start_session, verify_password,
};
use crate::holders::{AppealView, ReasonView, reasons_view};
use crate::problem::{ApiError, Json, Path, Problem, Query};
use crate::{App, now};

/// The officer endpoints' part of the OpenAPI document.
#[derive(Debug, OpenApi)]
#[openapi(
    paths(
        sign_in,
        whoami,
        create_officer,
        list_officers,
        create_venue,
        list_venues,
        create_device,
        list_devices,
        add_risk_area,
        list_risk_areas,
        find_holder,
        read_holder,
        printed_code,
        add_test,
        add_case,
        list_cases,
        trace_case,
        case_exposures,
        pending_exposures,
        decide_exposure,
        propose_override,
        list_overrides,
        approve_override,
        list_appeals,
        decide_appeal,
        audit_log,
        audit_verify,
        purge
    ),
    components(schemas(
        StaffSignIn,
        StaffSession,
        StaffView,
        NewOfficer,
        OfficerCreated,
        VenueRequest,
        VenueView,
        DeviceRequest,
        DeviceCreated,
        DeviceView,
        RiskAreaRequest,
        RiskAreaView,
        HolderSearch,
        HolderRead,
        HolderFound,
        HolderRecord,
        PrintedCodeRequest,
        PrintedCode,
        TestRequest,
        CaseRequest,
        CaseView,
        OverrideRequest,
        OverrideView,
        Decision,
        AuditView,
        ChainReport,
        PurgeView,
        Purpose,
        TraceView,
        ExposureView,
        ExposureDecision
    ))
)]
pub struct AdminApi;

/// The routes.
pub fn routes<S: Store>() -> Router<Arc<App<S>>> {
    Router::new()
        .route("/api/v1/admin/sessions", post(sign_in::<S>))
        .route("/api/v1/admin/me", get(whoami::<S>))
        .route(
            "/api/v1/admin/officers",
            post(create_officer::<S>).get(list_officers::<S>),
        )
        .route(
            "/api/v1/admin/venues",
            post(create_venue::<S>).get(list_venues::<S>),
        )
        .route(
            "/api/v1/admin/venues/{id}/devices",
            post(create_device::<S>).get(list_devices::<S>),
        )
        .route(
            "/api/v1/admin/risk-areas",
            post(add_risk_area::<S>).get(list_risk_areas::<S>),
        )
        .route("/api/v1/admin/holders/search", post(find_holder::<S>))
        .route("/api/v1/admin/holders/{id}/read", post(read_holder::<S>))
        .route("/api/v1/admin/printed-codes", post(printed_code::<S>))
        .route("/api/v1/admin/tests", post(add_test::<S>))
        .route("/api/v1/admin/cases", post(add_case::<S>).get(list_cases::<S>))
        .route("/api/v1/admin/cases/{id}/trace", post(trace_case::<S>))
        .route("/api/v1/admin/cases/{id}/exposures", get(case_exposures::<S>))
        .route("/api/v1/admin/exposures/pending", get(pending_exposures::<S>))
        .route("/api/v1/admin/exposures/decision", post(decide_exposure::<S>))
        .route(
            "/api/v1/admin/overrides",
            post(propose_override::<S>).get(list_overrides::<S>),
        )
        .route(
            "/api/v1/admin/overrides/{id}/approve",
            post(approve_override::<S>),
        )
        .route("/api/v1/admin/appeals", get(list_appeals::<S>))
        .route("/api/v1/admin/appeals/{id}/decision", post(decide_appeal::<S>))
        .route("/api/v1/admin/audit", get(audit_log::<S>))
        .route("/api/v1/admin/audit/verify", get(audit_verify::<S>))
        .route("/api/v1/admin/purge", post(purge::<S>))
}

fn holder_id(hex: &str) -> Result<HolderId, ApiError> {
    HolderId::from_hex(hex)
        .map_err(|_| ApiError::InvalidField("holder: not a holder id (16-32 hex digits)".into()))
}

fn rfc(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Officer sign-in.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StaffSignIn {
    /// Username.
    pub username: String,
    /// Password.
    pub password: String,
    /// Required when the password was issued by someone else (first sign-in): the new password,
    /// at least 12 characters.
    #[serde(default)]
    pub new_password: Option<String>,
}

/// An officer's session.
#[derive(Debug, Serialize, ToSchema)]
pub struct StaffSession {
    /// Send as `Authorization: Bearer <token>`. Shown once.
    pub token: String,
    /// The account's role.
    pub role: String,
    /// When it ends.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

/// Signs an officer in. A one-time password (from `healthcode admin create` or an admin) must
/// be replaced in the same request with `new_password`.
#[utoipa::path(post, path = "/sessions", tag = "officers", request_body = StaffSignIn, responses(
    (status = 201, description = "signed in", body = StaffSession),
    (status = 401, description = "wrong username or password", body = Problem, content_type = "application/problem+json"),
    (status = 403, description = "the password must be changed: send new_password", body = Problem, content_type = "application/problem+json"),
))]
pub(crate) async fn sign_in<S: Store>(
    State(app): State<Arc<App<S>>>,
    headers: axum::http::HeaderMap,
    Json(req): Json<StaffSignIn>,
) -> Result<impl IntoResponse, ApiError> {
    let wrong = || ApiError::Unauthorized("wrong username or password".into());
    let officer = app.store.officer_by_username(req.username.trim()).await?;
    // Hash even for an unknown name, so that timing does not tell which names exist.
    let phc = officer
        .as_ref()
        .map(|o| o.password_hash.clone())
        .unwrap_or_else(|| {
            "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$2Wc9Xp0b2cq3a7w6Vb8R1jYjM6j0rJ4o8m7cF8n5dHk"
                .into()
        });
    let password = req.password.clone();
    let ok = tokio::task::spawn_blocking(move || verify_password(&password, &phc))
        .await
        .unwrap_or(false);
    let officer = match officer {
        Some(o) if ok => o,
        _ => return Err(wrong()),
    };
    if officer.must_change_password {
        let Some(new) = req.new_password.as_deref() else {
            return Err(ApiError::Forbidden(
                "this password was issued to you and must be replaced: send new_password with it".into(),
            ));
        };
        check_new_password(new)?;
        if new == req.password {
            return Err(ApiError::InvalidField(
                "new_password must differ from the issued one".into(),
            ));
        }
        let new = new.to_owned();
        let hash = tokio::task::spawn_blocking(move || hash_password(&new))
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))??;
        app.store.set_officer_password(officer.id, &hash, false).await?;
        app.audit(
            format!("officer:{}:{}", officer.id.0, officer.username),
            officer.role.as_str(),
            "password-change",
            None,
            "first sign-in".into(),
        )
        .await?;
    }
    let (token, expires_at) =
        start_session(&app, Principal::Officer(officer.id), app.settings.officer_session).await?;
    Ok((
        StatusCode::CREATED,
        crate::auth::web_session(&headers, crate::auth::STAFF_COOKIE, &token, expires_at),
        Json(StaffSession {
            token,
            role: officer.role.as_str().into(),
            expires_at,
        }),
    ))
}

/// A staff account.
#[derive(Debug, Serialize, ToSchema)]
pub struct StaffView {
    /// Id.
    pub id: i64,
    /// Username.
    pub username: String,
    /// officer, admin or auditor.
    pub role: String,
}

/// The signed-in account.
#[utoipa::path(get, path = "/me", tag = "officers", security(("officer" = [])), responses(
    (status = 200, description = "who is signed in", body = StaffView),
))]
pub(crate) async fn whoami<S: Store>(
    State(_app): State<Arc<App<S>>>,
    me: Staff<AnyStaff>,
) -> Json<StaffView> {
    Json(StaffView {
        id: me.id.0,
        username: me.username,
        role: me.role.as_str().into(),
    })
}

/// A new account.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewOfficer {
    /// Username: 3-64 letters, digits, `.`, `-`, `_`.
    pub username: String,
    /// officer, admin or auditor.
    pub role: String,
}

/// A created account and its one-time password (shown once; replaced at first sign-in).
#[derive(Debug, Serialize, ToSchema)]
pub struct OfficerCreated {
    /// The account.
    pub officer: StaffView,
    /// The one-time password.
    pub one_time_password: String,
}

/// Checks a username.
pub fn check_username(u: &str) -> Result<(), ApiError> {
    let ok = (3..=64).contains(&u.len())
        && u.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
    if ok {
        Ok(())
    } else {
        Err(ApiError::InvalidField(
            "username: 3 to 64 of a-z, A-Z, 0-9, '.', '-', '_'".into(),
        ))
    }
}

/// Creates an account with a one-time password, and returns both. Used by the API and by
/// `healthcode admin create`.
pub async fn create_account<S: Store>(
    store: &S,
    username: &str,
    role: Role,
) -> Result<(StaffView, String), ApiError> {
    check_username(username)?;
    let password = one_time_password()?;
    let p = password.clone();
    let hash = tokio::task::spawn_blocking(move || hash_password(&p))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))??;
    let o = store
        .insert_officer(username, role, &hash, true, now())
        .await
        .map_err(|e| match e {
            StoreError::Conflict(_) => ApiError::Conflict(format!("the username {username} is taken")),
            other => other.into(),
        })?;
    Ok((
        StaffView {
            id: o.id.0,
            username: o.username,
            role: o.role.as_str().into(),
        },
        password,
    ))
}

/// Creates a staff account (admins).
#[utoipa::path(post, path = "/officers", tag = "officers", security(("officer" = [])), request_body = NewOfficer, responses(
    (status = 201, description = "created", body = OfficerCreated),
    (status = 409, description = "username taken", body = Problem, content_type = "application/problem+json"),
))]
pub(crate) async fn create_officer<S: Store>(
    State(app): State<Arc<App<S>>>,
    me: Staff<Admins>,
    Json(req): Json<NewOfficer>,
) -> Result<impl IntoResponse, ApiError> {
    let role = Role::parse(&req.role)
        .ok_or_else(|| ApiError::InvalidField("role: officer, admin or auditor".into()))?;
    let (officer, one_time_password) = create_account(&app.store, req.username.trim(), role).await?;
    app.audit(
        me.actor(),
        me.role.as_str(),
        "account-create",
        None,
        format!("{} as {}", officer.username, officer.role),
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(OfficerCreated {
            officer,
            one_time_password,
        }),
    ))
}

/// Staff accounts (admins).
#[utoipa::path(get, path = "/officers", tag = "officers", security(("officer" = [])), responses(
    (status = 200, description = "accounts", body = Vec<StaffView>),
))]
pub(crate) async fn list_officers<S: Store>(
    State(app): State<Arc<App<S>>>,
    _me: Staff<Admins>,
) -> Result<Json<Vec<StaffView>>, ApiError> {
    Ok(Json(
        app.store
            .officers()
            .await?
            .into_iter()
            .map(|o| StaffView {
                id: o.id.0,
                username: o.username,
                role: o.role.as_str().into(),
            })
            .collect(),
    ))
}

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
}

impl From<Device> for DeviceView {
    fn from(d: Device) -> DeviceView {
        DeviceView {
            id: d.id.0,
            venue: d.venue.0,
            label: d.label,
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

/// A risk area.
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
pub type RiskAreaView = RiskAreaRequest;

/// Declares a risk area (officers).
#[utoipa::path(post, path = "/risk-areas", tag = "cases", security(("officer" = [])), request_body = RiskAreaRequest, responses(
    (status = 201, description = "declared", body = RiskAreaRequest),
))]
pub(crate) async fn add_risk_area<S: Store>(
    State(app): State<Arc<App<S>>>,
    me: Staff<Officers>,
    Json(req): Json<RiskAreaRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let region = Issuer::parse(&req.region).map_err(|e| ApiError::InvalidField(format!("region: {e}")))?;
    let level = RiskLevel::parse(&req.level)
        .ok_or_else(|| ApiError::InvalidField("level: low, medium or high".into()))?;
    if req.until.is_some_and(|u| u <= req.from) {
        return Err(ApiError::InvalidField("until must be after from".into()));
    }
    app.store
        .add_risk_area(&RiskArea {
            region,
            level,
            from: req.from,
            until: req.until,
        })
        .await?;
    app.statuses.invalidate_all();
    app.audit(
        me.actor(),
        me.role.as_str(),
        "risk-area-add",
        None,
        format!("{} {} from {}", req.region, req.level, rfc(req.from)),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(req)))
}

/// Risk areas.
#[utoipa::path(get, path = "/risk-areas", tag = "cases", security(("officer" = [])), responses(
    (status = 200, description = "risk areas", body = Vec<RiskAreaRequest>),
))]
pub(crate) async fn list_risk_areas<S: Store>(
    State(app): State<Arc<App<S>>>,
    _me: Staff<Officers>,
) -> Result<Json<Vec<RiskAreaView>>, ApiError> {
    Ok(Json(
        app.store
            .risk_areas()
            .await?
            .into_iter()
            .map(|a| RiskAreaRequest {
                region: a.region.as_str().into(),
                level: a.level.as_str().into(),
                from: a.from,
                until: a.until,
            })
            .collect(),
    ))
}

/// Finds a holder by identity document, for a stated purpose.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HolderSearch {
    /// A resident ID number…
    #[serde(default)]
    pub resident_id: Option<String>,
    /// …or a passport number with its nationality.
    #[serde(default)]
    pub passport: Option<String>,
    /// Nationality (alpha-3), with `passport`.
    #[serde(default)]
    pub nationality: Option<String>,
    /// Why.
    pub purpose: Purpose,
}

/// The holder found: a pseudonymous id and the masked name.
#[derive(Debug, Serialize, ToSchema)]
pub struct HolderFound {
    /// Pseudonymous id (hex).
    pub holder: String,
    /// resident or visitor.
    pub kind: String,
    /// Masked name.
    pub name_hint: String,
}

/// Finds a holder by identity document (officers). The search is recorded in the holder's
/// access log with its purpose.
#[utoipa::path(post, path = "/holders/search", tag = "cases", security(("officer" = [])), request_body = HolderSearch, responses(
    (status = 200, description = "found", body = HolderFound),
    (status = 404, description = "no holder with this document", body = Problem, content_type = "application/problem+json"),
))]
pub(crate) async fn find_holder<S: Store>(
    State(app): State<Arc<App<S>>>,
    me: Staff<Officers>,
    Json(req): Json<HolderSearch>,
) -> Result<Json<HolderFound>, ApiError> {
    let row = holder_by_document(&app, &req.resident_id, &req.passport, &req.nationality).await?;
    req.purpose.check(&app.store, &row.id).await?;
    app.audit(
        me.actor(),
        me.role.as_str(),
        "holder-search",
        Some(row.id.clone()),
        req.purpose.describe(),
    )
    .await?;
    Ok(Json(HolderFound {
        holder: row.id.to_hex(),
        kind: row.kind.as_str().into(),
        name_hint: row.name_hint,
    }))
}

/// The holder registered with a resident ID number, or a passport and its nationality.
async fn holder_by_document<S: Store>(
    app: &App<S>,
    resident_id: &Option<String>,
    passport: &Option<String>,
    nationality: &Option<String>,
) -> Result<healthcode_store::SealedHolder, ApiError> {
    let hash = match (resident_id, passport, nationality) {
        (Some(id), None, None) => app
            .vault
            .lookup_hash("resident-id", &id.trim().to_ascii_uppercase()),
        (None, Some(p), Some(n)) => app.vault.lookup_hash(
            "passport",
            &format!(
                "{}:{}",
                n.trim().to_ascii_uppercase(),
                p.trim().to_ascii_uppercase()
            ),
        ),
        _ => {
            return Err(ApiError::InvalidField(
                "give resident_id, or passport with nationality".into(),
            ));
        }
    };
    app.store
        .holder_by_identity(&hash)
        .await?
        .ok_or_else(|| ApiError::NotFound("no holder is registered with this document".into()))
}

/// How long a printed code is valid: a day, so that a colour that changes reaches paper by the
/// next issue (the format allows up to seven days).
pub const PRINTED_CODE_TTL: time::Duration = time::Duration::hours(24);

/// A printed code asked for: the holder's identity document and where the consent is recorded.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PrintedCodeRequest {
    /// A resident ID number…
    #[serde(default)]
    pub resident_id: Option<String>,
    /// …or a passport number with its nationality.
    #[serde(default)]
    pub passport: Option<String>,
    /// Nationality (alpha-3), with `passport`.
    #[serde(default)]
    pub nationality: Option<String>,
    /// Where the holder's consent is recorded (form number, call reference).
    pub consent: String,
}

/// A printed code.
#[derive(Debug, Serialize, ToSchema)]
pub struct PrintedCode {
    /// The signed code (`HC1:…`), to print as a QR code.
    pub token: String,
    /// green, yellow or red.
    pub colour: String,
    /// The masked name the code carries.
    pub name_hint: String,
    /// Issued at.
    #[serde(with = "time::serde::rfc3339")]
    pub issued_at: OffsetDateTime,
    /// Valid until.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

/// Issues a printed code, valid a day, for a holder without a smartphone (officers). The consent
/// is checked and recorded in the audit log (and so in the holder's access log) before the code
/// is signed.
#[utoipa::path(post, path = "/printed-codes", tag = "cases", security(("officer" = [])), request_body = PrintedCodeRequest, responses(
    (status = 201, description = "the code", body = PrintedCode),
    (status = 404, description = "no holder with this document", body = Problem, content_type = "application/problem+json"),
    (status = 422, description = "no consent reference", body = Problem, content_type = "application/problem+json"),
))]
pub(crate) async fn printed_code<S: Store>(
    State(app): State<Arc<App<S>>>,
    me: Staff<Officers>,
    Json(req): Json<PrintedCodeRequest>,
) -> Result<(StatusCode, Json<PrintedCode>), ApiError> {
    let row = holder_by_document(&app, &req.resident_id, &req.passport, &req.nationality).await?;
    let purpose = Purpose::PrintedCode { consent: req.consent };
    purpose.check(&app.store, &row.id).await?;
    let reader = Reader {
        actor: me.actor(),
        role: me.role.as_str().into(),
    };
    let t = now();
    app.vault
        .read(&app.store, &reader, &row, &purpose.describe(), t)
        .await?;
    let view = app.code_view(&row.id).await?;
    let (token, expires_at) = app.sign_code(&row.id, &view, PRINTED_CODE_TTL)?;
    Ok((
        StatusCode::CREATED,
        Json(PrintedCode {
            token: token.to_text(),
            colour: view.status.colour.as_str().into(),
            name_hint: view.name_hint.clone(),
            issued_at: t,
            expires_at,
        }),
    ))
}

/// Why the holder's personal data is read.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HolderRead {
    /// The purpose.
    pub purpose: Purpose,
}

/// A holder's record as an officer sees it.
#[derive(Debug, Serialize, ToSchema)]
pub struct HolderRecord {
    /// Pseudonymous id.
    pub holder: String,
    /// resident or visitor.
    pub kind: String,
    /// Personal data.
    #[schema(value_type = Object)]
    pub personal_data: serde_json::Value,
    /// Colour now.
    pub colour: String,
    /// Reasons.
    pub reasons: Vec<ReasonView>,
}

/// Reads a holder's personal data for a stated, checked purpose (officers); recorded in the
/// audit log and shown in the holder's access log.
#[utoipa::path(post, path = "/holders/{id}/read", tag = "cases", security(("officer" = [])), request_body = HolderRead,
    params(("id" = String, Path, description = "holder id (hex)")), responses(
    (status = 200, description = "the record", body = HolderRecord),
    (status = 422, description = "the purpose does not hold (no such case, not the holder's appeal…)", body = Problem, content_type = "application/problem+json"),
))]
pub(crate) async fn read_holder<S: Store>(
    State(app): State<Arc<App<S>>>,
    me: Staff<Officers>,
    Path(id): Path<String>,
    Json(req): Json<HolderRead>,
) -> Result<Json<HolderRecord>, ApiError> {
    let id = holder_id(&id)?;
    let row = app
        .store
        .holder(&id)
        .await?
        .ok_or_else(|| ApiError::NotFound("no such holder".into()))?;
    req.purpose.check(&app.store, &id).await?;
    let reader = Reader {
        actor: me.actor(),
        role: me.role.as_str().into(),
    };
    let data = app
        .vault
        .read(&app.store, &reader, &row, &req.purpose.describe(), now())
        .await?;
    let view = app.code_view(&id).await?;
    Ok(Json(HolderRecord {
        holder: id.to_hex(),
        kind: row.kind.as_str().into(),
        personal_data: serde_json::to_value(&data).map_err(|e| ApiError::Internal(e.to_string()))?,
        colour: view.status.colour.as_str().into(),
        reasons: reasons_view(&app, &view.status),
    }))
}

pub(crate) async fn require_holder<S: Store>(app: &App<S>, hex: &str) -> Result<HolderId, ApiError> {
    let id = holder_id(hex)?;
    if app.store.holder(&id).await?.is_none() {
        return Err(ApiError::NotFound(format!("no holder {hex}")));
    }
    Ok(id)
}

/// A laboratory result.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TestRequest {
    /// Holder id (hex).
    pub holder: String,
    /// Positive?
    pub positive: bool,
    /// When the sample was taken.
    #[serde(with = "time::serde::rfc3339")]
    pub sampled_at: OffsetDateTime,
    /// The laboratory.
    pub lab: String,
}

/// Records a test result (officers).
#[utoipa::path(post, path = "/tests", tag = "cases", security(("officer" = [])), request_body = TestRequest, responses(
    (status = 201, description = "recorded"),
    (status = 404, description = "no such holder", body = Problem, content_type = "application/problem+json"),
))]
pub(crate) async fn add_test<S: Store>(
    State(app): State<Arc<App<S>>>,
    me: Staff<Officers>,
    Json(req): Json<TestRequest>,
) -> Result<StatusCode, ApiError> {
    let id = require_holder(&app, &req.holder).await?;
    let lab = req.lab.trim();
    if lab.is_empty() || lab.chars().count() > 200 {
        return Err(ApiError::InvalidField("lab: 1 to 200 characters".into()));
    }
    if req.sampled_at > now() + time::Duration::minutes(5) {
        return Err(ApiError::InvalidField("sampled_at is in the future".into()));
    }
    app.store
        .add_fact(
            &id,
            &Fact::Test(TestResult {
                positive: req.positive,
                sampled_at: req.sampled_at,
                lab: lab.into(),
            }),
        )
        .await?;
    app.statuses.invalidate(&id);
    app.audit(
        me.actor(),
        me.role.as_str(),
        "test-record",
        Some(id),
        format!(
            "{} result from {lab}",
            if req.positive { "positive" } else { "negative" }
        ),
    )
    .await?;
    Ok(StatusCode::CREATED)
}

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

/// Records a confirmed case, confirmed now (officers), and starts tracing its contacts.
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
    if req.onset > t {
        return Err(ApiError::InvalidField("onset is in the future".into()));
    }
    let c = app.store.add_case(&id, req.onset, t).await?;
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
        if let Err(e) = run_trace(&app, &[case_id], "system:tracing".into(), "system").await {
            tracing::error!(case = case_id.0, error = %e, "tracing a new case failed");
        }
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

/// Which overrides.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct PendingQuery {
    #[serde(default)]
    pub(crate) pending: bool,
}

/// Manual changes (`?pending=true`: those awaiting approval).
#[utoipa::path(get, path = "/overrides", tag = "cases", security(("officer" = [])),
    params(("pending" = Option<bool>, Query, description = "only those awaiting approval")), responses(
    (status = 200, description = "overrides", body = Vec<OverrideView>),
))]
pub(crate) async fn list_overrides<S: Store>(
    State(app): State<Arc<App<S>>>,
    _me: Staff<Officers>,
    Query(q): Query<PendingQuery>,
) -> Result<Json<Vec<OverrideView>>, ApiError> {
    Ok(Json(
        app.store
            .overrides(q.pending)
            .await?
            .into_iter()
            .map(|(h, o)| override_view(h, o))
            .collect(),
    ))
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
    let o = app
        .store
        .approve_override(OverrideId(id), me.id, now())
        .await
        .map_err(|e| match e {
            StoreError::Refused(m) => ApiError::Refused(format!("a second officer must approve: {m}")),
            other => other.into(),
        })?;
    app.statuses.invalidate(&holder);
    app.audit(
        me.actor(),
        me.role.as_str(),
        "override-approve",
        Some(holder.clone()),
        format!("override {id}"),
    )
    .await?;
    Ok(Json(override_view(holder, o)))
}

/// Which appeals.
#[derive(Debug, Deserialize)]
pub(crate) struct OpenQuery {
    #[serde(default)]
    pub(crate) open: bool,
}

/// Appeals (`?open=true`: undecided). Reading an appeal is recorded in its holder's access log.
#[utoipa::path(get, path = "/appeals", tag = "cases", security(("officer" = [])),
    params(("open" = Option<bool>, Query, description = "only undecided")), responses(
    (status = 200, description = "appeals", body = Vec<AppealView>),
))]
pub(crate) async fn list_appeals<S: Store>(
    State(app): State<Arc<App<S>>>,
    me: Staff<Officers>,
    Query(q): Query<OpenQuery>,
) -> Result<Json<Vec<AppealView>>, ApiError> {
    let appeals = app.store.appeals(q.open).await?;
    for a in &appeals {
        app.audit(
            me.actor(),
            me.role.as_str(),
            "appeal-read",
            Some(a.holder.clone()),
            Purpose::AppealReview { appeal: a.id.0 }.describe(),
        )
        .await?;
    }
    Ok(Json(appeals.into_iter().map(AppealView::from).collect()))
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

/// An audit record.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditView {
    /// Position.
    pub seq: i64,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// Who.
    pub actor: String,
    /// Role.
    pub role: String,
    /// What.
    pub action: String,
    /// Whose data (holder id).
    pub subject: Option<String>,
    /// Why.
    pub purpose: String,
    /// This record's chain hash (hex).
    pub hash: String,
}

/// A page of the log.
#[derive(Debug, Deserialize)]
pub(crate) struct AuditQuery {
    #[serde(default)]
    pub(crate) after: i64,
    #[serde(default = "default_limit")]
    pub(crate) limit: u32,
}

fn default_limit() -> u32 {
    100
}

/// The audit log, oldest first, a page at a time (auditors).
#[utoipa::path(get, path = "/audit", tag = "audit", security(("officer" = [])),
    params(("after" = Option<i64>, Query, description = "records after this seq"), ("limit" = Option<u32>, Query, description = "at most this many (1-1000)")), responses(
    (status = 200, description = "records", body = Vec<AuditView>),
))]
pub(crate) async fn audit_log<S: Store>(
    State(app): State<Arc<App<S>>>,
    me: Staff<Auditors>,
    Query(q): Query<AuditQuery>,
) -> Result<Json<Vec<AuditView>>, ApiError> {
    if !(1..=1000).contains(&q.limit) {
        return Err(ApiError::InvalidField("limit: 1 to 1000".into()));
    }
    let records = app.store.audit_records(q.after, q.limit).await?;
    app.audit(
        me.actor(),
        me.role.as_str(),
        "audit-read",
        None,
        format!("records after {}", q.after),
    )
    .await?;
    Ok(Json(
        records
            .into_iter()
            .map(|r| AuditView {
                seq: r.seq,
                at: r.entry.at,
                actor: r.entry.actor,
                role: r.entry.role,
                action: r.entry.action,
                subject: r.entry.subject.map(|s| s.to_hex()),
                purpose: r.entry.purpose,
                hash: data_encoding::HEXLOWER.encode(&r.hash),
            })
            .collect(),
    ))
}

/// The result of walking the chain.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChainReport {
    /// Whether every record links to the one before and hashes to what it says.
    pub intact: bool,
    /// Records checked.
    pub records: u64,
    /// The first broken record, if any, and what is wrong with it.
    pub broken_at: Option<i64>,
    /// What is wrong.
    pub problem: Option<String>,
    /// The hash of the last record (hex): keep it outside the database to detect truncation.
    pub head: Option<String>,
}

/// Walks the whole audit chain (auditors).
#[utoipa::path(get, path = "/audit/verify", tag = "audit", security(("officer" = [])), responses(
    (status = 200, description = "the verdict", body = ChainReport),
))]
pub(crate) async fn audit_verify<S: Store>(
    State(app): State<Arc<App<S>>>,
    me: Staff<Auditors>,
) -> Result<Json<ChainReport>, ApiError> {
    let mut all = Vec::new();
    let mut after = 0;
    loop {
        let page = app.store.audit_records(after, 10_000).await?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        all.extend(page);
    }
    let head = all.last().map(|r| data_encoding::HEXLOWER.encode(&r.hash));
    let n = all.len() as u64;
    let report = match verify_chain(all) {
        Ok(records) => ChainReport {
            intact: true,
            records,
            broken_at: None,
            problem: None,
            head,
        },
        Err(b) => ChainReport {
            intact: false,
            records: n,
            broken_at: Some(b.seq),
            problem: Some(b.reason),
            head,
        },
    };
    app.audit(
        me.actor(),
        me.role.as_str(),
        "audit-verify",
        None,
        format!("intact: {}", report.intact),
    )
    .await?;
    Ok(Json(report))
}

/// What a purge deleted.
#[derive(Debug, Serialize, ToSchema)]
pub struct PurgeView {
    /// Check-ins.
    pub checkins: u64,
    /// Declarations.
    pub declarations: u64,
    /// Reports.
    pub reports: u64,
    /// Exposures.
    pub exposures: u64,
}

/// Deletes what is older than the retention period now (admins); also runs hourly.
#[utoipa::path(post, path = "/purge", tag = "audit", security(("officer" = [])), responses(
    (status = 200, description = "deleted", body = PurgeView),
))]
pub(crate) async fn purge<S: Store>(
    State(app): State<Arc<App<S>>>,
    me: Staff<Admins>,
) -> Result<Json<PurgeView>, ApiError> {
    let r = crate::purge_once(&app.store, app.settings.retention).await?;
    app.audit(
        me.actor(),
        me.role.as_str(),
        "purge-request",
        None,
        "manual purge".into(),
    )
    .await?;
    Ok(Json(PurgeView {
        checkins: r.checkins,
        declarations: r.declarations,
        reports: r.reports,
        exposures: r.exposures,
    }))
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
    let tracer = healthcode_exposure::Tracer::new(&app.store, app.policy.tracing())
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let (r, contacts) = tracer.trace(&app.store, cases).await.map_err(|e| match e {
        healthcode_exposure::TraceError::NoCase(id) => ApiError::NotFound(format!("no case {id}")),
        other => ApiError::Internal(other.to_string()),
    })?;
    for h in &contacts {
        app.statuses.invalidate(h);
    }
    let recorded_as = healthcode_exposure::recorded_state(app.policy.tracing()).as_str();
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

/// Applies or dismisses a pending exposure (officers); audited.
#[utoipa::path(post, path = "/exposures/decision", tag = "cases", security(("officer" = [])), request_body = ExposureDecision, responses(
    (status = 200, description = "decided", body = ExposureView),
    (status = 409, description = "not pending", body = Problem, content_type = "application/problem+json"),
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
