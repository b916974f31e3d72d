//! The tracing index: a period's check-ins held in memory so that a case's contacts need no store
//! read at all.
//!
//! Check-ins are rows of 12 bytes (arrival, end of presence, holder number) grouped by venue and
//! sorted by arrival; each holder's own visits are a list of row numbers (4 bytes a check-in).
//! A case's contacts are then: its visits from its list, and per visit a binary search and a short
//! scan of the venue's rows. Times are whole seconds after the start of the period, as the store
//! keeps them.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Mutex;

use healthcode_domain::{CaseId, CheckIn, Exposure, ExposureGrade, HolderId, VenueCategory, VenueId};
use healthcode_policy::TracingPolicy;
use healthcode_store::Store;
use time::{Duration, OffsetDateTime};

use crate::{TraceError, presence};

/// One check-in in the index.
#[derive(Debug, Clone, Copy)]
struct Row {
    /// Arrival, seconds after the index's start.
    at: u32,
    /// End of presence (by the policy), seconds after the index's start.
    end: u32,
    /// Holder number (holders are numbered in id order).
    holder: u32,
}

/// The check-ins of a period in memory; see the module's documentation. Built with
/// [`IndexBuilder`], [`TracingIndex::build`] (from a store) or [`TracingIndex::from_checkins`].
#[derive(Debug)]
pub struct TracingIndex {
    policy: TracingPolicy,
    from: OffsetDateTime,
    to: OffsetDateTime,
    /// Holders by number (in id order).
    holders: Vec<HolderId>,
    /// Venues by number (in id order) and their categories.
    venues: Vec<VenueId>,
    categories: Vec<VenueCategory>,
    /// The longest presence at each venue, seconds.
    longest: Vec<u32>,
    /// The rows of venue `v` are `rows[venue_start[v]..venue_start[v + 1]]`.
    venue_start: Vec<u32>,
    rows: Vec<Row>,
    /// The visits of holder `h` are `visits[visit_start[h]..visit_start[h + 1]]`: row numbers,
    /// by arrival.
    visit_start: Vec<u32>,
    visits: Vec<u32>,
}

