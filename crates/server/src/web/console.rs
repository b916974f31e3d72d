//! The officers' console: sign-in, a dashboard, cases and tracing (run, review, apply),
//! overrides with a second officer's approval, risk areas, venues and devices, appeals, the audit
//! log with chain verification, printed codes and venue posters. Each page reads through the
//! officer API's handlers, so it needs the same role the API would.

use std::collections::BTreeMap;
use std::sync::Arc;

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use healthcode_domain::{Colour, OfficerId, VenueCategory};
use healthcode_store::{Role, Store};
use serde::Deserialize;
use time::{Duration, OffsetDateTime};

use super::{Ctx, NextQuery, next_path, page_error, render};
use crate::admin::{
    self, AuditQuery, AuditView, CaseView, CasesQuery, DeviceView, ExposureView, OpenQuery, OverrideView,
    PendingQuery, RiskAreaView, VenueView,
};
use crate::auth::{Admins, AnyStaff, Auditors, Officers, STAFF_COOKIE, Staff};
use crate::holders::AppealView;
use crate::problem::ApiError;
use crate::{App, now};

pub fn routes<S: Store>() -> Router<Arc<App<S>>> {
    Router::new()
        .route("/console", get(dashboard::<S>))
        .route("/console/signin", get(signin))
        .route("/console/signout", post(signout::<S>))
        .route("/console/cases", get(cases::<S>))
        .route("/console/cases/{id}", get(case::<S>))
        .route("/console/overrides", get(overrides::<S>))
        .route("/console/areas", get(areas::<S>))
        .route("/console/proposals", get(proposals::<S>))
        .route("/console/venues", get(venues::<S>))
        .route("/console/venues/{id}/poster", get(poster::<S>))
        .route("/console/appeals", get(appeals::<S>))
        .route("/console/audit", get(audit::<S>))
        .route("/console/print", get(print))
        .route("/console/counter", get(counter))
}

const SIGNIN: &str = "/console/signin";

/// Unwraps a staff extraction or turns its failure into the sign-in redirect or an error page.
macro_rules! staff {
    ($ctx:expr, $me:expr) => {
        match $me {
            Ok(m) => m,
            Err(e) => return page_error($ctx, SIGNIN, e),
        }
    };
}

/// Unwraps a handler's JSON answer or shows its error.
macro_rules! json {
    ($ctx:expr, $call:expr) => {
        match $call.await {
            Ok(crate::problem::Json(v)) => v,
            Err(e) => return page_error($ctx, SIGNIN, e),
        }
    };
}

/// The first page of a paged list (its `Link` to the next is the API's).
macro_rules! first_page {
    ($ctx:expr, $call:expr) => {
        match $call.await {
            Ok((_, crate::problem::Json(v))) => v,
            Err(e) => return page_error($ctx, SIGNIN, e),
        }
    };
}

/// The signed-in account, for the navigation: its name, and which sections its role may open.
pub struct Who {
    name: String,
    role: Role,
}

impl Who {
    pub(super) fn officer(&self) -> bool {
        matches!(self.role, Role::Officer | Role::Admin)
    }

    pub(super) fn auditor(&self) -> bool {
        self.role == Role::Auditor
    }

    pub(super) fn admin(&self) -> bool {
        self.role == Role::Admin
    }

    pub(super) fn label(&self) -> String {
        format!("{} ({})", self.name, self.role.as_str())
    }
}

pub(super) fn who<R>(me: &Staff<R>) -> Who {
    Who {
        name: me.username.clone(),
        role: me.role,
    }
}

#[derive(Template)]
#[template(path = "console/signin.html")]
struct SignIn {
    ctx: Ctx,
    next: String,
}

async fn signin(ctx: Ctx, Query(q): Query<NextQuery>) -> Response {
    let next = next_path(q.next.as_deref(), "/console");
    render(&SignIn { ctx, next })
}

async fn signout<S: Store>(State(app): State<Arc<App<S>>>, headers: axum::http::HeaderMap) -> Response {
    super::end_session(&app, &headers, STAFF_COOKIE).await
}

#[derive(Template)]
#[template(path = "console/dashboard.html")]
struct Dashboard {
    ctx: Ctx,
    section: &'static str,
    who: Who,
    green: u64,
    yellow: u64,
    red: u64,
    partial: bool,
    /// Chart data as JSON (for the page's script).
    charts: String,
    /// (day, cases, exposures), oldest first.
    days: Vec<(String, u64, u64)>,
    /// (hour, check-ins), oldest first.
    hours: Vec<(String, u64)>,
}

