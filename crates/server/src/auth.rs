//! Who is asking: holders and officers by session token, venue devices by device key. Tokens and
//! keys are random, shown once, and stored only as SHA-256 hashes. Officer passwords are argon2id.
//!
//! Authorization is by type: a handler that takes [`HolderAuth`] can only be reached with a holder
//! session, one that takes [`Staff<R>`] only by an officer whose role `R` admits, one that takes
//! [`DeviceAuth`] only by a device key (bound to its venue).

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex};
use std::time::{Duration as StdDuration, Instant};

use axum::extract::FromRequestParts;
use axum::http::{header, request::Parts};
use healthcode_domain::{HolderId, OfficerId, Venue};
use healthcode_store::{Device, Principal, Role, Session, Store};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use tokio::sync::Semaphore;

use crate::problem::ApiError;
use crate::{App, now};

/// Prefix of holder and officer session tokens.
pub const SESSION_PREFIX: &str = "hcs_";
/// Prefix of device keys.
pub const DEVICE_KEY_PREFIX: &str = "hcd_";

/// A new random secret: `prefix` + 32 random bytes in base64url.
pub fn new_secret(prefix: &str) -> Result<String, ApiError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| ApiError::internal("no randomness", e))?;
    Ok(format!(
        "{prefix}{}",
        data_encoding::BASE64URL_NOPAD.encode(&bytes)
    ))
}

/// The stored hash of a secret.
pub fn secret_hash(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// Hashes a password with argon2id and a random salt (PHC string).
pub fn hash_password(password: &str) -> Result<String, ApiError> {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| ApiError::internal("no randomness", e))?;
    let salt = SaltString::encode_b64(&salt)
        .map_err(|e| ApiError::internal("cannot encode a salt", e.to_string()))?;
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| ApiError::internal("password hashing failed", e.to_string()))
}

/// Password hashing, bounded: at most `at_once` argon2id computations run together (each holds
/// about 19 MiB for tens of milliseconds), so a flood of bogus sign-ins cannot take the
/// machine's memory or starve the other requests of CPU. A check that cannot start within
/// `wait` is refused with 503 and Retry-After before any hashing is done, and one whose client
/// has gone while it waited never starts. A started hash runs to its end (tens of milliseconds)
/// holding its place.
///
/// The hashes run on `at_once` threads of their own, not on the runtime's blocking pool: the
/// allocator keeps the freed 19 MiB in the arena of the thread that used it, so hashes spread
/// over many pool threads would keep many such blocks for good (a flood grew the server by
/// 300 MB that way); on a few threads of its own the memory stays a few blocks.
#[derive(Debug)]
pub struct PasswordHasher {
    permits: Arc<Semaphore>,
    wait: StdDuration,
    jobs: std::sync::mpsc::SyncSender<HashJob>,
}

/// A hash to compute on one of the hasher's threads.
type HashJob = Box<dyn FnOnce() + Send + 'static>;

impl Default for PasswordHasher {
    /// Half the cores, waiting at most a second: for the command line and the demo.
    fn default() -> PasswordHasher {
        PasswordHasher::new(0, StdDuration::from_secs(1))
    }
}

