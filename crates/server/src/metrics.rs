//! Prometheus metrics (`GET /metrics`, text format): requests and their latency by route and
//! status, scans by decision and colour, codes served by colour, the check-in queue, requests in
//! flight and requests shed, and the front door's admission of connections.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Labels of a request.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The route pattern (`/api/v1/scans`), never the raw path.
    pub route: String,
    /// Method.
    pub method: String,
    /// Status code.
    pub status: u16,
}

/// Labels of a route.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    /// The route pattern.
    pub route: String,
}

/// Labels of a scan.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ScanLabels {
    /// admit, deny or invalid.
    pub decision: &'static str,
    /// The code's colour (`none` for an invalid code).
    pub colour: &'static str,
}

/// Labels of a served code.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ColourLabels {
    /// The colour.
    pub colour: &'static str,
}

/// All metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Requests.
    pub requests: Family<RequestLabels, Counter>,
    /// Latency.
    pub latency: Family<RouteLabels, Histogram>,
    /// Scans.
    pub scans: Family<ScanLabels, Counter>,
    /// Codes served.
    pub codes: Family<ColourLabels, Counter>,
    /// Requests refused because too many were in flight.
    pub shed: Counter,
    /// Connections refused because too many were open.
    pub connections_refused: Counter,
    /// Requests in flight.
    pub in_flight: Gauge,
    /// Check-ins waiting for the group commit.
    pub queue_depth: Gauge<i64, AtomicI64>,
    /// How late a short timer fires: the time work that is ready waits for a core (seconds).
    pub scheduling_delay: Gauge<f64, AtomicU64>,
    /// The share of the last tenth of a second the runtime's workers spent running tasks.
    pub workers_busy: Gauge<f64, AtomicU64>,
    /// Alerts for abuse over the last day, by kind.
    pub alerts: Family<AlertLabels, Gauge>,
    /// Requests refused because their connection was not admitted (also counted in `shed`).
    pub not_admitted: Counter,
    /// Connections admitted now.
    pub admitted_connections: Gauge,
    /// The connections that may be admitted at once (K).
    pub admission_limit: Gauge,
    /// Requests completed a second, averaged over about the last second.
    pub completed_rate: Gauge<f64, AtomicU64>,
    /// How long new connections wait between their accept and their first byte read (seconds).
    pub first_read_wait: Gauge<f64, AtomicU64>,
}

/// Labels of an alert count.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AlertLabels {
    /// The kind (`colour-changes`, `many-reads`, …): a fixed set.
    pub kind: &'static str,
}

impl Default for Metrics {
    fn default() -> Metrics {
        let mut registry = Registry::with_prefix("healthcode");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            Histogram::new([
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ])
        });
        let scans = Family::<ScanLabels, Counter>::default();
        let codes = Family::<ColourLabels, Counter>::default();
        let shed = Counter::default();
        let in_flight = Gauge::default();
        let connections_refused = Counter::default();
        let queue_depth = Gauge::<i64, AtomicI64>::default();
        let scheduling_delay = Gauge::<f64, AtomicU64>::default();
        let workers_busy = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "scheduling_delay_seconds",
            "How late a 10 ms timer fires: the time ready work waits for a core (load shedding reads it)",
            scheduling_delay.clone(),
        );
        registry.register(
            "workers_busy_ratio",
            "The share of the last 100 ms the runtime's workers spent running tasks",
            workers_busy.clone(),
        );
        let alerts = Family::<AlertLabels, Gauge>::default();
        let not_admitted = Counter::default();
        let admitted_connections = Gauge::default();
        let admission_limit = Gauge::default();
        let completed_rate = Gauge::<f64, AtomicU64>::default();
        let first_read_wait = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "requests_not_admitted",
            "Requests refused with 503 (and their connection closed) because admitted_connections reached admission_limit while new connections queued; also in requests_shed",
            not_admitted.clone(),
        );
        registry.register(
            "admitted_connections",
            "Connections admitted: with a request in flight, or one within the release window",
            admitted_connections.clone(),
        );
        registry.register(
            "admission_limit",
            "Connections that may be admitted at once: max(admitted_floor, completed rate × admitted_wait_ms)",
            admission_limit.clone(),
        );
        registry.register(
            "completed_requests_per_second",
            "Requests completed a second, averaged over about the last second (admission reads it)",
            completed_rate.clone(),
        );
        registry.register(
            "first_read_wait_seconds",
            "How long new connections wait from their accept to their first byte read: the queue of sockets (admission reads it)",
            first_read_wait.clone(),
        );
        registry.register(
            "abuse_alerts",
            "Alerts for abuse in the audit log over the last day, by kind",
            alerts.clone(),
        );
        registry.register(
            "http_requests",
            "HTTP requests by route, method and status",
            requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by route",
            latency.clone(),
        );
        registry.register("scans", "Scans by decision and colour", scans.clone());
        registry.register("codes_served", "Signed codes served by colour", codes.clone());
        registry.register(
            "requests_shed",
            "Requests refused with 503 before any work: their connection not admitted, no turn within max_queue_ms, or the server behind by more than that",
            shed.clone(),
        );
        registry.register(
            "connections_refused",
            "Connections answered 503 and closed because max_connections were open",
            connections_refused.clone(),
        );
        registry.register("requests_in_flight", "Requests being handled", in_flight.clone());
        registry.register(
            "checkin_queue_depth",
            "Check-ins waiting for the group commit",
            queue_depth.clone(),
        );
        Metrics {
            registry,
            requests,
            latency,
            scans,
            codes,
            shed,
            connections_refused,
            in_flight,
            queue_depth,
            scheduling_delay,
            workers_busy,
            alerts,
            not_admitted,
            admitted_connections,
            admission_limit,
            completed_rate,
            first_read_wait,
        }
    }
}

impl Metrics {
    /// Sets the alert gauges, every kind (zero when none).
    pub fn set_alerts(&self, alerts: &[crate::alerts::Alert]) {
        for kind in crate::alerts::AlertKind::ALL {
            let n = alerts.iter().filter(|a| a.kind == kind).count();
            self.alerts
                .get_or_create(&AlertLabels { kind: kind.as_str() })
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

/// Counts and times every request.
pub async fn track(State(m): State<Arc<Metrics>>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    // Only the methods HTTP defines become labels: a client inventing methods must not make
    // series without end (or keep a 390 KB method name).
    let method = match req.method().as_str() {
        m @ ("GET" | "HEAD" | "POST" | "PUT" | "DELETE" | "PATCH" | "OPTIONS" | "CONNECT" | "TRACE") => m,
        _ => "other",
    }
    .to_owned();
    let start = Instant::now();
    m.in_flight.inc();
    let resp = next.run(req).await;
    m.in_flight.dec();
    m.latency
        .get_or_create(&RouteLabels { route: route.clone() })
        .observe(start.elapsed().as_secs_f64());
    m.requests
        .get_or_create(&RequestLabels {
            route,
            method,
            status: resp.status().as_u16(),
        })
        .inc();
    resp.into_response()
}