/// Most flagged holders whose colour the dashboard works out; beyond, the counts say partial.
const DASHBOARD_FLAGGED: u32 = 20_000;

/// Holders by colour, scans per hour over the last day, cases and exposures per day over the
/// last fortnight.
async fn dashboard<S: Store>(
    State(app): State<Arc<App<S>>>,
    ctx: Ctx,
    me: Result<Staff<AnyStaff>, ApiError>,
) -> Response {
    let me = staff!(ctx, me);
    // Auditors read the audit log, not the city's figures.
    if me.role == Role::Auditor {
        return axum::response::Redirect::to("/console/audit").into_response();
    }
    let t = now();
    let offset = app.policy().utc_offset();
    let since = t - Duration::days(14);
    let built = async {
        let activity = app.store.activity(since, DASHBOARD_FLAGGED).await?;
        let cases = app.store.cases(since).await?;
        let (mut yellow, mut red) = (0u64, 0u64);
        for h in &activity.flagged {
            match app.code_view(h).await?.status.colour {
                Colour::Green => {}
                Colour::Yellow => yellow += 1,
                Colour::Red => red += 1,
            }
        }
        Ok::<_, ApiError>((activity, cases, yellow, red))
    };
    let (activity, cases, yellow, red) = match built.await {
        Ok(v) => v,
        Err(e) => return page_error(ctx, SIGNIN, e),
    };
    let green = activity.holders.saturating_sub(yellow + red);
    let day_of = |t: OffsetDateTime| t.to_offset(offset).date();
    let mut per_day: BTreeMap<time::Date, (u64, u64)> = BTreeMap::new();
    for i in (0..14).rev() {
        per_day.insert(day_of(t - Duration::days(i)), (0, 0));
    }
    for (_, c) in &cases {
        if let Some(d) = per_day.get_mut(&day_of(c.confirmed_at)) {
            d.0 += 1;
        }
    }
    for (hour, n) in &activity.exposures_per_hour {
        if let Some(d) = per_day.get_mut(&day_of(*hour)) {
            d.1 += n;
        }
    }
    let this_hour = t.replace_minute(0).unwrap_or(t).replace_second(0).unwrap_or(t);
    let counted: BTreeMap<i64, u64> = activity
        .checkins_per_hour
        .iter()
        .map(|(h, n)| (h.unix_timestamp(), *n))
        .collect();
    let hours: Vec<(String, u64)> = (0..24)
        .rev()
        .map(|i| {
            let h = this_hour - Duration::hours(i);
            let local = h.to_offset(offset);
            (
                format!(
                    "{:02}-{:02} {:02}:00",
                    u8::from(local.month()),
                    local.day(),
                    local.hour()
                ),
                counted.get(&h.unix_timestamp()).copied().unwrap_or(0),
            )
        })
        .collect();
    let days: Vec<(String, u64, u64)> = per_day
        .iter()
        .map(|(d, (c, e))| (format!("{:02}-{:02}", u8::from(d.month()), d.day()), *c, *e))
        .collect();
    let charts = serde_json::json!({
        "colours": {
            "labels": [ctx.t("colour.green"), ctx.t("colour.yellow"), ctx.t("colour.red")],
            "values": [green, yellow, red],
        },
        "scans": {
            "labels": hours.iter().map(|h| h.0.clone()).collect::<Vec<_>>(),
            "values": hours.iter().map(|h| h.1).collect::<Vec<_>>(),
            "label": ctx.t("dashboard.scans_n"),
        },
        "cases": {
            "labels": days.iter().map(|d| d.0.clone()).collect::<Vec<_>>(),
            "cases": days.iter().map(|d| d.1).collect::<Vec<_>>(),
            "exposures": days.iter().map(|d| d.2).collect::<Vec<_>>(),
            "cases_label": ctx.t("dashboard.cases_n"),
            "exposures_label": ctx.t("dashboard.exposures_n"),
        },
    })
    .to_string();
    render(&Dashboard {
        who: who(&me),
        section: "dashboard",
        green,
        yellow,
        red,
        partial: activity.flagged.len() >= DASHBOARD_FLAGGED as usize,
        charts,
        days,
        hours,
        ctx,
    })
}

/// An exposure as the review table shows it (the arrival also as RFC 3339, for the decision).
pub struct ExposureRow {
    holder: String,
    case: i64,
    venue: i64,
    grade: String,
    overlap_minutes: i64,
    contact_from: OffsetDateTime,
    contact_from_rfc3339: String,
    state: String,
}

