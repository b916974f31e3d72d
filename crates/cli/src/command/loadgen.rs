//! `healthcode loadgen`: drives code-opens, single scans, batch uploads or a no-op endpoint
//! against a running server (the credentials come from a `healthcode demo` directory) and reports
//! throughput and latency percentiles from an HDR histogram.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use clap::{Args, ValueEnum};
use hdrhistogram::Histogram;
use healthcode_server::ops::demo::{DemoData, demo_file};

use crate::Failure;

/// What to drive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    /// `GET /api/v1/me/code` with holder sessions: colour + freshly signed code.
    Open,
    /// `POST /api/v1/scans`, one scan a request, at venues that admit every colour (each is recorded).
    Scan,
    /// `POST /api/v1/scans/batch`, `--batch` scans a request.
    Batch,
    /// `GET /healthz`: the framework's own ceiling on this machine.
    Noop,
}

/// `healthcode loadgen`.
#[derive(Debug, Args)]
pub struct LoadgenArgs {
    /// The directory of a running `healthcode demo` (for the URL, sessions and device keys).
    #[arg(long, default_value = "healthcode-demo")]
    demo_dir: PathBuf,
    /// The server's base URL, if not the demo's.
    #[arg(long)]
    url: Option<String>,
    /// What to drive.
    #[arg(long, value_enum, default_value = "open")]
    scenario: Scenario,
    /// How long to measure, in seconds (after the warm-up).
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds of load before measuring.
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Requests in flight (connections).
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Target requests a second in all; flat out when absent. Latency is then measured from each
    /// request's scheduled time, so a stall is not hidden.
    #[arg(long)]
    rate: Option<f64>,
    /// Scans a batch request carries.
    #[arg(long, default_value_t = 500)]
    batch: usize,
    /// Client worker threads.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Send the next request at once after a 503, as a client that ignores Retry-After would
    /// (by default a connection waits as long as Retry-After says, as the app and the scanner do).
    #[arg(long)]
    ignore_retry_after: bool,
}

struct Plan {
    url: String,
    scenario: Scenario,
    sessions: Vec<String>,
    devices: Vec<(i64, String)>,
    tokens: Vec<String>,
    batch: usize,
    seq_base: i64,
    honour_retry_after: bool,
}

#[derive(Default)]
struct Tally {
    ok: u64,
    shed: u64,
    failed: u64,
    /// Latency of the requests answered 2xx.
    hist: Option<Histogram<u64>>,
    /// Latency of the requests shed (503).
    shed_hist: Option<Histogram<u64>>,
}

impl LoadgenArgs {
    pub fn run(self) -> Result<(), Failure> {
        let file = demo_file(&self.demo_dir);
        let text = std::fs::read_to_string(&file)
            .with_context(|| format!("cannot read {} (start `healthcode demo` first)", file.display()))?;
        let demo: DemoData =
            serde_json::from_str(&text).with_context(|| format!("{} is not a demo file", file.display()))?;
        if self.connections == 0 || self.duration <= 0.0 || self.batch == 0 || self.threads == 0 {
            return Err(anyhow!("--connections, --duration, --batch and --threads must be positive").into());
        }
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(self.threads)
            .enable_all()
            .build()
            .context("cannot start the runtime")?;
        rt.block_on(self.drive(demo))?;
        Ok(())
    }

