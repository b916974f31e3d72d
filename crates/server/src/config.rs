//! Configuration, in layers, lowest first: defaults here, a TOML file, `HEALTHCODE__…` environment
//! variables (`HEALTHCODE__LISTEN=0.0.0.0:8080`), command-line flags. Unknown keys are errors.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use healthcode_token::Issuer;
use serde::{Deserialize, Serialize};

/// The documented sample configuration (`healthcode default-config` prints it).
pub const SAMPLE: &str = r#"# healthcode configuration. Every key is optional; these are the defaults.
# Environment variables override the file: HEALTHCODE__LISTEN, HEALTHCODE__DATA_DIR, ...

# Where the HTTP API listens.
listen = "127.0.0.1:8080"
# Keys, the data-encryption key material and the SQLite database live here. Created on first
# start; afterwards a missing directory is an error, never a new empty one.
data_dir = "healthcode-data"
# PostgreSQL instead of the embedded SQLite store, e.g. "postgres://healthcode@db/healthcode".
# The password may also come from the environment: HEALTHCODE__DATABASE_URL.
# database_url = ""
# A PostgreSQL schema of its own (created if missing); the connection's default when not set.
# database_schema = "healthcode"
# The issuing region (ISO 3166-2), used when the data directory is created.
region = "CN-ZJ"
# How long a served code is valid.
code_ttl_seconds = 300
# The colour policy file: the first published version of a new store (the built-in default when
# not set). Afterwards versions are published by two officers and this file is not read for
# colours. A store that has holders but no published version (it predates versions) publishes the
# file only when its SHA-256 is named here, after checking it:
# policy_file = "policy.toml"
# policy_first_sha256 = "…"
# The address people reach the pages at, printed on venue posters; when not set, the address
# the console was opened with.
# public_url = "https://healthcode.example"
# Check-ins, declarations, reports and exposures are deleted after this many days.
retention_days = 28
# How often the audit log's tree head is signed and published (/api/v1/transparency/head).
tree_head_interval_ms = 60000
# Requests larger than this are refused (413).
max_body_bytes = 1048576
# Requests taking longer than this are answered 503.
request_timeout_seconds = 10
# On SIGTERM or SIGINT the server stops accepting and lets requests in flight finish, for at most
# this long.
shutdown_grace_seconds = 10
# Connections open at once; one more is answered 503 with Retry-After and closed unserved.
max_connections = 10000
# A connection must send a whole request head within this many seconds of opening, or of the
# first byte of a later request (a slow header trickle is closed).
header_read_timeout_seconds = 10
# A kept-alive connection with no request for this long is closed.
idle_timeout_seconds = 30
# Requests handled at once. A request waits for its turn at most max_queue_ms, and none waits
# while the server is already behind by more than max_queue_ms (work ready to run waiting for a
# core); such a request is answered 503 with Retry-After at once (load shedding,
# requests_shed_total in the metrics).
max_in_flight = 512
max_queue_ms = 50
# Admission by connection, which bounds the wait at thousands of connections (where the queue is
# in the sockets, before a request is read): at most max(admitted_floor, R × admitted_wait_ms)
# connections are served at once, R being the requests completed a second over about the last
# second. A connection is admitted by its first request and released once idle for
# max(4 × admitted_wait_ms, 200 ms). While that many are admitted and most new connections are
# seen waiting half of admitted_wait_ms or more for their first read, a request on any other
# connection is answered 503 with Retry-After and the connection closed
# (requests_not_admitted_total). /healthz, /readyz and /metrics are served on any connection.
# admitted_wait_ms is the mean wait aimed at; the slowest admitted requests wait several times as
# long (at 6,000 connections on 2 cores, 10 gave a p99 of 67-90 ms and 50 one of 300 ms:
# docs/BENCHMARKS.md). 0 turns admission off: do so against clients that ignore Retry-After and
# reconnect at once, which make the server spend its time refusing them.
admitted_wait_ms = 10
admitted_floor = 256
# Scans waiting for the group commit; more are refused with 503 and Retry-After.
scan_queue = 4096
# How long a holder stays signed in, and an officer.
holder_session_days = 30
officer_session_hours = 12
# One-time codes asked for by one client address in an hour, at most.
otp_per_address_per_hour = 30
# Guesses at one-time codes from one client address in an hour, at most (each code allows 5, and
# only to the client that asked for it).
otp_guesses_per_address_per_hour = 60
# Seconds before another code may go to the same phone (also after a service counter used one:
# the holder's first sign-in waits this long).
otp_resend_seconds = 60
# Staff passwords checked or hashed at once (argon2id, about 19 MiB and tens of milliseconds
# each); 0 means half the cores. A sign-in that cannot start its check within
# password_queue_ms is refused with 503 and Retry-After before any hashing is done.
password_checks_at_once = 0
password_queue_ms = 1000
# Reverse proxies (addresses or networks) whose Forwarded / X-Forwarded-For headers name the
# client; from any other peer those headers are ignored, so a client cannot choose its address.
# Behind a proxy left out here, every client has the proxy's address (one set of sign-in delays
# and code limits for all); the server warns once when such headers come from another peer.
# trusted_proxies = ["127.0.0.1/32", "10.0.0.0/8"]
trusted_proxies = []
# The one header those proxies write the client into: "x-forwarded-for" (nginx's
# proxy_add_x_forwarded_for, most load balancers) or "forwarded" (RFC 7239). The other is
# ignored, since a proxy passes it through as the client wrote it.
forwarded_header = "x-forwarded-for"

