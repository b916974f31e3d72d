//! The lifecycle of staff credentials, each step audited: admins disable and re-enable accounts,
//! change roles, reset passwords and second factors, lift sign-in locks, list and end anyone's
//! sessions, and rotate scanner device keys; every staff member lists and ends their own
//! sessions. No admin can disable or demote themselves, nor the last active admin (the store
//! decides that in the transaction that writes it).
//!
//! A role change and re-enabling are proposals ([`change_role`], [`enable_account`]) that a
//! second admin approves (`admin::proposals`); disabling, which only takes powers away, is done
//! at once, through [`apply_account_change`].

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use healthcode_domain::{DeviceId, OfficerId, VenueId};
use healthcode_store::{AccountChange, Act, Officer, Principal, Role, Store};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::auth::{Admins, AnyStaff, DEVICE_KEY_PREFIX, Staff, new_secret, one_time_password, secret_hash};
use crate::problem::{ApiError, Json, Path, Problem};
use crate::signin;
use crate::{App, now};

use super::phones::{phone_of, send_password};
use super::proposals::{ProposalView, propose};
use super::{DeviceCreated, DeviceView, StaffView};

/// The account `id`, or 404.
async fn account<S: Store>(app: &App<S>, id: i64) -> Result<Officer, ApiError> {
    app.store()
        .officer(OfficerId(id))
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no account {id}")))
}

/// Ends every session of an account, on this node at once; returns how many.
async fn end_sessions_of<S: Store>(app: &App<S>, id: OfficerId) -> Result<u64, ApiError> {
    let principal = Principal::Officer(id);
    app.auth.forget_sessions_of(&principal);
    let n = app.store().revoke_sessions_of(&principal).await?;
    app.auth.forget_sessions_of(&principal);
    Ok(n)
}

/// Applies an account change by an admin after auditing it; a disabled account's sessions end.
pub(crate) async fn apply_account_change<S: Store>(
    app: &App<S>,
    me: &Staff<Admins>,
    id: i64,
    change: AccountChange,
) -> Result<StaffView, ApiError> {
    let target = account(app, id).await?;
    let (action, what) = match change {
        AccountChange::Disable => ("account-disable", format!("{} disabled", target.username)),
        AccountChange::Enable => ("account-enable", format!("{} enabled", target.username)),
        AccountChange::Role(r) => (
            "account-role",
            format!(
                "{} from {} to {}",
                target.username,
                target.role.as_str(),
                r.as_str()
            ),
        ),
    };
    // Recorded before it is done, so that no change happens unaudited; a refused one leaves an
    // entry that says it was asked for.
    app.audit(me.actor(), me.role.as_str(), action, None, what)
        .await?;
    let changed = app
        .store()
        .change_account(target.id, me.id, change, now())
        .await?;
    if change == AccountChange::Disable {
        end_sessions_of(app, target.id).await?;
    }
    Ok(StaffView::of(&changed, false))
}

/// Disables an account (admins): it cannot sign in, and its sessions end at once. Not oneself,
/// not the last active admin. Audited.
#[utoipa::path(post, path = "/officers/{id}/disable", tag = "officers", security(("officer" = [])),
    params(("id" = i64, Path, description = "account id")), responses(
    (status = 200, description = "disabled; its sessions have ended", body = StaffView),
    (status = 403, description = "not an admin", body = Problem, content_type = "application/problem+json"),
    (status = 404, description = "no such account", body = Problem, content_type = "application/problem+json"),
    (status = 409, description = "oneself, the last active admin, or disabled already", body = Problem, content_type = "application/problem+json"),
))]
pub(crate) async fn disable_account<S: Store>(
    State(app): State<Arc<App<S>>>,
    me: Staff<Admins>,
    Path(id): Path<i64>,
) -> Result<Json<StaffView>, ApiError> {
    Ok(Json(
        apply_account_change(&app, &me, id, AccountChange::Disable).await?,
    ))
}

