//! Alerts for abuse: patterns in the audit log that an auditor should look at. Nothing here
//! refuses anything; it points at what happened, who did it and the entries that show it.
//!
//! The kinds (thresholds in `[alerts]`):
//! - `colour-changes`: one person made more colour-changing acts in an hour than
//!   `colour_changes_per_hour` (cases, overrides, exposures applied, risk areas, results);
//! - `many-reads`: one person read more holders' personal data in the window than
//!   `reads_per_day` (scaled to the window);
//! - `night-reads`: one person read personal data between `night_from` and `night_until`
//!   (local hours, `utc_offset_hours` from UTC);
//! - `one-venue`: a case's tracing turned at least `venue_cluster_holders` holders whose only
//!   link to it is one venue (the pattern of a whole bank's depositors turned at once);
//! - `fresh-area`: a risk area took effect within `fresh_area_minutes` of being declared and
//!   reaches at least `area_cluster_holders` holders who declared travel there.
//!
//! [`detect`] is pure over audit records and the counts the store gives; [`window`] reads a
//! window of the log; [`watch`] recomputes the last day every minute for the metrics.

use healthcode_domain::CaseId;
use healthcode_store::{AuditRecord, ExposureState, Store, StoreResult};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use time::{Duration, OffsetDateTime, UtcOffset};
use utoipa::ToSchema;

/// Actions that change someone's colour (by prefix), as the handlers audit them.
pub const COLOUR_CHANGING: &[&str] = &[
    "case-record",
    "override-propose",
    "override-approve",
    "exposure-apply",
    "exposure-decide",
    "propose-risk-area",
    "approve-risk-area",
    "propose-exposure",
    "approve-exposure",
    "test-record",
    "policy-",
];

/// Whether an entry records a risk area taking effect (the second officer's approval).
fn area_takes_effect(action: &str) -> bool {
    action == "approve-risk-area-declare"
}

/// Actions that open a holder's personal data (by someone other than the holder).
pub const PERSONAL_READS: &[&str] = &["read-personal-data", "appeal-read", "holder-search"];

/// The `[alerts]` section of the configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertsConfig {
    /// Colour-changing acts by one person in one hour above which it is flagged.
    pub colour_changes_per_hour: u32,
    /// Personal-data reads by one person in a day above which it is flagged.
    pub reads_per_day: u32,
    /// Night begins at this local hour (0-23)...
    pub night_from: u8,
    /// ... and ends at this one.
    pub night_until: u8,
    /// Local time is UTC plus this many hours (China: 8).
    pub utc_offset_hours: i8,
    /// Holders linked to a case by one venue only, at or above which the venue is flagged.
    pub venue_cluster_holders: u32,
    /// A risk area taking effect within this many minutes of its declaration...
    pub fresh_area_minutes: u32,
    /// ... that reaches at least this many travellers is flagged.
    pub area_cluster_holders: u32,
    /// How often the metrics are recomputed over the last day (seconds).
    pub interval_seconds: u32,
}

impl Default for AlertsConfig {
    fn default() -> AlertsConfig {
        AlertsConfig {
            colour_changes_per_hour: 30,
            reads_per_day: 200,
            night_from: 23,
            night_until: 6,
            utc_offset_hours: 8,
            venue_cluster_holders: 200,
            fresh_area_minutes: 60,
            area_cluster_holders: 100,
            interval_seconds: 60,
        }
    }
}

impl AlertsConfig {
    /// Checks the values.
    pub fn check(&self) -> Result<(), String> {
        if self.night_from > 23 || self.night_until > 23 {
            return Err("alerts: night_from and night_until are hours, 0 to 23".into());
        }
        if !(-12..=14).contains(&self.utc_offset_hours) {
            return Err("alerts: utc_offset_hours is -12 to 14".into());
        }
        if self.colour_changes_per_hour == 0 || self.reads_per_day == 0 || self.interval_seconds == 0 {
            return Err(
                "alerts: colour_changes_per_hour, reads_per_day and interval_seconds must be at least 1"
                    .into(),
            );
        }
        Ok(())
    }