# The embedded SQLite store (ignored with database_url).
[storage]
# When an acknowledged write (a scan, a registration, an audit entry) is answered: "full" once it
# is on the disk, so it survives a power cut or an operating-system crash; "normal" once SQLite
# has written it to its log, so it survives a crash of the server but the last writes before a
# power cut may be lost (faster: docs/BENCHMARKS.md).
synchronous = "full"
# Free space (MiB) kept on the data directory's file system: below it writes are refused with
# 503 and Retry-After before they are tried, /readyz says not ready, and the server resumes by
# itself once space is freed. 0: no floor.
min_free_mb = 64

# How one-time codes reach phones.
[sms]
# "none": no gateway, so registration and holder sign-in are closed (the API says so).
# "console": development only; each code is written to the server's log. `healthcode demo` uses it.
# "http": a real gateway; POST to `url` with {"to": "+86…", "text": "…"}, and with
#         Authorization: Bearer <token> when HEALTHCODE_SMS_TOKEN (or HEALTHCODE_SMS_TOKEN_FILE) is set.
kind = "none"
# url = "https://sms.example/send?to={phone}"
# Country calling codes that codes are sent to: the region's own by default. Each one added is a
# country whose premium numbers an attacker can have codes sent to at the authority's cost.
countries = [86]
# Codes sent in a day to the numbers of one prefix (country code and three more digits, as
# +86138), at most; then that prefix waits for the next day. Counted by each server in memory.
daily_per_prefix = 50000

# Real-name proofing: whether a name, an identity document and a phone belong to one person
# (docs/identity.md).
[identity]
# "none": no registry, so holders cannot register themselves (the API and the pages say so); an
#         officer registers them at a service counter with the document in hand.
# "demo": demonstrations only; a file of synthetic records (`healthcode demo` writes one).
# "http": the authority's registry; POST to `url` with {"name", "document", "phone"}, and with
#         Authorization: Bearer <token> when HEALTHCODE_IDENTITY_TOKEN (or ..._FILE) is set.
kind = "none"
# url = "https://registry.example/v1/verify"
# file = "identity-registry.json"
# Time-outs of a request to the registry; past them the answer is "unknown" (503, retry later).
connect_timeout_ms = 2000
timeout_ms = 5000

# What one person can make the server store or write.
[limits]
# Appeals one holder may have waiting for a decision at once (more: 409, nothing stored), and
# the characters of one.
open_appeals_per_holder = 3
appeal_max_chars = 2000
# Items in one page of an officers' list (appeals, overrides, cases, exposures, devices, the
# audit log); one audit entry a page viewed. Next pages are linked in the Link header.
page_max = 100
# A scan of the same code at the same device this soon after a recorded one is the same visit:
# answered as recorded under the first scan's sequence number, not stored again (0: off).
same_visit_seconds = 300

