//! The front door: the accept loop and what it guards against before a request reaches the
//! router. HTTP/1.1 on hyper, with
//!
//! - a cap on connections open at once (`max_connections`): one more is answered 503 with
//!   Retry-After and closed, without being served;
//! - a header-read time-out (`header_read_timeout_seconds`): a new connection, or one that has begun
//!   sending a request, must have sent the whole request head within it (a slow header trickle is
//!   closed);
//! - an idle time-out (`idle_timeout_seconds`): a kept-alive connection with no request for that
//!   long is closed;
//! - admission by connection ([`admission`]): at most K = max(`admitted_floor`, rate ×
//!   `admitted_wait_ms`) connections are served at once, a connection counting from its first
//!   request until it has been idle for the release window; while K are admitted and new
//!   connections are seen queueing, a request on any other connection is answered 503 with
//!   Retry-After and `Connection: close` before any work (`requests_not_admitted_total`). This is
//!   what bounds the wait at thousands of connections, where the queue is in the sockets, before
//!   any request is read (docs/BENCHMARKS.md);
//! - load shedding ([`Shedder`]), a second line: requests are handled `max_in_flight` at a time; a
//!   request that cannot start within `max_queue_ms`, or arrives while the server's own scheduling
//!   delay is above that, is answered 503 with Retry-After at once (`requests_shed_total`);
//! - `/healthz`, `/metrics` and `/readyz` pass admission on any connection (without admitting it),
//!   and the first two are never shed: they are how an operator sees the overload;
//! - draining: on shutdown the listener closes, idle connections close, and requests in flight
//!   finish, for at most the grace period.

pub mod admission;

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tower::ServiceExt;

use crate::metrics::Metrics;
use crate::problem::ApiError;
use admission::{AdmissionLimits, Door, Seat, Verdict};

/// The limits of the front door.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// A request head must arrive whole within this.
    pub header_read: Duration,
    /// A kept-alive connection with no request is closed after this.
    pub idle: Duration,
    /// Connections open at once.
    pub max_connections: usize,
    /// How long requests in flight may take to finish once shutdown begins.
    pub grace: Duration,
    /// Admission by connection.
    pub admission: AdmissionLimits,
}

/// Connections waiting to be accepted, at most (the kernel caps it at `net.core.somaxconn`):
/// thousands of clients connecting at once, or coming back after a refusal, are not dropped
/// (a dropped connection attempt is retried by the client's kernel only after a second).
const LISTEN_BACKLOG: u32 = 4096;

/// A listener on `addr` with room for [`LISTEN_BACKLOG`] connections waiting to be accepted.
pub fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Connections over the cap being answered at once, at most; beyond them a connection is closed
/// unanswered.
const REFUSING_AT_ONCE: usize = 256;

/// Serves `router` on `listener` until `shutdown` completes, then drains.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    metrics: Arc<Metrics>,
    limits: Limits,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let open = Arc::new(Semaphore::new(limits.max_connections));
    let refusing = Arc::new(Semaphore::new(REFUSING_AT_ONCE));
    let (drain, draining) = tokio::sync::watch::channel(false);
    let door = Arc::new(Door::new(limits.admission));
    if door.enabled() {
        admission::start_sweeping(&door, metrics.clone());
    }
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors, a connection reset before it was accepted: the
                    // listener itself is fine.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let accepted = Instant::now();
        let _ = stream.set_nodelay(true);
        let permit = match open.clone().try_acquire_owned() {
            Ok(p) => Some(p),
            Err(_) => {
                metrics.connections_refused.inc();
                None
            }
        };
        match permit {
            Some(permit) => {
                let conn = Connection {
                    router: router.clone(),
                    peer,
                    limits,
                    draining: draining.clone(),
                    door: door.clone(),
                    metrics: metrics.clone(),
                    accepted,
                };
                tokio::spawn(async move {
                    conn.run(stream).await;
                    drop(permit);
                });
            }
            None => {
                if let Ok(permit) = refusing.clone().try_acquire_owned() {
                    tokio::spawn(async move {
                        refuse(stream).await;
                        drop(permit);
                    });
                }
            }
        }
    }
    drop(listener);
    let _ = drain.send(true);
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    if tokio::time::timeout(limits.grace, open.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!(
            seconds = limits.grace.as_secs(),
            "the grace period is over; closing with requests still in flight"
        );
    }
    Ok(())
}

