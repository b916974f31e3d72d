//! The audit log, its verification, and the retention purge.

use std::sync::Arc;

use axum::extract::State;
use healthcode_store::{Store, verify_chain};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::auth::{Admins, Auditors, Staff};
use crate::problem::{ApiError, Json, Query};

use crate::App;

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
    /// Test results past their retention.
    pub test_results: u64,
    /// Decided appeals past their retention.
    pub decided_appeals: u64,
    /// Holders erased for inactivity.
    pub erased_holders: u64,
}

/// Deletes what is older than the retention period now (admins); also runs hourly.
#[utoipa::path(post, path = "/purge", tag = "audit", security(("officer" = [])), responses(
    (status = 200, description = "deleted", body = PurgeView),
))]
pub(crate) async fn purge<S: Store>(
    State(app): State<Arc<App<S>>>,
    me: Staff<Admins>,
) -> Result<Json<PurgeView>, ApiError> {
    let retention = crate::ops::Retention::new(app.settings.retention, &app.settings.personal_retention);
    let crate::ops::Purged { report: r, personal } = crate::ops::purge_once(app.store(), &retention).await?;
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
        test_results: personal.tests,
        decided_appeals: personal.appeals,
        erased_holders: personal.holders,
    }))
}

/// Which window of the log the alerts cover.
#[derive(Debug, Deserialize)]
pub(crate) struct AlertsQuery {
    #[serde(default = "default_alert_hours")]
    pub(crate) hours: u32,
}

fn default_alert_hours() -> u32 {
    24
}

/// Alerts for abuse over a window of the log.
#[derive(Debug, Serialize, ToSchema)]
pub struct AlertsReport {
    /// The window's start.
    #[serde(with = "time::serde::rfc3339")]
    pub from: OffsetDateTime,
    /// Its end (now).
    #[serde(with = "time::serde::rfc3339")]
    pub until: OffsetDateTime,
    /// Audit records examined.
    pub records: u64,
    /// What was flagged, by kind and first entry.
    pub alerts: Vec<crate::alerts::Alert>,
}

/// Patterns of abuse in the last `hours` of the audit log (auditors): many colour changes by one
/// person in an hour, many personal-data reads by one person, reads at night, many holders linked
/// to a case by one venue only, a risk area reaching many travellers as soon as it was declared.
/// Thresholds are the `[alerts]` configuration; the same counts are in the metrics.
#[utoipa::path(get, path = "/audit/alerts", tag = "audit", security(("officer" = [])),
    params(("hours" = Option<u32>, Query, description = "the window, 1-168 hours back from now (default 24)")), responses(
    (status = 200, description = "the alerts", body = AlertsReport),
))]
pub(crate) async fn audit_alerts<S: Store>(
    State(app): State<Arc<App<S>>>,
    me: Staff<Auditors>,
    Query(q): Query<AlertsQuery>,
) -> Result<Json<AlertsReport>, ApiError> {
    if !(1..=168).contains(&q.hours) {
        return Err(ApiError::InvalidField("hours: 1 to 168".into()));
    }
    let until = crate::now();
    let from = until - time::Duration::hours(i64::from(q.hours));
    let records = crate::alerts::window(&*app.store, from, until, 2_000_000).await?;
    let clusters = crate::alerts::clusters(&*app.store, &records).await?;
    let alerts = crate::alerts::detect(&records, &clusters, q.hours, &app.alerts);
    app.audit(
        me.actor(),
        me.role.as_str(),
        "alerts-read",
        None,
        format!("last {} hours: {} alerts", q.hours, alerts.len()),
    )
    .await?;
    Ok(Json(AlertsReport {
        from,
        until,
        records: records.len() as u64,
        alerts,
    }))
}