# How long personal data is kept beyond retention_days (docs/operations.md).
[retention]
# A holder who has not signed in for this long (or registered and never did), with nothing that
# could hold a colour and no check-in stored, is erased: account, personal data, records.
holder_inactive_days = 365
# Test results, days after sampling.
test_result_days = 90
# Appeals, days after their decision (open ones are kept).
decided_appeal_days = 180

# How staff (officers, admins, auditors) sign in.
[staff]
# "required": every staff account enrols a TOTP authenticator app (RFC 6238) at its first
#             sign-in and can do nothing else before it has; "optional": staff may enrol, and an
#             account that has enrolled must use it.
second_factor = "required"
# Failed sign-ins are counted per username (existing or not) and per client address, in the
# store, so a restart or another node does not forget them. After delay_after_failures in a row
# for a username (client_delay_after_failures for an address), each attempt must wait: first
# first_delay_ms, doubling with each failure up to max_delay_ms (at most 900000; answered 429
# with Retry-After, before any password hashing). Wrong passwords never lock an account, so that
# nobody can lock anyone out without the password; an account is locked, until an admin unlocks
# it (or `healthcode admin unlock`), after lock_after_code_failures wrong second-factor codes in
# a row each sent with the right password (0: never). A streak is forgotten after
# forget_failures_after_hours.
lock_after_code_failures = 10
delay_after_failures = 3
client_delay_after_failures = 20
first_delay_ms = 1000
max_delay_ms = 60000
forget_failures_after_hours = 24
# A staff session unused this long ends (it ends officer_session_hours after it began anyway).
session_idle_seconds = 1800

# Alerts for abuse: patterns in the audit log shown to auditors (GET /api/v1/admin/audit/alerts)
# and counted in the metrics (healthcode_abuse_alerts{kind}). They refuse nothing.
[alerts]
# Colour-changing acts (cases, overrides, exposures applied, risk areas, results, policies) by one
# person in one clock hour above which they are flagged.
colour_changes_per_hour = 30
# Reads of holders' personal data by one person in a day above which they are flagged.
reads_per_day = 200
# Any read of personal data between these local hours is flagged; local time is UTC plus
# utc_offset_hours.
night_from = 23
night_until = 6
utc_offset_hours = 8
# A case whose tracing turns at least this many holders linked to it by one venue only.
venue_cluster_holders = 200
# A risk area that takes effect within fresh_area_minutes of its declaration and reaches at least
# area_cluster_holders holders who declared travel there.
fresh_area_minutes = 60
area_cluster_holders = 100
# How often the metrics are recomputed over the last day.
interval_seconds = 60
# Two people for every act that changes colours or powers (docs/governance.md): overrides, risk
# areas, staff accounts and role grants, bulk exposure decisions are proposed by one and done
# only when a second approves.
[governance]
# An approver's account must be at least this old: an account made for the purpose approves
# nothing in its first day.
approver_min_age_hours = 24
# A proposal not approved within this many hours can no longer be.
proposal_expiry_hours = 72
# Deciding more pending exposures of a case at once than this needs a second officer.
bulk_exposure_two_person_above = 50

# What holders are told by text (everything is also on their "What happened" page at once).
[notify]
# Each holder whose data staff read in the 24 hours before gets one text at this hour (UTC)
# saying how many reads, by which roles.
digest_hour_utc = 18
read_digest = true
"#;

fn default_tree_head_interval_ms() -> u64 {
    60_000
}

