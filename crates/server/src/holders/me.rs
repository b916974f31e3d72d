//! The holder's own resources under `/api/v1/me`: the code and its reasons, declarations and reports, the access log, the export, appeals.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use healthcode_domain::{DailyReport, HealthDeclaration, HolderId, Issuer, Symptom, TravelDeclaration};
use healthcode_policy::{Cause, Status};
use healthcode_store::{Fact, Store, StoreError};
use serde::{Deserialize, Serialize};
use time::{Date, OffsetDateTime};
use utoipa::ToSchema;

use crate::access::Reader;
use crate::auth::HolderAuth;
use crate::metrics::ColourLabels;
use crate::problem::{ApiError, Json, Problem};
use crate::{App, now};

use super::iso_date;

/// One reason for a colour.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReasonView {
    /// The colour it gives.
    pub colour: String,
    /// The rule's id, or `override`.
    pub rule: String,
    /// What the rule says, or the officers' reason.
    pub description: String,
    /// The fact that started it.
    pub fact: String,
    /// Since when.
    #[serde(with = "time::serde::rfc3339")]
    pub since: OffsetDateTime,
    /// Until when, unless it ends earlier.
    #[serde(with = "time::serde::rfc3339")]
    pub until: OffsetDateTime,
}

/// The holder's code.
#[derive(Debug, Serialize, ToSchema)]
pub struct CodeResponse {
    /// green, yellow or red.
    pub colour: String,
    /// The masked name the code carries.
    pub name_hint: String,
    /// Why: every rule or override in force.
    pub reasons: Vec<ReasonView>,
    /// When the colour turns green if nothing new happens.
    #[serde(with = "time::serde::rfc3339::option")]
    pub green_at: Option<OffsetDateTime>,
    /// The policy version that decided it.
    pub policy_version: String,
    /// The signed code (`HC1:…`), to be shown as a QR code.
    pub token: String,
    /// When the signed code expires; fetch a new one before.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

pub(crate) fn reasons_view<S: Store>(app: &App<S>, status: &Status) -> Vec<ReasonView> {
    status
        .reasons
        .iter()
        .map(|r| {
            let (rule, description, fact) = match &r.cause {
                Cause::Rule { rule, fact } => (
                    rule.clone(),
                    app.policy()
                        .rules()
                        .iter()
                        .find(|x| &x.id == rule)
                        .map(|x| x.description.clone())
                        .unwrap_or_default(),
                    fact.clone(),
                ),
                Cause::Override { id, reason } => (
                    "override".to_owned(),
                    reason.clone(),
                    format!("manual change {} approved by two officers", id.0),
                ),
            };
            ReasonView {
                colour: r.colour.as_str().to_owned(),
                rule,
                description,
                fact,
                since: r.since,
                until: r.until,
            }
        })
        .collect()
}

/// The current colour, its reasons and a freshly signed code.
#[utoipa::path(get, path = "/me/code", tag = "holders", security(("holder" = [])), responses(
    (status = 200, description = "the code", body = CodeResponse),
    (status = 401, description = "not signed in", body = Problem, content_type = "application/problem+json"),
))]
pub(crate) async fn my_code<S: Store>(
    State(app): State<Arc<App<S>>>,
    me: HolderAuth,
) -> Result<Json<CodeResponse>, ApiError> {
    let view = app.code_view(&me.holder).await?;
    let (token, expires_at) = app.sign_code(&me.holder, &view, app.settings.code_ttl)?;
    let colour = view.status.colour;
    app.metrics
        .codes
        .get_or_create(&ColourLabels {
            colour: colour.as_str(),
        })
        .inc();
    Ok(Json(CodeResponse {
        colour: colour.as_str().to_owned(),
        name_hint: view.name_hint.clone(),
        reasons: reasons_view(&app, &view.status),
        green_at: view.status.green_at,
        policy_version: view.status.policy_version.clone(),
        token: token.to_text(),
        expires_at,
    }))
}

