//! The colour policy: a TOML file that states each rule, and [`evaluate`], a pure function from a
//! holder's facts and the time to a colour with the reasons for it.
//!
//! `default-policy.toml` beside this crate is the documented default (yellow = 7 days of home
//! observation, red = 14 days of quarantine, green otherwise).

use std::collections::BTreeMap;

use healthcode_domain::{
    Colour, ExposureGrade, HolderFacts, Issuer, Override, OverrideId, RiskArea, RiskLevel, VenueCategory,
};
use serde::Deserialize;
use time::{Date, Duration, OffsetDateTime, Time, UtcOffset};

/// The default policy's text.
pub const DEFAULT_POLICY: &str = include_str!("../default-policy.toml");

/// Why a policy file was refused: the line and the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("policy line {line}: {reason}")]
pub struct PolicyError {
    /// 1-based line of the problem.
    pub line: usize,
    /// What is wrong.
    pub reason: String,
}

/// The kind of fact that starts a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Trigger {
    /// A confirmed case of the holder.
    ConfirmedCase,
    /// A positive test.
    PositiveTest,
    /// A close contact of a case.
    CloseExposure,
    /// At the same place as a case.
    SamePlaceExposure,
    /// A stay in a high-risk area.
    TravelHighRisk,
    /// A stay in a medium-risk area.
    TravelMediumRisk,
    /// Fever or symptoms declared.
    SymptomsDeclared,
}

/// What ends a rule before its time.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct EndsEarly {
    /// This many negative tests sampled after the start, 24 hours apart.
    #[serde(default)]
    pub negative_tests: u8,
    /// This many consecutive local days with a "well" daily report after the start.
    #[serde(default)]
    pub daily_reports: u8,
}

/// One rule.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Stable id, shown with every reason.
    pub id: String,
    /// What the holder reads.
    pub description: String,
    /// The kind of fact that starts it.
    pub trigger: Trigger,
    /// The colour it gives.
    pub colour: Colour,
    /// How long from its start.
    pub hold_hours: u32,
    /// What ends it earlier.
    #[serde(default)]
    pub ends_early: EndsEarly,
}

/// How exposure tracing finds and grades contacts.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct TracingPolicy {
    /// Infectious from this many days before onset.
    pub infectious_days_before_onset: u8,
    /// Minimum overlap for a close contact.
    pub close_overlap_minutes: u32,
    /// Categories where a long enough overlap is close.
    pub close_categories: Vec<VenueCategory>,
    /// Typical stay by category when there is no check-out.
    pub dwell_minutes: BTreeMap<VenueCategory, u32>,
    /// The longest stay counted: a check-out later than this after the check-in counts as this.
    #[serde(default = "default_max_stay")]
    pub max_stay_minutes: u32,
    /// Whether traced exposures change colours at once or wait for an officer's review.
    #[serde(default)]
    pub apply: ApplyMode,
}

fn default_max_stay() -> u32 {
    720
}

/// What happens to exposures tracing finds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ApplyMode {
    /// They count for colours as soon as they are recorded.
    #[default]
    Automatic,
    /// They wait until an officer applies (or dismisses) each.
    Review,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    version: String,
    utc_offset: String,
    fever_celsius: f32,
    rules: Vec<Rule>,
    tracing: TracingPolicy,
    #[serde(default)]
    plausibility: Plausibility,
}

/// `[plausibility]`: how far from now a date an officer enters (onset of a case, sampling of a
/// test, a risk area's start and end) may lie; outside it the date is refused as a typing error
/// or worse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Plausibility {
    /// Days into the past.
    pub max_days_past: u32,
    /// Days into the future (only where a future date means anything: a risk area's end).
    pub max_days_future: u32,
}

impl Default for Plausibility {
    fn default() -> Plausibility {
        Plausibility {
            max_days_past: 60,
            max_days_future: 90,
        }
    }
}

/// A date outside the plausible window: why, in one line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Implausible(pub String);

