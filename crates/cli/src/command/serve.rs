//! `healthcode serve`, `default-config`, `purge` and `audit verify`: the commands that use the
//! server's configuration.

use std::path::PathBuf;

use anyhow::{Context, anyhow};
use clap::Args;
use healthcode_server::{Config, Overrides};

use crate::Failure;

/// Where the configuration comes from: shared by `serve`, `purge` and `audit verify`.
#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// A TOML configuration file (`healthcode default-config` prints a documented one).
    #[arg(long, env = "HEALTHCODE_CONFIG")]
    config: Option<PathBuf>,
    /// Listen address, such as 127.0.0.1:8080.
    #[arg(long)]
    listen: Option<std::net::SocketAddr>,
    /// Data directory (created by the first `serve`).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// PostgreSQL URL, instead of the embedded SQLite store.
    #[arg(long)]
    database_url: Option<String>,
}

impl ConfigArgs {
    pub(crate) fn load(self) -> anyhow::Result<Config> {
        let overrides = Overrides {
            listen: self.listen,
            data_dir: self.data_dir,
            database_url: self.database_url,
        };
        Ok(Config::load(self.config.as_deref(), &overrides)?)
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")
}

/// `healthcode serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    config: ConfigArgs,
}

impl ServeArgs {
    pub fn run(self) -> Result<(), Failure> {
        let config = self.config.load()?;
        init_logging();
        runtime()?.block_on(serve_until_ctrl_c(&config, |_| {}))?;
        Ok(())
    }
}

fn init_logging() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .try_init();
}

/// Binds, says where, calls `ready` with the address, and serves until Ctrl-C.
async fn serve_until_ctrl_c(config: &Config, ready: impl FnOnce(&str)) -> anyhow::Result<()> {
    let bound = healthcode_server::bind(config)
        .await
        .map_err(|e| anyhow!("{e}"))?;
    let addr = bound.local_addr().map(|a| a.to_string()).unwrap_or_default();
    if bound.created {
        eprintln!(
            "created data directory {} (signing keys, data-encryption keys, database)",
            bound.data_dir.display()
        );
    }
    let store = if config.database_url.is_some() {
        "PostgreSQL"
    } else {
        "SQLite"
    };
    eprintln!(
        "healthcode listening on http://{addr} ({store} store, data in {})",
        bound.data_dir.display()
    );
    eprintln!(
        "  trust list: http://{addr}/api/v1/trust-list   policy: http://{addr}/api/v1/policy   API: http://{addr}/api/openapi.json"
    );
    ready(&addr);
    bound
        .run(async {
            let _ = tokio::signal::ctrl_c().await;
            eprintln!("shutting down");
        })
        .await
        .context("server failed")?;
    Ok(())
}

/// `healthcode demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// The demo's data directory; an earlier demo there is replaced, anything else is refused.
    #[arg(long, default_value = "healthcode-demo")]
    dir: PathBuf,
    /// Listen address.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: std::net::SocketAddr,
    /// How many holders to make.
    #[arg(long, default_value_t = 100)]
    holders: usize,
    /// A colour policy file instead of the built-in one (e.g. one whose exposures wait for review).
    #[arg(long)]
    policy: Option<PathBuf>,
}

impl DemoArgs {
    pub fn run(self) -> Result<(), Failure> {
        init_logging();
        runtime()?.block_on(async {
            let (config, data) = healthcode_server::demo::prepare(
                &self.dir,
                self.listen,
                self.holders,
                self.policy.as_deref(),
            )
            .await
            .map_err(|e| anyhow!("{e}"))?;
            print_demo(&self.dir, &data);
            serve_until_ctrl_c(&config, |_| {}).await
        })?;
        Ok(())
    }
}