/// The server's configuration.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Listen address.
    pub listen: SocketAddr,
    /// Data directory.
    pub data_dir: PathBuf,
    /// PostgreSQL URL; SQLite in the data directory when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
    /// PostgreSQL schema (default: the connection's search path).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database_schema: Option<String>,
    /// Region of a new data directory.
    pub region: String,
    /// Validity of served codes.
    pub code_ttl_seconds: u32,
    /// Policy file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_file: Option<PathBuf>,
    /// The SHA-256 of the policy file, named by the operator to publish it as the first version
    /// of a store that has holders.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_first_sha256: Option<String>,
    /// Where people reach the pages (for venue posters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_url: Option<String>,
    /// Retention.
    pub retention_days: u16,
    /// How often a tree head of the audit log is signed.
    #[serde(default = "default_tree_head_interval_ms")]
    pub tree_head_interval_ms: u64,
    /// Body size limit.
    pub max_body_bytes: usize,
    /// Request time-out.
    pub request_timeout_seconds: u64,
    /// How long a shutdown waits for requests in flight.
    pub shutdown_grace_seconds: u64,
    /// Connections open at once.
    pub max_connections: usize,
    /// Time for a request head.
    pub header_read_timeout_seconds: u64,
    /// Time a kept-alive connection may wait for a request.
    pub idle_timeout_seconds: u64,
    /// Requests handled at once.
    pub max_in_flight: usize,
    /// The longest a request waits for its turn (and the scheduling delay above which none waits).
    pub max_queue_ms: u64,
    /// The wait admission by connection aims at (0: no admission).
    #[serde(default = "default_admitted_wait_ms")]
    pub admitted_wait_ms: u64,
    /// Connections admitted whatever the measured rate.
    #[serde(default = "default_admitted_floor")]
    pub admitted_floor: usize,
    /// Group-commit queue bound.
    pub scan_queue: usize,
    /// Holder session lifetime.
    pub holder_session_days: u16,
    /// Officer session lifetime.
    pub officer_session_hours: u16,
    /// One-time codes per client address per hour.
    pub otp_per_address_per_hour: u32,
    /// Guesses at one-time codes per client address per hour.
    pub otp_guesses_per_address_per_hour: u32,
    /// Seconds before another one-time code may go to the same phone.
    #[serde(default = "default_otp_resend_seconds")]
    pub otp_resend_seconds: u32,
    /// Password hashes computed at once (0: one per core).
    pub password_checks_at_once: usize,
    /// How long a password check may wait for its turn.
    pub password_queue_ms: u64,
    /// Proxies whose forwarding headers are believed.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// The header they write.
    pub forwarded_header: crate::client::ForwardedHeader,
    /// The embedded store.
    #[serde(default)]
    pub storage: StorageConfig,
    /// SMS gateway.
    pub sms: crate::sms::SmsConfig,
    /// Staff sign-in: delays, locks, the second factor, idle sessions.
    #[serde(default)]
    pub staff: crate::signin::StaffConfig,
    /// Real-name registry.
    #[serde(default)]
    pub identity: crate::identity::IdentityConfig,
    /// Alerts for abuse: thresholds.
    #[serde(default)]
    pub alerts: crate::alerts::AlertsConfig,
    /// Two-person rules: who may approve, how long proposals wait, what counts as bulk.
    #[serde(default)]
    pub governance: GovernanceConfig,
    /// What holders are texted: the daily digest of reads of their data.
    #[serde(default)]
    pub notify: crate::consent::told::NotifyConfig,
    /// Limits on what one person can make the server store.
    #[serde(default)]
    pub limits: crate::limits::LimitsConfig,
    /// Retention of personal data.
    #[serde(default)]
    pub retention: crate::limits::RetentionConfig,
}

/// `[governance]`: the two-person rules' parameters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GovernanceConfig {
    /// An approver's account must be at least this old.
    pub approver_min_age_hours: u32,
    /// A proposal expires unapproved after this long.
    pub proposal_expiry_hours: u32,
    /// Deciding more pending exposures of a case at once needs a second officer.
    pub bulk_exposure_two_person_above: u32,
}

impl Default for GovernanceConfig {
    fn default() -> GovernanceConfig {
        GovernanceConfig {
            approver_min_age_hours: 24,
            proposal_expiry_hours: 72,
            bulk_exposure_two_person_above: 50,
        }
    }
}