    async fn drive(self, demo: DemoData) -> anyhow::Result<()> {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(self.connections)
            .http1_only()
            .timeout(Duration::from_secs(30))
            .build()?;
        let plan = Arc::new(self.plan(demo, &client).await?);
        let counter = Arc::new(AtomicU64::new(0));
        let start = Instant::now();
        let measure_from = start + Duration::from_secs_f64(self.warmup);
        let clock = Clock {
            start,
            measure_from,
            end: measure_from + Duration::from_secs_f64(self.duration),
            interval: self
                .rate
                .map(|r| Duration::from_secs_f64(self.connections as f64 / r.max(1.0))),
        };
        let mut tasks = Vec::new();
        for w in 0..self.connections {
            let (plan, client, counter) = (plan.clone(), client.clone(), counter.clone());
            let offset = w as f64 / self.connections as f64;
            tasks.push(tokio::spawn(async move {
                worker(&client, &plan, &counter, clock, offset).await
            }));
        }
        let mut total = Tally::new();
        for task in tasks {
            let t = task.await?;
            total.ok += t.ok;
            total.shed += t.shed;
            total.failed += t.failed;
            if let (Some(a), Some(b)) = (total.hist.as_mut(), t.hist.as_ref()) {
                let _ = a.add(b);
            }
            if let (Some(a), Some(b)) = (total.shed_hist.as_mut(), t.shed_hist.as_ref()) {
                let _ = a.add(b);
            }
        }
        self.report(&plan, &total);
        if total.failed > 0 {
            bail!("{} requests failed", total.failed);
        }
        Ok(())
    }

    /// What the connections send: sessions for code-opens; for scans, devices of venues that
    /// admit every colour and codes fetched once for up to 1,000 holders.
    async fn plan(&self, demo: DemoData, client: &reqwest::Client) -> anyhow::Result<Plan> {
        let url = self.url.clone().unwrap_or(demo.base_url.clone());
        let sessions: Vec<String> = demo.holders.iter().map(|h| h.session.clone()).collect();
        let devices: Vec<(i64, String)> = demo
            .devices
            .iter()
            .filter(|d| d.admission == "all")
            .map(|d| (d.venue, d.key.clone()))
            .collect();
        let mut tokens = Vec::new();
        if matches!(self.scenario, Scenario::Scan | Scenario::Batch) {
            if devices.is_empty() {
                bail!("the demo has no venue that admits every colour");
            }
            for s in sessions.iter().take(1000) {
                let resp = client
                    .get(format!("{url}/api/v1/me/code"))
                    .bearer_auth(s)
                    .send()
                    .await
                    .with_context(|| format!("cannot reach {url}"))?;
                if !resp.status().is_success() {
                    bail!("fetching a code answered {}", resp.status());
                }
                let v: serde_json::Value = resp.json().await?;
                tokens.push(v["token"].as_str().unwrap_or_default().to_owned());
            }
        }
        let seq_base = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_micros() as i64)
            .unwrap_or(0);
        Ok(Plan {
            url,
            scenario: self.scenario,
            sessions,
            devices,
            tokens,
            batch: self.batch,
            seq_base,
            honour_retry_after: !self.ignore_retry_after,
        })
    }

    fn report(&self, plan: &Plan, total: &Tally) {
        let secs = self.duration;
        let requests = total.ok + total.shed + total.failed;
        println!(
            "{:?} against {}: {} requests in {:.1} s = {:.0}/s ({} ok, {} shed with 503, {} failed); {} connections{}",
            self.scenario,
            plan.url,
            requests,
            secs,
            requests as f64 / secs,
            total.ok,
            total.shed,
            total.failed,
            self.connections,
            self.rate
                .map(|r| format!(", target {r:.0}/s"))
                .unwrap_or_else(|| ", flat out".into())
        );
        if self.scenario == Scenario::Batch {
            println!(
                "  scans: {:.0}/s ({} a request)",
                (total.ok * self.batch as u64) as f64 / secs,
                self.batch
            );
        }
        for (what, h) in [("latency ms", &total.hist), ("shed (503) ms", &total.shed_hist)] {
            let Some(h) = h.as_ref().filter(|h| !h.is_empty()) else {
                continue;
            };
            let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
            println!(
                "  {what}: p50 {:.2}  p90 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}",
                ms(0.5),
                ms(0.9),
                ms(0.99),
                ms(0.999),
                h.max() as f64 / 1000.0
            );
        }
    }
}

/// When the run starts, when measuring starts, when it ends, and the pace of one connection
/// (`None`: flat out).
#[derive(Debug, Clone, Copy)]
struct Clock {
    start: Instant,
    measure_from: Instant,
    end: Instant,
    interval: Option<Duration>,
}