impl Plausibility {
    /// Checks `field`'s value `t` against the window around `now`; `future` says whether the
    /// field may lie ahead at all (five minutes of clock skew are always allowed).
    pub fn check(
        &self,
        field: &str,
        t: OffsetDateTime,
        now: OffsetDateTime,
        future: bool,
    ) -> Result<(), Implausible> {
        let earliest = now - time::Duration::days(i64::from(self.max_days_past));
        let latest = if future {
            now + time::Duration::days(i64::from(self.max_days_future))
        } else {
            now + time::Duration::minutes(5)
        };
        if t < earliest {
            return Err(Implausible(format!(
                "{field} lies more than {} days in the past",
                self.max_days_past
            )));
        }
        if t > latest {
            return Err(Implausible(if future {
                format!("{field} lies more than {} days ahead", self.max_days_future)
            } else {
                format!("{field} is in the future")
            }));
        }
        Ok(())
    }
}

/// A checked policy.
#[derive(Debug, Clone)]
pub struct Policy {
    version: String,
    offset: UtcOffset,
    fever_celsius: f32,
    rules: Vec<Rule>,
    tracing: TracingPolicy,
    plausibility: Plausibility,
    source: String,
}

fn line_of(source: &str, needle: &str) -> usize {
    source
        .lines()
        .position(|l| l.contains(needle))
        .map_or(1, |i| i + 1)
}

impl Policy {
    /// The default policy.
    pub fn default_policy() -> Policy {
        // The default is tested to parse; failing here would be a build defect, so fall back to
        // an empty-rule policy is never needed.
        match Policy::parse(DEFAULT_POLICY) {
            Ok(p) => p,
            Err(e) => unreachable!("the default policy is invalid: {e}"),
        }
    }

    /// Parses and checks a policy file.
    pub fn parse(source: &str) -> Result<Policy, PolicyError> {
        let file: PolicyFile = toml::from_str(source).map_err(|e| {
            let line = e
                .span()
                .map_or(1, |s| source[..s.start.min(source.len())].lines().count().max(1));
            PolicyError {
                line,
                reason: e.message().to_owned(),
            }
        })?;
        let fail = |needle: &str, reason: String| PolicyError {
            line: line_of(source, needle),
            reason,
        };
        if file.version.trim().is_empty() {
            return Err(fail("version", "the version is empty".into()));
        }
        let fmt = time::macros::format_description!("[offset_hour sign:mandatory]:[offset_minute]");
        let offset = UtcOffset::parse(&file.utc_offset, &fmt).map_err(|_| {
            fail(
                "utc_offset",
                format!("utc_offset {:?} is not like \"+08:00\"", file.utc_offset),
            )
        })?;
        if !(35.0..=43.0).contains(&file.fever_celsius) {
            return Err(fail(
                "fever_celsius",
                "fever_celsius must be between 35 and 43".into(),
            ));
        }
        let mut seen = std::collections::BTreeSet::new();
        for r in &file.rules {
            let at = format!("\"{}\"", r.id);
            if r.id.is_empty()
                || !r
                    .id
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            {
                return Err(fail(
                    &at,
                    format!("rule id {:?} must be lower-case letters, digits and -", r.id),
                ));
            }
            if !seen.insert(r.id.clone()) {
                return Err(fail(&at, format!("rule id {:?} is used twice", r.id)));
            }
            if r.colour == Colour::Green {
                return Err(fail(
                    &at,
                    format!("rule {:?} gives green: rules give yellow or red", r.id),
                ));
            }
            if r.hold_hours == 0 || r.hold_hours > 24 * 90 {
                return Err(fail(
                    &at,
                    format!("rule {:?}: hold_hours must be 1 to 2160", r.id),
                ));
            }
        }
        if file.tracing.max_stay_minutes == 0 || file.tracing.max_stay_minutes > 7 * 24 * 60 {
            return Err(PolicyError {
                line: line_of(source, "max_stay_minutes"),
                reason: "tracing.max_stay_minutes must be between 1 and 10080".into(),
            });
        }
        if file.tracing.close_overlap_minutes == 0 {
            return Err(fail(
                "close_overlap_minutes",
                "close_overlap_minutes must be at least 1".into(),
            ));
        }
        if file.plausibility.max_days_past == 0 || file.plausibility.max_days_past > 3660 {
            return Err(fail(
                "max_days_past",
                "plausibility.max_days_past must be between 1 and 3660".into(),
            ));
        }
        if file.plausibility.max_days_future > 3660 {
            return Err(fail(
                "max_days_future",
                "plausibility.max_days_future must be at most 3660".into(),
            ));
        }
        for c in VenueCategory::ALL {
            match file.tracing.dwell_minutes.get(&c) {
                Some(m) if *m > 0 => {}
                _ => {
                    return Err(fail(
                        "dwell_minutes",
                        format!("dwell_minutes has no positive value for {}", c.as_str()),
                    ));
                }
            }
        }
        Ok(Policy {
            version: file.version,
            offset,
            fever_celsius: file.fever_celsius,
            rules: file.rules,
            tracing: file.tracing,
            plausibility: file.plausibility,
            source: source.to_owned(),
        })
    }

