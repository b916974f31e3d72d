//! `healthcode simulate` and `healthcode trace`: a synthetic city into the configured store, and
//! exposure tracing from the command line.

use std::collections::HashMap;
use std::sync::Mutex;

use anyhow::anyhow;
use clap::Args;
use healthcode_domain::{CaseId, Issuer};
use healthcode_exposure::simulate::CityParams;
use healthcode_server::CaseSelection;
use indicatif::{ProgressBar, ProgressStyle};

use super::serve::ConfigArgs;
use crate::Failure;

/// `healthcode simulate`.
#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// Holders.
    #[arg(long, default_value_t = 10_000)]
    holders: u64,
    /// Venues.
    #[arg(long, default_value_t = 500)]
    venues: u64,
    /// Days of check-ins, ending now.
    #[arg(long, default_value_t = 14)]
    days: u32,
    /// Check-ins per holder per day.
    #[arg(long, default_value_t = 4)]
    per_day: u32,
    /// Confirmed cases to seed.
    #[arg(long, default_value_t = 10)]
    cases: u32,
    /// The seed: the same seed gives the same city.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Also write venues.csv, checkins.csv and cases.csv into this directory.
    #[arg(long)]
    csv: Option<std::path::PathBuf>,
    #[command(flatten)]
    config: ConfigArgs,
}

impl SimulateArgs {
    pub fn run(self) -> Result<(), Failure> {
        if self.holders == 0 || self.venues == 0 || self.days == 0 || self.per_day == 0 {
            return Err(anyhow!("--holders, --venues, --days and --per-day must be at least 1").into());
        }
        let config = self.config.load()?;
        let params = CityParams {
            holders: self.holders,
            venues: self.venues,
            days: self.days,
            per_day: self.per_day,
            cases: self.cases,
            seed: self.seed,
            end: super::now(),
            region: Issuer::parse(&config.region).map_err(|e| anyhow!("region: {e}"))?,
            csv_dir: self.csv.clone(),
        };
        let bars: Mutex<HashMap<String, ProgressBar>> = Mutex::new(HashMap::new());
        let style = ProgressStyle::with_template("{msg:>10} [{bar:40}] {pos}/{len} {per_sec} eta {eta}")
            .map_err(|e| anyhow!("{e}"))?
            .progress_chars("=> ");
        let progress = |step: &str, done: u64, total: u64| {
            if let Ok(mut b) = bars.lock() {
                let bar = b.entry(step.to_owned()).or_insert_with(|| {
                    let bar = ProgressBar::new(total)
                        .with_style(style.clone())
                        .with_message(step.to_owned());
                    bar.set_length(total);
                    bar
                });
                bar.set_position(done);
                if done >= total {
                    bar.finish();
                }
            }
        };
        let started = std::time::Instant::now();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(|e| anyhow!("cannot start the runtime: {e}"))?;
        let (report, indexing) = rt
            .block_on(healthcode_server::simulate_now(&config, &params, &progress))
            .map_err(|e| anyhow!("{e}"))?;
        let store = if config.database_url.is_some() {
            "PostgreSQL"
        } else {
            "SQLite"
        };
        println!(
            "simulated {} holders, {} venues, {} check-ins over {} days, {} cases in {:.1} s ({store}; indexing after the load {:.1} s)",
            report.holders,
            report.venues,
            report.checkins,
            self.days,
            report.cases.len(),
            started.elapsed().as_secs_f64(),
            indexing
        );
        if let (v, Some(c)) = report.busiest {
            println!(
                "busiest venue: a {} with {:.0} expected visits a day",
                c.as_str(),
                v
            );
        }
        println!(
            "cases: {}",
            report
                .cases
                .iter()
                .map(|c| c.0.to_string())
                .collect::<Vec<_>>()
                .join(" ")
        );
        Ok(())
    }
}

/// `healthcode trace`.
#[derive(Debug, Args)]
pub struct TraceArgs {
    /// Case ids to trace.
    #[arg(conflicts_with = "day")]
    cases: Vec<i64>,
    /// Trace every case confirmed on this UTC day (YYYY-MM-DD).
    #[arg(long)]
    day: Option<String>,
    /// Also time each case's contact search alone and report the median.
    #[arg(long)]
    per_case: bool,
    /// Write every contact found to this CSV file.
    #[arg(long)]
    export: Option<std::path::PathBuf>,
    /// Load the check-ins the cases' windows reach into memory first (reports the time and the
    /// process's peak memory), and trace from there.
    #[arg(long)]
    index: bool,
    #[command(flatten)]
    config: ConfigArgs,
}

impl TraceArgs {
    pub fn run(self) -> Result<(), Failure> {
        let which = match (&self.day, self.cases.is_empty()) {
            (Some(d), true) => CaseSelection::Day(
                time::Date::parse(d, &time::macros::format_description!("[year]-[month]-[day]"))
                    .map_err(|_| anyhow!("--day must be a date such as 2026-11-29, not {d:?}"))?,
            ),
            (None, false) => CaseSelection::Ids(self.cases.iter().map(|c| CaseId(*c)).collect()),
            _ => return Err(anyhow!("give case ids, or --day YYYY-MM-DD").into()),
        };
        let config = self.config.load()?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(|e| anyhow!("cannot start the runtime: {e}"))?;
        let options = healthcode_server::TraceOptions {
            per_case: self.per_case,
            export: self.export.clone(),
            index: self.index,
        };
        let outcome = rt
            .block_on(healthcode_server::trace_now(&config, &which, &options))
            .map_err(|e| anyhow!("{e}"))?;
        let (r, per_case) = (outcome.report, outcome.per_case);
        if let Some(ix) = outcome.index {
            println!(
                "in-memory index: {} check-ins of {} holders read in one scan and indexed in {:.1} s ({} MB of arrays); peak memory {}",
                ix.rows,
                ix.holders,
                ix.seconds,
                ix.bytes / 1_000_000,
                peak_memory()
            );
        }
        if let Some(p) = per_case {
            println!(
                "one case at a time (the case read, its contacts found, nothing recorded): median {:.2} ms (of which the case read {:.2} ms), p90 {:.2} ms, max {:.2} ms; all {} cases one by one {:.1} ms, at once best {:.1} ms of {:.1?}",
                p.median_ms,
                p.median_read_ms,
                p.p90_ms,
                p.max_ms,
                r.cases,
                p.total_ms,
                p.batch_ms.iter().copied().fold(f64::INFINITY, f64::min),
                p.batch_ms
            );
        }
        println!(
            "traced {} cases in {:.1} ms: {} close and {} same-place contacts at {} venues; {} exposures, {} new; {} check-ins read",
            r.cases,
            r.elapsed.as_secs_f64() * 1000.0,
            r.close_contacts,
            r.same_place_contacts,
            r.venues,
            r.exposures,
            r.new_exposures,
            r.checkins_read
        );
        Ok(())
    }
}

/// The process's peak resident memory, from /proc (Linux), or "unknown".
fn peak_memory() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(|l| l.trim_start_matches("VmHWM:").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".into())
}