impl From<ExposureView> for ExposureRow {
    fn from(e: ExposureView) -> Self {
        ExposureRow {
            contact_from_rfc3339: e
                .contact_from
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
            holder: e.holder,
            case: e.case,
            venue: e.venue,
            grade: e.grade,
            overlap_minutes: e.overlap_minutes,
            contact_from: e.contact_from,
            state: e.state,
        }
    }
}

#[derive(Template)]
#[template(path = "console/cases.html")]
struct Cases {
    ctx: Ctx,
    section: &'static str,
    who: Who,
    cases: Vec<CaseView>,
    exposures: Vec<ExposureRow>,
}

/// Cases (newest first), the forms to find a holder, record a test and a case, and the exposures
/// waiting for review.
async fn cases<S: Store>(
    State(app): State<Arc<App<S>>>,
    ctx: Ctx,
    me: Result<Staff<Officers>, ApiError>,
) -> Response {
    let me = staff!(ctx, me);
    let who = who(&me);
    let since = now() - Duration::days(30);
    let mut cases = json!(
        ctx,
        admin::list_cases(
            State(app.clone()),
            me.duplicate(),
            crate::problem::Query(CasesQuery { since: Some(since) })
        )
    );
    cases.reverse();
    let pending = json!(ctx, admin::pending_exposures(State(app), me));
    render(&Cases {
        ctx,
        section: "cases",
        who,
        cases,
        exposures: pending.into_iter().map(ExposureRow::from).collect(),
    })
}

#[derive(Template)]
#[template(path = "console/case.html")]
struct CasePage {
    ctx: Ctx,
    section: &'static str,
    who: Who,
    case_id: i64,
    exposures: Vec<ExposureRow>,
}

/// One case's exposures, with provenance, and the tracing button.
async fn case<S: Store>(
    State(app): State<Arc<App<S>>>,
    ctx: Ctx,
    me: Result<Staff<Officers>, ApiError>,
    Path(id): Path<i64>,
) -> Response {
    let me = staff!(ctx, me);
    let who = who(&me);
    let exposures = json!(
        ctx,
        admin::case_exposures(State(app), me, crate::problem::Path(id))
    );
    render(&CasePage {
        ctx,
        section: "cases",
        who,
        case_id: id,
        exposures: exposures.into_iter().map(ExposureRow::from).collect(),
    })
}

#[derive(Template)]
#[template(path = "console/overrides.html")]
struct Overrides {
    ctx: Ctx,
    section: &'static str,
    who: Who,
    overrides: Vec<OverrideView>,
}

async fn overrides<S: Store>(
    State(app): State<Arc<App<S>>>,
    ctx: Ctx,
    me: Result<Staff<Officers>, ApiError>,
) -> Response {
    let me = staff!(ctx, me);
    let who = who(&me);
    let overrides = first_page!(
        ctx,
        admin::list_overrides(State(app), me, crate::problem::Query(PendingQuery::default()))
    );
    render(&Overrides {
        ctx,
        section: "overrides",
        who,
        overrides,
    })
}

/// A risk-area proposal awaiting a second officer, as the areas page lists it.
pub struct PendingArea {
    id: i64,
    what: String,
    proposed_by: i64,
    mine: bool,
}

impl PendingArea {
    fn of(p: &admin::ProposalView, me: OfficerId) -> Option<PendingArea> {
        let field = |k: &str| {
            p.act
                .get(k)
                .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
        };
        let what = match p.kind.as_str() {
            "risk-area-declare" => format!(
                "+ {} · {}",
                field("region").unwrap_or_default(),
                field("level").unwrap_or_default()
            ),
            "risk-area-level" => format!(
                "#{} → {}",
                field("area").unwrap_or_default(),
                field("level").unwrap_or_default()
            ),
            "risk-area-end" => format!("#{} ✕", field("area").unwrap_or_default()),
            _ => return None,
        };
        Some(PendingArea {
            id: p.id,
            what,
            proposed_by: p.proposed_by,
            mine: p.proposed_by == me.0,
        })
    }
}

#[derive(Template)]
#[template(path = "console/areas.html")]
struct Areas {
    ctx: Ctx,
    section: &'static str,
    who: Who,
    areas: Vec<RiskAreaView>,
    pending: Vec<PendingArea>,
}