impl PasswordHasher {
    /// At most `at_once` at a time (0: half the cores, at least one, so that a flood of
    /// sign-ins leaves the other half to everyone else); a check waits at most `wait` to start.
    pub fn new(at_once: usize, wait: StdDuration) -> PasswordHasher {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let at_once = if at_once == 0 { (cores / 2).max(1) } else { at_once };
        // A job is sent only by a holder of a permit, so the queue never holds more than this.
        let (jobs, queue) = std::sync::mpsc::sync_channel::<HashJob>(at_once);
        let queue = Arc::new(Mutex::new(queue));
        for i in 0..at_once {
            let queue = queue.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("password-hash-{i}"))
                .spawn(move || {
                    loop {
                        // The lock is held only while waiting for the next job; the threads end
                        // when the hasher (the only sender) is dropped.
                        let job = match queue.lock() {
                            Ok(q) => q.recv(),
                            Err(_) => return,
                        };
                        match job {
                            // A job that panicked drops its permit and its answer (the caller
                            // gets a 500); the thread stays for the next.
                            Ok(job) => {
                                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                            }
                            Err(_) => return,
                        }
                    }
                });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start a password hashing thread");
            }
        }
        PasswordHasher {
            permits: Arc::new(Semaphore::new(at_once)),
            wait,
            jobs,
        }
    }

    async fn run<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> Result<T, ApiError> {
        let permit = tokio::time::timeout(self.wait, self.permits.clone().acquire_owned())
            .await
            .map_err(|_| {
                ApiError::Unavailable("too many sign-ins are being checked; retry shortly".into(), 1)
            })?
            .map_err(|e| ApiError::internal("the password checks are closed", e))?;
        let (done, result) = tokio::sync::oneshot::channel();
        self.jobs
            .try_send(Box::new(move || {
                let _held = permit;
                let _ = done.send(work());
            }))
            .map_err(|e| ApiError::internal("the password checks are closed", e.to_string()))?;
        result
            .await
            .map_err(|e| ApiError::internal("password hashing stopped", e))
    }

    /// Hashes a new password.
    pub async fn hash(&self, password: String) -> Result<String, ApiError> {
        self.run(move || hash_password(&password)).await?
    }

    /// Checks a password against its stored hash.
    pub async fn verify(&self, password: String, phc: String) -> Result<bool, ApiError> {
        self.run(move || verify_password(&password, &phc)).await
    }

    /// Judges a new password ([`check_new_password`]) in turn with the hashes: the estimator's
    /// work on a crafted input is bounded like theirs.
    pub async fn judge(&self, password: String, known: Vec<String>) -> Result<(), ApiError> {
        self.run(move || {
            let known: Vec<&str> = known.iter().map(String::as_str).collect();
            check_new_password(&password, &known)
        })
        .await?
    }
}