impl GovernanceConfig {
    /// The approval rule's parameters.
    pub fn approval(&self) -> healthcode_store::ApprovalPolicy {
        healthcode_store::ApprovalPolicy {
            approver_min_age: time::Duration::hours(i64::from(self.approver_min_age_hours)),
        }
    }

    /// How long a proposal stays open.
    pub fn proposal_expiry(&self) -> time::Duration {
        time::Duration::hours(i64::from(self.proposal_expiry_hours))
    }
}

/// When SQLite's commits return.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Synchronous {
    /// Once on the disk.
    #[default]
    Full,
    /// Once in SQLite's log, synced at checkpoints.
    Normal,
}

/// `[storage]`: the embedded SQLite store.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// When acknowledged writes are answered.
    pub synchronous: Synchronous,
    /// Free MiB kept on the data directory's file system.
    pub min_free_mb: u64,
}

impl Default for StorageConfig {
    fn default() -> StorageConfig {
        StorageConfig {
            synchronous: Synchronous::Full,
            min_free_mb: 64,
        }
    }
}

impl StorageConfig {
    /// The options the SQLite store is opened with.
    pub fn sqlite_options(&self) -> healthcode_store_sqlite::Options {
        healthcode_store_sqlite::Options {
            synchronous: match self.synchronous {
                Synchronous::Full => healthcode_store_sqlite::Synchronous::Full,
                Synchronous::Normal => healthcode_store_sqlite::Synchronous::Normal,
            },
            min_free_bytes: self.min_free_mb.saturating_mul(1 << 20),
        }
    }
}

impl Default for Config {
    fn default() -> Config {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("healthcode-data"),
            database_url: None,
            database_schema: None,
            region: "CN-ZJ".into(),
            code_ttl_seconds: 300,
            policy_file: None,
            policy_first_sha256: None,
            public_url: None,
            retention_days: 28,
            tree_head_interval_ms: default_tree_head_interval_ms(),
            max_body_bytes: 1 << 20,
            request_timeout_seconds: 10,
            shutdown_grace_seconds: 10,
            max_connections: 10_000,
            header_read_timeout_seconds: 10,
            idle_timeout_seconds: 30,
            max_in_flight: 512,
            max_queue_ms: 50,
            admitted_wait_ms: default_admitted_wait_ms(),
            admitted_floor: default_admitted_floor(),
            scan_queue: 4096,
            holder_session_days: 30,
            officer_session_hours: 12,
            otp_per_address_per_hour: 30,
            otp_guesses_per_address_per_hour: 60,
            otp_resend_seconds: default_otp_resend_seconds(),
            password_checks_at_once: 0,
            password_queue_ms: 1000,
            trusted_proxies: Vec::new(),
            forwarded_header: crate::client::ForwardedHeader::XForwardedFor,
            storage: StorageConfig::default(),
            sms: crate::sms::SmsConfig::default(),
            identity: crate::identity::IdentityConfig::default(),
            staff: crate::signin::StaffConfig::default(),
            alerts: crate::alerts::AlertsConfig::default(),
            governance: GovernanceConfig::default(),
            notify: crate::consent::told::NotifyConfig::default(),
            limits: crate::limits::LimitsConfig::default(),
            retention: crate::limits::RetentionConfig::default(),
        }
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("data_dir", &self.data_dir)
            .field(
                "database_url",
                &self
                    .database_url
                    .as_ref()
                    .map(|u| healthcode_store_postgres::DatabaseUrl::new(u.clone()).to_string()),
            )
            .field("region", &self.region)
            .field("code_ttl_seconds", &self.code_ttl_seconds)
            .field("policy_file", &self.policy_file)
            .field("policy_first_sha256", &self.policy_first_sha256)
            .field("retention_days", &self.retention_days)
            .field("sms", &self.sms)
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}

/// A configuration that cannot be used, with the reason in one line.
#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(pub String);

