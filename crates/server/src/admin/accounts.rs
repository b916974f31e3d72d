//! Staff sign-in and accounts: officers, admins and auditors.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use healthcode_store::{Act, Principal, Role, Store, StoreError};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::auth::{
    Admins, AnyStaff, Enrolling, PasswordHasher, Staff, one_time_password, start_staff_session,
};
use crate::client::ClientAddr;
use crate::problem::{ApiError, Json, Problem};
use crate::signin::{self, SecondFactorRule};

use super::proposals::{ProposalView, propose};
use super::second_factor;

use crate::App;

/// Officer sign-in.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StaffSignIn {
    /// Username.
    pub username: String,
    /// Password.
    pub password: String,
    /// Required when the password was issued by someone else (first sign-in, or reset by an
    /// admin): the new password, at least 12 characters and hard to guess.
    #[serde(default)]
    pub new_password: Option<String>,
    /// The six digits the authenticator app shows, once the account has a second factor.
    #[serde(default)]
    pub code: Option<String>,
    /// Instead of `code`, when the app is lost: one of the recovery codes (each works once).
    #[serde(default)]
    pub recovery_code: Option<String>,
}

/// An officer's session.
#[derive(Debug, Serialize, ToSchema)]
pub struct StaffSession {
    /// Send as `Authorization: Bearer <token>`. Shown once.
    pub token: String,
    /// The account's role.
    pub role: String,
    /// When it ends at the latest (it ends sooner when unused for the configured idle time).
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    /// `enrolled`; `enrol` (this session can do nothing but enrol one: `POST /me/second-factor`);
    /// or `none` (the configuration makes it optional and none is enrolled).
    pub second_factor: String,
    /// Failed sign-ins as this account since its last sign-in: if they were not you, tell an
    /// admin.
    pub failed_sign_ins: u32,
    /// When the latest of them was.
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_failed_sign_in_at: Option<OffsetDateTime>,
    /// After signing in with a recovery code: how many are left.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recovery_codes_left: Option<u32>,
}

/// The hash that an unknown username's password is checked against, so that the answer takes as
/// long as for a known one (argon2id with the parameters new hashes get).
const NOBODY: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$2Wc9Xp0b2cq3a7w6Vb8R1jYjM6j0rJ4o8m7cF8n5dHk";