/// The same code as a QR image (SVG), for printing.
#[utoipa::path(get, path = "/me/code.svg", tag = "holders", security(("holder" = [])), responses(
    (status = 200, description = "the QR code", body = String, content_type = "image/svg+xml"),
))]
pub(crate) async fn my_code_svg<S: Store>(
    State(app): State<Arc<App<S>>>,
    me: HolderAuth,
) -> Result<impl IntoResponse, ApiError> {
    let view = app.code_view(&me.holder).await?;
    let (token, _) = app.sign_code(&me.holder, &view, app.settings.code_ttl)?;
    let qr = healthcode_qr::Qr::new(&token.to_text())
        .map_err(|e| ApiError::internal("cannot draw the code", e))?;
    Ok((
        [
            (header::CONTENT_TYPE, "image/svg+xml"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        qr.to_svg(8),
    ))
}

/// A symptom, as the API names it (the schema of [`Symptom`], which the domain keeps free of
/// the API's types).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum SymptomName {
    /// Fever.
    Fever,
    /// Cough.
    Cough,
    /// Sore throat.
    SoreThroat,
    /// Loss of smell or taste.
    LossOfSmell,
    /// Difficulty breathing.
    ShortnessOfBreath,
    /// Tiredness.
    Fatigue,
}

/// A declaration.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum Declaration {
    /// Symptoms and temperature now.
    Health {
        /// Symptoms (may be empty).
        #[schema(value_type = Vec<SymptomName>)]
        symptoms: Vec<Symptom>,
        /// Body temperature, °C.
        #[serde(default)]
        temperature_c: Option<f32>,
    },
    /// A stay in a region.
    Travel {
        /// Region, ISO 3166-1 or 3166-2 (`CN-HB`).
        region: String,
        /// First day.
        #[serde(with = "iso_date")]
        #[schema(value_type = String, format = Date)]
        from: Date,
        /// Last day.
        #[serde(with = "iso_date")]
        #[schema(value_type = String, format = Date)]
        until: Date,
    },
}

/// What was recorded, and the colour after it.
#[derive(Debug, Serialize, ToSchema)]
pub struct FactRecorded {
    /// The colour now.
    pub colour: String,
    /// Its reasons.
    pub reasons: Vec<ReasonView>,
}

pub(crate) async fn record_fact<S: Store>(
    app: &App<S>,
    holder: &HolderId,
    fact: Fact,
) -> Result<(StatusCode, Json<FactRecorded>), ApiError> {
    app.store.add_fact(holder, &fact).await?;
    app.statuses.invalidate(holder);
    let view = app.code_view(holder).await?;
    Ok((
        StatusCode::CREATED,
        Json(FactRecorded {
            colour: view.status.colour.as_str().to_owned(),
            reasons: reasons_view(app, &view.status),
        }),
    ))
}

/// Records a health or travel declaration.
#[utoipa::path(post, path = "/me/declarations", tag = "holders", security(("holder" = [])), request_body = Declaration, responses(
    (status = 201, description = "recorded", body = FactRecorded),
    (status = 422, description = "invalid field", body = Problem, content_type = "application/problem+json"),
))]
pub(crate) async fn declare<S: Store>(
    State(app): State<Arc<App<S>>>,
    me: HolderAuth,
    Json(req): Json<Declaration>,
) -> Result<(StatusCode, Json<FactRecorded>), ApiError> {
    let t = now();
    let fact = match req {
        Declaration::Health {
            symptoms,
            temperature_c,
        } => {
            if let Some(c) = temperature_c
                && !(30.0..=45.0).contains(&c)
            {
                return Err(ApiError::InvalidField(
                    "temperature_c must lie between 30 and 45".into(),
                ));
            }
            Fact::Health(HealthDeclaration {
                at: t,
                symptoms,
                temperature_c,
            })
        }
        Declaration::Travel { region, from, until } => {
            let region =
                Issuer::parse(&region).map_err(|e| ApiError::InvalidField(format!("region: {e}")))?;
            let today = t.to_offset(app.policy().utc_offset()).date();
            if from > until || until > today {
                return Err(ApiError::InvalidField(
                    "from must not be after until, and until not after today".into(),
                ));
            }
            Fact::Travel(TravelDeclaration {
                at: t,
                region,
                from,
                until,
            })
        }
    };
    record_fact(&app, &me.holder, fact).await
}