/// Proposes re-enabling a disabled account (admins): it restores the account's powers, so it
/// takes effect once a second, eligible admin approves (`POST /proposals/{id}/approve`). As
/// after a reset, the account then approves none of the proposing admin's proposals, and
/// nobody's for `[governance] approver_min_age_hours`. Audited.
#[utoipa::path(post, path = "/officers/{id}/enable", tag = "officers", security(("officer" = [])),
    params(("id" = i64, Path, description = "account id")), responses(
    (status = 202, description = "proposed, awaiting a second admin", body = ProposalView),
    (status = 403, description = "not an admin", body = Problem, content_type = "application/problem+json"),
    (status = 404, description = "no such account", body = Problem, content_type = "application/problem+json"),
    (status = 409, description = "not disabled", body = Problem, content_type = "application/problem+json"),
))]
pub(crate) async fn enable_account<S: Store>(
    State(app): State<Arc<App<S>>>,
    me: Staff<Admins>,
    Path(id): Path<i64>,
) -> Result<(StatusCode, Json<ProposalView>), ApiError> {
    let target = account(&app, id).await?;
    if target.disabled_at.is_none() {
        return Err(ApiError::Refused(format!(
            "{} is active already",
            target.username
        )));
    }
    let what = format!("enable {}", target.username);
    let p = propose(&app, &me, Act::AccountEnable { officer: id }, what).await?;
    Ok((StatusCode::ACCEPTED, Json(p)))
}

/// A new role.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleChange {
    /// officer, admin or auditor.
    pub role: String,
}

/// Proposes a new role for an account (admins); it takes effect once a second, eligible admin
/// approves (`POST /proposals/{id}/approve`). Not one's own, not the last active admin's
/// demotion (checked again at approval). Audited.
#[utoipa::path(put, path = "/officers/{id}/role", tag = "officers", security(("officer" = [])), request_body = RoleChange,
    params(("id" = i64, Path, description = "account id")), responses(
    (status = 202, description = "proposed, awaiting a second admin", body = ProposalView),
    (status = 403, description = "not an admin", body = Problem, content_type = "application/problem+json"),
    (status = 404, description = "no such account", body = Problem, content_type = "application/problem+json"),
    (status = 409, description = "oneself, or the role it has", body = Problem, content_type = "application/problem+json"),
    (status = 422, description = "no such role", body = Problem, content_type = "application/problem+json"),
))]
pub(crate) async fn change_role<S: Store>(
    State(app): State<Arc<App<S>>>,
    me: Staff<Admins>,
    Path(id): Path<i64>,
    Json(req): Json<RoleChange>,
) -> Result<(StatusCode, Json<ProposalView>), ApiError> {
    let role = Role::parse(req.role.trim())
        .ok_or_else(|| ApiError::InvalidField("role: officer, admin or auditor".into()))?;
    let target = account(&app, id).await?;
    if target.id == me.id {
        return Err(ApiError::Refused("an admin cannot change their own role".into()));
    }
    if target.role == role {
        return Err(ApiError::Refused(format!(
            "{} is {} already",
            target.username,
            role.as_str()
        )));
    }
    let what = format!(
        "{} from {} to {}",
        target.username,
        target.role.as_str(),
        role.as_str()
    );
    let p = propose(&app, &me, Act::RoleGrant { officer: id, role }, what).await?;
    Ok((StatusCode::ACCEPTED, Json(p)))
}

/// A new one-time password, sent to the account's owner.
#[derive(Debug, Serialize, ToSchema)]
pub struct PasswordReset {
    /// The account.
    pub officer: StaffView,
    /// The phone, masked, the one-time password was sent to; its owner replaces it at the next
    /// sign-in. The admin never sees it.
    pub sent_to: String,
    /// Sessions that ended.
    pub sessions_ended: u64,
}