/// Signs an officer in. A one-time password (from `healthcode admin create` or an admin) must
/// be replaced in the same request with `new_password`. An account with a second factor sends
/// `code` (or `recovery_code`) with every sign-in. Failed sign-ins are counted per username and
/// per client: after a few, each attempt must wait (429, growing up to `max_delay_ms`). Repeated
/// wrong second-factor codes sent with the right password lock the account until an admin
/// unlocks it (403); wrong passwords never lock. An unknown username, a wrong password and a wrong or used
/// code get the same answer.
#[utoipa::path(post, path = "/sessions", tag = "officers", request_body = StaffSignIn, responses(
    (status = 201, description = "signed in", body = StaffSession),
    (status = 401, description = "wrong username, password or code", body = Problem, content_type = "application/problem+json"),
    (status = 403, description = "the password must be changed (send new_password), the account is locked after repeated wrong second-factor codes, or disabled", body = Problem, content_type = "application/problem+json"),
    (status = 422, description = "the new password is too easy to guess", body = Problem, content_type = "application/problem+json"),
    (status = 429, description = "too many failed sign-ins: retry after the Retry-After seconds", body = Problem, content_type = "application/problem+json"),
    (status = 503, description = "too many sign-ins are being checked at once: retry after the Retry-After seconds", body = Problem, content_type = "application/problem+json"),
))]
pub(crate) async fn sign_in<S: Store>(
    State(app): State<Arc<App<S>>>,
    client: ClientAddr,
    headers: axum::http::HeaderMap,
    Json(req): Json<StaffSignIn>,
) -> Result<impl IntoResponse, ApiError> {
    let wrong = || ApiError::Unauthorized("wrong username, password or code".into());
    let user = signin::user_key(&req.username);
    let from = signin::client_key(client);
    let _place = app.sign_ins.enter(&user, &from)?;
    signin::remembered_delay(&app, &user, &from)?;
    let officer = app.store.officer_by_username(req.username.trim()).await?;
    let lock = officer.as_ref().map(|o| signin::lock_key(o.id));
    signin::gate(&app, &user, &from, lock.as_deref()).await?;
    // Hash even for an unknown name, so that timing does not tell which names exist.
    let phc = officer
        .as_ref()
        .map_or_else(|| NOBODY.to_owned(), |o| o.password_hash.clone());
    let ok = app.passwords.verify(req.password.clone(), phc).await?;
    let (officer, given) = match officer {
        Some(o) if ok => {
            let given = if o.second_factor {
                match second_factor::check(&app, &o, req.code.as_deref(), req.recovery_code.as_deref())
                    .await?
                {
                    Some(g) => Some(g),
                    None => {
                        // The password was right: a strong sign it is known. These lock.
                        signin::code_failed(&app, &user, &from, &o).await?;
                        return Err(wrong());
                    }
                }
            } else {
                None
            };
            (o, given)
        }
        _ => {
            signin::failed(&app, &user, &from).await?;
            return Err(wrong());
        }
    };
    if officer.disabled_at.is_some() {
        return Err(ApiError::Forbidden(
            "this account is disabled; ask an admin".into(),
        ));
    }
    if officer.must_change_password {
        let Some(new) = req.new_password.as_deref() else {
            return Err(ApiError::Forbidden(
                "this password was issued to you and must be replaced: send new_password with it".into(),
            ));
        };
        let known = vec![
            officer.username.clone(),
            officer.role.as_str().to_owned(),
            "healthcode".into(),
        ];
        app.passwords.judge(new.to_owned(), known).await?;
        if new == req.password {
            return Err(ApiError::InvalidField(
                "new_password must differ from the issued one".into(),
            ));
        }
        let hash = app.passwords.hash(new.to_owned()).await?;
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
    let failures = app.store.sign_in_succeeded(&user).await?;
    app.store.sign_in_succeeded(&signin::lock_key(officer.id)).await?;
    let (token, expires_at) =
        start_staff_session(&app, officer.id, &client.0.to_string(), given.is_some()).await?;
    let second_factor = if officer.second_factor {
        "enrolled"
    } else if app.staff().second_factor == SecondFactorRule::Required {
        "enrol"
    } else {
        "none"
    };
    Ok((
        StatusCode::CREATED,
        crate::auth::web_session(&headers, crate::auth::STAFF_COOKIE, &token, expires_at),
        Json(StaffSession {
            token,
            role: officer.role.as_str().into(),
            expires_at,
            second_factor: second_factor.into(),
            failed_sign_ins: failures.as_ref().map_or(0, |f| f.unseen),
            last_failed_sign_in_at: failures.map(|f| f.last_failure_at),
            recovery_codes_left: match given {
                Some(second_factor::Given::Recovery(left)) => Some(left),
                _ => None,
            },
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
    /// Disabled by an admin: cannot sign in.
    pub disabled: bool,
    /// Has a second factor enrolled.
    pub second_factor: bool,
    /// Locked after repeated failed sign-ins, until an admin unlocks it.
    pub locked: bool,
    /// The phone its one-time passwords are sent to, masked; `null` until one is recorded.
    pub phone: Option<String>,
    /// Whether its owner has proven that phone (a reset is sent only to a proven one).
    pub phone_proven: bool,
}

impl StaffView {
    /// How an account is shown.
    pub fn of(o: &healthcode_store::Officer, locked: bool) -> StaffView {
        StaffView {
            id: o.id.0,
            username: o.username.clone(),
            role: o.role.as_str().into(),
            disabled: o.disabled_at.is_some(),
            second_factor: o.second_factor,
            locked,
            phone: o
                .phone
                .as_deref()
                .and_then(|p| healthcode_domain::Phone::parse(p).ok())
                .map(|p| p.masked()),
            phone_proven: o.phone_proven_at.is_some(),
        }
    }
}

/// The signed-in account, as its owner sees it.
#[derive(Debug, Serialize, ToSchema)]
pub struct MeView {
    /// The account.
    #[serde(flatten)]
    pub account: StaffView,
    /// A second factor must be enrolled before anything else (`POST /me/second-factor`).
    pub must_enrol: bool,
    /// Recovery codes not yet used.
    pub recovery_codes_left: u32,
    /// When a recovery code was last used to sign in: if that was not you, tell an admin.
    #[serde(with = "time::serde::rfc3339::option")]
    pub recovery_code_last_used_at: Option<OffsetDateTime>,
}

/// The signed-in account (also before its second factor is enrolled).
#[utoipa::path(get, path = "/me", tag = "officers", security(("officer" = [])), responses(
    (status = 200, description = "who is signed in", body = MeView),
    (status = 401, description = "not signed in", body = Problem, content_type = "application/problem+json"),
))]
pub(crate) async fn whoami<S: Store>(
    State(app): State<Arc<App<S>>>,
    me: Staff<Enrolling>,
) -> Result<Json<MeView>, ApiError> {
    let o = app
        .store
        .officer(me.id)
        .await?
        .ok_or_else(|| ApiError::Unauthorized("this account no longer exists".into()))?;
    let sf = app.store.second_factor(me.id).await?;
    Ok(Json(MeView {
        must_enrol: !o.second_factor && app.staff().second_factor == SecondFactorRule::Required,
        account: StaffView::of(&o, false),
        recovery_codes_left: sf.as_ref().map_or(0, |f| f.recovery_left),
        recovery_code_last_used_at: sf.and_then(|f| f.recovery_last_used),
    }))
}

/// A new account.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewOfficer {
    /// Username: 3-64 letters, digits, `.`, `-`, `_`.
    pub username: String,
    /// officer, admin or auditor.
    pub role: String,
    /// The owner's phone, in international form (`+8613900139000`): the approval texts the
    /// first half of the account's one-time password there. No other staff account may have it.
    pub phone: String,
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
    passwords: &PasswordHasher,
    username: &str,
    role: Role,
    at: OffsetDateTime,
) -> Result<(StaffView, String), ApiError> {
    check_username(username)?;
    let password = one_time_password()?;
    let hash = passwords.hash(password.clone()).await?;
    let o = store
        .insert_officer(username, role, &hash, true, at)
        .await
        .map_err(|e| match e {
            StoreError::Conflict(_) => ApiError::Conflict(format!("the username {username} is taken")),
            other => other.into(),
        })?;
    // Failures counted against the name before it existed (someone may have guessed at names
    // an authority is likely to give) are not the new account's: it starts unlocked.
    store.sign_in_succeeded(&signin::user_key(username)).await?;
    Ok((StaffView::of(&o, false), password))
}

/// A proposed account. It exists once a second admin approves the proposal; its one-time
/// password is made then, half texted to its owner's phone, half handed over by the approver.
#[derive(Debug, Serialize, ToSchema)]
pub struct AccountProposed {
    /// The proposal a second admin approves (`POST /proposals/{id}/approve`).
    pub proposal: ProposalView,
    /// The username.
    pub username: String,
    /// The role.
    pub role: String,
    /// The owner's phone, masked.
    pub phone: String,
}

/// Proposes a staff account (admins), with its owner's phone; it exists once a second, eligible
/// admin approves, and the approval texts the first half of its one-time password to that phone
/// and gives the approver the second half to hand over, so neither admin alone holds the new
/// account's credentials. The command line (`healthcode admin create`) stays the
/// bootstrap and break-glass path.
#[utoipa::path(post, path = "/officers", tag = "officers", security(("officer" = [])), request_body = NewOfficer, responses(
    (status = 202, description = "proposed, awaiting a second admin", body = AccountProposed),
    (status = 409, description = "username taken, or another staff account has the phone", body = Problem, content_type = "application/problem+json"),
    (status = 422, description = "a bad username or role, or not a phone texts can be sent to", body = Problem, content_type = "application/problem+json"),
    (status = 503, description = "no SMS gateway is configured", body = Problem, content_type = "application/problem+json"),
))]
pub(crate) async fn create_officer<S: Store>(
    State(app): State<Arc<App<S>>>,
    me: Staff<Admins>,
    Json(req): Json<NewOfficer>,
) -> Result<impl IntoResponse, ApiError> {
    let role = Role::parse(req.role.trim())
        .ok_or_else(|| ApiError::InvalidField("role: officer, admin or auditor".into()))?;
    let username = req.username.trim();
    check_username(username)?;
    let phone = super::phones::staff_phone(&app, &req.phone)?;
    if app.store().officer_by_username(username).await?.is_some() {
        return Err(ApiError::Conflict(format!("the username {username} is taken")));
    }
    super::phones::not_anothers(&app, &phone, None).await?;
    let act = Act::AccountCreate {
        username: username.into(),
        role,
        phone: Some(phone.as_str().into()),
    };
    let what = format!(
        "create {username} as {}, password to {}",
        role.as_str(),
        phone.masked()
    );
    let proposal = propose(&app, &me, act, what).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(AccountProposed {
            proposal,
            username: username.into(),
            role: role.as_str().into(),
            phone: phone.masked(),
        }),
    ))
}