    /// The version, recorded with every status.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The rules.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The tracing settings.
    pub fn tracing(&self) -> &TracingPolicy {
        &self.tracing
    }

    /// The plausible window of dates officers enter.
    pub fn plausibility(&self) -> &Plausibility {
        &self.plausibility
    }

    /// The region's offset from UTC, for calendar days.
    pub fn utc_offset(&self) -> UtcOffset {
        self.offset
    }

    /// The file as published.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Whether some rule can be ended by a negative test or a daily report: such facts may
    /// lighten a colour; no other fact can, except an approved override.
    pub fn clearing_facts(&self) -> (bool, bool) {
        (
            self.rules.iter().any(|r| r.ends_early.negative_tests > 0),
            self.rules.iter().any(|r| r.ends_early.daily_reports > 0),
        )
    }
}

/// What gave a holder its colour.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Cause {
    /// A rule in force.
    Rule {
        /// The rule's id.
        rule: String,
        /// The fact that started it, described for the holder.
        fact: String,
    },
    /// An approved manual change.
    Override {
        /// Its id.
        id: OverrideId,
        /// The officers' reason.
        reason: String,
    },
}

/// One reason for a colour.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reason {
    /// The colour it gives.
    pub colour: Colour,
    /// What caused it.
    pub cause: Cause,
    /// Since when.
    pub since: OffsetDateTime,
    /// Until when it holds unless ended earlier.
    pub until: OffsetDateTime,
}

/// A holder's colour at a moment, with its reasons.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// The colour.
    pub colour: Colour,
    /// Every rule or override in force: an override first, then rules, most severe first.
    pub reasons: Vec<Reason>,
    /// When the colour turns green if nothing new happens; `None` when green.
    pub green_at: Option<OffsetDateTime>,
    /// The policy version that produced it.
    pub policy_version: String,
}

fn local_date(t: OffsetDateTime, offset: UtcOffset) -> Date {
    t.to_offset(offset).date()
}

fn end_of_local_day(d: Date, offset: UtcOffset) -> OffsetDateTime {
    d.next_day()
        .unwrap_or(d)
        .with_time(Time::MIDNIGHT)
        .assume_offset(offset)
        .to_offset(UtcOffset::UTC)
}

/// Whether a risk area's region covers a visited region: the same region, or its whole country.
fn covers(area: &Issuer, visited: &Issuer) -> bool {
    area == visited || (area.as_str().len() == 2 && visited.as_str().starts_with(area.as_str()))
}

/// A started rule before early ends are considered: in force from `since`, for the rule's hours
/// counted from `counts_from` (the same instant, except for a stay in a risk area, which is in force
/// from its first moment and counts from its last).
struct Hold<'a> {
    rule: &'a Rule,
    fact: String,
    since: OffsetDateTime,
    counts_from: OffsetDateTime,
}

/// The rules the holder's facts have started by `now`.
struct Holds<'a> {
    now: OffsetDateTime,
    started: Vec<Hold<'a>>,
}

impl<'a> Holds<'a> {
    /// A rule started by a fact at `since`, counted from then.
    fn start(&mut self, rule: &'a Rule, since: OffsetDateTime, fact: String) {
        self.span(rule, since, since, fact);
    }

    /// A rule in force from `since`, counted from `counts_from`; nothing if `since` is after now.
    fn span(&mut self, rule: &'a Rule, since: OffsetDateTime, counts_from: OffsetDateTime, fact: String) {
        if since <= self.now {
            self.started.push(Hold {
                rule,
                fact,
                since,
                counts_from,
            });
        }
    }
}

