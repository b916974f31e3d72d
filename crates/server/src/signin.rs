//! What stands between a guesser and a staff account: failed sign-ins counted in the store per
//! username (known or not, so that no answer tells which names exist) and per client address,
//! growing delays (capped: `max_delay_ms`) during which a sign-in is answered 429 before any
//! hashing, a lock that only an admin lifts after repeated wrong second-factor codes sent with
//! the right password (nothing an anonymous guesser can do without the password locks an
//! account), one sign-in at a time per username on a node, and the `[staff]` section of the
//! configuration that sets all of it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use healthcode_store::{SignInFailures, Store};
use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

use crate::problem::ApiError;
use crate::{App, now};

/// Whether staff need a second factor.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SecondFactorRule {
    /// Every staff account enrols TOTP at its first sign-in and cannot work before it has.
    #[default]
    Required,
    /// Staff may enrol; an account that has enrolled must use it.
    Optional,
}

/// The `[staff]` section of the configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StaffConfig {
    /// Whether staff need a second factor.
    pub second_factor: SecondFactorRule,
    /// Wrong second-factor codes in a row, each sent with the right password, after which the
    /// account is locked until an admin unlocks it (0: never). Wrong passwords never lock.
    pub lock_after_code_failures: u32,
    /// Failed sign-ins in a row for a username before the delays start.
    pub delay_after_failures: u32,
    /// Failed sign-ins in a row from one client address before its delays start.
    pub client_delay_after_failures: u32,
    /// The first delay; each further failure doubles it.
    pub first_delay_ms: u64,
    /// The longest delay (at most 15 minutes): what a guesser can make the owner wait.
    pub max_delay_ms: u64,
    /// A streak of failures (not locked) is forgotten this long after its last failure.
    pub forget_failures_after_hours: u32,
    /// A staff session unused this long ends (its absolute end is `officer_session_hours`).
    pub session_idle_seconds: u32,
}

impl Default for StaffConfig {
    fn default() -> StaffConfig {
        StaffConfig {
            second_factor: SecondFactorRule::Required,
            lock_after_code_failures: 10,
            delay_after_failures: 3,
            client_delay_after_failures: 20,
            first_delay_ms: 1000,
            max_delay_ms: 60 * 1000,
            forget_failures_after_hours: 24,
            session_idle_seconds: 30 * 60,
        }
    }
}

impl StaffConfig {
    /// Checks the values.
    pub fn check(&self) -> Result<(), String> {
        if self.delay_after_failures == 0 || self.client_delay_after_failures == 0 {
            return Err("delay_after_failures and client_delay_after_failures must be at least 1".into());
        }
        if self.first_delay_ms == 0 || self.max_delay_ms < self.first_delay_ms {
            return Err("first_delay_ms must be at least 1 and at most max_delay_ms".into());
        }
        if self.max_delay_ms > MAX_DELAY_LIMIT_MS {
            return Err("max_delay_ms must be at most 900000 (15 minutes)".into());
        }
        if self.forget_failures_after_hours == 0 {
            return Err("forget_failures_after_hours must be at least 1".into());
        }
        if self.session_idle_seconds == 0 {
            return Err("session_idle_seconds must be at least 1".into());
        }
        Ok(())
    }

    /// How long after the latest of `streak` failures in a row the next attempt must wait, when
    /// delays start after `after` of them.
    pub fn delay(&self, streak: u32, after: u32) -> Duration {
        if streak < after {
            return Duration::ZERO;
        }
        let doublings = (streak - after).min(40);
        let ms = self
            .first_delay_ms
            .saturating_mul(1u64 << doublings)
            .min(self.max_delay_ms);
        Duration::milliseconds(i64::try_from(ms).unwrap_or(i64::MAX))
    }

    /// How long a session may stay unused.
    pub fn idle(&self) -> Duration {
        Duration::seconds(self.session_idle_seconds.into())
    }
}

/// The highest `max_delay_ms` allowed: a guesser can make an account's owner wait this long.
pub const MAX_DELAY_LIMIT_MS: u64 = 15 * 60 * 1000;

/// A username as written to a key or a log: trimmed, at most 100 characters, no control
/// characters (a name sent by anyone cannot forge lines in a log).
pub fn printable(username: &str) -> String {
    username
        .trim()
        .chars()
        .filter(|c| !c.is_control())
        .take(100)
        .collect()
}

/// The failure key of a username. Any name counts, one that exists or not, so that the delays
/// look the same for both.
pub fn user_key(username: &str) -> String {
    format!("user:{}", printable(username))
}