/// Resets an account's password (admins): a new one-time password, sent by text to the phone
/// recorded on the account (409 when it has none), which its owner must replace at the next
/// sign-in; every session of the account ends. The second factor stays (reset it separately
/// when the phone is lost too). The admin is recorded as the last to reset the account's
/// credentials: it approves none of that admin's proposals, nor they its, and nobody's for
/// `[governance] approver_min_age_hours`. Audited.
#[utoipa::path(post, path = "/officers/{id}/password-reset", tag = "officers", security(("officer" = [])),
    params(("id" = i64, Path, description = "account id")), responses(
    (status = 201, description = "reset; the one-time password was sent to the owner's phone", body = PasswordReset),
    (status = 403, description = "not an admin", body = Problem, content_type = "application/problem+json"),
    (status = 404, description = "no such account", body = Problem, content_type = "application/problem+json"),
    (status = 409, description = "the account has no phone to send a password to", body = Problem, content_type = "application/problem+json"),
    (status = 503, description = "too many passwords are being hashed at once, or the text could not be sent (nothing changed): retry after the Retry-After seconds", body = Problem, content_type = "application/problem+json"),
))]
pub(crate) async fn reset_password<S: Store>(
    State(app): State<Arc<App<S>>>,
    me: Staff<Admins>,
    Path(id): Path<i64>,
) -> Result<(StatusCode, Json<PasswordReset>), ApiError> {
    let target = account(&app, id).await?;
    not_own(&me, &target)?;
    let phone = phone_of(&target)?;
    let password = one_time_password()?;
    let hash = app.passwords.hash(password.clone()).await?;
    // Sent first, then audited, then stored: a failed text changes nothing and records
    // nothing; nothing changes unaudited.
    let sent_to = send_password(&app, &phone, &target.username, &password).await?;
    app.audit(
        me.actor(),
        me.role.as_str(),
        "password-reset",
        None,
        format!(
            "{}: a new one-time password, sent to {}",
            target.username,
            phone.masked()
        ),
    )
    .await?;
    app.store()
        .reset_officer_password(target.id, &hash, me.id, now())
        .await?;
    let sessions_ended = end_sessions_of(&app, target.id).await?;
    let now_view = account(&app, id).await?;
    Ok((
        StatusCode::CREATED,
        Json(PasswordReset {
            officer: StaffView::of(&now_view, false),
            sent_to,
            sessions_ended,
        }),
    ))
}

/// Resets an account's second factor (admins): the TOTP secret and the recovery codes are gone,
/// and so is the password: a new one-time password, sent to the owner's phone, to be replaced
/// at the next sign-in, where the owner enrols a new factor. Whoever held the old password (written down
/// with the lost phone) cannot enrol first. Every session ends. Audited.
#[utoipa::path(delete, path = "/officers/{id}/second-factor", tag = "officers", security(("officer" = [])),
    params(("id" = i64, Path, description = "account id")), responses(
    (status = 200, description = "reset; the new one-time password was sent to the owner's phone; the owner replaces it and enrols again at the next sign-in", body = PasswordReset),
    (status = 403, description = "not an admin", body = Problem, content_type = "application/problem+json"),
    (status = 404, description = "no such account", body = Problem, content_type = "application/problem+json"),
    (status = 409, description = "it has no second factor, or no phone to send a password to", body = Problem, content_type = "application/problem+json"),
    (status = 503, description = "too many passwords are being hashed at once, or the text could not be sent (nothing changed): retry after the Retry-After seconds", body = Problem, content_type = "application/problem+json"),
))]
pub(crate) async fn reset_second_factor<S: Store>(
    State(app): State<Arc<App<S>>>,
    me: Staff<Admins>,
    Path(id): Path<i64>,
) -> Result<Json<PasswordReset>, ApiError> {
    let target = account(&app, id).await?;
    not_own(&me, &target)?;
    if !target.second_factor {
        // A refusal leaves an entry too.
        app.audit(
            me.actor(),
            me.role.as_str(),
            "second-factor-reset",
            None,
            format!("{}: refused, no second factor to reset", target.username),
        )
        .await?;
        return Err(ApiError::Refused(format!(
            "{} has no second factor to reset",
            target.username
        )));
    }
    let phone = phone_of(&target)?;
    let password = one_time_password()?;
    let hash = app.passwords.hash(password.clone()).await?;
    // Sent first, then audited, then stored: a failed text changes nothing and records
    // nothing; nothing changes unaudited.
    let sent_to = send_password(&app, &phone, &target.username, &password).await?;
    app.audit(
        me.actor(),
        me.role.as_str(),
        "second-factor-reset",
        None,
        format!(
            "{}: must enrol again, with a new one-time password sent to {}",
            target.username,
            phone.masked()
        ),
    )
    .await?;
    app.store().reset_second_factor(target.id).await?;
    app.store()
        .reset_officer_password(target.id, &hash, me.id, now())
        .await?;
    let sessions_ended = end_sessions_of(&app, target.id).await?;
    Ok(Json(PasswordReset {
        officer: StaffView::of(&account(&app, id).await?, false),
        sent_to,
        sessions_ended,
    }))
}