/// The holder's colour at `now` under `policy`. Only facts at or before `now` count. Pure and
/// deterministic: the same facts, areas, policy and time always give the same status.
pub fn evaluate(policy: &Policy, facts: &HolderFacts, areas: &[RiskArea], now: OffsetDateTime) -> Status {
    let mut holds = Holds {
        now,
        started: Vec::new(),
    };
    for rule in &policy.rules {
        let h = &mut holds;
        match rule.trigger {
            Trigger::ConfirmedCase => confirmed_cases(rule, facts, h),
            Trigger::PositiveTest => positive_tests(rule, facts, h),
            Trigger::CloseExposure => exposures(rule, ExposureGrade::Close, facts, h),
            Trigger::SamePlaceExposure => exposures(rule, ExposureGrade::SamePlace, facts, h),
            Trigger::TravelHighRisk => stays(rule, RiskLevel::High, facts, areas, policy.offset, h),
            Trigger::TravelMediumRisk => stays(rule, RiskLevel::Medium, facts, areas, policy.offset, h),
            Trigger::SymptomsDeclared => declarations(rule, policy.fever_celsius, facts, h),
        }
    }
    let clearing = Clearing::of(facts, policy.offset, now);
    let mut reasons: Vec<Reason> = Vec::new();
    for h in holds.started {
        if let Some(r) = clearing.in_force(h, now) {
            reasons.push(r);
        }
    }
    reasons.sort_by(most_severe_first);
    let mut status = Status {
        colour: reasons.iter().map(|r| r.colour).max().unwrap_or(Colour::Green),
        green_at: reasons.iter().map(|r| r.until).max(),
        reasons,
        policy_version: policy.version.clone(),
    };
    if let Some(o) = latest_override(facts, now) {
        apply_override(&mut status, o);
    }
    if status.colour == Colour::Green {
        status.green_at = None;
    }
    status
}

/// Red before yellow, then the longest-lasting, the latest, and by cause: a total order, so the
/// same facts in any order give the same list.
#[inline]
fn most_severe_first(a: &Reason, b: &Reason) -> std::cmp::Ordering {
    b.colour
        .cmp(&a.colour)
        .then(b.until.cmp(&a.until))
        .then(b.since.cmp(&a.since))
        .then(a.cause.cmp(&b.cause))
}

/// Each confirmed case of the holder, from its confirmation.
fn confirmed_cases<'a>(rule: &'a Rule, facts: &HolderFacts, holds: &mut Holds<'a>) {
    for c in &facts.cases {
        holds.start(rule, c.confirmed_at, format!("confirmed case {}", c.id));
    }
}

/// Each positive test, from its sampling.
fn positive_tests<'a>(rule: &'a Rule, facts: &HolderFacts, holds: &mut Holds<'a>) {
    for t in facts.tests.iter().filter(|t| t.positive) {
        holds.start(rule, t.sampled_at, format!("positive test by {}", t.lab));
    }
}

/// Each exposure of the rule's grade, from the end of the contact.
fn exposures<'a>(rule: &'a Rule, grade: ExposureGrade, facts: &HolderFacts, holds: &mut Holds<'a>) {
    for e in facts.exposures.iter().filter(|e| e.grade == grade) {
        holds.start(
            rule,
            e.ended_at(),
            format!(
                "{} min at venue {} with case {}",
                e.overlap_minutes, e.venue, e.case
            ),
        );
    }
}

/// Each declared stay that overlaps a risk area of the rule's level covering its region: in force
/// from the first moment in the area, for the rule's hours after the last. A stay counts once it
/// is declared.
fn stays<'a>(
    rule: &'a Rule,
    level: RiskLevel,
    facts: &HolderFacts,
    areas: &[RiskArea],
    offset: UtcOffset,
    holds: &mut Holds<'a>,
) {
    for t in &facts.travels {
        let stay_from = t
            .from
            .with_time(Time::MIDNIGHT)
            .assume_offset(offset)
            .to_offset(UtcOffset::UTC);
        let stay_until = end_of_local_day(t.until, offset);
        for a in areas
            .iter()
            .filter(|a| a.level == level && covers(&a.region, &t.region))
        {
            let area_until = a.until.unwrap_or(stay_until);
            if a.from < stay_until && stay_from < area_until && t.at <= holds.now {
                holds.span(
                    rule,
                    stay_from.max(a.from),
                    stay_until.min(area_until),
                    format!("stay in {} ({} to {})", t.region, t.from, t.until),
                );
            }
        }
    }
}

