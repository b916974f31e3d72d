//! Exposure tracing. For a confirmed case, the case's check-ins over its infectious window (from
//! the policy: some days before onset until confirmation) are compared with every other check-in
//! at the same venues; each holder whose presence overlapped is a contact, graded by the policy
//! (a long enough overlap in a close setting is close, any other overlap same-place). Every
//! exposure keeps its provenance: the case, the venue, both intervals and the overlap.
//!
//! [`trace_case`] is the pure engine over plain check-ins; [`Tracer`] runs it against a
//! [`Store`] and records what it finds, idempotently.

mod index;
pub mod simulate;

pub use index::{CaseJob, IndexBuilder, TracingIndex};

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use healthcode_domain::{
    CaseId, CheckIn, ConfirmedCase, Exposure, ExposureGrade, HolderId, VenueCategory, VenueId,
};
use healthcode_policy::{ApplyMode, TracingPolicy};
use healthcode_store::{ExposureState, Store, StoreError};
use time::{Duration, OffsetDateTime};

/// When a case was infectious: from `infectious_days_before_onset` before onset until it was
/// confirmed (and isolated).
pub fn infectious_window(p: &TracingPolicy, case: &ConfirmedCase) -> (OffsetDateTime, OffsetDateTime) {
    (
        case.onset - Duration::days(p.infectious_days_before_onset.into()),
        case.confirmed_at,
    )
}

/// How long a stay counts when there is no check-out.
pub fn dwell(p: &TracingPolicy, category: VenueCategory) -> Duration {
    Duration::minutes(p.dwell_minutes.get(&category).copied().unwrap_or(60).into())
}

/// How tracing records what it finds: applied at once, or pending an officer's review.
pub fn recorded_state(p: &TracingPolicy) -> ExposureState {
    match p.apply {
        ApplyMode::Automatic => ExposureState::Applied,
        ApplyMode::Review => ExposureState::Pending,
    }
}

/// How far before a case's arrival a contact may have arrived and still overlap: the longest
/// stay counted.
pub fn lookback(p: &TracingPolicy) -> Duration {
    let longest_dwell = p.dwell_minutes.values().copied().max().unwrap_or(60);
    Duration::minutes(longest_dwell.max(p.max_stay_minutes).into())
}

/// A check-in's presence: from the check-in to the check-out, or to the check-in plus the
/// category's typical stay when there is none; never longer than the policy's longest stay.
pub fn presence(p: &TracingPolicy, c: &CheckIn, category: VenueCategory) -> (OffsetDateTime, OffsetDateTime) {
    let longest = c.at + Duration::minutes(p.max_stay_minutes.into());
    let end = match c.out {
        Some(out) if out > c.at => out.min(longest),
        _ => (c.at + dwell(p, category)).min(longest),
    };
    (c.at, end)
}

/// The grade of an overlap of `overlap` at a venue of `category`; `None` when there is none
/// (intervals that only touch do not overlap).
pub fn grade(p: &TracingPolicy, category: VenueCategory, overlap: Duration) -> Option<ExposureGrade> {
    if overlap <= Duration::ZERO {
        None
    } else if p.close_categories.contains(&category)
        && overlap >= Duration::minutes(p.close_overlap_minutes.into())
    {
        Some(ExposureGrade::Close)
    } else {
        Some(ExposureGrade::SamePlace)
    }
}

