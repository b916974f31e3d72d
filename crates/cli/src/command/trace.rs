//! `healthcode trace`: trace cases (given, or all of a day's) and record their contacts'
//! exposures; optionally from an in-memory index, timed case by case, with every contact written
//! as CSV. The timing and the CSV are this command's; the tracing is the server library's.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::anyhow;
use clap::Args;
use healthcode_domain::CaseId;
use healthcode_exposure::{TraceReport, Tracer};
use healthcode_policy::Policy;
use healthcode_server::StartError;
use healthcode_server::ops::trace::{CaseSelection, case_ids, index_for, record};
use healthcode_server::ops::{StoreWork, configured_policy, hold_sqlite_dir, with_store};
use healthcode_store::Store;

use super::{ConfigArgs, runtime};
use crate::Failure;

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
    export: Option<PathBuf>,
    /// Load the check-ins the cases' windows reach into memory first (reports the time and the
    /// process's peak memory), and trace from there.
    #[arg(long)]
    index: bool,
    #[command(flatten)]
    config: ConfigArgs,
}

/// How the in-memory index was built.
#[derive(Debug, Clone, Default)]
struct IndexBuild {
    rows: usize,
    holders: usize,
    bytes: usize,
    seconds: f64,
}

/// Per-case timings, milliseconds.
#[derive(Debug, Clone, Default)]
struct PerCase {
    median_ms: f64,
    /// Median of the case record's read alone (part of `median_ms`).
    median_read_ms: f64,
    p90_ms: f64,
    max_ms: f64,
    /// All the cases one after the other, wall time.
    total_ms: f64,
    /// All the cases at once (on every core, from the index when there is one), wall time of
    /// each of three runs.
    batch_ms: Vec<f64>,
}

/// What one run found and measured.
struct Outcome {
    report: TraceReport,
    per_case: Option<PerCase>,
    index: Option<IndexBuild>,
}

/// The run on the configured store.
struct Run {
    which: CaseSelection,
    policy: Policy,
    per_case: bool,
    export: Option<PathBuf>,
    index: bool,
}

fn failed(what: &str) -> impl FnOnce(healthcode_exposure::TraceError) -> StartError + '_ {
    move |e| StartError::caused(what, e)
}

impl StoreWork for Run {
    type Output = Outcome;

    async fn run<S: Store>(mut self, store: S) -> Result<Outcome, StartError> {
        let store = &store;
        // The published version in force, as the server traces with; the file only for a store
        // that has never been served.
        self.policy = healthcode_server::policies::in_force(store, self.policy)
            .await
            .map_err(|e| StartError::msg(format!("cannot read the published colour policy: {e}")))?;
        let ids = case_ids(store, &self.which).await?;
        let mut built = None;
        let index = if self.index {
            let started = Instant::now();
            let ix = index_for(store, &self.policy, &ids)
                .await
                .map_err(failed("cannot build the index"))?;
            built = ix.as_ref().map(|ix| IndexBuild {
                rows: ix.len(),
                holders: ix.holders(),
                bytes: ix.heap_bytes(),
                seconds: started.elapsed().as_secs_f64(),
            });
            ix
        } else {
            None
        };
        let mut tracer = Tracer::new(store, self.policy.tracing())
            .await
            .map_err(failed("tracing could not start"))?;
        if let Some(ix) = &index {
            tracer = tracer.with_index(ix);
        }
        let per_case = if self.per_case || self.export.is_some() {
            self.time_cases(store, &tracer, &ids).await?
        } else {
            None
        };
        let report = record(store, &tracer, &ids)
            .await
            .map_err(failed("tracing failed"))?;
        Ok(Outcome {
            report,
            per_case,
            index: built,
        })
    }
}

impl Run {
    /// Each case from its number to its contacts, timed one by one (and writes the CSV), then all
    /// at once three times; nothing is recorded.
    async fn time_cases<S: Store>(
        &self,
        store: &S,
        tracer: &Tracer<'_>,
        ids: &[CaseId],
    ) -> Result<Option<PerCase>, StartError> {
        let mut times = Vec::new();
        let mut reads = Vec::new();
        let mut csv = String::from("case_id,holder,venue,contact_start,grade,overlap_minutes\n");
        for id in ids {
            // Timed from the question (a case number) to the answer.
            let t = Instant::now();
            let (holder, case) = store
                .case(*id)
                .await?
                .ok_or_else(|| StartError::msg(format!("there is no case {}", id.0)))?;
            reads.push(t.elapsed().as_secs_f64() * 1000.0);
            let (found, _) = tracer
                .contacts(store, &holder, &case)
                .await
                .map_err(failed("tracing failed"))?;
            times.push(t.elapsed().as_secs_f64() * 1000.0);
            for (h, e) in &found {
                csv.push_str(&format!(
                    "{},{},{},{},{},{}\n",
                    id.0,
                    h.to_hex(),
                    e.venue.0,
                    e.contact_interval.0.unix_timestamp(),
                    e.grade.as_str(),
                    e.overlap_minutes
                ));
            }
        }
        if let Some(path) = &self.export {
            std::fs::write(path, csv).map_err(|e| StartError::caused(path.display().to_string(), e))?;
        }
        if !self.per_case || times.is_empty() {
            return Ok(None);
        }
        times.sort_by(f64::total_cmp);
        reads.sort_by(f64::total_cmp);
        // Best of three, as the DuckDB script reports its best of three.
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let mut batch_ms = Vec::new();
        for _ in 0..3 {
            let t = Instant::now();
            tracer
                .contacts_many(store, ids, threads)
                .await
                .map_err(failed("tracing failed"))?;
            batch_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        let at = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
        Ok(Some(PerCase {
            median_ms: at(0.5),
            median_read_ms: reads[(reads.len() - 1) / 2],
            p90_ms: at(0.9),
            max_ms: at(1.0),
            total_ms: times.iter().sum(),
            batch_ms,
        }))
    }
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
        let run = Run {
            which,
            policy: configured_policy(&config).map_err(anyhow::Error::new)?,
            per_case: self.per_case,
            export: self.export,
            index: self.index,
        };
        let _held = hold_sqlite_dir(&config).map_err(anyhow::Error::new)?;
        let outcome = runtime()?
            .block_on(with_store(&config, &config.data_dir, false, 4, run))
            .map_err(anyhow::Error::new)?;
        print_outcome(&outcome);
        Ok(())
    }
}

fn print_outcome(outcome: &Outcome) {
    let r = &outcome.report;
    if let Some(ix) = &outcome.index {
        println!(
            "in-memory index: {} check-ins of {} holders read in one scan and indexed in {:.1} s ({} MB of arrays); peak memory {}",
            ix.rows,
            ix.holders,
            ix.seconds,
            ix.bytes / 1_000_000,
            peak_memory()
        );
    }
    if let Some(p) = &outcome.per_case {
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
