//! Staff credentials: failed sign-ins and locks, the second factor (TOTP and recovery codes),
//! account changes (disable, enable, role) with the rule that keeps an active admin, staff
//! sessions with their last use and client, and device key rotation. The rules are plain
//! functions here; both backends read the rows, call them, and write what they return.

use std::future::Future;

use healthcode_domain::{DeviceId, OfficerId};
use time::OffsetDateTime;

use crate::rows::{Columns, hash32};
use crate::{Device, Officer, Role, StoreError, StoreResult};

/// The failed sign-ins counted against one key: `user:<name>` (whether or not the name exists,
/// so that a refusal never tells) or `client:<address>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignInFailures {
    /// What they count against.
    pub key: String,
    /// Failures in a row (grows the delay; locks at the configured count).
    pub streak: u32,
    /// Failures the account's owner has not been shown (since the last sign-in).
    pub unseen: u32,
    /// The latest.
    pub last_failure_at: OffsetDateTime,
    /// When the key was locked; only an admin lifts it.
    pub locked_at: Option<OffsetDateTime>,
}

/// The columns [`failures_row`] reads.
pub const FAILURE_COLS: &str = "key, streak, unseen, last_failure_at, locked_at";

/// A row of failed sign-ins, from [`FAILURE_COLS`].
pub fn failures_row(r: &dyn Columns) -> StoreResult<SignInFailures> {
    let count = |i| {
        r.int(i)
            .and_then(|n| u32::try_from(n).map_err(|_| StoreError::Corrupt(format!("failure count {n}"))))
    };
    Ok(SignInFailures {
        key: r.text(0)?.to_owned(),
        streak: count(1)?,
        unseen: count(2)?,
        last_failure_at: r.time(3)?,
        locked_at: r.opt_time(4)?,
    })
}

/// The row after one more failure at `at`: a streak whose last failure is before `forget_before`
/// (and is not locked) starts again; the key locks when the streak reaches `lock_after` (0:
/// never). The unseen count only grows.
pub fn next_failure(
    found: Option<SignInFailures>,
    key: &str,
    at: OffsetDateTime,
    lock_after: u32,
    forget_before: OffsetDateTime,
) -> SignInFailures {
    let mut f = found.unwrap_or(SignInFailures {
        key: key.to_owned(),
        streak: 0,
        unseen: 0,
        last_failure_at: at,
        locked_at: None,
    });
    if f.locked_at.is_none() && f.last_failure_at < forget_before {
        f.streak = 0;
    }
    f.streak = f.streak.saturating_add(1);
    f.unseen = f.unseen.saturating_add(1);
    f.last_failure_at = at;
    if lock_after > 0 && f.streak >= lock_after && f.locked_at.is_none() {
        f.locked_at = Some(at);
    }
    f
}

/// A change an admin makes to an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountChange {
    /// It can no longer sign in; its sessions end.
    Disable,
    /// It can sign in again; the admin who re-enabled it is recorded as the last to reset its
    /// credentials (the approval rule reads it).
    Enable,
    /// A new role.
    Role(Role),
}

/// The account `found` after `change` by `by`, to be written, given how many active admins there
/// are (the target included if it is one): [`StoreError::NotFound`] for no such account,
/// [`StoreError::Refused`] for disabling or demoting oneself, for what would leave no active
/// admin, and for disabling a disabled account or enabling an active one.
pub fn change_account(
    found: Option<Officer>,
    id: OfficerId,
    by: OfficerId,
    active_admins: u64,
    change: AccountChange,
    at: OffsetDateTime,
) -> StoreResult<Officer> {
    let mut o = found.ok_or_else(|| StoreError::NotFound(format!("account {}", id.0)))?;
    let removes_admin = o.role == Role::Admin
        && o.disabled_at.is_none()
        && matches!(
            change,
            AccountChange::Disable | AccountChange::Role(Role::Officer | Role::Auditor)
        );
    if o.id == by && removes_admin {
        return Err(StoreError::Refused(
            "an admin cannot disable or demote their own account".into(),
        ));
    }
    if removes_admin && active_admins <= 1 {
        return Err(StoreError::Refused(format!(
            "{} is the last active admin; make another admin first",
            o.username
        )));
    }
    match change {
        AccountChange::Disable if o.disabled_at.is_some() => {
            return Err(StoreError::Refused(format!("{} is disabled already", o.username)));
        }
        AccountChange::Disable => o.disabled_at = Some(at),
        AccountChange::Enable if o.disabled_at.is_none() => {
            return Err(StoreError::Refused(format!("{} is active already", o.username)));
        }
        AccountChange::Enable => {
            o.disabled_at = None;
            // Re-enabling shows no credential: the account counts as new again, and the admin who
            // last reset it stays recorded (re-enabling by another admin does not clear them).
            o.credentials_reset_by = o.credentials_reset_by.or(Some(by));
            o.credentials_reset_at = Some(at);
        }
        AccountChange::Role(r) => o.role = r,
    }
    Ok(o)
}