/// The daily report.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportRequest {
    /// Feeling well, without symptoms.
    pub well: bool,
}

/// Records today's report (consecutive well reports can end home observation early).
#[utoipa::path(post, path = "/me/reports", tag = "holders", security(("holder" = [])), request_body = ReportRequest, responses(
    (status = 201, description = "recorded", body = FactRecorded),
))]
pub(crate) async fn report<S: Store>(
    State(app): State<Arc<App<S>>>,
    me: HolderAuth,
    Json(req): Json<ReportRequest>,
) -> Result<(StatusCode, Json<FactRecorded>), ApiError> {
    record_fact(
        &app,
        &me.holder,
        Fact::Report(DailyReport {
            at: now(),
            well: req.well,
        }),
    )
    .await
}

/// One read of the holder's data by someone else.
#[derive(Debug, Serialize, ToSchema)]
pub struct AccessEntry {
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// Who: staff by a stable id (`staff:<id>`), never by username.
    pub actor: String,
    /// In which role.
    pub role: String,
    /// What they did.
    pub action: String,
    /// Why, as they recorded it.
    pub purpose: String,
    /// Its place in the transparency log (the audit record's `seq` − 1), for
    /// `/api/v1/transparency/inclusion`.
    pub leaf_index: u64,
    /// Its leaf there: the audit record's chain hash (base64).
    pub leaf: String,
}

pub(crate) async fn access_entries<S: Store>(
    app: &App<S>,
    holder: &HolderId,
) -> Result<Vec<AccessEntry>, ApiError> {
    let me = format!("holder:{}", holder.to_hex());
    Ok(app
        .store
        .audit_of_subject(holder)
        .await?
        .into_iter()
        // The holder's own doings are left out, except a move to a new phone: whoever made it
        // with the holder's codes, the holder should see it.
        .filter(|r| r.entry.actor != me || r.entry.action == super::PHONE_CHANGE)
        .map(|r| AccessEntry {
            at: r.entry.at,
            actor: shown_actor(&r.entry.actor),
            role: r.entry.role,
            action: r.entry.action,
            purpose: r.entry.purpose,
            leaf_index: u64::try_from(r.seq - 1).unwrap_or_default(),
            leaf: data_encoding::BASE64.encode(&r.hash),
        })
        .collect())
}

/// How the holder is shown who acted: staff by a stable id and never by username (a username
/// names a person, and the holder needs only to tell accounts apart).
pub(crate) fn shown_actor(actor: &str) -> String {
    match actor.strip_prefix("officer:") {
        Some(rest) => format!("staff:{}", rest.split(':').next().unwrap_or_default()),
        None => actor.to_owned(),
    }
}

/// Every read of this holder's personal data and every change to it by anyone else.
#[utoipa::path(get, path = "/me/access-log", tag = "holders", security(("holder" = [])), responses(
    (status = 200, description = "the access log, oldest first", body = Vec<AccessEntry>),
))]
pub(crate) async fn access_log<S: Store>(
    State(app): State<Arc<App<S>>>,
    me: HolderAuth,
) -> Result<Json<Vec<AccessEntry>>, ApiError> {
    Ok(Json(access_entries(&app, &me.holder).await?))
}

/// A check-in, as exported.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExportedCheckIn {
    /// Venue id.
    pub venue: i64,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

/// Everything stored about the holder.
#[derive(Debug, Serialize, ToSchema)]
pub struct Export {
    /// Pseudonymous id.
    pub holder: String,
    /// resident or visitor.
    pub kind: String,
    /// Registered at.
    #[serde(with = "time::serde::rfc3339")]
    pub registered_at: OffsetDateTime,
    /// Name, identity document, birth date, phone, arrival.
    #[schema(value_type = Object)]
    pub personal_data: serde_json::Value,
    /// The colour now and why.
    pub colour: String,
    /// Its reasons.
    pub reasons: Vec<ReasonView>,
    /// Check-ins kept (the retention period).
    pub checkins: Vec<ExportedCheckIn>,
    /// Declarations, reports, tests, cases, exposures and overrides, as the rules read them.
    #[schema(value_type = Object)]
    pub facts: serde_json::Value,
    /// Appeals.
    pub appeals: Vec<AppealView>,
    /// Reads by others.
    pub access_log: Vec<AccessEntry>,
}