/// Checks a password against its stored hash.
pub fn verify_password(password: &str, phc: &str) -> bool {
    use argon2::password_hash::{PasswordHash, PasswordVerifier};
    PasswordHash::new(phc)
        .map(|h| {
            argon2::Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

/// Parses a role name.
pub fn parse_role(s: &str) -> Option<Role> {
    Role::parse(s)
}

/// A password officers are given (and must change at first sign-in): 16 characters from an
/// alphabet without look-alikes.
pub fn one_time_password() -> Result<String, ApiError> {
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyzACDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| ApiError::internal("no randomness", e))?;
    // 256 is not a multiple of the alphabet's size; the bias (< 1 bit over 16 characters) is
    // irrelevant for a password that is changed at first use.
    Ok(bytes
        .iter()
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect())
}

/// Checks a password a staff member chose: 12 to 128 characters, and hard to guess by the zxcvbn
/// estimator (score 3 of 4 or better, about 10^8 guesses and up), counting the account's own
/// username and role as known to an attacker. The refusal says why, in the estimator's words.
pub fn check_new_password(p: &str, known: &[&str]) -> Result<(), ApiError> {
    let length = p.chars().count();
    if length < 12 {
        return Err(ApiError::InvalidField(
            "new_password must have at least 12 characters".into(),
        ));
    }
    if length > 128 {
        return Err(ApiError::InvalidField(
            "new_password must have at most 128 characters".into(),
        ));
    }
    let estimate = zxcvbn::zxcvbn(p, known);
    if estimate.score() < zxcvbn::Score::Three {
        let why = estimate
            .feedback()
            .and_then(|f| f.warning())
            .map(|w| format!(" ({w})"))
            .unwrap_or_default();
        return Err(ApiError::InvalidField(format!(
            "new_password is too easy to guess{why}: use a longer phrase of unrelated words"
        )));
    }
    Ok(())
}

/// How long a cached session or device is trusted before the store is asked again. A session
/// revoked on this node is dropped at once; one revoked through another node stops working here
/// within this time.
pub const CACHE_TTL: StdDuration = StdDuration::from_secs(30);
const CACHE_LIMIT: usize = 1_000_000;

/// A device and its venue.
pub type DeviceEntry = Arc<(Device, Venue)>;

/// Sessions and devices looked up recently, so that a code-open or a scan does not go to the
/// store each time.
#[derive(Debug, Default)]
pub struct AuthCache {
    sessions: Mutex<HashMap<[u8; 32], (Session, Instant)>>,
    devices: Mutex<HashMap<[u8; 32], (DeviceEntry, Instant)>>,
    /// Device keys revoked through this node: never cached again, even by a request that read
    /// the device just before the revocation committed.
    revoked: Mutex<std::collections::HashSet<[u8; 32]>>,
}

impl AuthCache {
    fn session(&self, hash: &[u8; 32]) -> Option<Session> {
        let map = self.sessions.lock().ok()?;
        let (s, at) = map.get(hash)?;
        (at.elapsed() < CACHE_TTL).then(|| s.clone())
    }

    fn put_session(&self, hash: [u8; 32], s: Session) {
        if let Ok(mut map) = self.sessions.lock() {
            if map.len() >= CACHE_LIMIT {
                map.retain(|_, (_, at)| at.elapsed() < CACHE_TTL);
                if map.len() >= CACHE_LIMIT {
                    map.clear();
                }
            }
            map.insert(hash, (s, Instant::now()));
        }
    }

    /// Forgets a session (after revocation).
    pub fn forget_session(&self, hash: &[u8; 32]) {
        if let Ok(mut map) = self.sessions.lock() {
            map.remove(hash);
        }
    }

    /// Forgets every session of a principal.
    pub fn forget_sessions_of(&self, p: &Principal) {
        if let Ok(mut map) = self.sessions.lock() {
            map.retain(|_, (s, _)| &s.principal != p);
        }
    }

    /// Forgets a device whose key is revoked, for good.
    pub fn forget_device(&self, hash: &[u8; 32]) {
        if let Ok(mut revoked) = self.revoked.lock() {
            revoked.insert(*hash);
        }
        if let Ok(mut map) = self.devices.lock() {
            map.remove(hash);
        }
    }

    fn is_revoked(&self, hash: &[u8; 32]) -> bool {
        self.revoked.lock().map_or(true, |r| r.contains(hash))
    }

    fn device(&self, hash: &[u8; 32]) -> Option<Arc<(Device, Venue)>> {
        let map = self.devices.lock().ok()?;
        let (d, at) = map.get(hash)?;
        (at.elapsed() < CACHE_TTL).then(|| d.clone())
    }

    fn put_device(&self, hash: [u8; 32], d: Arc<(Device, Venue)>) {
        if self.is_revoked(&hash) {
            return;
        }
        if let Ok(mut map) = self.devices.lock() {
            if map.len() >= CACHE_LIMIT {
                map.clear();
            }
            map.insert(hash, (d, Instant::now()));
        }
    }
}

fn bearer(parts: &Parts) -> Result<&str, ApiError> {
    if !parts.headers.contains_key(header::AUTHORIZATION) {
        return Err(ApiError::Unauthorized(
            "sign in first: send Authorization: Bearer <token>".into(),
        ));
    }
    bearer_in(&parts.headers)
        .ok_or_else(|| ApiError::Unauthorized("the Authorization header must be: Bearer <token>".into()))
}

/// The token of an `Authorization: Bearer <token>` header, trimmed, if the request has one.
pub fn bearer_in(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
}

/// The browser cookie that carries a holder's session. The `__Host-` prefix makes browsers refuse
/// it unless it is Secure, for the whole host and set by this host: a neighbouring subdomain
/// cannot plant one.
pub const HOLDER_COOKIE: &str = "__Host-hc_session";
/// The browser cookie that carries an officer's session.
pub const STAFF_COOKIE: &str = "__Host-hc_staff";
/// The header the web pages send with every request that changes something. A cross-site form
/// cannot send it, and a cross-site script cannot without a CORS preflight, which this server
/// never grants: with SameSite=Strict cookies, this is the defence against request forgery.
pub const WEB_HEADER: &str = "x-healthcode-web";

/// The value of cookie `name`, if the request carries it.
pub fn cookie<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    cookie_in(&parts.headers, name)
}

/// The value of cookie `name` among these headers.
pub fn cookie_in<'a>(headers: &'a axum::http::HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

/// Whether the request came from the healthcode web pages (and asks for a cookie session).
pub fn from_web(headers: &axum::http::HeaderMap) -> bool {
    headers.get(WEB_HEADER).is_some_and(|v| v.as_bytes() == b"1")
}

/// A `Set-Cookie` value that stores a session token in the browser: HttpOnly (no script reads
/// it), SameSite=Strict (no other site's page sends it), Secure (browsers treat localhost as
/// secure, so development over plain HTTP on localhost works).
pub fn session_cookie(name: &str, token: &str, expires_at: OffsetDateTime) -> String {
    let max_age = (expires_at - now()).whole_seconds().max(0);
    format!("{name}={token}; Path=/; Max-Age={max_age}; HttpOnly; Secure; SameSite=Strict")
}

/// For a sign-in from the web pages, the header that keeps the new session in cookie `name`;
/// for any other client, nothing (it keeps the token from the answer).
pub fn web_session(
    headers: &axum::http::HeaderMap,
    name: &str,
    token: &str,
    expires_at: OffsetDateTime,
) -> axum::response::AppendHeaders<Option<(header::HeaderName, String)>> {
    axum::response::AppendHeaders(
        from_web(headers).then(|| (header::SET_COOKIE, session_cookie(name, token, expires_at))),
    )
}

/// A `Set-Cookie` value that removes a session cookie.
pub fn clear_cookie(name: &str) -> String {
    format!("{name}=; Path=/; Max-Age=0; HttpOnly; Secure; SameSite=Strict")
}

/// The token presented with a request: the Authorization header, or else the browser's session
/// cookie `cookie_name`. A cookie is accepted for a change (any method but GET and HEAD) only
/// with the [`WEB_HEADER`].
fn presented_token<'a>(parts: &'a Parts, cookie_name: &str) -> Result<&'a str, ApiError> {
    if parts.headers.contains_key(header::AUTHORIZATION) {
        return bearer(parts);
    }
    let token = cookie(parts, cookie_name)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ApiError::Unauthorized("sign in first: send Authorization: Bearer <token>".into()))?;
    let safe = parts.method == axum::http::Method::GET || parts.method == axum::http::Method::HEAD;
    if !safe && !from_web(&parts.headers) {
        return Err(ApiError::Forbidden(format!(
            "a change made with a browser session needs the {WEB_HEADER} header"
        )));
    }
    Ok(token)
}