/// An account's second factor as stored: the secrets sealed (the store never sees them in
/// clear), and what its owner is shown of the recovery codes.
#[derive(Clone, PartialEq, Eq)]
pub struct SecondFactor {
    /// The enrolled TOTP secret, sealed.
    pub secret: Option<Vec<u8>>,
    /// A secret offered at enrolment and not yet confirmed, sealed.
    pub offered: Option<Vec<u8>>,
    /// The highest time step whose code was accepted.
    pub last_step: Option<i64>,
    /// Recovery codes not yet used.
    pub recovery_left: u32,
    /// When a recovery code was last used.
    pub recovery_last_used: Option<OffsetDateTime>,
}

impl std::fmt::Debug for SecondFactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecondFactor")
            .field("enrolled", &self.secret.is_some())
            .field("offered", &self.offered.is_some())
            .field("last_step", &self.last_step)
            .field("recovery_left", &self.recovery_left)
            .field("recovery_last_used", &self.recovery_last_used)
            .finish()
    }
}

/// The columns [`second_factor_row`] reads, from `officers` (the counts are subqueries on
/// `staff_recovery_codes` for the officer `$1`/`?1`).
pub const SECOND_FACTOR_COLS: &str = "totp_secret, totp_offered, totp_last_step";

/// An account's second factor, from [`SECOND_FACTOR_COLS`] and then the count of unused recovery
/// codes and the time of the last used one.
pub fn second_factor_row(r: &dyn Columns) -> StoreResult<SecondFactor> {
    let left = r.int(3)?;
    Ok(SecondFactor {
        secret: r.opt_blob(0)?.map(<[u8]>::to_vec),
        offered: r.opt_blob(1)?.map(<[u8]>::to_vec),
        last_step: r.opt_int(2)?,
        recovery_left: u32::try_from(left)
            .map_err(|_| StoreError::Corrupt(format!("recovery code count {left}")))?,
        recovery_last_used: r.opt_time(4)?,
    })
}

/// A staff session, for its owner and admins: never its token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaffSession {
    /// SHA-256 of its token.
    pub token_hash: [u8; 32],
    /// When it started.
    pub created_at: OffsetDateTime,
    /// When it ends whatever happens.
    pub expires_at: OffsetDateTime,
    /// When it was last used (its start, until it is).
    pub last_used_at: OffsetDateTime,
    /// The client address it was started from.
    pub client: Option<String>,
}

/// The columns [`staff_session_row`] reads.
pub const STAFF_SESSION_COLS: &str =
    "token_hash, created_at, expires_at, COALESCE(last_used_at, created_at), COALESCE(client, '')";

/// A staff session, from [`STAFF_SESSION_COLS`].
pub fn staff_session_row(r: &dyn Columns) -> StoreResult<StaffSession> {
    Ok(StaffSession {
        token_hash: hash32(r.blob(0)?)?,
        created_at: r.time(1)?,
        expires_at: r.time(2)?,
        last_used_at: r.time(3)?,
        client: Some(r.text(4)?).filter(|c| !c.is_empty()).map(str::to_owned),
    })
}

/// The device `id` (as `found`) with a new key, to be written: [`StoreError::NotFound`] for no
/// such device, [`StoreError::Refused`] for a revoked one. Returns the old key's hash with it.
pub fn rotate_device_key(
    id: DeviceId,
    found: Option<Device>,
    new_hash: &[u8; 32],
) -> StoreResult<([u8; 32], Device)> {
    let mut d = found.ok_or_else(|| StoreError::NotFound(format!("device {}", id.0)))?;
    if d.revoked_at.is_some() {
        return Err(StoreError::Refused(format!(
            "device {} is revoked; register a new device",
            id.0
        )));
    }
    let old = std::mem::replace(&mut d.key_hash, *new_hash);
    Ok((old, d))
}