    fn is_night(&self, at: OffsetDateTime) -> bool {
        let offset = UtcOffset::from_hms(self.utc_offset_hours, 0, 0).unwrap_or(UtcOffset::UTC);
        let hour = at.to_offset(offset).hour();
        if self.night_from == self.night_until {
            false
        } else if self.night_from < self.night_until {
            (self.night_from..self.night_until).contains(&hour)
        } else {
            hour >= self.night_from || hour < self.night_until
        }
    }
}

/// What kind of pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum AlertKind {
    /// Many colour changes by one person in an hour.
    ColourChanges,
    /// Many personal-data reads by one person.
    ManyReads,
    /// Personal-data reads at night.
    NightReads,
    /// Many holders linked to a case by one venue only.
    OneVenue,
    /// A risk area that turned many travellers as soon as it was declared.
    FreshArea,
}

impl AlertKind {
    /// Every kind, for the metrics.
    pub const ALL: [AlertKind; 5] = [
        AlertKind::ColourChanges,
        AlertKind::ManyReads,
        AlertKind::NightReads,
        AlertKind::OneVenue,
        AlertKind::FreshArea,
    ];

    /// The label.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::ColourChanges => "colour-changes",
            AlertKind::ManyReads => "many-reads",
            AlertKind::NightReads => "night-reads",
            AlertKind::OneVenue => "one-venue",
            AlertKind::FreshArea => "fresh-area",
        }
    }
}

/// One flagged pattern.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Alert {
    /// The pattern.
    pub kind: AlertKind,
    /// Who did it (an actor as the audit log names it), when one person did.
    pub actor: Option<String>,
    /// How many (acts, reads, holders).
    pub count: u64,
    /// The threshold it met.
    pub threshold: u64,
    /// What, in a sentence.
    pub detail: String,
    /// The first audit entry that shows it.
    pub first_seq: i64,
    /// The last.
    pub last_seq: i64,
}

/// What the store adds to the log for the cluster alerts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Clusters {
    /// Per case recorded in the window: holders linked by one venue only, by venue.
    pub venues: BTreeMap<i64, BTreeMap<i64, u64>>,
    /// Per risk-area audit entry (its seq): travellers it reaches.
    pub areas: BTreeMap<i64, u64>,
}

fn matches(action: &str, list: &[&str]) -> bool {
    list.iter().any(|p| action.starts_with(p))
}

fn is_staff(r: &AuditRecord) -> bool {
    !matches!(r.entry.role.as_str(), "holder" | "system" | "device")
}

