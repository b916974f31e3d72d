//! `healthcode demo`: a fresh data directory with a small region, served until Ctrl-C.

use std::path::PathBuf;

use clap::Args;
use healthcode_server::identity::DocumentJson;
use healthcode_server::ops::demo::{DemoData, demo_file, prepare};

use super::runtime;
use super::serve::{init_logging, serve_until_signal};
use crate::Failure;

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
            let (config, data) = prepare(&self.dir, self.listen, self.holders, self.policy.as_deref())
                .await
                .map_err(anyhow::Error::new)?;
            print_demo(&self.dir, &data);
            serve_until_signal(&config, |_| {}).await
        })?;
        Ok(())
    }
}

fn print_demo(dir: &std::path::Path, d: &DemoData) {
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
    println!("sets a new one and enrols an authenticator app (TOTP) as the second factor; the console");
    println!("shows the QR code to scan, then asks for the app's code at every sign-in):");
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
    println!(
        "the code in this log, then POST /api/v1/sessions with phone, the challenge the first answer gave, and otp. For example:"
    );
    for colour in ["green", "yellow", "red"] {
        if let Some(h) = d.holders.iter().find(|h| h.colour == colour) {
            println!("  {:<6} {} {}", colour, h.phone, h.name_hint);
        }
    }
    println!();
    println!(
        "Registration (demo registry: synthetic records in {}; never in production).",
        healthcode_server::ops::demo::REGISTRY_FILE
    );
    println!("These people are known to it and not registered yet; register at {url}/register with");
    println!("exactly this name, document and phone (anything else is refused, as a real registry would):");
    for p in &d.unregistered {
        let doc = match &p.document {
            DocumentJson::ResidentId { number } => format!("resident ID {number}"),
            DocumentJson::Passport { number, nationality } => format!("passport {number} ({nationality})"),
        };
        println!("  {:<32} {:<15} {}", doc, p.phone, p.name);
    }
    println!();
    println!(
        "Device keys and a session for every holder are in {} (for healthcode loadgen).",
        demo_file(dir).display()
    );
    println!("Ctrl-C stops the server; the directory stays until the next demo replaces it.");
}