/// The key of an account's lock: wrong second-factor codes sent with the right password,
/// counted per account (only an existing account has one).
pub fn lock_key(id: healthcode_domain::OfficerId) -> String {
    format!("account:{}", id.0)
}

/// The failure key of a client address.
pub fn client_key(client: crate::client::ClientAddr) -> String {
    format!("client:{}", client.limit_key())
}

/// Sign-ins in progress on this node, by key, and the delays this node has found in the store:
/// during a known delay a flood is answered from memory, without reading the store each time.
#[derive(Debug, Default)]
pub struct InFlight(
    Arc<Mutex<HashMap<String, u32>>>,
    Mutex<HashMap<String, std::time::Instant>>,
);

/// Delays remembered at most; beyond, the ones over are dropped (they are read again).
const WAITS_KEPT: usize = 100_000;

impl InFlight {
    /// The seconds left of a delay remembered for any of `keys`.
    fn waiting(&self, keys: &[&str]) -> Option<u64> {
        let now = std::time::Instant::now();
        let waits = self.1.lock().ok()?;
        keys.iter()
            .filter_map(|k| waits.get(*k))
            .filter(|until| **until > now)
            .map(|until| (*until - now).as_secs_f64().ceil().max(1.0) as u64)
            .max()
    }

    /// Remembers that `key` must wait `left`.
    fn remember(&self, key: &str, left: std::time::Duration) {
        if let Ok(mut waits) = self.1.lock() {
            let now = std::time::Instant::now();
            if waits.len() >= WAITS_KEPT {
                waits.retain(|_, until| *until > now);
                if waits.len() >= WAITS_KEPT {
                    waits.clear();
                }
            }
            waits.insert(key.to_owned(), now + left);
        }
    }
}

/// A place among the sign-ins in progress, given back when dropped.
#[derive(Debug)]
pub struct Place {
    map: Arc<Mutex<HashMap<String, u32>>>,
    keys: Vec<String>,
}

impl Drop for Place {
    fn drop(&mut self) {
        if let Ok(mut m) = self.map.lock() {
            for k in &self.keys {
                if let Some(n) = m.get_mut(k) {
                    *n = n.saturating_sub(1);
                    if *n == 0 {
                        m.remove(k);
                    }
                }
            }
        }
    }
}

impl InFlight {
    /// A place for a sign-in as `user` from `client`: one at a time per username, four at a
    /// time per client. Otherwise 429: the outcome of the one in progress decides the delay
    /// that the next must wait, so that a burst of guesses is not checked all at once.
    pub fn enter(&self, user: &str, client: &str) -> Result<Place, ApiError> {
        let busy = || {
            ApiError::RateLimited(
                "a sign-in for this account or from this client is in progress".into(),
                1,
            )
        };
        let mut m = self
            .0
            .lock()
            .map_err(|_| ApiError::fault("sign-in table poisoned"))?;
        if m.get(user).copied().unwrap_or(0) >= 1 || m.get(client).copied().unwrap_or(0) >= 4 {
            return Err(busy());
        }
        *m.entry(user.to_owned()).or_default() += 1;
        *m.entry(client.to_owned()).or_default() += 1;
        Ok(Place {
            map: self.0.clone(),
            keys: vec![user.to_owned(), client.to_owned()],
        })
    }
}

/// The refusal of an attempt within a delay.
fn too_many(wait: u64) -> ApiError {
    ApiError::RateLimited(
        format!("too many failed sign-ins; wait {wait} s before the next try"),
        wait,
    )
}

/// Refuses, from memory, a sign-in within a delay this node has found in the store: a flood
/// within a delay reads nothing, not even the account.
pub fn remembered_delay<S: Store>(app: &App<S>, user: &str, client: &str) -> Result<(), ApiError> {
    match app.sign_ins.waiting(&[user, client]) {
        Some(wait) => Err(too_many(wait)),
        None => Ok(()),
    }
}