/// Each health declaration with a fever (at or above `fever_celsius`) or a symptom.
fn declarations<'a>(rule: &'a Rule, fever_celsius: f32, facts: &HolderFacts, holds: &mut Holds<'a>) {
    for d in &facts.declarations {
        let fever = d.temperature_c.is_some_and(|t| t >= fever_celsius);
        if fever || !d.symptoms.is_empty() {
            let what = if fever {
                "fever declared"
            } else {
                "symptoms declared"
            };
            holds.start(rule, d.at, what.to_owned());
        }
    }
}

/// The facts that can end a rule early, up to `now`, in time order.
struct Clearing {
    /// Sample times of negative tests.
    negatives: Vec<OffsetDateTime>,
    /// Local days and times of "well" daily reports.
    well_days: Vec<(Date, OffsetDateTime)>,
}

impl Clearing {
    fn of(facts: &HolderFacts, offset: UtcOffset, now: OffsetDateTime) -> Clearing {
        let mut negatives: Vec<OffsetDateTime> = facts
            .tests
            .iter()
            .filter(|t| !t.positive && t.sampled_at <= now)
            .map(|t| t.sampled_at)
            .collect();
        negatives.sort_unstable();
        let mut well_days: Vec<(Date, OffsetDateTime)> = facts
            .reports
            .iter()
            .filter(|r| r.well && r.at <= now)
            .map(|r| (local_date(r.at, offset), r.at))
            .collect();
        well_days.sort_unstable();
        Clearing { negatives, well_days }
    }

    /// When a started rule ends: its hours after `counts_from` (the `until` shown, and what
    /// `green_at` is made of), or earlier once enough negative tests or well days follow its start.
    /// Returns both.
    fn hold_end(&self, h: &Hold<'_>) -> (OffsetDateTime, OffsetDateTime) {
        let until = h.counts_from + Duration::hours(h.rule.hold_hours.into());
        let mut end = until;
        let e = &h.rule.ends_early;
        if e.negative_tests > 0
            && let Some(t) = nth_negative(&self.negatives, h.since, e.negative_tests)
        {
            end = end.min(t);
        }
        if e.daily_reports > 0
            && let Some(t) = nth_consecutive_day(&self.well_days, h.since, e.daily_reports)
        {
            end = end.min(t);
        }
        (until, end)
    }

    /// The reason a started rule gives at `now`, if it has not ended.
    fn in_force(&self, h: Hold<'_>, now: OffsetDateTime) -> Option<Reason> {
        let (until, end) = self.hold_end(&h);
        (now < end).then(|| Reason {
            colour: h.rule.colour,
            cause: Cause::Rule {
                rule: h.rule.id.clone(),
                fact: h.fact,
            },
            since: h.since,
            until,
        })
    }
}

/// The latest approved override in force at `now`.
fn latest_override(facts: &HolderFacts, now: OffsetDateTime) -> Option<&Override> {
    facts
        .overrides
        .iter()
        .filter(|o| o.in_force(now))
        .max_by_key(|o| (o.approval.map(|(_, at)| at), o.id))
}

/// An override sets the colour outright and comes first among the reasons; a colour other than
/// green holds at least until the override expires.
fn apply_override(status: &mut Status, o: &Override) {
    status.colour = o.colour;
    status.green_at = match o.colour {
        Colour::Green => None,
        _ => Some(status.green_at.map_or(o.expires_at, |g| g.max(o.expires_at))),
    };
    status.reasons.insert(
        0,
        Reason {
            colour: o.colour,
            cause: Cause::Override {
                id: o.id,
                reason: o.reason.clone(),
            },
            since: o.approval.map_or(o.proposed_at, |(_, at)| at),
            until: o.expires_at,
        },
    );
}

