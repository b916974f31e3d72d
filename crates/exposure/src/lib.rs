//! Exposure tracing. For a confirmed case, the case's check-ins over its infectious window (from
//! the policy: some days before onset until confirmation) are compared with every other check-in
//! at the same venues; each holder whose presence overlapped is a contact, graded by the policy
//! (a long enough overlap in a close setting is close, any other overlap same-place). Every
//! exposure keeps its provenance: the case, the venue, both intervals and the overlap.
//!
//! [`trace_case`] is the pure engine over plain check-ins; [`Tracer`] runs it against a
//! [`Store`] and records what it finds, idempotently.

pub mod simulate;

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
/// overlapped several case presences at one venue gives one exposure, the largest overlap.
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
                Some(prev) if overlap_of(prev) >= overlap => {}
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

/// One case to trace from an index.
#[derive(Debug, Clone)]
pub struct CaseJob {
    /// The case.
    pub case: CaseId,
    /// Whose.
    pub holder: HolderId,
    /// Its infectious window.
    pub window: (OffsetDateTime, OffsetDateTime),
    /// Its own check-ins.
    pub own: Vec<CheckIn>,
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

    /// Finds contacts in `index` instead of reading them from the store (the case's own
    /// check-ins still come from the store). The index must cover the cases' windows.
    pub fn with_index(mut self, index: &'a TracingIndex) -> Tracer<'a> {
        self.index = Some(index);
        self
    }

    /// The contacts of one case, without recording them.
    pub async fn contacts<S: Store>(
        &self,
        store: &S,
        holder: &HolderId,
        case: &ConfirmedCase,
    ) -> Result<(Vec<(HolderId, Exposure)>, usize), TraceError> {
        let window = infectious_window(self.policy, case);
        let back = lookback(self.policy);
        // The case's check-ins that can reach into the window.
        let own = store
            .checkins_of_holder(holder, window.0 - back, window.1)
            .await?;
        if let Some(ix) = self.index {
            let found = ix.trace_case(self.policy, case.id, holder, window, &own, &|v| {
                self.categories.get(&v).copied()
            });
            return Ok((found, own.len()));
        }
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

    /// The contacts of many cases, without recording them: from the index on every core when
    /// there is one, else one case after another from the store.
    pub async fn contacts_many<S: Store>(
        &self,
        store: &S,
        cases: &[CaseId],
        threads: usize,
    ) -> Result<Vec<Vec<(HolderId, Exposure)>>, TraceError> {
        let back = lookback(self.policy);
        let mut jobs = Vec::with_capacity(cases.len());
        let mut found = Vec::new();
        for id in cases {
            let (holder, case) = store.case(*id).await?.ok_or(TraceError::NoCase(id.0))?;
            if self.index.is_none() {
                found.push(self.contacts(store, &holder, &case).await?.0);
                continue;
            }
            let window = infectious_window(self.policy, &case);
            let own = store
                .checkins_of_holder(&holder, window.0 - back, window.1)
                .await?;
            jobs.push(CaseJob {
                case: case.id,
                holder,
                window,
                own,
            });
        }
        Ok(match self.index {
            Some(ix) => ix.trace_many(self.policy, &jobs, &|v| self.categories.get(&v).copied(), threads),
            None => found,
        })
    }

    /// Traces cases and records their exposures (as applied or pending, by the policy); running
    /// it again records nothing new.
    pub async fn trace<S: Store>(
        &self,
        store: &S,
        cases: &[CaseId],
    ) -> Result<(TraceReport, Vec<HolderId>), TraceError> {
        let started = Instant::now();
        let mut report = TraceReport {
            cases: cases.len(),
            ..TraceReport::default()
        };
        let state = recorded_state(self.policy);
        let mut worst: HashMap<HolderId, ExposureGrade> = HashMap::new();
        let mut venues = std::collections::HashSet::new();
        for id in cases {
            let (holder, case) = store.case(*id).await?.ok_or(TraceError::NoCase(id.0))?;
            let (found, read) = self.contacts(store, &holder, &case).await?;
            report.checkins_read += read;
            report.exposures += found.len();
            for (h, e) in &found {
                venues.insert(e.venue);
                let w = worst.entry(h.clone()).or_insert(e.grade);
                if e.grade == ExposureGrade::Close {
                    *w = ExposureGrade::Close;
                }
            }
            for chunk in found.chunks(5_000) {
                report.new_exposures += store.add_exposures_as(chunk, state).await?;
            }
        }
        report.close_contacts = worst.values().filter(|g| **g == ExposureGrade::Close).count();
        report.same_place_contacts = worst.len() - report.close_contacts;
        report.venues = venues.len();
        report.elapsed = started.elapsed();
        Ok((report, worst.into_keys().collect()))
    }
}

/// The check-ins of a period held in memory for tracing: per venue, arrivals sorted by time with
/// each presence's end worked out once (by the policy), and holders numbered. A case's contacts
/// are then a binary search and a short scan per visit instead of a store read. Twelve bytes a
/// check-in (56 million in about 670 MB).
#[derive(Debug, Default)]
pub struct TracingIndex {
    base: i64,
    holders: Vec<HolderId>,
    venues: HashMap<VenueId, VenueRows>,
    rows: usize,
}

#[derive(Debug, Default)]
struct VenueRows {
    /// Arrival, seconds after `base`.
    at: Vec<u32>,
    /// End of presence, seconds after `base`.
    end: Vec<u32>,
    /// Holder number.
    holder: Vec<u32>,
    /// The longest presence here, seconds.
    longest: u32,
}

impl TracingIndex {
    /// Reads every check-in with `from <= at < to` at every venue of the store.
    pub async fn build<S: Store>(
        store: &S,
        p: &TracingPolicy,
        from: OffsetDateTime,
        to: OffsetDateTime,
        progress: &(dyn Fn(u64, u64) + Sync),
    ) -> Result<TracingIndex, TraceError> {
        let venues = store.venues().await?;
        let mut ix = TracingIndex {
            base: from.unix_timestamp(),
            ..TracingIndex::default()
        };
        let mut numbers: HashMap<HolderId, u32> = HashMap::new();
        let total = venues.len() as u64;
        for (i, v) in venues.iter().enumerate() {
            let mut rows = store.checkins_at_venue(v.id, from, to).await?;
            rows.sort_by_key(|c| c.at);
            rows.dedup_by(|a, b| a.device == b.device && a.seq == b.seq);
            let vr = ix.rows_of(p, v.category, rows.iter(), &mut numbers);
            ix.rows += vr.at.len();
            ix.venues.insert(v.id, vr);
            if i % 100 == 0 || i + 1 == venues.len() {
                progress(i as u64 + 1, total);
            }
        }
        ix.renumber();
        Ok(ix)
    }

    /// An index of the given check-ins (arrivals before `from` are not held).
    pub fn from_checkins(
        p: &TracingPolicy,
        from: OffsetDateTime,
        checkins: &[CheckIn],
        category: &dyn Fn(VenueId) -> Option<VenueCategory>,
    ) -> TracingIndex {
        let mut ix = TracingIndex {
            base: from.unix_timestamp(),
            ..TracingIndex::default()
        };
        let mut by_venue: HashMap<VenueId, Vec<&CheckIn>> = HashMap::new();
        for c in checkins.iter().filter(|c| c.at >= from) {
            by_venue.entry(c.venue).or_default().push(c);
        }
        let mut numbers: HashMap<HolderId, u32> = HashMap::new();
        for (venue, mut rows) in by_venue {
            let Some(cat) = category(venue) else { continue };
            rows.sort_by_key(|c| c.at);
            rows.dedup_by(|a, b| a.device == b.device && a.seq == b.seq);
            let vr = ix.rows_of(p, cat, rows.into_iter(), &mut numbers);
            ix.rows += vr.at.len();
            ix.venues.insert(venue, vr);
        }
        ix.renumber();
        ix
    }

    fn rows_of<'c>(
        &mut self,
        p: &TracingPolicy,
        cat: VenueCategory,
        rows: impl ExactSizeIterator<Item = &'c CheckIn>,
        numbers: &mut HashMap<HolderId, u32>,
    ) -> VenueRows {
        let mut vr = VenueRows {
            at: Vec::with_capacity(rows.len()),
            end: Vec::with_capacity(rows.len()),
            holder: Vec::with_capacity(rows.len()),
            longest: 0,
        };
        for c in rows {
            let (s, e) = presence(p, c, cat);
            let next = self.holders.len() as u32;
            let h = *numbers.entry(c.holder.clone()).or_insert_with(|| {
                self.holders.push(c.holder.clone());
                next
            });
            vr.at.push(self.offset(s));
            vr.end.push(self.offset(e));
            vr.holder.push(h);
            vr.longest = vr.longest.max(self.offset(e).saturating_sub(self.offset(s)));
        }
        vr
    }

    /// Renumbers holders in the order of their ids, so that sorting by number sorts by id.
    fn renumber(&mut self) {
        let mut order: Vec<u32> = (0..self.holders.len() as u32).collect();
        order.sort_unstable_by(|a, b| self.holders[*a as usize].cmp(&self.holders[*b as usize]));
        let mut new_of = vec![0u32; order.len()];
        for (new, old) in order.iter().enumerate() {
            new_of[*old as usize] = new as u32;
        }
        let mut holders = Vec::with_capacity(order.len());
        for old in &order {
            holders.push(self.holders[*old as usize].clone());
        }
        self.holders = holders;
        for v in self.venues.values_mut() {
            for h in v.holder.iter_mut() {
                *h = new_of[*h as usize];
            }
        }
    }

    fn offset(&self, t: OffsetDateTime) -> u32 {
        (t.unix_timestamp() - self.base).clamp(0, i64::from(u32::MAX)) as u32
    }

    fn time(&self, off: u32) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(self.base + i64::from(off)).unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }

    /// Check-ins held.
    pub fn len(&self) -> usize {
        self.rows
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Distinct holders seen.
    pub fn holders(&self) -> usize {
        self.holders.len()
    }

    /// Many cases at once on `threads` threads: for each job (case, its holder, its window, its
    /// own check-ins), what [`TracingIndex::trace_case`] finds, in the jobs' order.
    pub fn trace_many(
        &self,
        p: &TracingPolicy,
        jobs: &[CaseJob],
        category: &(dyn Fn(VenueId) -> Option<VenueCategory> + Sync),
        threads: usize,
    ) -> Vec<Vec<(HolderId, Exposure)>> {
        let threads = threads.clamp(1, jobs.len().max(1));
        let mut out: Vec<Vec<(HolderId, Exposure)>> = vec![Vec::new(); jobs.len()];
        std::thread::scope(|scope| {
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    scope.spawn(move || {
                        jobs.iter()
                            .enumerate()
                            .skip(t)
                            .step_by(threads)
                            .map(|(i, j)| {
                                (
                                    i,
                                    self.trace_case(p, j.case, &j.holder, j.window, &j.own, category),
                                )
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            for h in handles {
                if let Ok(done) = h.join() {
                    for (i, found) in done {
                        out[i] = found;
                    }
                }
            }
        });
        out
    }

    /// The same exposures as [`trace_case`] would find from the store's check-ins, from memory.
    /// `case_checkins` are the case's own (from the store: a short read by holder).
    pub fn trace_case(
        &self,
        p: &TracingPolicy,
        case: CaseId,
        case_holder: &HolderId,
        window: (OffsetDateTime, OffsetDateTime),
        case_checkins: &[CheckIn],
        category: &dyn Fn(VenueId) -> Option<VenueCategory>,
    ) -> Vec<(HolderId, Exposure)> {
        // (holder number, venue, arrival, -overlap seconds, end, case presence, grade)
        let mut hits: Vec<(u32, VenueId, u32, i64, u32, usize, ExposureGrade)> = Vec::new();
        let mut presences: Vec<(OffsetDateTime, OffsetDateTime)> = Vec::new();
        let own_number = self.holders.binary_search(case_holder).ok().map(|n| n as u32);
        for own in case_checkins.iter().filter(|c| &c.holder == case_holder) {
            let Some(cat) = category(own.venue) else { continue };
            let (s, e) = presence(p, own, cat);
            let (s, e) = (s.max(window.0), e.min(window.1));
            if e <= s {
                continue;
            }
            let Some(rows) = self.venues.get(&own.venue) else {
                continue;
            };
            presences.push((s, e));
            let pi = presences.len() - 1;
            let (so, eo) = (i64::from(self.offset(s)), i64::from(self.offset(e)));
            let from = so.saturating_sub(i64::from(rows.longest)).max(0) as u32;
            let first = rows.at.partition_point(|a| *a < from);
            let close = Duration::minutes(p.close_overlap_minutes.into()).whole_seconds();
            let close_here = p.close_categories.contains(&cat);
            for k in first..rows.at.len() {
                let at = i64::from(rows.at[k]);
                if at >= eo {
                    break;
                }
                let overlap = i64::from(rows.end[k]).min(eo) - at.max(so);
                if overlap <= 0 {
                    continue;
                }
                let h = rows.holder[k];
                if Some(h) == own_number {
                    continue;
                }
                let g = if close_here && overlap >= close {
                    ExposureGrade::Close
                } else {
                    ExposureGrade::SamePlace
                };
                hits.push((h, own.venue, rows.at[k], -overlap, rows.end[k], pi, g));
            }
        }
        // One exposure per contact check-in: the largest overlap. Holder numbers follow the
        // holders' order, so this is also the order `trace_case` gives.
        hits.sort_unstable_by_key(|x| (x.0, x.1, x.2, x.3, x.5));
        hits.dedup_by_key(|x| (x.0, x.1, x.2));
        hits.into_iter()
            .map(|(h, venue, at, neg_overlap, end, pi, grade)| {
                (
                    self.holders[h as usize].clone(),
                    Exposure {
                        case,
                        venue,
                        case_interval: presences[pi],
                        contact_interval: (self.time(at), self.time(end)),
                        overlap_minutes: -neg_overlap / 60,
                        grade,
                    },
                )
            })
            .collect()
    }
}
