//! Staff sign-in and accounts: officers, admins and auditors.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use healthcode_store::{Principal, Role, Store, StoreError};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::auth::{Admins, AnyStaff, PasswordHasher, Staff, one_time_password, start_session};
use crate::problem::{ApiError, Json, Problem};

use crate::{App, now};

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
    (status = 503, description = "too many sign-ins are being checked at once: retry after the Retry-After seconds", body = Problem, content_type = "application/problem+json"),
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
    let ok = app.passwords.verify(req.password.clone(), phc).await?;
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
    passwords: &PasswordHasher,
    username: &str,
    role: Role,
) -> Result<(StaffView, String), ApiError> {
    check_username(username)?;
    let password = one_time_password()?;
    let hash = passwords.hash(password.clone()).await?;
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
    let (officer, one_time_password) =
        create_account(app.store(), &app.passwords, req.username.trim(), role).await?;
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

/// A staff member's change of their own password.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordChange {
    /// The password in use now.
    pub current_password: String,
    /// The new one: 12 to 128 characters, hard to guess.
    pub new_password: String,
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
    let officer = app
        .store
        .officer(me.id)
        .await?
        .ok_or_else(|| ApiError::Unauthorized("this account no longer exists".into()))?;
    let right = app
        .passwords
        .verify(req.current_password.clone(), officer.password_hash.clone())
        .await?;
    if !right {
        // Someone holding a copied session must not guess the password through it: a wrong
        // guess ends the session, and a new one needs the password.
        app.auth.forget_session(&me.token_hash);
        app.store.revoke_session(&me.token_hash).await?;
        return Err(ApiError::Unauthorized(
            "the current password is wrong; this session has ended: sign in again".into(),
        ));
    }
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