/// The case a `case-record` entry names (`case 12`).
fn case_of(r: &AuditRecord) -> Option<i64> {
    r.entry
        .purpose
        .strip_prefix("case ")?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The region and start a risk-area approval names (`…, done: CN-SH high from 2026-…`).
fn area_of(r: &AuditRecord) -> Option<(String, OffsetDateTime)> {
    let said = r.entry.purpose.rsplit_once("done: ")?.1;
    let mut words = said.split_whitespace();
    let region = words.next()?.to_owned();
    let from = words.skip_while(|w| *w != "from").nth(1)?;
    let from = OffsetDateTime::parse(from, &time::format_description::well_known::Rfc3339).ok()?;
    Some((region, from))
}

/// Flags the patterns in `records` (a window of the log, oldest first), `hours` long.
pub fn detect(records: &[AuditRecord], clusters: &Clusters, hours: u32, cfg: &AlertsConfig) -> Vec<Alert> {
    let mut alerts = Vec::new();
    // Colour changes per person per clock hour.
    let mut changes: BTreeMap<(String, i64), (u64, i64, i64)> = BTreeMap::new();
    let mut reads: BTreeMap<String, (u64, i64, i64)> = BTreeMap::new();
    let mut night: BTreeMap<String, (u64, i64, i64)> = BTreeMap::new();
    for r in records.iter().filter(|r| is_staff(r)) {
        let seq = r.seq;
        let bump = |e: &mut (u64, i64, i64)| {
            if e.0 == 0 {
                e.1 = seq;
            }
            e.0 += 1;
            e.2 = seq;
        };
        if matches(&r.entry.action, COLOUR_CHANGING) {
            let hour = r.entry.at.unix_timestamp().div_euclid(3600);
            bump(changes.entry((r.entry.actor.clone(), hour)).or_default());
        }
        if matches(&r.entry.action, PERSONAL_READS) {
            bump(reads.entry(r.entry.actor.clone()).or_default());
            if cfg.is_night(r.entry.at) {
                bump(night.entry(r.entry.actor.clone()).or_default());
            }
        }
    }
    for ((actor, hour), (n, first, last)) in changes {
        if n > u64::from(cfg.colour_changes_per_hour) {
            let start =
                OffsetDateTime::from_unix_timestamp(hour * 3600).unwrap_or(OffsetDateTime::UNIX_EPOCH);
            alerts.push(Alert {
                kind: AlertKind::ColourChanges,
                actor: Some(actor.clone()),
                count: n,
                threshold: u64::from(cfg.colour_changes_per_hour),
                detail: format!("{actor} made {n} colour-changing acts in the hour from {start} UTC"),
                first_seq: first,
                last_seq: last,
            });
        }
    }
    let read_limit = (u64::from(cfg.reads_per_day) * u64::from(hours.max(1))).div_ceil(24);
    for (actor, (n, first, last)) in reads {
        if n > read_limit {
            alerts.push(Alert {
                kind: AlertKind::ManyReads,
                actor: Some(actor.clone()),
                count: n,
                threshold: read_limit,
                detail: format!("{actor} read holders' personal data {n} times in {hours} hours"),
                first_seq: first,
                last_seq: last,
            });
        }
    }
    for (actor, (n, first, last)) in night {
        alerts.push(Alert {
            kind: AlertKind::NightReads,
            actor: Some(actor.clone()),
            count: n,
            threshold: 1,
            detail: format!(
                "{actor} read holders' personal data {n} times between {:02}:00 and {:02}:00 local time",
                cfg.night_from, cfg.night_until
            ),
            first_seq: first,
            last_seq: last,
        });
    }
    // Cases whose tracing reached many holders through one venue alone.
    for r in records.iter().filter(|r| r.entry.action == "case-record") {
        let Some(case) = case_of(r) else { continue };
        for (venue, &n) in clusters.venues.get(&case).into_iter().flatten() {
            if n >= u64::from(cfg.venue_cluster_holders) {
                alerts.push(Alert {
                    kind: AlertKind::OneVenue,
                    actor: Some(r.entry.actor.clone()),
                    count: n,
                    threshold: u64::from(cfg.venue_cluster_holders),
                    detail: format!("case {case} turned {n} holders whose only link to it is venue {venue}"),
                    first_seq: r.seq,
                    last_seq: r.seq,
                });
            }
        }
    }
    // Areas that took effect as soon as they were declared and reach many travellers.
    for r in records.iter().filter(|r| area_takes_effect(&r.entry.action)) {
        let (Some((region, from)), Some(&n)) = (area_of(r), clusters.areas.get(&r.seq)) else {
            continue;
        };
        let fresh = from - r.entry.at < Duration::minutes(i64::from(cfg.fresh_area_minutes));
        if fresh && n >= u64::from(cfg.area_cluster_holders) {
            alerts.push(Alert {
                kind: AlertKind::FreshArea,
                actor: Some(r.entry.actor.clone()),
                count: n,
                threshold: u64::from(cfg.area_cluster_holders),
                detail: format!(
                    "a risk area in {region} took effect within {} minutes of being declared and reaches {n} holders who travelled there",
                    cfg.fresh_area_minutes
                ),
                first_seq: r.seq,
                last_seq: r.seq,
            });
        }
    }
    alerts.sort_by_key(|a| (a.kind, a.first_seq));
    alerts
}

/// The first seq at or after `at`, by a binary search over the log (records are appended in
/// time order); `None` when every record is older.
async fn first_at_or_after<S: Store>(store: &S, at: OffsetDateTime) -> StoreResult<Option<i64>> {
    let before = |seq: i64| async move {
        Ok::<_, healthcode_store::StoreError>(
            store
                .audit_records(seq - 1, 1)
                .await?
                .first()
                .map(|r| r.entry.at < at),
        )
    };
    // Grow an upper bound, then halve.
    let mut hi = 1i64;
    while let Some(true) = before(hi).await? {
        hi = hi.saturating_mul(2);
    }
    let mut lo = (hi / 2).max(1);
    if before(lo).await? == Some(false) {
        return Ok(Some(lo));
    }
    // Invariant: lo is before `at`; hi is at or after it, or past the end.
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        match before(mid).await? {
            Some(true) => lo = mid,
            _ => hi = mid,
        }
    }
    Ok(match before(hi).await? {
        Some(false) => Some(hi),
        _ => None,
    })
}