/// The exposures one case caused. `case_checkins` are the case's own check-ins (any range: only
/// the parts inside `window` count); `others` are check-ins at the venues the case visited,
/// at least every one arriving from [`lookback`] before each case presence until its end (more
/// is harmless). The case's own check-ins among `others` are ignored. A contact's check-in that
/// overlapped several case presences at one venue gives one exposure: the largest overlap (on a
/// tie, the earliest case presence; for two check-ins of one contact arriving at once, the
/// earliest end).
/// The result is sorted by holder, venue and contact start.
pub fn trace_case(
    p: &TracingPolicy,
    case: CaseId,
    case_holder: &HolderId,
    window: (OffsetDateTime, OffsetDateTime),
    case_checkins: &[CheckIn],
    others: &[CheckIn],
    category: &dyn Fn(VenueId) -> Option<VenueCategory>,
) -> Vec<(HolderId, Exposure)> {
    let mut by_venue: HashMap<VenueId, Vec<&CheckIn>> = HashMap::new();
    for c in others {
        if &c.holder != case_holder {
            by_venue.entry(c.venue).or_default().push(c);
        }
    }
    for v in by_venue.values_mut() {
        v.sort_by_key(|c| c.at);
        // The same scan may come twice (a store's inbox and its indexed table): keep one.
        v.dedup_by(|a, b| a.device == b.device && a.seq == b.seq);
    }
    let back = lookback(p);
    let mut found: BTreeMap<(HolderId, VenueId, OffsetDateTime), Exposure> = BTreeMap::new();
    for own in case_checkins.iter().filter(|c| &c.holder == case_holder) {
        let Some(cat) = category(own.venue) else { continue };
        let (s, e) = presence(p, own, cat);
        let (s, e) = (s.max(window.0), e.min(window.1));
        if e <= s {
            continue;
        }
        let Some(candidates) = by_venue.get(&own.venue) else {
            continue;
        };
        // Only arrivals in [s - lookback, e) can overlap [s, e).
        let first = candidates.partition_point(|c| c.at < s - back);
        for other in candidates[first..].iter().take_while(|c| c.at < e) {
            let (os, oe) = presence(p, other, cat);
            let overlap = oe.min(e) - os.max(s);
            let Some(g) = grade(p, cat, overlap) else { continue };
            let exposure = Exposure {
                case,
                venue: own.venue,
                case_interval: (s, e),
                contact_interval: (os, oe),
                overlap_minutes: overlap.whole_minutes(),
                grade: g,
            };
            let key = (other.holder.clone(), own.venue, os);
            match found.get(&key) {
                Some(prev) if rank(prev) <= rank(&exposure) => {}
                _ => {
                    found.insert(key, exposure);
                }
            }
        }
    }
    found.into_iter().map(|((h, _, _), e)| (h, e)).collect()
}

fn overlap_of(e: &Exposure) -> Duration {
    e.contact_interval.1.min(e.case_interval.1) - e.contact_interval.0.max(e.case_interval.0)
}

/// Which of two exposures of one contact check-in is kept (the smaller): the largest overlap,
/// then the earliest case presence, then the earliest end of the contact's presence.
fn rank(
    e: &Exposure,
) -> (
    std::cmp::Reverse<Duration>,
    (OffsetDateTime, OffsetDateTime),
    OffsetDateTime,
) {
    (
        std::cmp::Reverse(overlap_of(e)),
        e.case_interval,
        e.contact_interval.1,
    )
}

/// What a tracing run found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TraceReport {
    /// Cases traced.
    pub cases: usize,
    /// Exposures found (new or already recorded).
    pub exposures: usize,
    /// Distinct contacts graded close (by their worst exposure).
    pub close_contacts: usize,
    /// Distinct contacts graded same-place only.
    pub same_place_contacts: usize,
    /// Venues where a contact happened.
    pub venues: usize,
    /// Exposures recorded by this run (0 on a repeat).
    pub new_exposures: u64,
    /// Check-ins read from the store.
    pub checkins_read: usize,
    /// Wall time.
    pub elapsed: std::time::Duration,
}

/// A tracing run failed.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// No such case.
    #[error("there is no case {0}")]
    NoCase(i64),
    /// Too many check-ins for one index.
    #[error("{0} check-ins are more than one tracing index holds")]
    TooLarge(usize),
}

/// Runs tracing against a store.
#[derive(Debug)]
pub struct Tracer<'a> {
    policy: &'a TracingPolicy,
    categories: HashMap<VenueId, VenueCategory>,
    index: Option<&'a TracingIndex>,
}