/// The session presented with a request, checked and not expired, with its token hash.
async fn current_session<S: Store>(
    parts: &Parts,
    app: &App<S>,
    cookie_name: &str,
) -> Result<(Session, [u8; 32]), ApiError> {
    let token = presented_token(parts, cookie_name)?;
    session_of_token(app, token).await
}

/// The live session a token names, with the token's hash.
pub async fn session_of_token<S: Store>(app: &App<S>, token: &str) -> Result<(Session, [u8; 32]), ApiError> {
    if !token.starts_with(SESSION_PREFIX) {
        return Err(ApiError::Unauthorized("that is not a session token".into()));
    }
    let hash = secret_hash(token);
    let session = match app.auth.session(&hash) {
        Some(s) => s,
        None => {
            let s = app
                .store
                .session(&hash)
                .await?
                .ok_or_else(|| ApiError::Unauthorized("the session is unknown or has ended".into()))?;
            app.auth.put_session(hash, s.clone());
            s
        }
    };
    if session.expires_at <= now() {
        return Err(ApiError::Unauthorized(
            "the session has expired; sign in again".into(),
        ));
    }
    Ok((session, hash))
}

/// A signed-in holder.
#[derive(Debug, Clone)]
pub struct HolderAuth {
    /// Who.
    pub holder: HolderId,
    /// The hash of the session's token (to end it).
    pub token_hash: [u8; 32],
}

impl<S: Store> FromRequestParts<Arc<App<S>>> for HolderAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App<S>>) -> Result<Self, ApiError> {
        let (session, token_hash) = current_session(parts, app, HOLDER_COOKIE).await?;
        match session.principal {
            Principal::Holder(holder) => Ok(HolderAuth { holder, token_hash }),
            Principal::Officer(_) => Err(ApiError::Forbidden(
                "this is a holder's resource; an officer session cannot use it".into(),
            )),
        }
    }
}

/// The refusal for a session whose account must still enrol a second factor.
pub const MUST_ENROL: &str = "enrol a second factor first: POST /api/v1/admin/me/second-factor";

/// The refusal for a session signed in without the second factor of an account that has one.
pub const NEEDS_SECOND_FACTOR: &str =
    "this session was signed in without the second factor; sign in again with a code from the app";

/// Which roles an officer endpoint admits.
pub trait Roles: Send + Sync + 'static {
    /// The admitted roles.
    const ALLOWED: &'static [Role];
    /// Said in a refusal.
    const NAME: &'static str;
    /// Whether an account that must still enrol a second factor may call it (only the
    /// enrolment itself, and who am I).
    const BEFORE_SECOND_FACTOR: bool = false;
}

