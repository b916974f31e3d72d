//! Admission by connection. With thousands of connections each keeping one request outstanding,
//! the wait is not in the server's own queues but in the sockets and their readiness events:
//! every connection waits about (connections ÷ rate) for its turn to be read, whatever is done with
//! the requests once read (Little's law). So the server bounds the connections it serves instead.
//!
//! It keeps at most K connections *admitted*, K = max(`admitted_floor`, R × W), where R is the
//! rate of requests it completed over about the last second and W the wait it aims at
//! (`admitted_wait_ms`): K connections with a request each outstanding wait about K ÷ R = W on
//! average (the slowest several times that: docs/BENCHMARKS.md). A
//! connection is admitted by its first request (or the first after it was released) and stays
//! admitted while it has a request in flight or had one within the release window (max(4 W,
//! 200 ms)); then a sweep releases it. A request on a connection that is not admitted, arriving
//! while K are, is refused at once (503, Retry-After, `Connection: close`), but only while most
//! new connections are seen waiting at least W ÷ 2 between their accept and their first byte read
//! (the queue the rule is about): clients that pause between requests (a browser between clicks)
//! keep connections counted for the window without queueing, and must not be refused by the count
//! alone. The majority, not the shortest or the mean: under overload a few connections are read
//! at once by luck, and a browser's speculative connection sends nothing for seconds. The verdict
//! holds for the release window after the last sweep that saw it, since refused clients come back
//! in waves whose first connections are read at once.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use crate::metrics::Metrics;

/// The settings of admission.
#[derive(Debug, Clone, Copy)]
pub struct AdmissionLimits {
    /// The wait aimed at; zero turns admission off.
    pub wait: Duration,
    /// Connections admitted whatever the measured rate.
    pub floor: usize,
}

/// Over how long the completed-request rate is averaged (the time constant of its decay).
const RATE_WINDOW: Duration = Duration::from_secs(1);

/// K: the connections that may be admitted at once for a rate (requests a second) and a wait.
pub fn limit(rate: f64, wait: Duration, floor: usize) -> usize {
    let k = (rate.max(0.0) * wait.as_secs_f64()).floor();
    // A float past usize's range saturates in `as`.
    (k as usize).max(floor)
}

/// The rate averaged over about [`RATE_WINDOW`]: the old value moved towards a new sample
/// (`completed` requests over `dt`) by the share of the window that `dt` is.
pub fn averaged_rate(old: f64, completed: u64, dt: Duration) -> f64 {
    let secs = dt.as_secs_f64();
    if secs <= 0.0 {
        return old;
    }
    let sample = completed as f64 / secs;
    let weight = 1.0 - (-secs / RATE_WINDOW.as_secs_f64()).exp();
    old + (sample - old) * weight
}

/// How long after its last request a connection stays admitted with nothing in flight.
pub fn release_window(wait: Duration) -> Duration {
    (wait * 4).max(Duration::from_millis(200))
}

/// One connection's place: whether it is admitted, its requests in flight, when it last had one.
#[derive(Debug, Default)]
pub struct Seat {
    admitted: AtomicBool,
    in_flight: AtomicUsize,
    /// Milliseconds since the door's start, of the last request's start or end.
    last_ms: AtomicU64,
}

/// Whether a request is let in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Served.
    Serve,
    /// Refused: answered 503 and the connection closed.
    Refuse,
}

/// The admission state shared by every connection, and its sweep.
#[derive(Debug)]
pub struct Door {
    limits: AdmissionLimits,
    start: Instant,
    /// Admitted connections (K is not exceeded by admission; a sweep lowers it).
    admitted: AtomicUsize,
    /// K.
    limit: AtomicUsize,
    /// Requests completed since the last sweep.
    completed: AtomicU64,
    /// New connections since the last sweep whose first byte was read W ÷ 2 or more after their
    /// accept, those read sooner, and the sum of their waits (µs).
    first_reads_late: AtomicU64,
    first_reads_soon: AtomicU64,
    first_reads_us: AtomicU64,
    /// Whether a sweep within the release window saw most new connections wait W ÷ 2 or more.
    queueing: AtomicBool,
    /// Sweeps since the last that did.
    since_late: AtomicU64,
    /// The mean wait from accept to first byte, as of the last sweep that saw any (µs).
    first_read_us: AtomicU64,
    /// Admitted seats, for the sweep to release (an entry no longer admitted is dropped by it).
    seats: Mutex<Vec<Arc<Seat>>>,
    /// The rate, in requests a second (`f64` bits), for the sweep.
    rate_bits: AtomicU64,
}