/// Refuses a sign-in that must wait or is locked, before any hashing: 403 for a locked
/// account (`lock`, the [`lock_key`] of the account the name belongs to, if any), 429 with
/// Retry-After for a username (or a client) within its delay.
pub async fn gate<S: Store>(
    app: &App<S>,
    user: &str,
    client: &str,
    lock: Option<&str>,
) -> Result<(), ApiError> {
    remembered_delay(app, user, client)?;
    let mut keys = vec![user.to_owned(), client.to_owned()];
    keys.extend(lock.map(str::to_owned));
    let rows = app.store().sign_in_failures(&keys).await?;
    let t = OffsetDateTime::now_utc();
    let forget = Duration::hours(app.staff().forget_failures_after_hours.into());
    for f in &rows {
        if Some(f.key.as_str()) == lock {
            if f.locked_at.is_some() {
                return Err(ApiError::Forbidden(
                    "this account is locked after repeated wrong second-factor codes; an admin must unlock it"
                        .into(),
                ));
            }
            continue;
        }
        if f.last_failure_at + forget < t {
            continue;
        }
        let after = if f.key == user {
            app.staff().delay_after_failures
        } else {
            app.staff().client_delay_after_failures
        };
        // Stored times are whole seconds, so a delay may be up to a second shorter than set.
        let until = f.last_failure_at + app.staff().delay(f.streak, after);
        if until > t {
            let left = until - t;
            app.sign_ins
                .remember(&f.key, std::time::Duration::try_from(left).unwrap_or_default());
            return Err(too_many(left.as_seconds_f64().ceil().max(1.0) as u64));
        }
    }
    Ok(())
}

/// Records a failed sign-in against the username and the client: delays, never a lock.
pub async fn failed<S: Store>(app: &App<S>, user: &str, client: &str) -> Result<(), ApiError> {
    let at = now();
    let forget = at - Duration::hours(app.staff().forget_failures_after_hours.into());
    app.store().record_sign_in_failure(user, at, 0, forget).await?;
    app.store().record_sign_in_failure(client, at, 0, forget).await?;
    Ok(())
}

/// Records a wrong second-factor code sent with the right password: a failure like any other
/// (delays), and one more against the account's lock, which locks it at
/// `lock_after_code_failures` in a row; the lock is audited, naming the account by id and role.
pub async fn code_failed<S: Store>(
    app: &App<S>,
    user: &str,
    client: &str,
    officer: &healthcode_store::Officer,
) -> Result<(), ApiError> {
    failed(app, user, client).await?;
    let at = now();
    let forget = at - Duration::hours(app.staff().forget_failures_after_hours.into());
    let f: SignInFailures = app
        .store()
        .record_sign_in_failure(
            &lock_key(officer.id),
            at,
            app.staff().lock_after_code_failures,
            forget,
        )
        .await?;
    if f.locked_at == Some(at) {
        app.audit(
            "sign-in".into(),
            "system",
            "sign-in-lock",
            None,
            format!(
                "account {} ({}) locked after {} wrong second-factor codes in a row, each with the right password",
                officer.id.0,
                officer.role.as_str(),
                f.streak
            ),
        )
        .await?;
    }
    Ok(())
}

/// Forgets old failure streaks once an hour, off the request path (locked usernames stay).
pub async fn forget_old_failures<S: Store>(app: std::sync::Weak<App<S>>) {
    let mut every = tokio::time::interval(std::time::Duration::from_secs(3600));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let Some(app) = app.upgrade() else { return };
        let before = now() - Duration::hours(app.staff().forget_failures_after_hours.into());
        if let Err(e) = app.store().forget_sign_in_failures(before).await {
            tracing::warn!(error = %crate::problem::ErrorChain(&e), "cannot forget old sign-in failures");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_start_late_double_and_stop_growing() {
        let c = StaffConfig::default();
        assert_eq!(c.delay(2, 3), Duration::ZERO);
        assert_eq!(c.delay(3, 3), Duration::seconds(1));
        assert_eq!(c.delay(4, 3), Duration::seconds(2));
        assert_eq!(c.delay(8, 3), Duration::seconds(32));
        assert_eq!(c.delay(9, 3), Duration::seconds(60));
        assert_eq!(c.delay(u32::MAX, 3), Duration::seconds(60));
        assert!(StaffConfig::default().check().is_ok());
        let bad = StaffConfig {
            first_delay_ms: 0,
            ..StaffConfig::default()
        };
        assert!(bad.check().is_err());
        let too_long = StaffConfig {
            max_delay_ms: MAX_DELAY_LIMIT_MS + 1,
            ..StaffConfig::default()
        };
        assert!(too_long.check().is_err());
        assert_eq!(printable(" li\nfake line\u{7}"), "lifake line");
    }

    #[test]
    fn one_sign_in_per_name_at_a_time() {
        let f = InFlight::default();
        let p = f.enter("user:li", "client:a").unwrap();
        assert!(f.enter("user:li", "client:b").is_err());
        let others: Vec<_> = ["x", "y", "z"]
            .iter()
            .map(|u| f.enter(&format!("user:{u}"), "client:a").unwrap())
            .collect();
        assert!(f.enter("user:w", "client:a").is_err());
        drop(p);
        drop(others);
        assert!(f.enter("user:li", "client:a").is_ok());
    }
}
