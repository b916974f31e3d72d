//! Venue devices: a scanned code is verified, admitted or denied under the venue's admission
//! policy, and an admitted entry is recorded as a check-in through the group commit. A device
//! learns the colour, the name hint and a reason; nothing else about the holder.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::routing::{get, post};
use healthcode_domain::{AdmissionPolicy, CheckIn, Colour, Venue};
use healthcode_store::Store;
use healthcode_token::{VerifiedCode, Verifier};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{OpenApi, ToSchema};

use crate::auth::DeviceAuth;
use crate::commit::Entry;
use crate::metrics::ScanLabels;
use crate::problem::{ApiError, Json, Problem};
use crate::{App, now};

/// The device endpoints' part of the OpenAPI document.
#[derive(Debug, OpenApi)]
#[openapi(
    paths(scan, scan_batch, whoami),
    components(schemas(
        DeviceInfo,
        ScanRequest,
        ScanResult,
        BatchRequest,
        QueuedScan,
        BatchResult,
        BatchItem
    ))
)]
pub struct ScanApi;

/// Most scans in one batch upload.
pub const MAX_BATCH: usize = 5_000;

/// The routes.
pub fn routes<S: Store>() -> Router<Arc<App<S>>> {
    Router::new()
        .route("/api/v1/scans", post(scan::<S>))
        .route("/api/v1/scans/batch", post(scan_batch::<S>))
        .route("/api/v1/device", get(whoami))
}

/// A device and the venue it stands at: what a scanner needs to decide at the door offline.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeviceInfo {
    /// The device's id.
    pub device: i64,
    /// Its label.
    pub label: String,
    /// The venue's id (send it with every scan).
    pub venue: i64,
    /// The venue's name.
    pub venue_name: String,
    /// The venue's category.
    pub category: String,
    /// Who may enter: green-only, green-or-yellow or all.
    pub admission: String,
}

/// The device presenting the key, and its venue (a scanner's set-up).
#[utoipa::path(get, path = "/device", tag = "devices", security(("device" = [])), responses(
    (status = 200, description = "the device and its venue", body = DeviceInfo),
    (status = 401, description = "no or unknown device key", body = Problem, content_type = "application/problem+json"),
))]
async fn whoami(DeviceAuth(dev): DeviceAuth) -> Json<DeviceInfo> {
    let (device, venue) = (&dev.0, &dev.1);
    Json(DeviceInfo {
        device: device.id.0,
        label: device.label.clone(),
        venue: venue.id.0,
        venue_name: venue.name.clone(),
        category: venue.category.as_str().to_owned(),
        admission: venue.admission.as_str().to_owned(),
    })
}

/// One scan at the door.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScanRequest {
    /// The venue the device stands at (from its set-up); a device key of another venue is refused.
    pub venue: i64,
    /// The scanned code (`HC1:…`).
    pub token: String,
    /// The device's sequence number for this scan; a retry sends the same one and is recorded once.
    pub seq: i64,
}

/// The answer at the door.
#[derive(Debug, Serialize, ToSchema)]
pub struct ScanResult {
    /// admit or deny.
    pub decision: String,
    /// The code's colour.
    pub colour: String,
    /// The masked name, to compare with the person.
    pub name_hint: Option<String>,
    /// Why, in one line.
    pub reason: String,
    /// Whether the entry is stored (only admitted entries are; stored before this answer).
    pub recorded: bool,
    /// When this code was recorded at this device moments ago (within the same-visit window):
    /// the sequence number it is recorded under; this scan stored nothing more.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub same_visit_as: Option<i64>,
}

fn decide(venue: &Venue, code: &VerifiedCode) -> (bool, String) {
    let colour = code.colour();
    let admitted = venue.admission.admits(colour);
    let reason = match (admitted, venue.admission) {
        (true, _) => format!("{} code: admitted", colour.as_str()),
        (false, AdmissionPolicy::GreenOnly) => {
            format!("{} code: this venue admits green codes only", colour.as_str())
        }
        (false, _) => format!(
            "{} code: this venue admits green and yellow codes only",
            colour.as_str()
        ),
    };
    let reason = match (colour, code.green_from()) {
        (Colour::Green, _) | (_, None) => reason,
        (_, Some(d)) => format!("{reason} (green from {d})"),
    };
    (admitted, reason)
}