impl Door {
    /// A door with nothing admitted; K starts at the floor.
    pub fn new(limits: AdmissionLimits) -> Door {
        Door {
            limits,
            start: Instant::now(),
            admitted: AtomicUsize::new(0),
            limit: AtomicUsize::new(limits.floor),
            completed: AtomicU64::new(0),
            first_reads_late: AtomicU64::new(0),
            first_reads_soon: AtomicU64::new(0),
            first_reads_us: AtomicU64::new(0),
            queueing: AtomicBool::new(false),
            since_late: AtomicU64::new(0),
            first_read_us: AtomicU64::new(0),
            seats: Mutex::new(Vec::new()),
            rate_bits: AtomicU64::new(0f64.to_bits()),
        }
    }

    /// Whether admission is on.
    pub fn enabled(&self) -> bool {
        !self.limits.wait.is_zero()
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// A request begins on `seat`: served if the connection is admitted, or can be, or is exempt.
    pub fn enter(&self, seat: &Arc<Seat>, exempt: bool) -> Verdict {
        seat.in_flight.fetch_add(1, Ordering::AcqRel);
        seat.last_ms.store(self.now_ms(), Ordering::Relaxed);
        if exempt || !self.enabled() || seat.admitted.load(Ordering::Acquire) {
            return Verdict::Serve;
        }
        if self.admit(seat) {
            Verdict::Serve
        } else {
            seat.in_flight.fetch_sub(1, Ordering::AcqRel);
            Verdict::Refuse
        }
    }

    /// A served request on `seat` ended.
    pub fn leave(&self, seat: &Seat) {
        seat.last_ms.store(self.now_ms(), Ordering::Relaxed);
        seat.in_flight.fetch_sub(1, Ordering::AcqRel);
        self.completed.fetch_add(1, Ordering::Relaxed);
    }

    /// The connection of `seat` closed.
    pub fn closed(&self, seat: &Seat) {
        if seat.admitted.swap(false, Ordering::AcqRel) {
            self.admitted.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// A new connection's first bytes came `waited` after it was accepted.
    pub fn first_read(&self, waited: Duration) {
        let us = u64::try_from(waited.as_micros()).unwrap_or(u64::MAX);
        self.first_reads_us.fetch_add(us, Ordering::Relaxed);
        if waited >= self.limits.wait / 2 {
            self.first_reads_late.fetch_add(1, Ordering::Relaxed);
        } else {
            self.first_reads_soon.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Whether new connections are seen to queue: a sweep within the release window saw most of
    /// those since the sweep before have their first bytes read W ÷ 2 or more after their accept.
    /// Held for the window: under overload, refused clients come back in waves, and the first of a
    /// wave are read at once.
    fn queueing(&self) -> bool {
        self.queueing.load(Ordering::Relaxed)
    }

    fn admit(&self, seat: &Arc<Seat>) -> bool {
        let k = self.limit.load(Ordering::Relaxed);
        let mut now = self.admitted.load(Ordering::Acquire);
        loop {
            if now >= k && self.queueing() {
                return false;
            }
            match self
                .admitted
                .compare_exchange_weak(now, now + 1, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => break,
                Err(seen) => now = seen,
            }
        }
        seat.admitted.store(true, Ordering::Release);
        if let Ok(mut seats) = self.seats.lock() {
            seats.push(seat.clone());
        }
        true
    }

    /// Releases the admitted connections idle past the window, and recomputes the rate, K and the
    /// first-read wait over the `dt` since the last sweep.
    pub fn sweep(&self, dt: Duration) {
        let now = self.now_ms();
        let window = u64::try_from(release_window(self.limits.wait).as_millis()).unwrap_or(u64::MAX);
        if let Ok(mut seats) = self.seats.lock() {
            seats.retain(|seat| {
                if !seat.admitted.load(Ordering::Acquire) {
                    return false;
                }
                let idle = seat.in_flight.load(Ordering::Acquire) == 0
                    && now.saturating_sub(seat.last_ms.load(Ordering::Relaxed)) > window;
                if idle && seat.admitted.swap(false, Ordering::AcqRel) {
                    self.admitted.fetch_sub(1, Ordering::AcqRel);
                    return false;
                }
                true
            });
        }
        let completed = self.completed.swap(0, Ordering::Relaxed);
        let old = f64::from_bits(self.rate_bits.load(Ordering::Relaxed));
        let rate = averaged_rate(old, completed, dt);
        self.rate_bits.store(rate.to_bits(), Ordering::Relaxed);
        self.limit.store(
            limit(rate, self.limits.wait, self.limits.floor),
            Ordering::Relaxed,
        );
        // Whether most new connections since the last sweep queued; the verdict holds for the
        // release window after the last sweep that saw it, then lapses.
        let late = self.first_reads_late.swap(0, Ordering::Relaxed);
        let soon = self.first_reads_soon.swap(0, Ordering::Relaxed);
        let waited = self.first_reads_us.swap(0, Ordering::Relaxed);
        if let Some(mean) = waited.checked_div(late + soon) {
            self.first_read_us.store(mean, Ordering::Relaxed);
        }
        if late > soon {
            self.queueing.store(true, Ordering::Relaxed);
            self.since_late.store(0, Ordering::Relaxed);
        } else {
            let since = self.since_late.fetch_add(1, Ordering::Relaxed) + 1;
            let hold = release_window(self.limits.wait).as_millis()
                / sweep_period(self.limits.wait).as_millis().max(1);
            if u128::from(since) > hold {
                self.queueing.store(false, Ordering::Relaxed);
                if late + soon == 0 {
                    self.first_read_us.store(0, Ordering::Relaxed);
                }
            }
        }
    }

    /// Seconds a refused client is asked to wait: 1, 2 or 3 in turn, so that the refused do not
    /// all come back at once.
    pub fn retry_after(&self, refused: u64) -> u64 {
        1 + refused % 3
    }

    /// Admitted connections now.
    pub fn admitted(&self) -> usize {
        self.admitted.load(Ordering::Relaxed)
    }

    /// K now.
    pub fn limit(&self) -> usize {
        self.limit.load(Ordering::Relaxed)
    }

    /// The measured rate of completed requests, a second.
    pub fn rate(&self) -> f64 {
        f64::from_bits(self.rate_bits.load(Ordering::Relaxed))
    }

    /// The mean wait from accept to first byte of the new connections last seen.
    pub fn first_read_wait(&self) -> Duration {
        Duration::from_micros(self.first_read_us.load(Ordering::Relaxed))
    }
}

/// How often the door sweeps: a quarter of the wait, between 5 and 50 ms.
pub fn sweep_period(wait: Duration) -> Duration {
    (wait / 4).clamp(Duration::from_millis(5), Duration::from_millis(50))
}

/// Sweeps `door` until it is dropped, exporting its gauges.
pub fn start_sweeping(door: &Arc<Door>, metrics: Arc<Metrics>) {
    let weak: Weak<Door> = Arc::downgrade(door);
    let period = sweep_period(door.limits.wait);
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(period);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last = Instant::now();
        loop {
            ticks.tick().await;
            let Some(door) = weak.upgrade() else { return };
            let now = Instant::now();
            door.sweep(now - last);
            last = now;
            metrics
                .admitted_connections
                .set(i64::try_from(door.admitted()).unwrap_or(i64::MAX));
            metrics
                .admission_limit
                .set(i64::try_from(door.limit()).unwrap_or(i64::MAX));
            metrics.completed_rate.set(door.rate());
            metrics.first_read_wait.set(door.first_read_wait().as_secs_f64());
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: Duration = Duration::from_millis(50);

    fn door(floor: usize) -> Door {
        Door::new(AdmissionLimits { wait: W, floor })
    }

    fn seat() -> Arc<Seat> {
        Arc::new(Seat::default())
    }

    /// New connections are seen waiting `ms` for their first read, from the next sweep on.
    fn queue_of(d: &Door, ms: u64) {
        d.first_read(Duration::from_millis(ms));
        d.sweep(Duration::from_millis(10));
    }

    #[test]
    fn k_is_the_rate_times_the_wait_and_never_below_the_floor() {
        assert_eq!(limit(30_000.0, W, 256), 1500);
        assert_eq!(limit(1_000.0, W, 256), 256);
        assert_eq!(limit(0.0, W, 256), 256);
        assert_eq!(limit(-5.0, W, 3), 3);
        assert_eq!(limit(f64::INFINITY, W, 3), usize::MAX);
        assert_eq!(limit(10_000.0, Duration::from_millis(100), 0), 1000);
    }

    #[test]
    fn the_rate_follows_completed_requests_over_about_a_second() {
        let mut r = 0.0;
        // Ten seconds of 500 every 25 ms.
        for _ in 0..400 {
            r = averaged_rate(r, 500, Duration::from_millis(25));
        }
        assert!((r - 20_000.0).abs() < 50.0, "{r}");
        // A quarter of a second of nothing takes off about a fifth.
        for _ in 0..10 {
            r = averaged_rate(r, 0, Duration::from_millis(25));
        }
        assert!((15_000.0..16_000.0).contains(&r), "{r}");
        assert_eq!(averaged_rate(7.0, 3, Duration::ZERO), 7.0);
    }

    #[test]
    fn past_k_a_new_connection_is_refused_while_new_connections_queue_and_admitted_ones_are_served() {
        let d = door(2);
        let (a, b, c) = (seat(), seat(), seat());
        assert_eq!(d.enter(&a, false), Verdict::Serve);
        assert_eq!(d.enter(&b, false), Verdict::Serve);
        assert_eq!(d.admitted(), 2);
        // No queue: a third is admitted past K (the count alone refuses nobody).
        assert_eq!(d.enter(&c, false), Verdict::Serve);
        assert_eq!(d.admitted(), 3);
        d.leave(&c);
        d.closed(&c);
        assert_eq!(d.admitted(), 2);
        queue_of(&d, 40);
        let late = seat();
        assert_eq!(d.enter(&late, false), Verdict::Refuse);
        assert_eq!(late.in_flight.load(Ordering::Relaxed), 0);
        // Liveness and metrics get through; admitted connections keep being served.
        assert_eq!(d.enter(&late, true), Verdict::Serve);
        d.leave(&a);
        assert_eq!(d.enter(&a, false), Verdict::Serve);
        assert_eq!(d.admitted(), 2);
        // One admitted connection closes: the next is let in.
        d.closed(&b);
        assert_eq!(d.enter(&late, false), Verdict::Serve);
        assert_eq!(d.admitted(), 2);
    }

    #[test]
    fn a_connection_idle_past_the_window_is_released_and_one_in_flight_is_not() {
        let d = door(1);
        let (idle, busy) = (seat(), seat());
        assert_eq!(d.enter(&idle, false), Verdict::Serve);
        d.leave(&idle);
        assert_eq!(d.enter(&busy, false), Verdict::Serve);
        d.sweep(Duration::from_millis(10));
        assert_eq!(d.admitted(), 2, "released within the window");
        // Both last moved more than the window ago.
        let long_ago = d.now_ms().saturating_sub(1);
        std::thread::sleep(release_window(W) + Duration::from_millis(20));
        assert!(idle.last_ms.load(Ordering::Relaxed) <= long_ago);
        d.sweep(Duration::from_millis(10));
        assert_eq!(d.admitted(), 1, "the idle one is released, the busy one kept");
        assert!(!idle.admitted.load(Ordering::Relaxed));
        assert!(busy.admitted.load(Ordering::Relaxed));
        // Its next request must be admitted again: refused while K is held and connections queue.
        queue_of(&d, 40);
        assert_eq!(d.enter(&idle, false), Verdict::Refuse);
        d.leave(&busy);
        d.closed(&busy);
        assert_eq!(d.enter(&idle, false), Verdict::Serve);
    }

    #[test]
    fn the_queue_is_what_most_new_connections_see_not_the_luckiest() {
        let d = door(1);
        for ms in [40, 60, 1, 30] {
            d.first_read(Duration::from_millis(ms));
        }
        d.sweep(Duration::from_millis(10));
        assert!(d.queueing());
        assert_eq!(d.first_read_wait(), Duration::from_micros(32_750));
        // A sweep whose new connections were mostly read at once (the head of a wave) does not
        // end it; a release window of them does.
        for _ in 0..16 {
            for ms in [40, 2, 1] {
                d.first_read(Duration::from_millis(ms));
            }
            d.sweep(Duration::from_millis(10));
            assert!(d.queueing());
        }
        d.first_read(Duration::from_millis(1));
        d.sweep(Duration::from_millis(10));
        assert!(!d.queueing());
    }

    #[test]
    fn k_grows_with_the_completed_rate_and_the_queue_signal_lapses_without_new_connections() {
        let d = door(2);
        let s = seat();
        for _ in 0..40 {
            for _ in 0..100 {
                assert_eq!(d.enter(&s, false), Verdict::Serve);
                d.leave(&s);
            }
            d.sweep(Duration::from_millis(10));
        }
        // About 10,000 a second for 0.4 s: a third of the way there or more; × 50 ms.
        assert!((150..=500).contains(&d.limit()), "{}", d.limit());
        queue_of(&d, 100);
        assert!(d.queueing());
        // Held for the release window (200 ms, sweeps every 12.5 ms), then it lapses.
        for _ in 0..16 {
            d.sweep(Duration::from_millis(10));
        }
        assert!(d.queueing());
        d.sweep(Duration::from_millis(10));
        assert!(!d.queueing(), "{:?}", d.first_read_wait());
    }

    #[test]
    fn with_no_wait_configured_admission_is_off() {
        let d = Door::new(AdmissionLimits {
            wait: Duration::ZERO,
            floor: 0,
        });
        queue_of(&d, 1000);
        for _ in 0..10 {
            assert_eq!(d.enter(&seat(), false), Verdict::Serve);
        }
        assert_eq!(d.admitted(), 0);
    }
}
