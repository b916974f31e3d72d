//! Retention of personal data and erasure: the periods ([`Retention`]), the purge's part that
//! removes test results, decided appeals and inactive holders, and the one erasure both the
//! holder's request and retention use ([`erase`]).

use healthcode_domain::HolderId;
use healthcode_store::{AuditEntry, PersonalPurge, PurgeReport, Store, StoreError};
use time::{Duration, OffsetDateTime};

use crate::limits::RetentionConfig;
use crate::{Config, now};

/// Inactive holders erased per round of a purge.
const ERASE_BATCH: u32 = 500;

/// How long each kind of data is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Check-ins, declarations, reports, exposures (`retention_days`).
    pub records: Duration,
    /// A holder without a sign-in.
    pub holders_inactive: Duration,
    /// Test results, after sampling.
    pub tests: Duration,
    /// Appeals, after their decision.
    pub decided_appeals: Duration,
}

impl Retention {
    /// `records` for check-ins and facts, the rest from `[retention]`.
    pub fn new(records: Duration, c: &RetentionConfig) -> Retention {
        Retention {
            records,
            holders_inactive: Duration::days(c.holder_inactive_days.into()),
            tests: Duration::days(c.test_result_days.into()),
            decided_appeals: Duration::days(c.decided_appeal_days.into()),
        }
    }

    /// As the configuration says.
    pub fn from_config(config: &Config) -> Retention {
        Retention::new(Duration::days(config.retention_days.into()), &config.retention)
    }
}

/// What a purge removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Purged {
    /// Check-ins and facts past `retention_days`.
    pub report: PurgeReport,
    /// Test results, decided appeals and inactive holders.
    pub personal: PersonalPurge,
}

impl Purged {
    /// Whether it deleted anything (and so left bytes to scrub).
    pub fn deleted_any(&self) -> bool {
        self.report.total() + self.personal.tests + self.personal.appeals + self.personal.holders > 0
    }

    /// Whether it deleted personal data whose bytes must not stay readable: holders, tests,
    /// appeals (expired check-ins and declarations are deleted, and their pages reused by the
    /// database in time, without an hourly rewrite of every table).
    pub fn erased_personal(&self) -> bool {
        self.personal.tests + self.personal.appeals + self.personal.holders > 0
    }
}

/// Makes deleted bytes unreadable in the database's files (`HolderStore::scrub_erased`); a scrub
/// that cannot finish now (readers holding SQLite's log, a long transaction on PostgreSQL) is
/// logged, and the next one covers it.
pub(crate) async fn scrub<S: Store>(store: &S) {
    if let Err(e) = store.scrub_erased().await {
        tracing::warn!(error = %crate::problem::ErrorChain(&e), "erased data could not be scrubbed yet; the next scrub tries again");
    }
}

/// Erases a holder (account, personal data, records: `HolderStore::erase_holder`) and, when there
/// was one, records that it happened in the audit log as `holder-erased`, with the holder's id
/// and why, nothing else. Returns whether there was such a holder.
pub async fn erase<S: Store>(
    store: &S,
    holder: &HolderId,
    actor: String,
    role: &str,
    why: String,
) -> Result<bool, StoreError> {
    let found = store.erase_holder(holder).await?;
    if found {
        store
            .append_audit(&AuditEntry {
                at: now(),
                actor,
                role: role.into(),
                action: "holder-erased".into(),
                subject: Some(holder.clone()),
                purpose: why,
            })
            .await?;
    }
    Ok(found)
}

/// Deletes test results and decided appeals past their retention and erases inactive holders
/// (the caller scrubs the deleted bytes after recording the purge: [`scrub`]).
pub(crate) async fn purge_personal<S: Store>(
    store: &S,
    r: &Retention,
    t: OffsetDateTime,
) -> Result<PersonalPurge, StoreError> {
    let (tests, appeals) = store.purge_personal(t - r.tests, t - r.decided_appeals).await?;
    let mut holders = 0;
    loop {
        let batch = store
            .inactive_holders(t - r.holders_inactive, t, ERASE_BATCH)
            .await?;
        let mut erased = 0;
        for id in &batch {
            let why = format!(
                "retention: no sign-in for {} days and nothing holding a colour",
                r.holders_inactive.whole_days()
            );
            if erase(store, id, "system".into(), "system", why).await? {
                erased += 1;
            }
        }
        holders += erased;
        if batch.len() < ERASE_BATCH as usize || erased == 0 {
            break;
        }
    }
    Ok(PersonalPurge {
        holders,
        tests,
        appeals,
    })
}