/// Any signed-in staff member, also one who must still enrol a second factor: enrolment.
#[derive(Debug)]
pub struct Enrolling;
impl Roles for Enrolling {
    const ALLOWED: &'static [Role] = &[Role::Officer, Role::Admin, Role::Auditor];
    const NAME: &'static str = "a staff member";
    const BEFORE_SECOND_FACTOR: bool = true;
}

/// Officers and admins: cases, tests, overrides, appeals.
#[derive(Debug)]
pub struct Officers;
impl Roles for Officers {
    const ALLOWED: &'static [Role] = &[Role::Officer, Role::Admin];
    const NAME: &'static str = "an officer or admin";
}

/// Admins only: venues, devices, risk areas, accounts, purge.
#[derive(Debug)]
pub struct Admins;
impl Roles for Admins {
    const ALLOWED: &'static [Role] = &[Role::Admin];
    const NAME: &'static str = "an admin";
}

/// Auditors only: the audit log.
#[derive(Debug)]
pub struct Auditors;
impl Roles for Auditors {
    const ALLOWED: &'static [Role] = &[Role::Auditor];
    const NAME: &'static str = "an auditor";
}

/// Any signed-in staff member.
#[derive(Debug)]
pub struct AnyStaff;
impl Roles for AnyStaff {
    const ALLOWED: &'static [Role] = &[Role::Officer, Role::Admin, Role::Auditor];
    const NAME: &'static str = "a staff member";
}

/// A signed-in officer whose role `R` admits.
#[derive(Debug)]
pub struct Staff<R> {
    /// Who.
    pub id: OfficerId,
    /// Login name (recorded in the audit log).
    pub username: String,
    /// Role.
    pub role: Role,
    /// The hash of the session's token.
    pub token_hash: [u8; 32],
    _roles: PhantomData<R>,
}

impl<R> Staff<R> {
    /// A second handle on the same signed-in officer (a page that calls two handlers).
    pub(crate) fn duplicate(&self) -> Staff<R> {
        Staff {
            id: self.id,
            username: self.username.clone(),
            role: self.role,
            token_hash: self.token_hash,
            _roles: PhantomData,
        }
    }

    /// The same officer as one whose role `R2` admits, if it does (a page that shows more to
    /// some roles).
    pub(crate) fn narrowed<R2: Roles>(&self) -> Option<Staff<R2>> {
        R2::ALLOWED.contains(&self.role).then(|| Staff {
            id: self.id,
            username: self.username.clone(),
            role: self.role,
            token_hash: self.token_hash,
            _roles: PhantomData,
        })
    }

    /// How the audit log names this officer.
    pub fn actor(&self) -> String {
        format!("officer:{}:{}", self.id.0, self.username)
    }
}

impl<S: Store, R: Roles> FromRequestParts<Arc<App<S>>> for Staff<R> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App<S>>) -> Result<Self, ApiError> {
        let (session, token_hash) = current_session(parts, app, STAFF_COOKIE).await?;
        let Principal::Officer(id) = session.principal else {
            return Err(ApiError::Forbidden(format!(
                "this resource is for {}; a holder session cannot use it",
                R::NAME
            )));
        };
        let officer = app
            .store
            .officer(id)
            .await?
            .ok_or_else(|| ApiError::Unauthorized("the account no longer exists".into()))?;
        if officer.disabled_at.is_some() {
            end_session(app, &token_hash).await?;
            return Err(ApiError::Unauthorized("this account is disabled".into()));
        }
        let t = now();
        let Some(second_factor_given) = app
            .store
            .touch_session(&token_hash, t, t - app.staff.idle())
            .await?
        else {
            end_session(app, &token_hash).await?;
            return Err(ApiError::Unauthorized(format!(
                "the session ended after {} minutes without use; sign in again",
                app.staff.session_idle_seconds.div_ceil(60)
            )));
        };
        if officer.must_change_password {
            return Err(ApiError::Forbidden("the password must be changed first".into()));
        }
        // What counts is this session: one signed in with the password alone stays limited to
        // enrolment even after the account enrols in another session.
        if !R::BEFORE_SECOND_FACTOR && !second_factor_given {
            if officer.second_factor {
                return Err(ApiError::Forbidden(NEEDS_SECOND_FACTOR.into()));
            }
            if app.staff.second_factor == crate::signin::SecondFactorRule::Required {
                return Err(ApiError::Forbidden(MUST_ENROL.into()));
            }
        }
        if !R::ALLOWED.contains(&officer.role) {
            return Err(ApiError::Forbidden(format!(
                "this resource is for {}; this account is {}",
                R::NAME,
                officer.role.as_str()
            )));
        }
        Ok(Staff {
            id,
            username: officer.username,
            role: officer.role,
            token_hash,
            _roles: PhantomData,
        })
    }
}