/// The sample time of the n-th negative test after `since`, each at least 24 hours after the one
/// before it.
fn nth_negative(sorted: &[OffsetDateTime], since: OffsetDateTime, n: u8) -> Option<OffsetDateTime> {
    let mut count = 0u8;
    let mut last: Option<OffsetDateTime> = None;
    for &t in sorted.iter().filter(|t| **t > since) {
        if last.is_none_or(|l| t - l >= Duration::hours(24)) {
            count += 1;
            last = Some(t);
            if count == n {
                return last;
            }
        }
    }
    None
}

/// The time of the report completing `n` consecutive local days of "well" reports after `since`.
fn nth_consecutive_day(
    sorted: &[(Date, OffsetDateTime)],
    since: OffsetDateTime,
    n: u8,
) -> Option<OffsetDateTime> {
    let mut run = 0u8;
    let mut prev: Option<Date> = None;
    for &(day, at) in sorted.iter().filter(|(_, at)| *at > since) {
        match prev {
            Some(p) if p == day => continue,
            Some(p) if p.next_day() == Some(day) => run += 1,
            _ => run = 1,
        }
        prev = Some(day);
        if run == n {
            return Some(at);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_policy_parses_and_states_every_trigger() {
        let p = Policy::default_policy();
        assert_eq!(p.version(), "default-2026.1");
        let triggers: std::collections::BTreeSet<_> = p.rules().iter().map(|r| r.trigger).collect();
        assert_eq!(triggers.len(), 7);
        assert_eq!(p.tracing().dwell_minutes.len(), VenueCategory::ALL.len());
    }

    #[test]
    fn malformed_policies_are_refused_with_the_line() {
        let bad_toml = DEFAULT_POLICY.replace("hold_hours = 168\nends_early = { negative_tests = 1 }\n\n[[rules]]\nid = \"high-risk-travel\"", "hold_hours = \"a week\"\nends_early = { negative_tests = 1 }\n\n[[rules]]\nid = \"high-risk-travel\"");
        let e = Policy::parse(&bad_toml).unwrap_err();
        let expected = bad_toml.lines().position(|l| l.contains("\"a week\"")).unwrap() + 1;
        assert_eq!(e.line, expected, "{e}");

        let unknown = DEFAULT_POLICY.replace("trigger = \"symptoms-declared\"", "trigger = \"bad-mood\"");
        let e = Policy::parse(&unknown).unwrap_err();
        assert!(
            e.reason.contains("bad-mood") || e.reason.contains("variant"),
            "{e}"
        );
        assert_eq!(
            e.line,
            unknown.lines().position(|l| l.contains("bad-mood")).unwrap() + 1
        );

        let green = DEFAULT_POLICY.replace(
            "colour = \"yellow\"\nhold_hours = 168\nends_early = { negative_tests = 1, daily_reports = 3 }",
            "colour = \"green\"\nhold_hours = 168\nends_early = { negative_tests = 1, daily_reports = 3 }",
        );
        let e = Policy::parse(&green).unwrap_err();
        assert!(e.reason.contains("gives green"), "{e}");
        assert_eq!(
            e.line,
            green
                .lines()
                .position(|l| l.contains("id = \"symptoms\""))
                .unwrap()
                + 1
        );

        let twice = DEFAULT_POLICY.replace("id = \"positive-test\"", "id = \"confirmed-case\"");
        assert!(Policy::parse(&twice).unwrap_err().reason.contains("used twice"));
        let offset = DEFAULT_POLICY.replace("utc_offset = \"+08:00\"", "utc_offset = \"Beijing\"");
        assert!(
            Policy::parse(&offset)
                .unwrap_err()
                .to_string()
                .starts_with("policy line ")
        );
        let unknown_field = DEFAULT_POLICY.replace(
            "hold_hours = 336\nends_early = { negative_tests = 2 }\n\n[[rules]]\nid = \"positive-test\"",
            "hold_hours = 336\nhold_days = 14\n\n[[rules]]\nid = \"positive-test\"",
        );
        assert!(
            Policy::parse(&unknown_field)
                .unwrap_err()
                .reason
                .contains("hold_days")
        );
    }
}