impl Tally {
    fn new() -> Tally {
        Tally {
            hist: Histogram::new_with_bounds(1, 60_000_000, 3).ok(),
            shed_hist: Histogram::new_with_bounds(1, 60_000_000, 3).ok(),
            ..Tally::default()
        }
    }
}

/// One connection: sends until the end, at its pace (starting `offset` of an interval late, so
/// the connections spread out), and counts what it saw after the warm-up. Latency is measured from
/// when a request was due, not when it went, so a slow server is not hidden by waiting for it.
async fn worker(
    client: &reqwest::Client,
    plan: &Plan,
    counter: &AtomicU64,
    clock: Clock,
    offset: f64,
) -> Tally {
    let mut t = Tally::new();
    let mut next = clock.start + clock.interval.map(|i| i.mul_f64(offset)).unwrap_or_default();
    loop {
        let scheduled = match clock.interval {
            Some(i) => {
                tokio::time::sleep_until(next.into()).await;
                let s = next;
                next += i;
                s
            }
            None => Instant::now(),
        };
        if scheduled >= clock.end {
            break;
        }
        let n = counter.fetch_add(1, Ordering::Relaxed);
        let (status, retry_after) = one(client, plan, n).await.unzip();
        let done = Instant::now();
        // A shed connection waits as it is told before its next request, as real clients do.
        if let (Some(503), Some(secs)) = (status, retry_after.flatten())
            && plan.honour_retry_after
        {
            let until = (done + Duration::from_secs(secs)).min(clock.end);
            tokio::time::sleep_until(until.into()).await;
            next = next.max(until);
        }
        if scheduled < clock.measure_from {
            continue;
        }

        let took = (done - scheduled).as_micros().max(1) as u64;
        match status {
            Some(s) if (200..300).contains(&s) => {
                t.ok += 1;
                if let Some(h) = t.hist.as_mut() {
                    let _ = h.record(took);
                }
            }
            Some(503) => {
                t.shed += 1;
                if let Some(h) = t.shed_hist.as_mut() {
                    let _ = h.record(took);
                }
            }
            _ => t.failed += 1,
        }
    }
    t
}

/// Sends request number `n`; its status and Retry-After (seconds), or `None` when it failed to
/// complete.
async fn one(client: &reqwest::Client, plan: &Plan, n: u64) -> Option<(u16, Option<u64>)> {
    let pick = |v: &Vec<String>| v[(n as usize) % v.len()].clone();
    let req = match plan.scenario {
        Scenario::Noop => client.get(format!("{}/healthz", plan.url)),
        Scenario::Open => client
            .get(format!("{}/api/v1/me/code", plan.url))
            .bearer_auth(pick(&plan.sessions)),
        Scenario::Scan => {
            let (venue, key) = &plan.devices[(n as usize) % plan.devices.len()];
            client
                .post(format!("{}/api/v1/scans", plan.url))
                .bearer_auth(key)
                .json(&serde_json::json!({ "venue": venue, "token": pick(&plan.tokens), "seq": plan.seq_base + n as i64 }))
        }
        Scenario::Batch => {
            let at = healthcode_server::now()
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default();
            let scans: Vec<_> = (0..plan.batch as u64)
                .map(|k| {
                    let i = n * plan.batch as u64 + k;
                    serde_json::json!({
                        "token": plan.tokens[(i as usize) % plan.tokens.len()],
                        "seq": plan.seq_base + i as i64,
                        "at": at,
                    })
                })
                .collect();
            let (venue, key) = &plan.devices[(n as usize) % plan.devices.len()];
            client
                .post(format!("{}/api/v1/scans/batch", plan.url))
                .bearer_auth(key)
                .json(&serde_json::json!({ "venue": venue, "scans": scans }))
        }
    };
    let resp = req.send().await.ok()?;
    let status = resp.status().as_u16();
    let retry_after = resp
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok());
    let _ = resp.bytes().await.ok()?;
    Some((status, retry_after))
}
