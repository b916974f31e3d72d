//! A holder's request to erase their account and data (`POST /api/v1/me/erasure`): refused while
//! a hold is in force (a colour other than green, or a case recent enough to be traced), otherwise
//! everything of theirs is deleted at once, every session ends, the audit log keeps that an
//! erasure happened (`holder-erased`, the id only), and the deleted bytes are scrubbed from the
//! database's files in the background: at most once every [`SCRUB_EVERY`] on a node, however
//! many erasures come (PostgreSQL's scrub rewrites and locks whole tables); the retention purge
//! scrubs at start (so a scrub a stopped node still owed happens then) and whenever it deletes.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::extract::State;
use healthcode_domain::Colour;
use healthcode_store::{Principal, Store};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::auth::HolderAuth;
use crate::problem::{ApiError, Json, Problem};
use crate::{App, now};

/// The shortest time between the ends of two scrubs a node runs after erasures.
pub const SCRUB_EVERY: std::time::Duration = std::time::Duration::from_secs(300);

/// Scrubs of erased data: one at a time, at most one waiting, and at most one every
/// [`SCRUB_EVERY`].
#[derive(Debug, Default)]
pub struct ScrubState {
    pending: std::sync::atomic::AtomicBool,
    /// Held while a scrub runs; when the last one ended.
    last: tokio::sync::Mutex<Option<std::time::Instant>>,
}

/// The request, confirmed.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ErasureRequest {
    /// Must be true: erasure cannot be undone.
    pub confirm: bool,
}

/// The answer: the account is gone, and the session that asked with it.
#[derive(Debug, Serialize, ToSchema)]
pub struct Erased {
    /// Always true.
    pub erased: bool,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

/// Why erasure must wait, if it must: a colour other than green, or a recent case.
async fn hold_in_force<S: Store>(app: &App<S>, me: &HolderAuth) -> Result<Option<String>, ApiError> {
    let view = app.code_view(&me.holder).await?;
    if view.status.colour != Colour::Green {
        let until = view
            .status
            .green_at
            .map(|t| format!(" until {}", t.date()))
            .unwrap_or_default();
        return Ok(Some(format!(
            "your code is {}{until}: a hold is in force, and erasing the record would lift it; ask again once it is green",
            view.status.colour.as_str()
        )));
    }
    let t = now();
    let cutoff = t - app.settings.retention;
    let facts = app.store.holder_facts(&me.holder).await?;
    if let Some(c) = facts.cases.iter().find(|c| c.confirmed_at >= cutoff) {
        return Ok(Some(format!(
            "a case recorded on {} can still be traced until {}; ask again after that",
            c.confirmed_at.date(),
            (c.confirmed_at + app.settings.retention).date()
        )));
    }
    Ok(None)
}

/// Erases the signed-in holder's account and data, once no hold is in force. Every session ends;
/// the audit log keeps that an erasure happened, with the holder's id and nothing else.
#[utoipa::path(post, path = "/me/erasure", tag = "holders", security(("holder" = [])), request_body = ErasureRequest, responses(
    (status = 200, description = "erased", body = Erased),
    (status = 409, description = "a hold is in force (the colour, or a recent case); nothing erased", body = Problem, content_type = "application/problem+json"),
    (status = 422, description = "not confirmed", body = Problem, content_type = "application/problem+json"),
))]
pub(crate) async fn erase_me<S: Store>(
    State(app): State<Arc<App<S>>>,
    me: HolderAuth,
    Json(req): Json<ErasureRequest>,
) -> Result<Json<Erased>, ApiError> {
    if !req.confirm {
        return Err(ApiError::InvalidField(
            "confirm must be true: an erasure cannot be undone".into(),
        ));
    }
    if let Some(why) = hold_in_force(&app, &me).await? {
        app.audit(
            format!("holder:{}", me.holder.to_hex()),
            "holder",
            "erasure-refused",
            Some(me.holder.clone()),
            why.clone(),
        )
        .await?;
        return Err(ApiError::Refused(why));
    }
    crate::ops::erasure::erase(
        app.store(),
        &me.holder,
        format!("holder:{}", me.holder.to_hex()),
        "holder",
        "the holder's own request".into(),
    )
    .await?;
    // This node forgets the sessions at once (the store has none left for any node to find).
    app.auth.forget_sessions_of(&Principal::Holder(me.holder.clone()));
    app.auth.forget_session(&me.token_hash);
    app.statuses.invalidate(&me.holder);
    scrub_soon(&app);
    Ok(Json(Erased {
        erased: true,
        at: now(),
    }))
}

/// How long a scrub asked for at `now` waits, the last having ended at `last`.
fn scrub_wait(last: Option<std::time::Instant>, now: std::time::Instant) -> std::time::Duration {
    last.map_or(std::time::Duration::ZERO, |l| {
        (l + SCRUB_EVERY).saturating_duration_since(now)
    })
}

/// Scrubs the deleted bytes in the background, one scrub at a time and at most one every
/// [`SCRUB_EVERY`]; erasures while one waits are covered by it (they committed before it
/// starts). The wait holds no reference to the app: a node stopping meanwhile leaves the scrub
/// to the retention purge at its next start.
fn scrub_soon<S: Store>(app: &Arc<App<S>>) {
    if app.scrub.pending.swap(true, Ordering::AcqRel) {
        return;
    }
    let app = Arc::downgrade(app);
    tokio::spawn(async move {
        let wait = {
            let Some(app) = app.upgrade() else { return };
            let last = *app.scrub.last.lock().await;
            scrub_wait(last, std::time::Instant::now())
        };
        tokio::time::sleep(wait).await;
        let Some(app) = app.upgrade() else { return };
        let mut last = app.scrub.last.lock().await;
        app.scrub.pending.store(false, Ordering::Release);
        let scrubbed = app.store.scrub_erased().await;
        *last = Some(std::time::Instant::now());
        drop(last);
        if let Err(e) = scrubbed {
            tracing::warn!(error = %crate::problem::ErrorChain(&e), "erased data could not be scrubbed yet; trying again after the interval");
            scrub_soon(&app);
        }
    });
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::{SCRUB_EVERY, scrub_wait};

    #[test]
    fn a_scrub_waits_for_the_interval_after_the_last() {
        let t = Instant::now();
        assert_eq!(scrub_wait(None, t), Duration::ZERO, "the first goes at once");
        assert_eq!(scrub_wait(Some(t), t), SCRUB_EVERY);
        assert_eq!(
            scrub_wait(Some(t), t + Duration::from_secs(60)),
            SCRUB_EVERY - Duration::from_secs(60)
        );
        assert_eq!(scrub_wait(Some(t), t + SCRUB_EVERY), Duration::ZERO);
        assert_eq!(scrub_wait(Some(t), t + SCRUB_EVERY * 2), Duration::ZERO);
    }
}