/// Staff accounts (admins), with whether each is disabled, locked, and has a second factor.
#[utoipa::path(get, path = "/officers", tag = "officers", security(("officer" = [])), responses(
    (status = 200, description = "accounts", body = Vec<StaffView>),
    (status = 401, description = "not signed in", body = Problem, content_type = "application/problem+json"),
    (status = 403, description = "not an admin", body = Problem, content_type = "application/problem+json"),
))]
pub(crate) async fn list_officers<S: Store>(
    State(app): State<Arc<App<S>>>,
    _me: Staff<Admins>,
) -> Result<Json<Vec<StaffView>>, ApiError> {
    let officers = app.store.officers().await?;
    let keys: Vec<String> = officers.iter().map(|o| signin::lock_key(o.id)).collect();
    let locked: std::collections::HashSet<String> = app
        .store
        .sign_in_failures(&keys)
        .await?
        .into_iter()
        .filter(|f| f.locked_at.is_some())
        .map(|f| f.key)
        .collect();
    Ok(Json(
        officers
            .iter()
            .map(|o| StaffView::of(o, locked.contains(&signin::lock_key(o.id))))
            .collect(),
    ))
}

/// A staff member's change of their own password.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordChange {
    /// The password in use now.
    pub current_password: String,
    /// The new one: 12 to 128 characters, hard to guess.
    pub new_password: String,
}