/// The body of the answer to a connection over the cap, written without reading the request.
const REFUSAL_BODY: &str = r#"{"type":"urn:healthcode:problem:unavailable","title":"Service unavailable","status":503,"detail":"the server is at capacity; retry shortly"}"#;

/// The whole answer: head and body.
fn refusal() -> String {
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/problem+json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{REFUSAL_BODY}",
        REFUSAL_BODY.len()
    )
}

/// Answers a connection refused at the door with 503 and closes it: what it sent first is read (briefly)
/// so that closing does not reset the connection before the client reads the answer.
async fn refuse(mut stream: TcpStream) {
    let mut buf = [0u8; 2048];
    let _ = tokio::time::timeout(Duration::from_millis(200), stream.read(&mut buf)).await;
    let _ = tokio::time::timeout(Duration::from_millis(500), async {
        stream.write_all(refusal().as_bytes()).await?;
        stream.shutdown().await
    })
    .await;
}

/// One accepted connection.
struct Connection {
    router: Router,
    peer: SocketAddr,
    limits: Limits,
    draining: tokio::sync::watch::Receiver<bool>,
    door: Arc<Door>,
    metrics: Arc<Metrics>,
    accepted: Instant,
}

/// Paths served on any connection, admitted or not: liveness, readiness and metrics must get
/// through exactly when the server is behind (they do not admit the connection).
fn passes_admission(path: &str) -> bool {
    matches!(path, "/healthz" | "/metrics" | "/readyz")
}

/// The answer to a request whose connection is not admitted: 503, Retry-After, and the
/// connection closed, so that the client leaves the sockets' queue until it retries.
fn not_admitted(door: &Door, metrics: &Metrics) -> Response {
    metrics.shed.inc();
    let refused = metrics.not_admitted.inc();
    let wait = door.retry_after(refused);
    let mut resp =
        ApiError::Unavailable("the server is at capacity; retry shortly".into(), wait).into_response();
    resp.headers_mut().insert(
        axum::http::header::CONNECTION,
        axum::http::HeaderValue::from_static("close"),
    );
    resp
}

/// The connection's seat at the door, given up when the connection ends however it ends.
struct Seated(Arc<Door>, Arc<Seat>);

impl Drop for Seated {
    fn drop(&mut self) {
        self.0.closed(&self.1);
    }
}

impl Connection {
    async fn run(mut self, stream: TcpStream) {
        let watch = Arc::new(Watch::new());
        let seated = Seated(self.door.clone(), Arc::new(Seat::default()));
        let io = TokioIo::new(Watched {
            inner: stream,
            watch: watch.clone(),
            first_read: Some((self.accepted, self.door.clone())),
        });
        let (router, peer, busy) = (self.router, self.peer, watch.clone());
        let (door, seat, metrics) = (self.door.clone(), seated.1.clone(), self.metrics.clone());
        let service = hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            let verdict = door.enter(&seat, passes_admission(req.uri().path()));
            let router = router.clone();
            let served =
                (verdict == Verdict::Serve).then(|| (Busy::begin(&busy), Served(door.clone(), seat.clone())));
            let (door, metrics) = (door.clone(), metrics.clone());
            async move {
                let Some(turn) = served else {
                    return Ok(not_admitted(&door, &metrics));
                };
                let resp = router.oneshot(req).await;
                drop(turn);
                resp
            }
        });
        let conn = hyper::server::conn::http1::Builder::new()
            .keep_alive(true)
            .header_read_timeout(None)
            .serve_connection(io, service);
        tokio::pin!(conn);
        let mut asked_to_close = *self.draining.borrow();
        if asked_to_close {
            conn.as_mut().graceful_shutdown();
        }
        loop {
            let deadline = watch.deadline(&self.limits);
            tokio::select! {
                _ = conn.as_mut() => return,
                () = sleep_until(deadline) => {
                    if watch.deadline(&self.limits).is_some_and(|d| d <= Instant::now()) {
                        // Too slow a head, or idle too long: closed (dropping the connection).
                        return;
                    }
                }
                changed = self.draining.changed(), if !asked_to_close => {
                    if changed.is_err() || *self.draining.borrow() {
                        asked_to_close = true;
                        conn.as_mut().graceful_shutdown();
                    }
                }
            }
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d.into()).await,
        None => std::future::pending().await,
    }
}