/// Lifts the lock that repeated wrong second-factor codes put on an account (admins); the owner still sees
/// the failures at the next sign-in. Audited.
#[utoipa::path(post, path = "/officers/{id}/unlock", tag = "officers", security(("officer" = [])),
    params(("id" = i64, Path, description = "account id")), responses(
    (status = 200, description = "unlocked", body = StaffView),
    (status = 403, description = "not an admin", body = Problem, content_type = "application/problem+json"),
    (status = 404, description = "no such account", body = Problem, content_type = "application/problem+json"),
    (status = 409, description = "not locked", body = Problem, content_type = "application/problem+json"),
))]
pub(crate) async fn unlock_account<S: Store>(
    State(app): State<Arc<App<S>>>,
    me: Staff<Admins>,
    Path(id): Path<i64>,
) -> Result<Json<StaffView>, ApiError> {
    let target = account(&app, id).await?;
    // Audited before it is done; an unlock of an account that is not locked leaves the entry too.
    app.audit(
        me.actor(),
        me.role.as_str(),
        "sign-in-unlock",
        None,
        format!("{}: unlock", target.username),
    )
    .await?;
    if !app.store().unlock_sign_in(&signin::lock_key(target.id)).await? {
        return Err(ApiError::Refused(format!("{} is not locked", target.username)));
    }
    Ok(Json(StaffView::of(&target, false)))
}

/// A staff session as listed: never its token.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionView {
    /// Names the session for ending it.
    pub id: String,
    /// When it began.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When it was last used.
    #[serde(with = "time::serde::rfc3339")]
    pub last_used_at: OffsetDateTime,
    /// When it ends at the latest.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    /// The client address it began from.
    pub client: Option<String>,
    /// It is the session this request came with.
    pub current: bool,
}

/// The id a session is listed under: derived from its token's hash, so that it names the
/// session and cannot be used as the token or to find it.
fn session_id(token_hash: &[u8; 32]) -> String {
    let mut input = b"staff-session:".to_vec();
    input.extend_from_slice(token_hash);
    data_encoding::HEXLOWER.encode(&secret_hash_bytes(&input)[..12])
}

fn secret_hash_bytes(b: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(b).into()
}

/// The live sessions of an account, as listed.
async fn sessions_of<S: Store>(
    app: &App<S>,
    id: OfficerId,
    current: &[u8; 32],
) -> Result<Vec<(SessionView, [u8; 32])>, ApiError> {
    let t = now();
    let idle = app.staff().idle();
    Ok(app
        .store()
        .staff_sessions(id)
        .await?
        .into_iter()
        .filter(|s| s.expires_at > t && s.last_used_at + idle >= t)
        .map(|s| {
            (
                SessionView {
                    id: session_id(&s.token_hash),
                    created_at: s.created_at,
                    last_used_at: s.last_used_at,
                    expires_at: s.expires_at,
                    client: s.client,
                    current: &s.token_hash == current,
                },
                s.token_hash,
            )
        })
        .collect())
}