/// A secret from the environment: `NAME`, or the contents of the file named by `NAME_FILE`
/// (trailing newline removed). Both set is an error.
pub fn secret(name: &str) -> Result<Option<String>, String> {
    let direct = std::env::var(name).ok().filter(|v| !v.is_empty());
    let file = std::env::var(format!("{name}_FILE"))
        .ok()
        .filter(|v| !v.is_empty());
    match (direct, file) {
        (Some(_), Some(_)) => Err(format!("set {name} or {name}_FILE, not both")),
        (Some(v), None) => Ok(Some(v)),
        (None, Some(path)) => std::fs::read_to_string(&path)
            .map(|t| Some(t.trim_end_matches(['\r', '\n']).to_owned()))
            .map_err(|e| format!("{name}_FILE: {path}: {e}")),
        (None, None) => Ok(None),
    }
}

/// Values given as command-line flags, the top layer.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Overrides {
    /// `--listen`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    /// `--data-dir`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    /// `--database-url`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
}

impl Config {
    /// Loads the layers and checks the result.
    pub fn load(file: Option<&Path>, overrides: &Overrides) -> Result<Config, ConfigError> {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = file {
            if !path.exists() {
                return Err(ConfigError(format!("{} does not exist", path.display())));
            }
            fig = fig.merge(Toml::file(path));
        }
        fig = fig
            .merge(Env::prefixed("HEALTHCODE__").split("__"))
            .merge(Serialized::defaults(overrides));
        let config: Config = fig.extract().map_err(|e| ConfigError(e.to_string()))?;
        config.check()?;
        Ok(config)
    }

    /// Checks what types alone do not.
    pub fn check(&self) -> Result<(), ConfigError> {
        Issuer::parse(&self.region).map_err(|e| ConfigError(format!("region: {e}")))?;
        if !(1..=24 * 30).contains(&self.governance.proposal_expiry_hours) {
            return Err(ConfigError("governance.proposal_expiry_hours: 1 to 720".into()));
        }
        if !(10..=7 * 86_400).contains(&self.code_ttl_seconds) {
            return Err(ConfigError(
                "code_ttl_seconds must be between 10 and 604800".into(),
            ));
        }
        if self.retention_days == 0 {
            return Err(ConfigError("retention_days must be at least 1".into()));
        }
        if !(100..=3_600_000).contains(&self.tree_head_interval_ms) {
            return Err(ConfigError(
                "tree_head_interval_ms must be between 100 and 3600000".into(),
            ));
        }
        if self.notify.digest_hour_utc > 23 {
            return Err(ConfigError(
                "notify.digest_hour_utc must be between 0 and 23".into(),
            ));
        }
        self.limits.check().map_err(ConfigError)?;
        self.retention.check(self.retention_days).map_err(ConfigError)?;
        if self.max_body_bytes < 1024 {
            return Err(ConfigError("max_body_bytes must be at least 1024".into()));
        }
        if self.request_timeout_seconds == 0 {
            return Err(ConfigError("request_timeout_seconds must be at least 1".into()));
        }
        if self.max_in_flight == 0 || self.scan_queue == 0 || self.max_connections == 0 {
            return Err(ConfigError(
                "max_in_flight, max_connections and scan_queue must be at least 1".into(),
            ));
        }
        if self.header_read_timeout_seconds == 0 || self.idle_timeout_seconds == 0 {
            return Err(ConfigError(
                "header_read_timeout_seconds and idle_timeout_seconds must be at least 1".into(),
            ));
        }
        if self.max_queue_ms == 0 || self.max_queue_ms > 60_000 {
            return Err(ConfigError("max_queue_ms must be between 1 and 60000".into()));
        }
        if self.admitted_wait_ms > 60_000 {
            return Err(ConfigError("admitted_wait_ms must be at most 60000".into()));
        }
        if self.holder_session_days == 0 || self.officer_session_hours == 0 {
            return Err(ConfigError("session lifetimes must be at least 1".into()));
        }
        if self.otp_per_address_per_hour == 0 {
            return Err(ConfigError("otp_per_address_per_hour must be at least 1".into()));
        }
        if self.otp_guesses_per_address_per_hour == 0 {
            return Err(ConfigError(
                "otp_guesses_per_address_per_hour must be at least 1".into(),
            ));
        }
        if !(1..=3600).contains(&self.otp_resend_seconds) {
            return Err(ConfigError(
                "otp_resend_seconds must lie between 1 and 3600".into(),
            ));
        }
        if self.shutdown_grace_seconds > 3600 {
            return Err(ConfigError("shutdown_grace_seconds must be at most 3600".into()));
        }
        if self.password_queue_ms > 60_000 {
            return Err(ConfigError("password_queue_ms must be at most 60000".into()));
        }
        crate::sms::check(&self.sms).map_err(|e| ConfigError(format!("sms: {e}")))?;
        crate::identity::check(&self.identity).map_err(|e| ConfigError(format!("identity: {e}")))?;
        self.staff
            .check()
            .map_err(|e| ConfigError(format!("staff: {e}")))?;
        self.alerts.check().map_err(ConfigError)?;
        Ok(())
    }
}