/// All of the holder's data, as JSON.
#[utoipa::path(get, path = "/me/export", tag = "holders", security(("holder" = [])), responses(
    (status = 200, description = "everything stored about the holder", body = Export),
))]
pub(crate) async fn export<S: Store>(
    State(app): State<Arc<App<S>>>,
    me: HolderAuth,
) -> Result<impl IntoResponse, ApiError> {
    let t = now();
    let row = app
        .store
        .holder(&me.holder)
        .await?
        .ok_or_else(|| ApiError::NotFound("no such holder".into()))?;
    let reader = Reader {
        actor: format!("holder:{}", me.holder.to_hex()),
        role: "holder".into(),
    };
    let data = app
        .vault
        .read(app.store(), &reader, &row, "the holder's own export", t)
        .await?;
    let view = app.code_view(&me.holder).await?;
    let facts = app.store.holder_facts(&me.holder).await?;
    let checkins = app
        .store
        .checkins_of_holder(
            &me.holder,
            OffsetDateTime::UNIX_EPOCH,
            t + time::Duration::days(1),
        )
        .await?;
    let appeals = app.store.appeals_of(&me.holder).await?;
    let body = Export {
        holder: me.holder.to_hex(),
        kind: row.kind.as_str().to_owned(),
        registered_at: row.created_at,
        personal_data: serde_json::to_value(&data)
            .map_err(|e| ApiError::internal("cannot encode personal data", e))?,
        colour: view.status.colour.as_str().to_owned(),
        reasons: reasons_view(&app, &view.status),
        checkins: checkins
            .iter()
            .map(|c| ExportedCheckIn {
                venue: c.venue.0,
                at: c.at,
            })
            .collect(),
        facts: facts_json(&facts),
        appeals: appeals.into_iter().map(AppealView::from).collect(),
        access_log: access_entries(&app, &me.holder).await?,
    };
    Ok((
        [(
            header::CONTENT_DISPOSITION,
            "attachment; filename=\"healthcode-export.json\"",
        )],
        Json(body),
    ))
}

/// An appeal against the colour.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AppealRequest {
    /// Why the colour is wrong (1 to `[limits] appeal_max_chars` characters, 2000 by default).
    pub text: String,
}

/// An appeal and its decision.
#[derive(Debug, Serialize, ToSchema)]
pub struct AppealView {
    /// Id.
    pub id: i64,
    /// Whose (hex).
    pub holder: String,
    /// The text.
    pub text: String,
    /// Filed at.
    #[serde(with = "time::serde::rfc3339")]
    pub filed_at: OffsetDateTime,
    /// upheld, rejected, or open.
    pub state: String,
    /// The reviewing officer's note.
    pub note: Option<String>,
}

impl From<healthcode_store::Appeal> for AppealView {
    fn from(a: healthcode_store::Appeal) -> AppealView {
        let (state, note) = match &a.decision {
            None => ("open".to_owned(), None),
            Some((_, upheld, note, _)) => (
                if *upheld { "upheld" } else { "rejected" }.to_owned(),
                Some(note.clone()),
            ),
        };
        AppealView {
            id: a.id.0,
            holder: a.holder.to_hex(),
            text: a.text,
            filed_at: a.filed_at,
            state,
            note,
        }
    }
}

/// Files an appeal against the current colour.
#[utoipa::path(post, path = "/me/appeals", tag = "holders", security(("holder" = [])), request_body = AppealRequest, responses(
    (status = 201, description = "filed", body = AppealView),
    (status = 409, description = "as many appeals as allowed wait for a decision already; nothing stored", body = Problem, content_type = "application/problem+json"),
    (status = 422, description = "empty or too long", body = Problem, content_type = "application/problem+json"),
))]
pub(crate) async fn appeal<S: Store>(
    State(app): State<Arc<App<S>>>,
    me: HolderAuth,
    Json(req): Json<AppealRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let text = req.text.trim();
    let max = app.limits().appeal_max_chars;
    if text.is_empty() || text.chars().count() > max as usize {
        return Err(ApiError::InvalidField(format!(
            "text must have 1 to {max} characters"
        )));
    }
    let a = app
        .store
        .add_appeal(&me.holder, text, now(), app.limits().open_appeals_per_holder)
        .await
        .map_err(|e| match e {
            StoreError::Refused(why) => {
                ApiError::Refused(format!("{why}; wait for a decision on one before filing another"))
            }
            other => other.into(),
        })?;
    Ok((StatusCode::CREATED, Json(AppealView::from(a))))
}