/// Ends the session listed as `sid` of account `id`; 404 when it has none by that id.
async fn end_listed<S: Store>(
    app: &App<S>,
    id: OfficerId,
    sid: &str,
    current: &[u8; 32],
) -> Result<(), ApiError> {
    let (_, hash) = sessions_of(app, id, current)
        .await?
        .into_iter()
        .find(|(v, _)| v.id == sid)
        .ok_or_else(|| ApiError::NotFound("no such session".into()))?;
    crate::auth::end_session(app, &hash).await
}

/// The signed-in staff member's own sessions.
#[utoipa::path(get, path = "/me/sessions", tag = "officers", security(("officer" = [])), responses(
    (status = 200, description = "the live sessions, oldest first", body = Vec<SessionView>),
    (status = 401, description = "not signed in", body = Problem, content_type = "application/problem+json"),
))]
pub(crate) async fn my_sessions<S: Store>(
    State(app): State<Arc<App<S>>>,
    me: Staff<AnyStaff>,
) -> Result<Json<Vec<SessionView>>, ApiError> {
    let list = sessions_of(&app, me.id, &me.token_hash).await?;
    Ok(Json(list.into_iter().map(|(v, _)| v).collect()))
}

/// Ends one of the signed-in staff member's own sessions (a phone left somewhere). Audited.
#[utoipa::path(delete, path = "/me/sessions/{session}", tag = "officers", security(("officer" = [])),
    params(("session" = String, Path, description = "the session's id from the listing")), responses(
    (status = 204, description = "ended"),
    (status = 401, description = "not signed in", body = Problem, content_type = "application/problem+json"),
    (status = 404, description = "no such session of this account", body = Problem, content_type = "application/problem+json"),
))]
pub(crate) async fn end_my_session<S: Store>(
    State(app): State<Arc<App<S>>>,
    me: Staff<AnyStaff>,
    Path(sid): Path<String>,
) -> Result<StatusCode, ApiError> {
    end_listed(&app, me.id, &sid, &me.token_hash).await?;
    app.audit(
        me.actor(),
        me.role.as_str(),
        "session-end",
        None,
        format!("own session {sid}"),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// An account's live sessions (admins).
#[utoipa::path(get, path = "/officers/{id}/sessions", tag = "officers", security(("officer" = [])),
    params(("id" = i64, Path, description = "account id")), responses(
    (status = 200, description = "the live sessions, oldest first", body = Vec<SessionView>),
    (status = 403, description = "not an admin", body = Problem, content_type = "application/problem+json"),
    (status = 404, description = "no such account", body = Problem, content_type = "application/problem+json"),
))]
pub(crate) async fn account_sessions<S: Store>(
    State(app): State<Arc<App<S>>>,
    me: Staff<Admins>,
    Path(id): Path<i64>,
) -> Result<Json<Vec<SessionView>>, ApiError> {
    let target = account(&app, id).await?;
    let list = sessions_of(&app, target.id, &me.token_hash).await?;
    Ok(Json(list.into_iter().map(|(v, _)| v).collect()))
}