/// Where a connection is between requests.
#[derive(Debug, Clone, Copy)]
enum Phase {
    /// Waiting for a request head; `head` once its first bytes (or the connection) arrived,
    /// `since` when that was, or when the last response was written.
    Waiting { since: Instant, head: bool },
    /// Requests being handled.
    Busy(usize),
}

/// A connection's phase, seen by its reads, writes and requests.
#[derive(Debug)]
struct Watch(Mutex<Phase>);

impl Watch {
    fn new() -> Watch {
        Watch(Mutex::new(Phase::Waiting {
            since: Instant::now(),
            head: true,
        }))
    }

    fn with(&self, f: impl FnOnce(&mut Phase)) {
        if let Ok(mut p) = self.0.lock() {
            f(&mut p);
        }
    }

    fn read(&self) {
        self.with(|p| {
            if let Phase::Waiting { since, head } = p
                && !*head
            {
                *since = Instant::now();
                *head = true;
            }
        });
    }

    fn wrote(&self) {
        self.with(|p| {
            if let Phase::Waiting { since, head: false } = p {
                *since = Instant::now();
            }
        });
    }

    /// When the connection is to be closed unless something happens first.
    fn deadline(&self, limits: &Limits) -> Option<Instant> {
        let p = *self.0.lock().ok()?;
        match p {
            Phase::Waiting { since, head: true } => Some(since + limits.header_read),
            Phase::Waiting { since, head: false } => Some(since + limits.idle),
            Phase::Busy(_) => None,
        }
    }
}

/// A request being handled on a connection; the connection waits again when the last ends.
struct Busy(Arc<Watch>);

impl Busy {
    fn begin(watch: &Arc<Watch>) -> Busy {
        watch.with(|p| {
            *p = match *p {
                Phase::Busy(n) => Phase::Busy(n + 1),
                Phase::Waiting { .. } => Phase::Busy(1),
            }
        });
        Busy(watch.clone())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.with(|p| {
            *p = match *p {
                Phase::Busy(n) if n > 1 => Phase::Busy(n - 1),
                _ => Phase::Waiting {
                    since: Instant::now(),
                    head: false,
                },
            }
        });
    }
}

/// A served request on a seat; it leaves the seat when it ends (or is dropped).
struct Served(Arc<Door>, Arc<Seat>);

impl Drop for Served {
    fn drop(&mut self) {
        self.0.leave(&self.1);
    }
}

/// A socket whose reads and writes move its [`Watch`].
struct Watched {
    inner: TcpStream,
    watch: Arc<Watch>,
    /// Until the first bytes are read: when the connection was accepted, and the door told how
    /// long they took.
    first_read: Option<(Instant, Arc<Door>)>,
}

impl AsyncRead for Watched {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let r = Pin::new(&mut this.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.watch.read();
            if let Some((accepted, door)) = this.first_read.take() {
                door.first_read(accepted.elapsed());
            }
        }
        r
    }
}

impl AsyncWrite for Watched {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            this.watch.wrote();
        }
        r
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            this.watch.wrote();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// Load shedding: at most `max_in_flight` requests handled at once; a request waits for its turn
/// at most `max_queue`, and none is let in while the server's scheduling delay (how late a short
/// timer fires: the time work that is ready waits for a core) is above `max_queue` and at least
/// [`BUSY`] requests are in flight (a delay with few requests in flight is not this server's
/// queue: another process has the cores, and refusing would not help). Such a request is answered
/// 503 with Retry-After before any work is done for it, and its connection is closed. The
/// connection cap alone refuses at the door (a check of liveness or metrics arrives on a new
/// connection and must get through when the server is behind). The delay and the workers'
/// busy share are exported (`healthcode_scheduling_delay_seconds`,
/// `healthcode_workers_busy_ratio`); docs/BENCHMARKS.md says why the busy share does not shed.
#[derive(Debug, Clone)]
pub struct Shedder {
    gate: Arc<Semaphore>,
    max_in_flight: usize,
    max_queue: Duration,
    /// The recent scheduling delay, in microseconds.
    lag_us: Arc<AtomicU64>,
    metrics: Arc<Metrics>,
}