fn default_otp_resend_seconds() -> u32 {
    60
}

fn default_admitted_wait_ms() -> u64 {
    10
}

fn default_admitted_floor() -> usize {
    256
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sample_is_the_default() {
        let from_sample: Config = Figment::from(Toml::string(SAMPLE)).extract().unwrap();
        let d = Config::default();
        assert_eq!(from_sample.listen, d.listen);
        assert_eq!(from_sample.data_dir, d.data_dir);
        assert_eq!(from_sample.code_ttl_seconds, d.code_ttl_seconds);
        assert_eq!(from_sample.retention_days, d.retention_days);
        assert_eq!(from_sample.max_body_bytes, d.max_body_bytes);
        assert_eq!(from_sample.password_checks_at_once, d.password_checks_at_once);
        assert_eq!(from_sample.password_queue_ms, d.password_queue_ms);
        assert_eq!(from_sample.trusted_proxies, d.trusted_proxies);
        assert_eq!(from_sample.forwarded_header, d.forwarded_header);
        assert_eq!(from_sample.shutdown_grace_seconds, d.shutdown_grace_seconds);
        assert_eq!(from_sample.max_connections, d.max_connections);
        assert_eq!(
            from_sample.header_read_timeout_seconds,
            d.header_read_timeout_seconds
        );
        assert_eq!(from_sample.idle_timeout_seconds, d.idle_timeout_seconds);
        assert_eq!(from_sample.max_in_flight, d.max_in_flight);
        assert_eq!(from_sample.max_queue_ms, d.max_queue_ms);
        assert_eq!(from_sample.admitted_wait_ms, d.admitted_wait_ms);
        assert_eq!(from_sample.admitted_floor, d.admitted_floor);
        assert_eq!(from_sample.storage.synchronous, d.storage.synchronous);
        assert_eq!(from_sample.storage.min_free_mb, d.storage.min_free_mb);
        assert_eq!(from_sample.identity, d.identity);
        assert_eq!(from_sample.staff, d.staff);
    }

    #[test]
    fn layers_and_errors() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(&file, "listen = \"127.0.0.1:9000\"\ncode_ttl_seconds = 120\n").unwrap();
        let o = Overrides {
            listen: Some("127.0.0.1:9001".parse().unwrap()),
            ..Default::default()
        };
        let c = Config::load(Some(&file), &o).unwrap();
        assert_eq!(c.listen.port(), 9001);
        assert_eq!(c.code_ttl_seconds, 120);
        std::fs::write(&file, "listne = \"127.0.0.1:9000\"\n").unwrap();
        let e = Config::load(Some(&file), &Overrides::default()).unwrap_err();
        assert!(e.to_string().contains("listne"), "{e}");
        std::fs::write(&file, "region = \"Zhejiang\"\n").unwrap();
        assert!(
            Config::load(Some(&file), &Overrides::default())
                .unwrap_err()
                .to_string()
                .contains("region")
        );
        assert!(Config::load(Some(&dir.path().join("missing.toml")), &Overrides::default()).is_err());
    }

    #[test]
    fn debug_hides_the_database_password() {
        let c = Config {
            database_url: Some("postgres://hc:pa55word@db/hc".into()),
            ..Config::default()
        };
        assert!(!format!("{c:?}").contains("pa55word"));
    }
}