/// A fast hash for holder ids (random or sequential numbers, not chosen by an
/// adversary who could gain from collisions here): multiply and rotate per word, then mix.
#[derive(Debug, Default, Clone, Copy)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut w = [0u8; 8];
            w[..chunk.len()].copy_from_slice(chunk);
            self.0 = (self.0.rotate_left(23) ^ u64::from_le_bytes(w)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn finish(&self) -> u64 {
        let z = (self.0 ^ (self.0 >> 31)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z ^ (z >> 29)
    }
}

/// Gathers check-ins, in any order, into a [`TracingIndex`].
#[derive(Debug)]
pub struct IndexBuilder {
    policy: TracingPolicy,
    from: OffsetDateTime,
    to: OffsetDateTime,
    /// Venue number of each known venue; venues are numbered in id order.
    venue_no: HashMap<VenueId, u32>,
    venues: Vec<VenueId>,
    categories: Vec<VenueCategory>,
    /// Holder numbers in order of first sight (renumbered in id order at the end).
    numbers: HashMap<HolderId, u32, BuildHasherDefault<KeyHasher>>,
    holders: Vec<HolderId>,
    /// (venue number, row) for each check-in taken.
    staged: Vec<(u32, Row)>,
}

impl IndexBuilder {
    /// A builder for the check-ins arriving in `[from, to)` at `venues` (check-ins elsewhere are
    /// not taken). Presences are worked out by `policy`, which is also the one tracing uses.
    pub fn new(
        policy: &TracingPolicy,
        from: OffsetDateTime,
        to: OffsetDateTime,
        venues: impl IntoIterator<Item = (VenueId, VenueCategory)>,
    ) -> IndexBuilder {
        let mut vs: Vec<(VenueId, VenueCategory)> = venues.into_iter().collect();
        vs.sort_by_key(|v| v.0);
        vs.dedup_by_key(|v| v.0);
        IndexBuilder {
            policy: policy.clone(),
            from,
            to,
            venue_no: vs.iter().enumerate().map(|(i, v)| (v.0, i as u32)).collect(),
            venues: vs.iter().map(|v| v.0).collect(),
            categories: vs.iter().map(|v| v.1).collect(),
            numbers: HashMap::default(),
            holders: Vec::new(),
            staged: Vec::new(),
        }
    }

    /// Takes one check-in. Each `(device, seq)` must come once (the store's scan promises it).
    pub fn push(&mut self, c: &CheckIn) {
        if c.at < self.from || c.at >= self.to {
            return;
        }
        let Some(&v) = self.venue_no.get(&c.venue) else {
            return;
        };
        let (s, e) = presence(&self.policy, c, self.categories[v as usize]);
        let next = self.holders.len() as u32;
        let holder = *self.numbers.entry(c.holder.clone()).or_insert_with(|| {
            self.holders.push(c.holder.clone());
            next
        });
        let base = self.from.unix_timestamp();
        let off = |t: OffsetDateTime| (t.unix_timestamp() - base).clamp(0, i64::from(u32::MAX)) as u32;
        self.staged.push((
            v,
            Row {
                at: off(s),
                end: off(e),
                holder,
            },
        ));
    }

    /// Check-ins taken so far.
    pub fn len(&self) -> usize {
        self.staged.len()
    }

    /// Whether none was taken.
    pub fn is_empty(&self) -> bool {
        self.staged.is_empty()
    }

    /// Sorts what was taken into the index, using up to `threads` threads.
    pub fn finish(self, threads: usize) -> Result<TracingIndex, TraceError> {
        let IndexBuilder {
            policy,
            from,
            to,
            venues,
            categories,
            holders,
            staged,
            numbers,
            ..
        } = self;
        drop(numbers);
        if staged.len() >= u32::MAX as usize {
            return Err(TraceError::TooLarge(staged.len()));
        }
        // Holders renumbered in id order, so that sorting by number sorts by id.
        let mut order: Vec<u32> = (0..holders.len() as u32).collect();
        order.sort_unstable_by(|a, b| holders[*a as usize].cmp(&holders[*b as usize]));
        let mut new_of = vec![0u32; order.len()];
        for (new, old) in order.iter().enumerate() {
            new_of[*old as usize] = new as u32;
        }
        let mut old_holders: Vec<Option<HolderId>> = holders.into_iter().map(Some).collect();
        let holders: Vec<HolderId> = order
            .iter()
            .filter_map(|old| old_holders[*old as usize].take())
            .collect();
        drop(old_holders);
        // Rows grouped by venue (a counting sort, keeping the order they came in), then each
        // venue's rows sorted by arrival.
        let mut venue_start = vec![0u32; venues.len() + 1];
        for (v, _) in &staged {
            venue_start[*v as usize + 1] += 1;
        }
        for v in 0..venues.len() {
            venue_start[v + 1] += venue_start[v];
        }
        let mut next: Vec<u32> = venue_start[..venues.len()].to_vec();
        let mut rows = vec![
            Row {
                at: 0,
                end: 0,
                holder: 0
            };
            staged.len()
        ];
        for (v, r) in staged {
            let slot = &mut next[v as usize];
            rows[*slot as usize] = Row {
                holder: new_of[r.holder as usize],
                ..r
            };
            *slot += 1;
        }
        drop(next);
        let mut slices: Vec<&mut [Row]> = Vec::with_capacity(venues.len());
        let mut rest: &mut [Row] = &mut rows;
        for v in 0..venues.len() {
            let n = (venue_start[v + 1] - venue_start[v]) as usize;
            let (head, tail) = rest.split_at_mut(n);
            slices.push(head);
            rest = tail;
        }
        let longest: Vec<u32> = on_threads(slices, threads, |s| {
            s.sort_by_key(|r| r.at);
            s.iter().map(|r| r.end.saturating_sub(r.at)).max().unwrap_or(0)
        });
        // Each holder's visits: row numbers, by arrival.
        let mut visit_start = vec![0u32; holders.len() + 1];
        for r in &rows {
            visit_start[r.holder as usize + 1] += 1;
        }
        for h in 0..holders.len() {
            visit_start[h + 1] += visit_start[h];
        }
        let mut next: Vec<u32> = visit_start[..holders.len()].to_vec();
        let mut visits = vec![0u32; rows.len()];
        for (i, r) in rows.iter().enumerate() {
            let slot = &mut next[r.holder as usize];
            visits[*slot as usize] = i as u32;
            *slot += 1;
        }
        drop(next);
        for h in 0..holders.len() {
            let own = &mut visits[visit_start[h] as usize..visit_start[h + 1] as usize];
            own.sort_by_key(|i| rows[*i as usize].at);
        }
        Ok(TracingIndex {
            policy,
            from,
            to,
            holders,
            venues,
            categories,
            longest,
            venue_start,
            rows,
            visit_start,
            visits,
        })
    }
}

/// Runs `f` on every item on up to `threads` scoped threads, each taking the next item when it is
/// free; returns the results in the items' order. A panic in `f` is passed on.
fn on_threads<T: Send, R: Send>(items: Vec<T>, threads: usize, f: impl Fn(T) -> R + Sync) -> Vec<R> {
    let n = items.len();
    let threads = threads.clamp(1, n.max(1));
    let queue = Mutex::new(items.into_iter().enumerate());
    let mut out: Vec<Option<R>> = (0..n).map(|_| None).collect();
    let (f, queue) = (&f, &queue);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(move || {
                    let mut done = Vec::new();
                    loop {
                        let next = queue.lock().ok().and_then(|mut q| q.next());
                        let Some((i, x)) = next else { break };
                        done.push((i, f(x)));
                    }
                    done
                })
            })
            .collect();
        for h in handles {
            match h.join() {
                Ok(done) => {
                    for (i, r) in done {
                        out[i] = Some(r);
                    }
                }
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
    });
    out.into_iter().flatten().collect()
}