/// The holder's appeals.
#[utoipa::path(get, path = "/me/appeals", tag = "holders", security(("holder" = [])), responses(
    (status = 200, description = "appeals, oldest first", body = Vec<AppealView>),
))]
pub(crate) async fn my_appeals<S: Store>(
    State(app): State<Arc<App<S>>>,
    me: HolderAuth,
) -> Result<Json<Vec<AppealView>>, ApiError> {
    Ok(Json(
        app.store
            .appeals_of(&me.holder)
            .await?
            .into_iter()
            .map(AppealView::from)
            .collect(),
    ))
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// The facts the colour rules read, as plain JSON.
fn facts_json(f: &healthcode_domain::HolderFacts) -> serde_json::Value {
    use serde_json::json;
    json!({
        "cases": f.cases.iter().map(|c| json!({
            "case": c.id.0, "onset": rfc3339(c.onset), "confirmed_at": rfc3339(c.confirmed_at)
        })).collect::<Vec<_>>(),
        "tests": f.tests.iter().map(|t| json!({
            "positive": t.positive, "sampled_at": rfc3339(t.sampled_at), "lab": t.lab
        })).collect::<Vec<_>>(),
        "exposures": f.exposures.iter().map(|e| json!({
            "case": e.case.0, "venue": e.venue.0, "grade": e.grade.as_str(),
            "contact_from": rfc3339(e.contact_interval.0), "contact_until": rfc3339(e.contact_interval.1),
            "overlap_minutes": e.overlap_minutes
        })).collect::<Vec<_>>(),
        "travel_declarations": f.travels.iter().map(|t| json!({
            "at": rfc3339(t.at), "region": t.region.as_str(), "from": t.from.to_string(), "until": t.until.to_string()
        })).collect::<Vec<_>>(),
        "health_declarations": f.declarations.iter().map(|d| json!({
            "at": rfc3339(d.at), "symptoms": d.symptoms, "temperature_c": d.temperature_c
        })).collect::<Vec<_>>(),
        "daily_reports": f.reports.iter().map(|r| json!({ "at": rfc3339(r.at), "well": r.well })).collect::<Vec<_>>(),
        "overrides": f.overrides.iter().map(|o| json!({
            "id": o.id.0, "colour": o.colour.as_str(), "reason": o.reason,
            "proposed_at": rfc3339(o.proposed_at), "approved": o.approval.is_some(), "expires_at": rfc3339(o.expires_at)
        })).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// The API's name of a domain symptom: a match that stops compiling when the domain gains one.
    fn name_of(s: Symptom) -> SymptomName {
        match s {
            Symptom::Fever => SymptomName::Fever,
            Symptom::Cough => SymptomName::Cough,
            Symptom::SoreThroat => SymptomName::SoreThroat,
            Symptom::LossOfSmell => SymptomName::LossOfSmell,
            Symptom::ShortnessOfBreath => SymptomName::ShortnessOfBreath,
            Symptom::Fatigue => SymptomName::Fatigue,
        }
    }

    /// The API's symptom names serialize exactly as the domain's.
    #[test]
    fn symptom_names_match_the_domain() {
        for s in [
            Symptom::Fever,
            Symptom::Cough,
            Symptom::SoreThroat,
            Symptom::LossOfSmell,
            Symptom::ShortnessOfBreath,
            Symptom::Fatigue,
        ] {
            assert_eq!(
                serde_json::to_value(name_of(s)).unwrap(),
                serde_json::to_value(s).unwrap()
            );
        }
    }
}
