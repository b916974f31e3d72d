//! What the holder is told: every change of their colour's facts, every read of their data and
//! every use of their consent is on their page at once (`GET /api/v1/me/notifications`, read
//! from the audit log by subject and from the exposures tracing applied), and the day's reads are
//! texted to them once a day (the read digest, at `[notify] digest_hour_utc`).

use std::sync::Arc;

use axum::extract::State;
use healthcode_domain::Phone;
use healthcode_store::{SealedHolder, Store};
use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};
use utoipa::ToSchema;

use crate::access::Reader;
use crate::auth::HolderAuth;
use crate::problem::{ApiError, Json};
use crate::{App, now};

/// `[notify]`: what the holder is sent.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotifyConfig {
    /// The hour (UTC, 0-23) at which each holder whose data was read in the 24 hours before is
    /// texted how many reads, by which roles.
    pub digest_hour_utc: u8,
    /// Whether the read digest is sent at all.
    pub read_digest: bool,
}

impl Default for NotifyConfig {
    fn default() -> NotifyConfig {
        NotifyConfig {
            digest_hour_utc: 18,
            read_digest: true,
        }
    }
}

/// One thing that happened to the holder's colour, data or consent.
#[derive(Debug, Serialize, ToSchema)]
pub struct Notification {
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// `colour` (a fact that decides the colour was recorded or changed), `read` (personal data
    /// read, or the holder looked up), `consent` (a consent given, used or revoked), or `other`.
    pub kind: String,
    /// What, as the audit log names it (`read-personal-data`, `consent-use`, `case-record`…), or
    /// `exposure` for one that tracing recorded.
    pub action: String,
    /// Who (staff as `staff:<id>`, the system as `system:…`).
    pub actor: String,
    /// In which role.
    pub role: String,
    /// Why, or what exactly.
    pub detail: String,
}

/// The kind of an audit action, as the holder is told it.
pub fn kind_of(action: &str) -> &'static str {
    match action {
        "case-record" | "test-record" | "override-approve" | "exposure-apply" | "exposure-dismiss" => {
            "colour"
        }
        "read-personal-data" | "holder-search" | "read-refused" => "read",
        "consent-use" | "consent-record" | "consent-revoke" | "consent-code-sent" => "consent",
        _ => "other",
    }
}

/// Everything the holder is told, newest first: the access log (every action of someone else
/// against the holder), the holder's own consent changes, and the exposures tracing applied.
#[utoipa::path(get, path = "/me/notifications", tag = "holders", security(("holder" = [])), responses(
    (status = 200, description = "what happened, newest first", body = Vec<Notification>),
))]
pub(crate) async fn my_notifications<S: Store>(
    State(app): State<Arc<App<S>>>,
    me: HolderAuth,
) -> Result<Json<Vec<Notification>>, ApiError> {
    Ok(Json(notifications(&app, &me.holder).await?))
}

pub(crate) async fn notifications<S: Store>(
    app: &App<S>,
    holder: &healthcode_domain::HolderId,
) -> Result<Vec<Notification>, ApiError> {
    let own = format!("holder:{}", holder.to_hex());
    let mut out: Vec<Notification> = app
        .store()
        .audit_of_subject(holder)
        .await?
        .into_iter()
        // The holder's own doings are left out but for consents (a phone change shows in the
        // access log, which this list includes through it).
        .filter(|r| {
            r.entry.actor != own
                || kind_of(&r.entry.action) == "consent"
                || r.entry.action == crate::holders::PHONE_CHANGE
        })
        .map(|r| Notification {
            at: r.entry.at,
            kind: kind_of(&r.entry.action).into(),
            actor: crate::holders::shown_actor(&r.entry.actor),
            role: r.entry.role,
            action: r.entry.action,
            detail: r.entry.purpose,
        })
        .collect();
    // Newest first; entries of the same second stay in the log's order, newest first.
    out.reverse();
    let facts = app.store().holder_facts(holder).await?;
    for e in &facts.exposures {
        out.push(Notification {
            at: e.contact_interval.1,
            kind: "colour".into(),
            action: "exposure".into(),
            actor: "system:tracing".into(),
            role: "system".into(),
            detail: format!(
                "{} contact with case {} at venue {}, {} minutes together",
                e.grade.as_str(),
                e.case.0,
                e.venue.0,
                e.overlap_minutes
            ),
        });
    }
    out.sort_by_key(|n| std::cmp::Reverse(n.at));
    Ok(out)
}

/// Texts a holder: their phone is opened for it alone (recorded as the system's read, for
/// `why`). The masked phone it went to, or `None` when it could not be sent (logged).
pub(crate) async fn text_holder<S: Store>(
    app: &App<S>,
    holder: &SealedHolder,
    why: &str,
    text: &str,
) -> Result<Option<String>, ApiError> {
    let reader = Reader {
        actor: "system:notify".into(),
        role: "system".into(),
    };
    let data = app.vault.read(app.store(), &reader, holder, why, now()).await?;
    let Ok(phone) = Phone::parse(&data.phone) else {
        return Ok(None);
    };
    match app.sms.send(phone.as_str(), &phone.masked(), text).await {
        Ok(()) => Ok(Some(phone.masked())),
        Err(e) => {
            tracing::warn!(target: "healthcode::notify", error = %e, to = %phone.masked(), "a notice could not be sent");
            Ok(None)
        }
    }
}