/// Ends one session of an account (admins). Audited.
#[utoipa::path(delete, path = "/officers/{id}/sessions/{session}", tag = "officers", security(("officer" = [])),
    params(("id" = i64, Path, description = "account id"), ("session" = String, Path, description = "the session's id from the listing")), responses(
    (status = 204, description = "ended"),
    (status = 403, description = "not an admin", body = Problem, content_type = "application/problem+json"),
    (status = 404, description = "no such account, or no such session of it", body = Problem, content_type = "application/problem+json"),
))]
pub(crate) async fn end_account_session<S: Store>(
    State(app): State<Arc<App<S>>>,
    me: Staff<Admins>,
    Path((id, sid)): Path<(i64, String)>,
) -> Result<StatusCode, ApiError> {
    let target = account(&app, id).await?;
    end_listed(&app, target.id, &sid, &me.token_hash).await?;
    app.audit(
        me.actor(),
        me.role.as_str(),
        "session-end",
        None,
        format!("session {sid} of {}", target.username),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// How many sessions ended.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionsEnded {
    /// How many.
    pub ended: u64,
}

/// Ends every session of an account (admins), on this node at once. Audited.
#[utoipa::path(delete, path = "/officers/{id}/sessions", tag = "officers", security(("officer" = [])),
    params(("id" = i64, Path, description = "account id")), responses(
    (status = 200, description = "ended", body = SessionsEnded),
    (status = 403, description = "not an admin", body = Problem, content_type = "application/problem+json"),
    (status = 404, description = "no such account", body = Problem, content_type = "application/problem+json"),
))]
pub(crate) async fn end_account_sessions<S: Store>(
    State(app): State<Arc<App<S>>>,
    me: Staff<Admins>,
    Path(id): Path<i64>,
) -> Result<Json<SessionsEnded>, ApiError> {
    let target = account(&app, id).await?;
    app.audit(
        me.actor(),
        me.role.as_str(),
        "session-end",
        None,
        format!("every session of {}", target.username),
    )
    .await?;
    let ended = end_sessions_of(&app, target.id).await?;
    Ok(Json(SessionsEnded { ended }))
}

/// Gives a scanner device a new key (admins), shown once; the old key is refused at once on
/// this server (within the cache's 30 seconds on any other). Audited.
#[utoipa::path(post, path = "/venues/{id}/devices/{device}/key", tag = "venues", security(("officer" = [])),
    params(("id" = i64, Path, description = "venue id"), ("device" = i64, Path, description = "device id")), responses(
    (status = 201, description = "the device and its new key, shown once", body = DeviceCreated),
    (status = 403, description = "not an admin", body = Problem, content_type = "application/problem+json"),
    (status = 404, description = "no such device at this venue", body = Problem, content_type = "application/problem+json"),
    (status = 409, description = "the device is revoked", body = Problem, content_type = "application/problem+json"),
))]
pub(crate) async fn rotate_device_key<S: Store>(
    State(app): State<Arc<App<S>>>,
    me: Staff<Admins>,
    Path((venue, device)): Path<(i64, i64)>,
) -> Result<(StatusCode, Json<DeviceCreated>), ApiError> {
    let found = app
        .store()
        .devices(Some(VenueId(venue)))
        .await?
        .into_iter()
        .find(|d| d.id == DeviceId(device))
        .ok_or_else(|| ApiError::NotFound(format!("venue {venue} has no device {device}")))?;
    app.audit(
        me.actor(),
        me.role.as_str(),
        "device-key-rotate",
        None,
        format!("device {device} ({}) of venue {venue}", found.label),
    )
    .await?;
    let key = new_secret(DEVICE_KEY_PREFIX)?;
    let (old, rotated) = app
        .store()
        .rotate_device_key(found.id, &secret_hash(&key))
        .await?;
    app.auth.forget_device(&old);
    Ok((
        StatusCode::CREATED,
        Json(DeviceCreated {
            device: DeviceView::from(rotated),
            key,
        }),
    ))
}

/// An admin does not reset their own account: a reset is what another admin does for someone
/// (one's own password is changed at `POST /api/v1/admin/me/password`), and a reset of one's own
/// would clear the record of who last held the account's credentials.
fn not_own(me: &Staff<Admins>, target: &Officer) -> Result<(), ApiError> {
    if me.id == target.id {
        return Err(ApiError::Refused(
            "an admin cannot reset their own account; another admin can, and your own password is changed at POST /api/v1/admin/me/password".into(),
        ));
    }
    Ok(())
}