/// A venue's scanner device, by its key.
#[derive(Debug, Clone)]
pub struct DeviceAuth(pub Arc<(Device, Venue)>);

impl<S: Store> FromRequestParts<Arc<App<S>>> for DeviceAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App<S>>) -> Result<Self, ApiError> {
        let key = bearer(parts)?;
        if !key.starts_with(DEVICE_KEY_PREFIX) {
            return Err(ApiError::Unauthorized("scans need a device key (hcd_…)".into()));
        }
        let hash = secret_hash(key);
        if let Some(d) = app.auth.device(&hash) {
            return Ok(DeviceAuth(d));
        }
        let device = app
            .store
            .device_by_key_hash(&hash)
            .await?
            .ok_or_else(|| ApiError::Unauthorized("unknown device key".into()))?;
        if device.revoked_at.is_some() || app.auth.is_revoked(&hash) {
            return Err(ApiError::Unauthorized("this device key was revoked".into()));
        }
        let venue = app
            .store
            .venue(device.venue)
            .await?
            .ok_or_else(|| ApiError::fault(format!("device {} has no venue", device.id.0)))?;
        let d = Arc::new((device, venue));
        app.auth.put_device(hash, d.clone());
        Ok(DeviceAuth(d))
    }
}

/// Ends a session, on this node at once.
pub async fn end_session<S: Store>(app: &App<S>, token_hash: &[u8; 32]) -> Result<(), ApiError> {
    app.auth.forget_session(token_hash);
    app.store.revoke_session(token_hash).await?;
    Ok(())
}

/// Starts a staff session for an officer, remembering the client it came from and whether the
/// second factor was given; returns its token (shown once) and when it ends at the latest.
pub async fn start_staff_session<S: Store>(
    app: &App<S>,
    id: OfficerId,
    client: &str,
    second_factor: bool,
) -> Result<(String, OffsetDateTime), ApiError> {
    let token = new_secret(SESSION_PREFIX)?;
    let t = now();
    let expires_at = t + app.settings.officer_session;
    app.store
        .insert_staff_session(
            &secret_hash(&token),
            id,
            t,
            expires_at,
            Some(client),
            second_factor,
        )
        .await?;
    Ok((token, expires_at))
}

/// Starts a session for a principal; returns its token (shown once) and expiry.
pub async fn start_session<S: Store>(
    app: &App<S>,
    principal: Principal,
    lifetime: time::Duration,
) -> Result<(String, OffsetDateTime), ApiError> {
    let token = new_secret(SESSION_PREFIX)?;
    let t = now();
    let session = Session {
        principal,
        created_at: t,
        expires_at: t + lifetime,
    };
    app.store.insert_session(&secret_hash(&token), &session).await?;
    Ok((token, session.expires_at))
}

#[cfg(test)]
mod tests {
    use super::check_new_password;

    #[test]
    fn guessable_passwords_are_refused_with_the_reason() {
        for weak in ["111111111111", "password1234", "qwertyuiopas", "officer-li2024"] {
            let e = check_new_password(weak, &["officer-li", "officer"]).unwrap_err();
            assert!(e.to_string().contains("too easy to guess"), "{weak}: {e}");
        }
        let e = check_new_password("111111111111", &[]).unwrap_err().to_string();
        assert!(e.contains("Repeats"), "{e}");
        assert!(check_new_password("short", &[]).is_err());
        assert!(check_new_password(&"long ".repeat(60), &[]).is_err());
    }

    #[test]
    fn a_phrase_of_unrelated_words_is_accepted() {
        for strong in [
            "a long and unusual passphrase",
            "correct horse battery",
            "lantern orbit mango vessel",
        ] {
            check_new_password(strong, &["officer-li"]).unwrap();
        }
    }
}