/// A contact's check-in that overlapped one of a case's presences, packed so that sorting by
/// `(key, rank, tie)` orders hits by holder, venue and arrival, and one check-in's hits from
/// the one to keep (largest overlap, earliest case presence, earliest end) on.
#[derive(Debug, Clone, Copy)]
struct Hit {
    /// Holder number (high half), venue number (low half).
    key: u64,
    /// Arrival (high half), `u32::MAX` minus the overlap in seconds (low half).
    rank: u64,
    /// The case presence's number, in order of (start, end) (high half); the end of the
    /// contact's presence (low half).
    tie: u64,
    grade: ExposureGrade,
}

thread_local! {
    /// Each thread's buffer of a case's hits, kept from case to case.
    static HITS: RefCell<Vec<Hit>> = const { RefCell::new(Vec::new()) };
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
}

impl TracingIndex {
    /// Reads every check-in with `from <= at < to` from the store in one scan
    /// ([`CheckinStore::scan_checkins`](healthcode_store::CheckinStore::scan_checkins)) and indexes
    /// it by `policy`; `progress` hears the check-ins read so far.
    pub async fn build<S: Store>(
        store: &S,
        policy: &TracingPolicy,
        from: OffsetDateTime,
        to: OffsetDateTime,
        threads: usize,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<TracingIndex, TraceError> {
        let venues = store.venues().await?;
        let mut b = IndexBuilder::new(policy, from, to, venues.iter().map(|v| (v.id, v.category)));
        let mut each = |batch: Vec<CheckIn>| {
            for c in &batch {
                b.push(c);
            }
            progress(b.len() as u64);
        };
        store.scan_checkins(from, to, &mut each).await?;
        b.finish(threads)
    }

    /// An index of the given check-ins arriving in `[from, to)` (a `(device, seq)` given twice
    /// is taken once).
    pub fn from_checkins(
        policy: &TracingPolicy,
        from: OffsetDateTime,
        to: OffsetDateTime,
        checkins: &[CheckIn],
        category: &dyn Fn(VenueId) -> Option<VenueCategory>,
    ) -> Result<TracingIndex, TraceError> {
        let venues: HashSet<VenueId> = checkins.iter().map(|c| c.venue).collect();
        let mut b = IndexBuilder::new(
            policy,
            from,
            to,
            venues.into_iter().filter_map(|v| category(v).map(|c| (v, c))),
        );
        let mut seen = HashSet::new();
        for c in checkins {
            if seen.insert((c.device, c.seq)) {
                b.push(c);
            }
        }
        b.finish(1)
    }

    /// The period held: arrivals in `[from, to)`.
    pub fn period(&self) -> (OffsetDateTime, OffsetDateTime) {
        (self.from, self.to)
    }

    /// Whether a case with this infectious window is traced completely from here: its own
    /// visits and its contacts' arrivals all fall in the period held.
    pub fn covers(&self, window: (OffsetDateTime, OffsetDateTime)) -> bool {
        window.0 - crate::lookback(&self.policy) >= self.from && window.1 <= self.to
    }

    /// Check-ins held.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Distinct holders seen.
    pub fn holders(&self) -> usize {
        self.holders.len()
    }

    /// Bytes held by the index's arrays (not counting the allocator's overhead).
    pub fn heap_bytes(&self) -> usize {
        let ids: usize = self
            .holders
            .iter()
            .map(|h| std::mem::size_of::<HolderId>() + h.as_bytes().len())
            .sum();
        ids + self.rows.len() * std::mem::size_of::<Row>()
            + (self.visits.len() + self.visit_start.len() + self.venue_start.len() + self.longest.len()) * 4
            + self.venues.len() * (std::mem::size_of::<VenueId>() + std::mem::size_of::<VenueCategory>())
    }

    fn offset(&self, t: OffsetDateTime) -> u32 {
        (t.unix_timestamp() - self.from.unix_timestamp()).clamp(0, i64::from(u32::MAX)) as u32
    }

    fn time(&self, off: u32) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(self.from.unix_timestamp() + i64::from(off))
            .unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }

    /// The venue number of row `i`.
    fn venue_of_row(&self, i: u32) -> usize {
        self.venue_start.partition_point(|s| *s <= i).saturating_sub(1)
    }

    /// The exposures one case caused, from memory: what [`crate::trace_case`] finds given every
    /// check-in of the period held (the case's own among them). When [`TracingIndex::covers`]
    /// the window, that is all the case caused.
    pub fn trace_case(
        &self,
        case: CaseId,
        case_holder: &HolderId,
        window: (OffsetDateTime, OffsetDateTime),
    ) -> Vec<(HolderId, Exposure)> {
        let Ok(me) = self.holders.binary_search(case_holder) else {
            return Vec::new();
        };
        HITS.with_borrow_mut(|hits| self.trace_with(case, me, window, hits))
    }

    fn trace_with(
        &self,
        case: CaseId,
        me: usize,
        window: (OffsetDateTime, OffsetDateTime),
        hits: &mut Vec<Hit>,
    ) -> Vec<(HolderId, Exposure)> {
        hits.clear();
        let (w0, w1) = (self.offset(window.0), self.offset(window.1));
        let close = Duration::minutes(self.policy.close_overlap_minutes.into()).whole_seconds();
        // The case's presences inside the window: (start, end, venue number), in order.
        let own = &self.visits[self.visit_start[me] as usize..self.visit_start[me + 1] as usize];
        let mut presences: Vec<(u32, u32, u32)> = own
            .iter()
            .map(|&i| {
                let r = self.rows[i as usize];
                (r.at.max(w0), r.end.min(w1), self.venue_of_row(i) as u32)
            })
            .filter(|(s, e, _)| e > s)
            .collect();
        presences.sort_unstable();
        presences.dedup();
        for (pi, &(s, e, v)) in presences.iter().enumerate() {
            let v = v as usize;
            let close_here = self.policy.close_categories.contains(&self.categories[v]);
            let rows = &self.rows[self.venue_start[v] as usize..self.venue_start[v + 1] as usize];
            // Only arrivals in [s - longest stay here, e) can overlap [s, e).
            let first = rows.partition_point(|x| x.at < s.saturating_sub(self.longest[v]));
            let (so, eo) = (i64::from(s), i64::from(e));
            for x in rows[first..].iter().take_while(|x| x.at < e) {
                let overlap = i64::from(x.end).min(eo) - i64::from(x.at).max(so);
                if overlap <= 0 || x.holder == me as u32 {
                    continue;
                }
                let grade = if close_here && overlap >= close {
                    ExposureGrade::Close
                } else {
                    ExposureGrade::SamePlace
                };
                hits.push(Hit {
                    key: u64::from(x.holder) << 32 | v as u64,
                    rank: u64::from(x.at) << 32 | u64::from(u32::MAX - overlap as u32),
                    tie: (pi as u64) << 32 | u64::from(x.end),
                    grade,
                });
            }
        }
        // One exposure per contact check-in (holder, venue, arrival), the one `trace_case`
        // keeps. Holders and venues are numbered in id order, so this is also its order.
        hits.sort_unstable_by_key(|x| (x.key, x.rank, x.tie));
        hits.dedup_by_key(|x| (x.key, x.rank >> 32));
        let times: Vec<(OffsetDateTime, OffsetDateTime)> = presences
            .iter()
            .map(|p| (self.time(p.0), self.time(p.1)))
            .collect();
        hits.iter()
            .map(|x| {
                let at = (x.rank >> 32) as u32;
                let overlap = u32::MAX - x.rank as u32;
                (
                    self.holders[(x.key >> 32) as usize].clone(),
                    Exposure {
                        case,
                        venue: self.venues[x.key as u32 as usize],
                        case_interval: times[(x.tie >> 32) as usize],
                        contact_interval: (self.time(at), self.time(x.tie as u32)),
                        overlap_minutes: i64::from(overlap / 60),
                        grade: x.grade,
                    },
                )
            })
            .collect()
    }

    /// Many cases at once on up to `threads` threads (each takes the next case when it is free):
    /// what [`TracingIndex::trace_case`] finds for each, in the jobs' order.
    pub fn trace_many(&self, jobs: &[CaseJob], threads: usize) -> Vec<Vec<(HolderId, Exposure)>> {
        on_threads(jobs.iter().collect(), threads, |j| {
            self.trace_case(j.case, &j.holder, j.window)
        })
    }
}