/// How often the scheduling delay is sampled.
const LAG_PROBE: Duration = Duration::from_millis(10);

/// Over how long the workers' busy share (a gauge) is measured.
const BUSY_WINDOW: Duration = Duration::from_millis(100);

/// Requests in flight from which a scheduling delay sheds.
pub const BUSY: usize = 16;

impl Shedder {
    /// A shedder with its probe running (it stops when the last clone is dropped).
    pub fn start(max_in_flight: usize, max_queue: Duration, metrics: Arc<Metrics>) -> Shedder {
        let lag_us = Arc::new(AtomicU64::new(0));
        let weak = Arc::downgrade(&lag_us);
        let runtime = tokio::runtime::Handle::current().metrics();
        let gauges = metrics.clone();
        tokio::spawn(async move {
            let busy_total = || {
                (0..runtime.num_workers())
                    .map(|w| runtime.worker_total_busy_duration(w))
                    .sum::<Duration>()
            };
            let (mut window_start, mut busy_before) = (Instant::now(), busy_total());
            loop {
                let start = Instant::now();
                tokio::time::sleep(LAG_PROBE).await;
                let late = start.elapsed().saturating_sub(LAG_PROBE);
                let Some(lag) = weak.upgrade() else { return };
                let sample = u64::try_from(late.as_micros()).unwrap_or(u64::MAX);
                // The larger of the new sample and the last value decayed by a quarter: a spike is
                // seen at once and forgotten within tens of milliseconds once it is over.
                let old = lag.load(Ordering::Relaxed);
                let new = sample.max(old - old / 4);
                lag.store(new, Ordering::Relaxed);
                gauges.scheduling_delay.set(new as f64 / 1e6);
                let wall = window_start.elapsed();
                if wall >= BUSY_WINDOW {
                    let now_busy = busy_total();
                    let spent = now_busy.saturating_sub(busy_before).as_secs_f64();
                    let share = spent / (wall.as_secs_f64() * runtime.num_workers().max(1) as f64);
                    gauges.workers_busy.set(share.min(1.0));
                    (window_start, busy_before) = (Instant::now(), now_busy);
                }
            }
        });
        Shedder {
            gate: Arc::new(Semaphore::new(max_in_flight)),
            max_in_flight,
            max_queue,
            lag_us,
            metrics,
        }
    }

    /// Whether the server is behind: late by more than `max_queue` with [`BUSY`] requests in
    /// flight.
    fn behind(&self) -> bool {
        let in_flight = self.max_in_flight.saturating_sub(self.gate.available_permits());
        in_flight >= BUSY.min(self.max_in_flight)
            && Duration::from_micros(self.lag_us.load(Ordering::Relaxed)) > self.max_queue
    }

    fn refuse(&self) -> Response {
        self.metrics.shed.inc();
        ApiError::Unavailable("the server is at capacity; retry shortly".into(), 1).into_response()
    }

    /// A refusal because the server is behind: the connection is closed after it, so that the
    /// client leaves the queue of connections waiting for a turn until it retries.
    fn refuse_and_close(&self) -> Response {
        let mut resp = self.refuse();
        resp.headers_mut().insert(
            axum::http::header::CONNECTION,
            axum::http::HeaderValue::from_static("close"),
        );
        resp
    }
}

/// The shedding middleware. Liveness and metrics are never shed: they are how an operator sees the
/// overload.
pub async fn shed(State(s): State<Shedder>, req: Request, next: Next) -> Response {
    if matches!(req.uri().path(), "/healthz" | "/metrics") {
        return next.run(req).await;
    }
    if s.behind() {
        return s.refuse_and_close();
    }
    let _permit = match s.gate.try_acquire() {
        Ok(p) => p,
        Err(_) => match tokio::time::timeout(s.max_queue, s.gate.acquire()).await {
            Ok(Ok(p)) => p,
            _ => return s.refuse(),
        },
    };
    next.run(req).await
}