fn verify(verifier: &Verifier, token: &str, at: OffsetDateTime) -> Result<VerifiedCode, ApiError> {
    verifier
        .verify_text(token, at)
        .map_err(|e| ApiError::InvalidToken(format!("the code is not valid: {e}")))
}

fn count<S>(app: &App<S>, decision: &'static str, colour: &'static str) {
    app.metrics
        .scans
        .get_or_create(&ScanLabels { decision, colour })
        .inc();
}

fn check_venue(venue: &Venue, claimed: i64) -> Result<(), ApiError> {
    if venue.id.0 != claimed {
        return Err(ApiError::Forbidden(format!(
            "this device belongs to venue {}, not venue {claimed}",
            venue.id.0
        )));
    }
    Ok(())
}

fn check_seq(seq: i64) -> Result<(), ApiError> {
    if seq < 0 {
        return Err(ApiError::InvalidField("seq must not be negative".into()));
    }
    Ok(())
}

/// Verifies a scanned code and answers admit or deny under the venue's policy; an admitted entry
/// is recorded before the answer: committed, and on disk with SQLite's default `synchronous =
/// "full"` (or PostgreSQL's defaults), so it survives a power cut (docs/operations.md).
#[utoipa::path(post, path = "/scans", tag = "devices", security(("device" = [])), request_body = ScanRequest, responses(
    (status = 200, description = "the decision", body = ScanResult),
    (status = 401, description = "no or unknown device key", body = Problem, content_type = "application/problem+json"),
    (status = 403, description = "the device key belongs to another venue", body = Problem, content_type = "application/problem+json"),
    (status = 409, description = "the sequence number already records another code; nothing stored", body = Problem, content_type = "application/problem+json"),
    (status = 422, description = "the code is forged, expired or malformed", body = Problem, content_type = "application/problem+json"),
    (status = 503, description = "saturated; retry after Retry-After", body = Problem, content_type = "application/problem+json"),
))]
async fn scan<S: Store>(
    State(app): State<Arc<App<S>>>,
    DeviceAuth(dev): DeviceAuth,
    Json(req): Json<ScanRequest>,
) -> Result<Json<ScanResult>, ApiError> {
    check_seq(req.seq)?;
    let (device, venue) = (&dev.0, &dev.1);
    check_venue(venue, req.venue)?;
    let t = now();
    let verifier = app.verifier()?;
    let code = match verify(&verifier, &req.token, t) {
        Ok(c) => c,
        Err(e) => {
            count(&app, "invalid", "none");
            return Err(e);
        }
    };
    let (admitted, reason) = decide(venue, &code);
    let mut same_as = None;
    if admitted {
        let entry = app
            .committer
            .submit(vec![CheckIn {
                holder: code.claims.subject.clone(),
                venue: venue.id,
                device: device.id,
                seq: req.seq,
                at: t,
                out: None,
            }])
            .await?;
        match entry.first() {
            Some(Entry::Recorded) => {}
            Some(Entry::SameVisit(seq)) => same_as = Some(*seq),
            Some(Entry::Conflict) | None => {
                count(&app, "conflict", code.colour().as_str());
                return Err(ApiError::Conflict(format!(
                    "sequence number {} of this device already records another code; nothing was stored (a scanner must never reuse a number)",
                    req.seq
                )));
            }
        }
    }
    count(
        &app,
        if admitted { "admit" } else { "deny" },
        code.colour().as_str(),
    );
    Ok(Json(ScanResult {
        decision: if admitted { "admit" } else { "deny" }.into(),
        colour: code.colour().as_str().into(),
        name_hint: code.name_hint().map(|h| h.as_str().to_owned()),
        reason,
        recorded: admitted,
        same_visit_as: same_as,
    }))
}

/// A scan queued while offline.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QueuedScan {
    /// The scanned code.
    pub token: String,
    /// The device's sequence number.
    pub seq: i64,
    /// When it was scanned (the code is checked as of then).
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

/// Scans queued while offline, uploaded in order.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchRequest {
    /// The venue the device stands at.
    pub venue: i64,
    /// At most 5,000.
    pub scans: Vec<QueuedScan>,
}

