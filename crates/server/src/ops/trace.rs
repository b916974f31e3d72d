//! Tracing from the command line: which cases, the in-memory index for their windows, and the
//! run that records their exposures with an audit entry. The `trace` command times these and
//! writes its CSV; nothing here measures or prints.

use healthcode_domain::CaseId;
use healthcode_exposure::{TraceError, TraceReport, Tracer, TracingIndex};
use healthcode_policy::Policy;
use healthcode_store::{AuditEntry, Store, StoreError};
use time::Duration;

use crate::now;

/// Which cases `healthcode trace` traces.
#[derive(Debug, Clone)]
pub enum CaseSelection {
    /// These.
    Ids(Vec<CaseId>),
    /// Every case confirmed on this UTC day.
    Day(time::Date),
}

/// The ids of the selected cases.
pub async fn case_ids<S: Store>(store: &S, which: &CaseSelection) -> Result<Vec<CaseId>, StoreError> {
    Ok(match which {
        CaseSelection::Ids(ids) => ids.clone(),
        CaseSelection::Day(day) => {
            let from = day.midnight().assume_utc();
            let to = from + Duration::days(1);
            store
                .cases(from)
                .await?
                .into_iter()
                .filter(|(_, c)| c.confirmed_at < to)
                .map(|(_, c)| c.id)
                .collect()
        }
    })
}

/// An in-memory index of the check-ins the cases' infectious windows reach (with the look-back
/// for stays that began before), built on every core; `None` when none of the cases exists.
pub async fn index_for<S: Store>(
    store: &S,
    policy: &Policy,
    ids: &[CaseId],
) -> Result<Option<TracingIndex>, TraceError> {
    let mut window: Option<(time::OffsetDateTime, time::OffsetDateTime)> = None;
    for (_, c) in store.cases_by_id(ids).await?.into_iter().flatten() {
        let (f, t) = healthcode_exposure::infectious_window(policy.tracing(), &c);
        window = Some(window.map_or((f, t), |(a, b)| (a.min(f), b.max(t))));
    }
    let Some((from, to)) = window else {
        return Ok(None);
    };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let index = TracingIndex::build(
        store,
        policy.tracing(),
        from - healthcode_exposure::lookback(policy.tracing()),
        to,
        threads,
        &|_| {},
    )
    .await?;
    Ok(Some(index))
}

/// Traces the cases with `tracer`, records their exposures, and says so in the audit log.
pub async fn record<S: Store>(
    store: &S,
    tracer: &Tracer<'_>,
    ids: &[CaseId],
) -> Result<TraceReport, TraceError> {
    let (report, _) = tracer.trace(store, ids).await?;
    store
        .append_audit(&AuditEntry {
            at: now(),
            actor: "operator".into(),
            role: "system".into(),
            action: "trace".into(),
            subject: None,
            purpose: format!(
                "{} cases from the command line: {} new exposures",
                report.cases, report.new_exposures
            ),
        })
        .await?;
    Ok(report)
}