/// Staff credentials. Every method is one transaction.
pub trait CredentialStore: Send + Sync + 'static {
    /// The failed sign-ins counted against each of `keys` that has any.
    fn sign_in_failures(
        &self,
        keys: &[String],
    ) -> impl Future<Output = StoreResult<Vec<SignInFailures>>> + Send;
    /// Records a failure against `key` ([`next_failure`]); returns the row as written.
    fn record_sign_in_failure(
        &self,
        key: &str,
        at: OffsetDateTime,
        lock_after: u32,
        forget_before: OffsetDateTime,
    ) -> impl Future<Output = StoreResult<SignInFailures>> + Send;
    /// A successful sign-in: forgets `key`'s failures, unless it is locked (a lock written by a
    /// concurrent failure stays), and returns what they were (`None` when nothing was forgotten).
    fn sign_in_succeeded(
        &self,
        key: &str,
    ) -> impl Future<Output = StoreResult<Option<SignInFailures>>> + Send;
    /// Lifts `key`'s lock and its streak (the unseen count stays for the owner); false if it
    /// was not locked.
    fn unlock_sign_in(&self, key: &str) -> impl Future<Output = StoreResult<bool>> + Send;
    /// Forgets the failures of unlocked keys whose last failure is before `before`; returns how
    /// many keys.
    fn forget_sign_in_failures(
        &self,
        before: OffsetDateTime,
    ) -> impl Future<Output = StoreResult<u64>> + Send;
    /// Changes an account ([`change_account`], with the count of active admins read and locked
    /// in the same transaction); returns it as written.
    fn change_account(
        &self,
        id: OfficerId,
        by: OfficerId,
        change: AccountChange,
        at: OffsetDateTime,
    ) -> impl Future<Output = StoreResult<Officer>> + Send;
    /// An account's second factor; `None` for no such account.
    fn second_factor(&self, id: OfficerId) -> impl Future<Output = StoreResult<Option<SecondFactor>>> + Send;
    /// Keeps a sealed secret offered at enrolment (replacing any earlier offer);
    /// [`StoreError::NotFound`] for no such account.
    fn offer_second_factor(
        &self,
        id: OfficerId,
        sealed: &[u8],
    ) -> impl Future<Output = StoreResult<()>> + Send;
    /// Makes the offered secret the enrolled one, its code's `step` the last used, and
    /// `recovery` (SHA-256 of each) the recovery codes, replacing any; marks the session
    /// `session` as having given the second factor and ends every other session of the account;
    /// returns how many ended. [`StoreError::Refused`] when the offered secret is no longer
    /// `offered` (the one whose code was checked: nothing offered, or offered again since), a
    /// secret is enrolled already (only a reset removes it), or `step` was used already.
    fn confirm_second_factor(
        &self,
        id: OfficerId,
        offered: &[u8],
        step: i64,
        recovery: &[[u8; 32]],
        session: &[u8; 32],
    ) -> impl Future<Output = StoreResult<u64>> + Send;
    /// Removes the second factor and the recovery codes (the owner enrols again); false when
    /// there was none.
    fn reset_second_factor(&self, id: OfficerId) -> impl Future<Output = StoreResult<bool>> + Send;
    /// An admin's reset of an account's password: `password_hash` (of a one-time password, to
    /// be replaced at the next sign-in), and `by` at `at` recorded as the last to reset the
    /// account's credentials (the approval rule reads them; the owner's own changes later keep
    /// them). [`StoreError::NotFound`] for no such account.
    fn reset_officer_password(
        &self,
        id: OfficerId,
        password_hash: &str,
        by: OfficerId,
        at: OffsetDateTime,
    ) -> impl Future<Output = StoreResult<()>> + Send;
    /// Takes time step `step` as used if it is after the last used one; false (a replay) if not.
    fn use_totp_step(&self, id: OfficerId, step: i64) -> impl Future<Output = StoreResult<bool>> + Send;
    /// Spends the recovery code with this hash at `at`; false when it is unknown or spent.
    fn use_recovery_code(
        &self,
        id: OfficerId,
        code_hash: &[u8; 32],
        at: OffsetDateTime,
    ) -> impl Future<Output = StoreResult<bool>> + Send;
    /// Stores a staff session under the hash of its token, with the client it came from and
    /// whether the second factor was given in it.
    fn insert_staff_session(
        &self,
        token_hash: &[u8; 32],
        officer: OfficerId,
        created_at: OffsetDateTime,
        expires_at: OffsetDateTime,
        client: Option<&str>,
        second_factor: bool,
    ) -> impl Future<Output = StoreResult<()>> + Send;
    /// Marks a session used at `at` if it was last used at or after `idle_since`, and returns
    /// whether the second factor was given in it (at sign-in, or by an enrolment confirmed in
    /// it); `None` (and no change) when it was idle longer, or is gone.
    fn touch_session(
        &self,
        token_hash: &[u8; 32],
        at: OffsetDateTime,
        idle_since: OffsetDateTime,
    ) -> impl Future<Output = StoreResult<Option<bool>>> + Send;
    /// An account's sessions, oldest first.
    fn staff_sessions(&self, id: OfficerId) -> impl Future<Output = StoreResult<Vec<StaffSession>>> + Send;
    /// Gives a device a new key ([`rotate_device_key`]); returns the old key's hash and the
    /// device as written.
    fn rotate_device_key(
        &self,
        id: DeviceId,
        new_hash: &[u8; 32],
    ) -> impl Future<Output = StoreResult<([u8; 32], Device)>> + Send;
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use time::macros::datetime;

    use super::*;

    const T: OffsetDateTime = datetime!(2026-11-20 08:00:00 UTC);

    fn officer(id: i64, role: Role) -> Officer {
        Officer {
            id: OfficerId(id),
            username: format!("u{id}"),
            role,
            password_hash: String::new(),
            must_change_password: false,
            created_at: T,
            disabled_at: None,
            second_factor: true,
            created_by: None,
            creation_approved_by: None,
            credentials_reset_by: None,
            credentials_reset_at: None,
            phone: None,
            phone_proven_at: None,
        }
    }

    #[test]
    fn failures_lock_at_the_count_and_an_old_streak_starts_again() {
        let mut f = None;
        for n in 1..=3 {
            let next = next_failure(f, "user:li", T, 3, T - time::Duration::hours(1));
            assert_eq!((next.streak, next.unseen), (n, n));
            assert_eq!(next.locked_at.is_some(), n == 3);
            f = Some(next);
        }
        let unlocked = SignInFailures {
            locked_at: None,
            streak: 2,
            ..f.unwrap()
        };
        let later = T + time::Duration::days(2);
        let again = next_failure(
            Some(unlocked),
            "user:li",
            later,
            3,
            later - time::Duration::days(1),
        );
        assert_eq!((again.streak, again.unseen, again.locked_at), (1, 4, None));
        let never = next_failure(None, "client:1.2.3.4", T, 0, T);
        assert_eq!(never.locked_at, None);
    }

    #[test]
    fn the_last_active_admin_stays_and_nobody_demotes_themselves() {
        let admin = officer(1, Role::Admin);
        let me = OfficerId(2);
        for change in [AccountChange::Disable, AccountChange::Role(Role::Officer)] {
            assert!(matches!(
                change_account(Some(admin.clone()), admin.id, me, 1, change, T),
                Err(StoreError::Refused(_))
            ));
            assert!(matches!(
                change_account(Some(admin.clone()), admin.id, admin.id, 2, change, T),
                Err(StoreError::Refused(_))
            ));
            assert!(change_account(Some(admin.clone()), admin.id, me, 2, change, T).is_ok());
        }
        let off = officer(3, Role::Officer);
        let disabled = change_account(Some(off.clone()), off.id, me, 1, AccountChange::Disable, T).unwrap();
        assert_eq!(disabled.disabled_at, Some(T));
        assert!(change_account(Some(disabled.clone()), off.id, me, 1, AccountChange::Disable, T).is_err());
        let enabled = change_account(Some(disabled), off.id, me, 1, AccountChange::Enable, T).unwrap();
        assert_eq!(enabled.disabled_at, None);
        assert_eq!(
            (enabled.credentials_reset_by, enabled.credentials_reset_at),
            (Some(me), Some(T))
        );
        assert!(matches!(
            change_account(None, OfficerId(9), me, 1, AccountChange::Enable, T),
            Err(StoreError::NotFound(_))
        ));
    }
}