/// One queued scan's outcome.
#[derive(Debug, Serialize, ToSchema)]
pub struct BatchItem {
    /// Its sequence number.
    pub seq: i64,
    /// denied (not an entry: the venue's policy turned it away), rejected, or conflict (the
    /// sequence number already records another code; nothing stored).
    pub outcome: String,
    /// Why, when not recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The outcome of an upload.
#[derive(Debug, Serialize, ToSchema)]
pub struct BatchResult {
    /// Entries stored (a re-sent entry is stored once and counted here again, as is a scan of
    /// the same visit).
    pub recorded: usize,
    /// Scans the venue's policy turned away.
    pub denied: usize,
    /// Scans refused (bad code, impossible time, a sequence number holding another code).
    pub rejected: usize,
    /// Every scan not recorded, with why.
    pub items: Vec<BatchItem>,
}

/// Uploads scans a device queued while offline, with their original times; idempotent by
/// (device, seq). Every code is verified as of its scan time.
#[utoipa::path(post, path = "/scans/batch", tag = "devices", security(("device" = [])), request_body = BatchRequest, responses(
    (status = 200, description = "stored before this answer", body = BatchResult),
    (status = 401, description = "no or unknown device key", body = Problem, content_type = "application/problem+json"),
    (status = 422, description = "too many scans in one upload", body = Problem, content_type = "application/problem+json"),
))]
async fn scan_batch<S: Store>(
    State(app): State<Arc<App<S>>>,
    DeviceAuth(dev): DeviceAuth,
    Json(req): Json<BatchRequest>,
) -> Result<Json<BatchResult>, ApiError> {
    if req.scans.len() > MAX_BATCH {
        return Err(ApiError::InvalidField(format!(
            "at most {MAX_BATCH} scans in one upload; this one has {}",
            req.scans.len()
        )));
    }
    let (device, venue) = (&dev.0, &dev.1);
    check_venue(venue, req.venue)?;
    let t = now();
    let oldest = t - app.settings.retention;
    let verifier = app.verifier()?;
    let mut checkins = Vec::with_capacity(req.scans.len());
    let mut items = Vec::new();
    let (mut denied, mut rejected) = (0, 0);
    for s in &req.scans {
        let refuse = |why: String| BatchItem {
            seq: s.seq,
            outcome: "rejected".into(),
            reason: Some(why),
        };
        if s.seq < 0 {
            rejected += 1;
            items.push(refuse("seq must not be negative".into()));
            continue;
        }
        if s.at > t + time::Duration::minutes(5) || s.at < oldest {
            rejected += 1;
            items.push(refuse(
                "the scan time is in the future or older than retention".into(),
            ));
            continue;
        }
        match verify(&verifier, &s.token, s.at) {
            Err(e) => {
                count(&app, "invalid", "none");
                rejected += 1;
                items.push(refuse(e.to_string()));
            }
            Ok(code) => {
                let (admitted, reason) = decide(venue, &code);
                count(
                    &app,
                    if admitted { "admit" } else { "deny" },
                    code.colour().as_str(),
                );
                if admitted {
                    checkins.push(CheckIn {
                        holder: code.claims.subject.clone(),
                        venue: venue.id,
                        device: device.id,
                        seq: s.seq,
                        at: s.at.replace_nanosecond(0).unwrap_or(s.at),
                        out: None,
                    });
                } else {
                    denied += 1;
                    items.push(BatchItem {
                        seq: s.seq,
                        outcome: "denied".into(),
                        reason: Some(reason),
                    });
                }
            }
        }
    }
    let entries = app.committer.submit(checkins.clone()).await?;
    let mut recorded = 0;
    for (c, e) in checkins.iter().zip(&entries) {
        match e {
            Entry::Recorded | Entry::SameVisit(_) => recorded += 1,
            Entry::Conflict => {
                rejected += 1;
                items.push(BatchItem {
                    seq: c.seq,
                    outcome: "conflict".into(),
                    reason: Some(
                        "this sequence number already records another code; nothing was stored".into(),
                    ),
                });
            }
        }
    }
    Ok(Json(BatchResult {
        recorded,
        denied,
        rejected,
        items,
    }))
}