/// [`text_holder`] in a task of its own, for a notice the answer does not wait for.
pub(crate) fn text_holder_later<S: Store>(
    app: Arc<App<S>>,
    holder: SealedHolder,
    why: &'static str,
    text: String,
) {
    tokio::spawn(async move {
        if let Err(e) = text_holder(&app, &holder, why, &text).await {
            tracing::warn!(target: "healthcode::notify", error = %crate::problem::ErrorChain(&e), "a notice could not be sent");
        }
    });
}

/// Sends the read digest for the 24 hours before `until`: one text to each holder whose data
/// was read in them by staff, marked sent for `until`'s UTC date first (so each holder gets one a
/// day, whichever node sends it). Returns how many texts went out.
pub async fn send_read_digests<S: Store>(app: &App<S>, until: OffsetDateTime) -> Result<usize, ApiError> {
    if !app.sms.configured() {
        return Ok(0);
    }
    let counts = app
        .store()
        .reads_between(until - Duration::days(1), until)
        .await?;
    let day = until.to_offset(time::UtcOffset::UTC).date();
    let mut sent = 0;
    let mut i = 0;
    while i < counts.len() {
        let holder = counts[i].holder.clone();
        let mut total = 0u64;
        let mut by = Vec::new();
        while i < counts.len() && counts[i].holder == holder {
            total += counts[i].reads;
            by.push(format!("{} by {}", counts[i].reads, counts[i].role));
            i += 1;
        }
        if !app.store().mark_digest_sent(&holder, day).await? {
            continue;
        }
        let Some(row) = app.store().holder(&holder).await? else {
            continue;
        };
        let text = format!(
            "Health code: your personal data was read {total} time{} in the 24 hours to {:02}:00 UTC ({}). See who and why on your page under \"Who read my data\".",
            if total == 1 { "" } else { "s" },
            until.hour(),
            by.join(", ")
        );
        if text_holder(app, &row, "texting the holder the day's read digest", &text)
            .await?
            .is_some()
        {
            sent += 1;
        }
    }
    Ok(sent)
}

/// Asks the running server to send the read digest now, for the 24 hours before a time: what
/// the daily task does at `digest_hour_utc`, for tests and operators.
#[derive(Debug, Clone)]
pub struct DigestTrigger(
    tokio::sync::mpsc::Sender<(
        OffsetDateTime,
        tokio::sync::oneshot::Sender<Result<usize, String>>,
    )>,
);

impl DigestTrigger {
    /// Sends the digest for the 24 hours before `until`; how many texts went out.
    pub async fn send(&self, until: OffsetDateTime) -> Result<usize, String> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.0
            .send((until, tx))
            .await
            .map_err(|_| "the server has stopped".to_owned())?;
        rx.await.map_err(|_| "the server has stopped".to_owned())?
    }
}

/// The latest digest time not after `t`: `hour`:00 UTC today, or yesterday.
fn latest_due(t: OffsetDateTime, hour: u8) -> OffsetDateTime {
    let t = t.to_offset(time::UtcOffset::UTC);
    let today = t
        .date()
        .with_hms(hour.min(23), 0, 0)
        .map(|d| d.assume_utc())
        .unwrap_or(t);
    if today <= t {
        today
    } else {
        today - Duration::days(1)
    }
}

/// The daily read digest: every minute, sends the digest that is due if it was not sent yet
/// (the store's marks keep it to one a day per holder across nodes and restarts); and on a
/// trigger, the digest asked for.
pub(crate) fn start_digests<S: Store>(app: std::sync::Weak<App<S>>, config: NotifyConfig) -> DigestTrigger {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(
        OffsetDateTime,
        tokio::sync::oneshot::Sender<Result<usize, String>>,
    )>(4);
    tokio::spawn(async move {
        let mut last: Option<OffsetDateTime> = None;
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
        loop {
            tokio::select! {
                asked = rx.recv() => {
                    let Some((until, answer)) = asked else { return };
                    let Some(app) = app.upgrade() else { return };
                    let r = send_read_digests(&app, until).await.map_err(|e| e.to_string());
                    let _ = answer.send(r);
                }
                _ = tick.tick() => {
                    if !config.read_digest {
                        continue;
                    }
                    let Some(app) = app.upgrade() else { return };
                    let due = latest_due(now(), config.digest_hour_utc);
                    if last == Some(due) {
                        continue;
                    }
                    match send_read_digests(&app, due).await {
                        Ok(n) => {
                            last = Some(due);
                            if n > 0 {
                                tracing::info!(target: "healthcode::notify", texts = n, "read digest sent");
                            }
                        }
                        Err(e) => tracing::warn!(target: "healthcode::notify", error = %crate::problem::ErrorChain(&e), "the read digest failed; retried in a minute"),
                    }
                }
            }
        }
    });
    DigestTrigger(tx)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn the_digest_due_is_the_latest_hour_not_after_now() {
        assert_eq!(
            latest_due(datetime!(2026-11-30 19:30 UTC), 18),
            datetime!(2026-11-30 18:00 UTC)
        );
        assert_eq!(
            latest_due(datetime!(2026-11-30 17:59 UTC), 18),
            datetime!(2026-11-29 18:00 UTC)
        );
        assert_eq!(
            latest_due(datetime!(2026-11-30 18:00 UTC), 18),
            datetime!(2026-11-30 18:00 UTC)
        );
    }
}