/// The signed-in staff member's account, once `password` is found to be its password. Someone
/// holding a copied session must not guess the password through it: a wrong one ends the
/// session that sent it, and a new session needs the password.
pub(crate) async fn own_account_with_password<S: Store>(
    app: &App<S>,
    me: &Staff<AnyStaff>,
    password: &str,
) -> Result<healthcode_store::Officer, ApiError> {
    let officer = app
        .store
        .officer(me.id)
        .await?
        .ok_or_else(|| ApiError::Unauthorized("this account no longer exists".into()))?;
    let right = app
        .passwords
        .verify(password.to_owned(), officer.password_hash.clone())
        .await?;
    if !right {
        app.auth.forget_session(&me.token_hash);
        app.store.revoke_session(&me.token_hash).await?;
        return Err(ApiError::Unauthorized(
            "the current password is wrong; this session has ended: sign in again".into(),
        ));
    }
    Ok(officer)
}

/// Changes the signed-in staff member's own password. The current one is checked first, in turn
/// with every other password check; a wrong one ends the session that sent it, so a copied
/// session cannot be used to guess it. The new one is judged as at a first sign-in. Every session
/// of the account then ends, this one too, so that a session someone else holds does not
/// outlive the change: sign in again with the new password. Audited.
#[utoipa::path(post, path = "/me/password", tag = "officers", security(("officer" = [])), request_body = PasswordChange, responses(
    (status = 204, description = "changed; every session of the account has ended"),
    (status = 401, description = "the current password is wrong (the session has ended), or no session", body = Problem, content_type = "application/problem+json"),
    (status = 422, description = "the new password is too easy to guess, or the same as the current one", body = Problem, content_type = "application/problem+json"),
    (status = 503, description = "too many sign-ins are being checked at once: retry after the Retry-After seconds", body = Problem, content_type = "application/problem+json"),
))]
pub(crate) async fn change_password<S: Store>(
    State(app): State<Arc<App<S>>>,
    me: Staff<AnyStaff>,
    Json(req): Json<PasswordChange>,
) -> Result<StatusCode, ApiError> {
    let officer = own_account_with_password(&app, &me, &req.current_password).await?;
    if req.new_password == req.current_password {
        return Err(ApiError::InvalidField(
            "new_password must differ from the current one".into(),
        ));
    }
    let known = vec![
        officer.username.clone(),
        officer.role.as_str().to_owned(),
        "healthcode".into(),
    ];
    app.passwords.judge(req.new_password.clone(), known).await?;
    let hash = app.passwords.hash(req.new_password).await?;
    app.store.set_officer_password(officer.id, &hash, false).await?;
    let principal = Principal::Officer(officer.id);
    let ended = app.store.revoke_sessions_of(&principal).await?;
    app.auth.forget_sessions_of(&principal);
    app.audit(
        me.actor(),
        me.role.as_str(),
        "password-change",
        None,
        format!("own change; {ended} sessions ended"),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use argon2::password_hash::PasswordHash;

    /// The stand-in hash is read and checked like a real one, with the parameters new hashes
    /// get: otherwise an unknown name would be answered sooner than a wrong password.
    #[test]
    fn the_stand_in_hash_costs_what_a_real_one_does() {
        let stand_in = PasswordHash::new(super::NOBODY).unwrap();
        let real_phc = crate::auth::hash_password("a long and unusual passphrase").unwrap();
        let real = PasswordHash::new(&real_phc).unwrap();
        assert_eq!(stand_in.algorithm, real.algorithm);
        assert_eq!(stand_in.params, real.params);
        assert_eq!(stand_in.hash.unwrap().len(), real.hash.unwrap().len());
        assert!(!crate::auth::verify_password("anything", super::NOBODY));
    }
}