impl<'a> Tracer<'a> {
    /// A tracer that knows the venues' categories (read once from the store).
    pub async fn new<S: Store>(store: &S, policy: &'a TracingPolicy) -> Result<Tracer<'a>, TraceError> {
        let categories = store
            .venues()
            .await?
            .into_iter()
            .map(|v| (v.id, v.category))
            .collect();
        Ok(Tracer {
            policy,
            categories,
            index: None,
        })
    }

    /// Finds contacts in `index` instead of the store: a case whose window the index covers
    /// needs no store read at all. Cases it does not cover are traced from the store.
    pub fn with_index(mut self, index: &'a TracingIndex) -> Tracer<'a> {
        self.index = Some(index);
        self
    }

    fn covered(&self, case: &ConfirmedCase) -> Option<&'a TracingIndex> {
        self.index
            .filter(|ix| ix.covers(infectious_window(self.policy, case)))
    }

    /// The contacts of one case, without recording them, and how many check-ins were read
    /// from the store for them (none from the index).
    pub async fn contacts<S: Store>(
        &self,
        store: &S,
        holder: &HolderId,
        case: &ConfirmedCase,
    ) -> Result<(Vec<(HolderId, Exposure)>, usize), TraceError> {
        let window = infectious_window(self.policy, case);
        if let Some(ix) = self.covered(case) {
            return Ok((ix.trace_case(case.id, holder, window), 0));
        }
        let back = lookback(self.policy);
        // The case's check-ins that can reach into the window.
        let own = store
            .checkins_of_holder(holder, window.0 - back, window.1)
            .await?;
        let mut others = Vec::new();
        // One read per visit, from the earliest arrival that could overlap it.
        let mut ranges: Vec<(VenueId, OffsetDateTime, OffsetDateTime)> = Vec::new();
        for c in &own {
            let Some(cat) = self.categories.get(&c.venue) else {
                continue;
            };
            let (s, e) = presence(self.policy, c, *cat);
            let (s, e) = (s.max(window.0), e.min(window.1));
            if e > s {
                ranges.push((c.venue, s - back, e));
            }
        }
        // Merge overlapping reads at one venue.
        ranges.sort_by_key(|r| (r.0, r.1));
        let mut merged: Vec<(VenueId, OffsetDateTime, OffsetDateTime)> = Vec::new();
        for r in ranges {
            match merged.last_mut() {
                Some(m) if m.0 == r.0 && r.1 <= m.2 => m.2 = m.2.max(r.2),
                _ => merged.push(r),
            }
        }
        for (venue, from, to) in merged {
            others.extend(store.checkins_at_venue(venue, from, to).await?);
        }
        let read = own.len() + others.len();
        let found = trace_case(self.policy, case.id, holder, window, &own, &others, &|v| {
            self.categories.get(&v).copied()
        });
        Ok((found, read))
    }

    /// The contacts of many cases, without recording them, in the cases' order, and the
    /// check-ins read from the store for them: the cases the index covers on up to `threads`
    /// threads from memory, the others one after another from the store.
    pub async fn contacts_many<S: Store>(
        &self,
        store: &S,
        cases: &[CaseId],
        threads: usize,
    ) -> Result<(Vec<Vec<(HolderId, Exposure)>>, usize), TraceError> {
        let mut jobs = Vec::with_capacity(cases.len());
        let mut slots = Vec::with_capacity(cases.len());
        let mut found = Vec::with_capacity(cases.len());
        let mut read = 0;
        // The case records, read at once.
        let records = store.cases_by_id(cases).await?;
        for (id, record) in cases.iter().zip(records) {
            let (holder, case) = record.ok_or(TraceError::NoCase(id.0))?;
            if self.covered(&case).is_some() {
                slots.push(Some(jobs.len()));
                found.push(Vec::new());
                jobs.push(CaseJob {
                    case: case.id,
                    window: infectious_window(self.policy, &case),
                    holder,
                });
            } else {
                let (f, r) = self.contacts(store, &holder, &case).await?;
                read += r;
                slots.push(None);
                found.push(f);
            }
        }
        if let Some(ix) = self.index.filter(|_| !jobs.is_empty()) {
            let mut from_index = ix.trace_many(&jobs, threads);
            for (slot, f) in slots.iter().zip(found.iter_mut()) {
                if let Some(j) = slot {
                    *f = std::mem::take(&mut from_index[*j]);
                }
            }
        }
        Ok((found, read))
    }

    /// Traces cases and records their exposures (as applied or pending, by the policy) in
    /// batches; running it again records nothing new.
    pub async fn trace<S: Store>(
        &self,
        store: &S,
        cases: &[CaseId],
    ) -> Result<(TraceReport, Vec<HolderId>), TraceError> {
        let started = Instant::now();
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let (found, read) = self.contacts_many(store, cases, threads).await?;
        let mut report = TraceReport {
            cases: cases.len(),
            checkins_read: read,
            ..TraceReport::default()
        };
        let state = recorded_state(self.policy);
        let mut worst: HashMap<HolderId, ExposureGrade> = HashMap::new();
        let mut venues = std::collections::HashSet::new();
        let mut batch: Vec<(HolderId, Exposure)> = Vec::with_capacity(RECORD_BATCH);
        for (h, e) in found.into_iter().flatten() {
            report.exposures += 1;
            venues.insert(e.venue);
            let w = worst.entry(h.clone()).or_insert(e.grade);
            if e.grade == ExposureGrade::Close {
                *w = ExposureGrade::Close;
            }
            batch.push((h, e));
            if batch.len() == RECORD_BATCH {
                report.new_exposures += store.add_exposures_as(&batch, state).await?;
                batch.clear();
            }
        }
        if !batch.is_empty() {
            report.new_exposures += store.add_exposures_as(&batch, state).await?;
        }
        report.close_contacts = worst.values().filter(|g| **g == ExposureGrade::Close).count();
        report.same_place_contacts = worst.len() - report.close_contacts;
        report.venues = venues.len();
        report.elapsed = started.elapsed();
        Ok((report, worst.into_keys().collect()))
    }
}

/// Exposures recorded in one store call.
const RECORD_BATCH: usize = 20_000;