/// The records from `from` until `until`, oldest first, at most `max` (more is a sign of its own
/// and is cut).
pub async fn window<S: Store>(
    store: &S,
    from: OffsetDateTime,
    until: OffsetDateTime,
    max: usize,
) -> StoreResult<Vec<AuditRecord>> {
    let Some(first) = first_at_or_after(store, from).await? else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    let mut after = first - 1;
    'pages: loop {
        let page = store.audit_records(after, 1000).await?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        for r in page {
            if r.entry.at > until || out.len() >= max {
                break 'pages;
            }
            out.push(r);
        }
    }
    Ok(out)
}

/// The counts the cluster alerts need, from the store.
pub async fn clusters<S: Store>(store: &S, records: &[AuditRecord]) -> StoreResult<Clusters> {
    let mut c = Clusters::default();
    for r in records {
        if r.entry.action == "case-record"
            && let Some(case) = case_of(r)
        {
            // Per holder, the venues linking them to the case.
            let mut by_holder: BTreeMap<_, BTreeSet<i64>> = BTreeMap::new();
            for e in store.exposures_of_case(CaseId(case)).await? {
                if e.state != ExposureState::Dismissed {
                    by_holder.entry(e.holder).or_default().insert(e.exposure.venue.0);
                }
            }
            let venues = c.venues.entry(case).or_default();
            for only in by_holder.values().filter(|v| v.len() == 1).flatten() {
                *venues.entry(*only).or_default() += 1;
            }
        }
        if area_takes_effect(&r.entry.action)
            && let Some((region, from)) = area_of(r)
        {
            c.areas
                .insert(r.seq, store.travellers_to(&region, from.date()).await?);
        }
    }
    Ok(c)
}

/// The alerts of the last `hours`.
pub async fn current<S: Store>(
    store: &S,
    hours: u32,
    cfg: &AlertsConfig,
    now: OffsetDateTime,
) -> StoreResult<Vec<Alert>> {
    let records = window(store, now - Duration::hours(i64::from(hours)), now, 1_000_000).await?;
    let clusters = clusters(store, &records).await?;
    Ok(detect(&records, &clusters, hours, cfg))
}