async fn areas<S: Store>(
    State(app): State<Arc<App<S>>>,
    ctx: Ctx,
    me: Result<Staff<Officers>, ApiError>,
) -> Response {
    let me = staff!(ctx, me);
    let who = who(&me);
    let id = me.id;
    let pending = match admin::pending(&app, &me, 200).await {
        Ok(found) => found.iter().filter_map(|p| PendingArea::of(p, id)).collect(),
        Err(e) => return page_error(ctx, SIGNIN, e),
    };
    let areas = json!(ctx, admin::list_risk_areas(State(app), me));
    render(&Areas {
        ctx,
        section: "areas",
        who,
        areas,
        pending,
    })
}

/// A proposal awaiting a second person, as the proposals page lists it.
pub struct PendingProposal {
    id: i64,
    kind: String,
    /// The act in words: its fields, the policy file and any password left out.
    what: String,
    /// For a policy version: its version, SHA-256 and text.
    policy: Option<(String, String, String)>,
    proposed_by: i64,
    expires_at: OffsetDateTime,
    mine: bool,
    /// Whether this account holds the role that may approve it.
    may_approve: bool,
}

impl PendingProposal {
    fn of(p: &admin::ProposalView, me: OfficerId, role: Role) -> PendingProposal {
        let text = |k: &str| {
            p.act
                .get(k)
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_owned()
        };
        let policy = (p.kind == "policy-publish").then(|| (text("version"), text("sha256"), text("source")));
        let what = p
            .act
            .as_object()
            .map(|o| {
                o.iter()
                    .filter(|(k, _)| !matches!(k.as_str(), "source" | "password_hash" | "act"))
                    .map(|(k, v)| format!("{k}: {}", v.as_str().map_or_else(|| v.to_string(), str::to_owned)))
                    .collect::<Vec<_>>()
                    .join(" · ")
            })
            .unwrap_or_default();
        let may_approve = match p.approver_role.as_str() {
            "admin" => role == Role::Admin,
            _ => matches!(role, Role::Officer | Role::Admin),
        };
        PendingProposal {
            id: p.id,
            kind: p.kind.clone(),
            what,
            policy,
            proposed_by: p.proposed_by,
            expires_at: p.expires_at,
            mine: p.proposed_by == me.0,
            may_approve,
        }
    }
}

#[derive(Template)]
#[template(path = "console/proposals.html")]
struct Proposals {
    ctx: Ctx,
    section: &'static str,
    who: Who,
    pending: Vec<PendingProposal>,
    policy_version: String,
    policy_source: String,
}

/// Every proposal awaiting a second person, of any kind, with approve or withdraw; and the form
/// that proposes a new colour policy version (the one in force to start from).
async fn proposals<S: Store>(
    State(app): State<Arc<App<S>>>,
    ctx: Ctx,
    me: Result<Staff<Officers>, ApiError>,
) -> Response {
    let me = staff!(ctx, me);
    let who = who(&me);
    let (id, role) = (me.id, me.role);
    let pending = match admin::pending(&app, &me, 200).await {
        Ok(found) => found.iter().map(|p| PendingProposal::of(p, id, role)).collect(),
        Err(e) => return page_error(ctx, SIGNIN, e),
    };
    let policy = app.policy();
    render(&Proposals {
        ctx,
        section: "proposals",
        who,
        pending,
        policy_version: policy.version().to_owned(),
        policy_source: policy.source().to_owned(),
    })
}

/// A venue and (for admins) its devices.
pub struct VenueRow {
    venue: VenueView,
    devices: Vec<DeviceView>,
}

#[derive(Template)]
#[template(path = "console/venues.html")]
struct Venues {
    ctx: Ctx,
    section: &'static str,
    who: Who,
    admin: bool,
    categories: Vec<&'static str>,
    venues: Vec<VenueRow>,
}

/// Venues for officers; admins also add venues and devices (a device's key is shown once).
async fn venues<S: Store>(
    State(app): State<Arc<App<S>>>,
    ctx: Ctx,
    me: Result<Staff<Officers>, ApiError>,
) -> Response {
    let me = staff!(ctx, me);
    let who = who(&me);
    let as_admin = me.narrowed::<Admins>();
    let list = json!(ctx, admin::list_venues(State(app.clone()), me));
    let mut venues = Vec::with_capacity(list.len());
    for venue in list {
        let devices = match &as_admin {
            Some(a) => json!(
                ctx,
                admin::list_devices(State(app.clone()), a.duplicate(), crate::problem::Path(venue.id))
            ),
            None => Vec::new(),
        };
        venues.push(VenueRow { venue, devices });
    }
    render(&Venues {
        ctx,
        section: "venues",
        who,
        admin: as_admin.is_some(),
        categories: VenueCategory::ALL.iter().map(|c| c.as_str()).collect(),
        venues,
    })
}