fn print_demo(dir: &std::path::Path, d: &healthcode_server::demo::DemoData) {
    let url = &d.base_url;
    println!(
        "healthcode demo in {} (SQLite; one-time SMS codes are printed in this log)",
        dir.display()
    );
    println!();
    println!("Open:");
    println!("  {url}/                   the holders' pages (register, sign in, my code)");
    println!("  {url}/scan               a venue's scanner (set it up with a device key below)");
    println!("  {url}/console            the officers' console (an account below)");
    println!("  {url}/api/openapi.json   the API");
    println!("  {url}/api/v1/trust-list  the trust list scanners cache");
    println!("  {url}/api/v1/policy      the colour rules");
    println!("  {url}/metrics            Prometheus metrics");
    println!();
    println!("Staff (one-time passwords: the first sign-in, at /console or POST /api/v1/admin/sessions,");
    println!("must set a new one):");
    for a in &d.accounts {
        println!("  {:<14} {:<8} {}", a.username, a.role, a.one_time_password);
    }
    println!();
    println!("Scanner devices (Authorization: Bearer <key> on POST /api/v1/scans):");
    for v in &d.devices {
        println!(
            "  venue {:>2} {:<26} {:<10} {:<16} {}",
            v.venue, v.venue_name, v.category, v.admission, v.key
        );
    }
    let count = |c: &str| d.holders.iter().filter(|h| h.colour == c).count();
    println!();
    println!(
        "{} holders: {} green, {} yellow, {} red. Sign in as one: POST /api/v1/otp with its phone, read",
        d.holders.len(),
        count("green"),
        count("yellow"),
        count("red")
    );
    println!("the code in this log, then POST /api/v1/sessions with phone and otp. For example:");
    for colour in ["green", "yellow", "red"] {
        if let Some(h) = d.holders.iter().find(|h| h.colour == colour) {
            println!("  {:<6} {} {}", colour, h.phone, h.name_hint);
        }
    }
    println!();
    println!(
        "Device keys and a session for every holder are in {} (for healthcode loadgen).",
        healthcode_server::demo::demo_file(dir).display()
    );
    println!("Ctrl-C stops the server; the directory stays until the next demo replaces it.");
}

/// `healthcode admin`.
#[derive(Debug, clap::Subcommand)]
pub enum AdminCommand {
    /// Create a staff account and print its one-time password (the first sign-in replaces it).
    Create(CreateArgs),
}

/// `healthcode admin create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Username.
    #[arg(long)]
    username: String,
    /// Role: admin, officer or auditor.
    #[arg(long, default_value = "admin")]
    role: String,
    #[command(flatten)]
    config: ConfigArgs,
}

impl AdminCommand {
    pub fn run(self) -> Result<(), Failure> {
        let AdminCommand::Create(args) = self;
        let role = healthcode_server::auth::parse_role(&args.role)
            .ok_or_else(|| anyhow!("--role must be admin, officer or auditor, not {:?}", args.role))?;
        let config = args.config.load()?;
        let password = runtime()?
            .block_on(healthcode_server::create_account_now(
                &config,
                &args.username,
                role,
            ))
            .map_err(|e| anyhow!("{e}"))?;
        println!(
            "created {} ({}) with one-time password: {password}",
            args.username, args.role
        );
        println!("sign in with POST /api/v1/admin/sessions and set a new password (new_password) at once.");
        Ok(())
    }
}

/// Prints the documented sample configuration.
pub fn default_config() -> Result<(), Failure> {
    print!("{}", healthcode_server::config::SAMPLE);
    Ok(())
}

/// `healthcode purge`: delete what is older than the retention period now.
pub fn purge(args: ConfigArgs) -> Result<(), Failure> {
    let config = args.load()?;
    let r = runtime()?
        .block_on(healthcode_server::purge_now(&config))
        .map_err(|e| anyhow!("{e}"))?;
    println!(
        "purged {} check-ins, {} declarations, {} reports, {} exposures older than {} days",
        r.checkins, r.declarations, r.reports, r.exposures, config.retention_days
    );
    Ok(())
}

/// `healthcode audit verify`: walk the audit chain.
pub fn audit_verify(args: ConfigArgs) -> Result<(), Failure> {
    let config = args.load()?;
    match runtime()?
        .block_on(healthcode_server::verify_audit_now(&config))
        .map_err(|e| anyhow!("{e}"))?
    {
        Ok(n) => {
            println!("VALID audit chain: {n} entries");
            Ok(())
        }
        Err(brk) => Err(Failure::Rejected(format!("INVALID: {brk}"))),
    }
}