/// Recomputes the last day every `interval_seconds` and sets the `abuse_alerts` gauges.
pub fn watch<S: Store>(app: std::sync::Weak<crate::App<S>>, cfg: AlertsConfig) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(u64::from(cfg.interval_seconds)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(app) = app.upgrade() else { return };
            match current(&*app.store, 24, &cfg, crate::now()).await {
                Ok(alerts) => app.metrics.set_alerts(&alerts),
                Err(e) => tracing::debug!(error = %crate::problem::ErrorChain(&e), "alerts not recomputed"),
            }
            drop(app);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use healthcode_store::AuditEntry;
    use time::macros::datetime;

    fn rec(seq: i64, at: OffsetDateTime, actor: &str, action: &str, purpose: &str) -> AuditRecord {
        AuditRecord {
            seq,
            entry: AuditEntry {
                at,
                actor: actor.into(),
                role: "officer".into(),
                action: action.into(),
                subject: None,
                purpose: purpose.into(),
            },
            prev_hash: [0; 32],
            hash: [0; 32],
        }
    }

    fn cfg() -> AlertsConfig {
        AlertsConfig {
            colour_changes_per_hour: 3,
            reads_per_day: 24,
            venue_cluster_holders: 5,
            area_cluster_holders: 5,
            ..AlertsConfig::default()
        }
    }

    #[test]
    fn many_colour_changes_in_one_hour_are_flagged_and_spread_ones_are_not() {
        let t = datetime!(2026-11-30 02:00 UTC);
        let burst: Vec<_> = (1..=4)
            .map(|i| rec(i, t + Duration::minutes(i), "staff:7", "override-approve", "x"))
            .collect();
        let alerts = detect(&burst, &Clusters::default(), 24, &cfg());
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].kind, AlertKind::ColourChanges);
        assert_eq!(alerts[0].actor.as_deref(), Some("staff:7"));
        assert_eq!(
            (alerts[0].count, alerts[0].first_seq, alerts[0].last_seq),
            (4, 1, 4)
        );
        let spread: Vec<_> = (1..=4)
            .map(|i| rec(i, t + Duration::hours(i), "staff:7", "override-approve", "x"))
            .collect();
        assert!(detect(&spread, &Clusters::default(), 24, &cfg()).is_empty());
    }

    #[test]
    fn reads_are_counted_per_person_and_at_night_in_local_time() {
        // 03:00 UTC is 11:00 in China: day. 16:00 UTC is midnight there.
        let day = datetime!(2026-11-30 03:00 UTC);
        let mut rs: Vec<_> = (1..=25)
            .map(|i| rec(i, day, "staff:1", "read-personal-data", "p"))
            .collect();
        rs.push(rec(26, day, "staff:2", "read-personal-data", "p"));
        rs.push(rec(
            27,
            datetime!(2026-11-30 16:00 UTC),
            "staff:3",
            "read-personal-data",
            "p",
        ));
        let alerts = detect(&rs, &Clusters::default(), 24, &cfg());
        let kinds: Vec<_> = alerts
            .iter()
            .map(|a| (a.kind, a.actor.clone().unwrap()))
            .collect();
        assert_eq!(
            kinds,
            vec![
                (AlertKind::ManyReads, "staff:1".to_owned()),
                (AlertKind::NightReads, "staff:3".to_owned())
            ]
        );
        // A holder reading their own data is not an insider.
        let mut own = rec(
            1,
            datetime!(2026-11-30 16:00 UTC),
            "holder:ab",
            "read-personal-data",
            "p",
        );
        own.entry.role = "holder".into();
        assert!(detect(&[own], &Clusters::default(), 24, &cfg()).is_empty());
    }

    #[test]
    fn venue_and_area_clusters_need_their_counts() {
        let t = datetime!(2026-11-30 03:00 UTC);
        let rs = vec![
            rec(1, t, "staff:1", "case-record", "case 12"),
            rec(
                2,
                t,
                "staff:2",
                "approve-risk-area-declare",
                "proposal 1 by staff:1, done: CN-SH high from 2026-11-30T03:05:00Z",
            ),
            rec(
                3,
                t,
                "staff:2",
                "approve-risk-area-declare",
                "proposal 2 by staff:1, done: CN-BJ high from 2026-12-30T03:05:00Z",
            ),
        ];
        let mut c = Clusters::default();
        c.venues.insert(12, BTreeMap::from([(4, 6), (5, 2)]));
        c.areas.insert(2, 9);
        c.areas.insert(3, 9);
        let alerts = detect(&rs, &c, 24, &cfg());
        let got: Vec<_> = alerts.iter().map(|a| (a.kind, a.count, a.first_seq)).collect();
        // Venue 4 only (6 ≥ 5); CN-SH only (CN-BJ takes effect a month after it was declared).
        assert_eq!(
            got,
            vec![(AlertKind::OneVenue, 6, 1), (AlertKind::FreshArea, 9, 2)]
        );
    }

    #[test]
    fn night_wraps_midnight_and_configs_are_checked() {
        let c = AlertsConfig::default();
        assert!(c.is_night(datetime!(2026-11-30 15:30 UTC))); // 23:30 local
        assert!(c.is_night(datetime!(2026-11-30 21:59 UTC))); // 05:59 local
        assert!(!c.is_night(datetime!(2026-11-30 22:00 UTC))); // 06:00 local
        assert!(
            AlertsConfig {
                night_from: 24,
                ..c.clone()
            }
            .check()
            .is_err()
        );
        assert!(c.check().is_ok());
    }
}