#[derive(Template)]
#[template(path = "console/poster.html")]
struct Poster {
    ctx: Ctx,
    venue: VenueView,
    other_show_code: &'static str,
    svg: String,
    link: String,
}

/// A venue's poster: its name, who it admits, in both languages, and a QR code that opens the
/// holder's code page (a venue learns a colour, not a person: nothing is scanned from the
/// holder's side).
async fn poster<S: Store>(
    State(app): State<Arc<App<S>>>,
    ctx: Ctx,
    me: Result<Staff<Officers>, ApiError>,
    Path(id): Path<i64>,
    headers: axum::http::HeaderMap,
) -> Response {
    let me = staff!(ctx, me);
    let list = json!(ctx, admin::list_venues(State(app.clone()), me));
    let Some(venue) = list.into_iter().find(|v| v.id == id) else {
        return page_error(ctx, SIGNIN, ApiError::NotFound(format!("no venue {id}")));
    };
    let base = app.settings.public_url.clone().unwrap_or_else(|| {
        let host = headers
            .get(axum::http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .filter(|h| {
                h.chars()
                    .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c))
            })
            .unwrap_or("localhost");
        format!("http://{host}")
    });
    let link = format!("{base}/me");
    let svg = match healthcode_qr::Qr::new(&link) {
        Ok(q) => q.to_svg(6),
        Err(e) => {
            return page_error(
                ctx,
                SIGNIN,
                ApiError::internal("cannot draw the poster's code", e),
            );
        }
    };
    let other_show_code = super::i18n::text(ctx.other(), "poster.show_code");
    render(&Poster {
        ctx,
        venue,
        other_show_code,
        svg,
        link,
    })
}

#[derive(Template)]
#[template(path = "console/appeals.html")]
struct Appeals {
    ctx: Ctx,
    section: &'static str,
    who: Who,
    appeals: Vec<AppealView>,
}

async fn appeals<S: Store>(
    State(app): State<Arc<App<S>>>,
    ctx: Ctx,
    me: Result<Staff<Officers>, ApiError>,
) -> Response {
    let me = staff!(ctx, me);
    let who = who(&me);
    let appeals = first_page!(
        ctx,
        admin::list_appeals(
            State(app),
            me,
            crate::problem::Query(OpenQuery {
                open: true,
                after: 0,
                limit: None
            })
        )
    );
    render(&Appeals {
        ctx,
        section: "appeals",
        who,
        appeals,
    })
}

#[derive(Template)]
#[template(path = "console/audit.html")]
struct Audit {
    ctx: Ctx,
    section: &'static str,
    who: Who,
    records: Vec<AuditView>,
    next: Option<i64>,
}

/// Audit records on one page.
const AUDIT_PAGE: u32 = 200;

#[derive(Debug, Deserialize)]
struct AfterQuery {
    #[serde(default)]
    after: i64,
}

/// The audit log (auditors only) in order, a page at a time, and the chain check.
async fn audit<S: Store>(
    State(app): State<Arc<App<S>>>,
    ctx: Ctx,
    me: Result<Staff<Auditors>, ApiError>,
    Query(q): Query<AfterQuery>,
) -> Response {
    let me = staff!(ctx, me);
    let who = who(&me);
    let after = q.after.max(0);
    let records = json!(
        ctx,
        admin::audit_log(
            State(app),
            me,
            crate::problem::Query(AuditQuery {
                after,
                limit: AUDIT_PAGE
            })
        )
    );
    let next = (records.len() == AUDIT_PAGE as usize)
        .then(|| records.last().map(|r| r.seq))
        .flatten();
    render(&Audit {
        ctx,
        section: "audit",
        who,
        records,
        next,
    })
}

#[derive(Template)]
#[template(path = "console/print.html")]
struct Print {
    ctx: Ctx,
    section: &'static str,
    who: Who,
}

async fn print(ctx: Ctx, me: Result<Staff<Officers>, ApiError>) -> Response {
    let me = staff!(ctx, me);
    render(&Print {
        who: who(&me),
        section: "print",
        ctx,
    })
}

#[derive(Template)]
#[template(path = "console/counter.html")]
struct Counter {
    ctx: Ctx,
    section: &'static str,
    who: Who,
}

/// The service counter: registering a resident or a visitor with the document in hand, and
/// moving a holder to a new phone.
async fn counter(ctx: Ctx, me: Result<Staff<Officers>, ApiError>) -> Response {
    let me = staff!(ctx, me);
    render(&Counter {
        who: who(&me),
        section: "counter",
        ctx,
    })
}
