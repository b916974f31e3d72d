//! `healthcode simulate`: a synthetic city (holders, venues, days of check-ins, cases) into the
//! configured store, with progress bars.

use std::collections::HashMap;
use std::sync::Mutex;

use anyhow::anyhow;
use clap::Args;
use healthcode_domain::Issuer;
use healthcode_exposure::simulate::CityParams;
use indicatif::{ProgressBar, ProgressStyle};

use super::ConfigArgs;
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
        let (report, indexing) = super::runtime()?
            .block_on(healthcode_server::ops::simulate_now(&config, &params, &progress))
            .map_err(anyhow::Error::new)?;
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
