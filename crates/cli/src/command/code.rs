//! `healthcode code`: issue, render and verify holder codes.

use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow};
use clap::{ArgGroup, Subcommand};
use healthcode_qr::Qr;
use healthcode_token::keys::SigningKey;
use healthcode_token::keystore::{Keystore, parse_private_key, read_private_key};
use healthcode_token::trust_list::describe_duration;
use healthcode_token::{CodeClaims, Colour, HolderId, NameHint, Verifier};
use time::{Date, Duration, OffsetDateTime};

use super::trust_list::{ROOT_ENV, load_trust_list};
use super::{now, parse_time, rfc3339};
use crate::Failure;

/// Environment variable holding the active signing key as PKCS#8 PEM, instead of its file.
pub const SIGNING_KEY_ENV: &str = "HEALTHCODE_SIGNING_KEY";
/// Environment variable naming a file that holds the active signing key.
pub const SIGNING_KEY_FILE_ENV: &str = "HEALTHCODE_SIGNING_KEY_FILE";

#[derive(Debug, Subcommand)]
pub enum CodeCommand {
    /// Sign a holder code with the active key and print its text.
    Issue {
        /// The key directory.
        #[arg(long, env = "HEALTHCODE_KEY_DIR")]
        dir: PathBuf,
        /// green, yellow or red.
        #[arg(long, alias = "color", value_parser = parse_colour)]
        colour: Colour,
        /// The holder's pseudonymous id, 8 to 16 bytes in hex; random when not given.
        #[arg(long, value_parser = parse_subject)]
        subject: Option<HolderId>,
        /// The masked name a guard sees, such as "张*" or "S*** J.".
        #[arg(long, value_parser = parse_hint)]
        name_hint: Option<NameHint>,
        /// Seconds the code is valid (at most 7 days, for printed codes).
        #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u32).range(10..=7 * 86_400))]
        ttl: u32,
        /// The date the colour may turn green (YYYY-MM-DD), for yellow and red codes.
        #[arg(long, value_parser = parse_date)]
        green_from: Option<Date>,
    },
    /// Draw a code as a QR image.
    #[command(group(ArgGroup::new("output").required(true).args(["png", "svg"])))]
    Render {
        /// The code text (HC1:…).
        token: String,
        /// Write a PNG image to this file.
        #[arg(long)]
        png: Option<PathBuf>,
        /// Write an SVG image to this file.
        #[arg(long)]
        svg: Option<PathBuf>,
        /// Pixels a QR module.
        #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=64))]
        module_px: u32,
    },
    /// Verify a code offline, from its text or from a photo or screenshot of its QR code.
    #[command(group(ArgGroup::new("input").required(true).args(["token", "image"])))]
    Verify {
        /// The code text (HC1:…).
        token: Option<String>,
        /// A PNG or JPEG image holding the QR code.
        #[arg(long)]
        image: Option<PathBuf>,
        /// The trust list file (from `trust-list export`).
        #[arg(long)]
        trust_list: PathBuf,
        /// The trust-list root public key (base64url) or a file holding it, such as DIR/root.pub.
        #[arg(long, env = ROOT_ENV)]
        root: String,
        /// Verify as of this time (RFC 3339) instead of now.
        #[arg(long, value_parser = parse_time)]
        at: Option<OffsetDateTime>,
    },
}

fn parse_colour(s: &str) -> Result<Colour, String> {
    s.parse().map_err(|e: healthcode_token::ClaimError| e.to_string())
}

fn parse_subject(s: &str) -> Result<HolderId, String> {
    HolderId::from_hex(s).map_err(|e| e.to_string())
}

fn parse_hint(s: &str) -> Result<NameHint, String> {
    NameHint::parse(s).map_err(|e| e.to_string())
}

fn parse_date(s: &str) -> Result<Date, String> {
    Date::parse(s, time::macros::format_description!("[year]-[month]-[day]"))
        .map_err(|e| format!("{s:?} is not a date such as 2026-12-06: {e}"))
}

fn signing_secret() -> anyhow::Result<Option<(String, SigningKey)>> {
    if let Ok(pem) = std::env::var(SIGNING_KEY_ENV) {
        let pem = zeroize::Zeroizing::new(pem);
        return Ok(Some((
            SIGNING_KEY_ENV.to_owned(),
            parse_private_key(&pem, SIGNING_KEY_ENV)?,
        )));
    }
    if let Ok(path) = std::env::var(SIGNING_KEY_FILE_ENV) {
        return Ok(Some((path.clone(), read_private_key(path.as_ref())?)));
    }
    Ok(None)
}

impl CodeCommand {
    pub fn run(self) -> Result<(), Failure> {
        match self {
            CodeCommand::Issue {
                dir,
                colour,
                subject,
                name_hint,
                ttl,
                green_from,
            } => issue(&dir, colour, subject, name_hint, ttl, green_from),
            CodeCommand::Render {
                token,
                png,
                svg,
                module_px,
            } => render(&token, png, svg, module_px),
            CodeCommand::Verify {
                token,
                image,
                trust_list,
                root,
                at,
            } => verify(token, image, &trust_list, &root, at),
        }
    }
}

/// `code issue`: signs a code with the active key and prints its text.
fn issue(
    dir: &Path,
    colour: Colour,
    subject: Option<HolderId>,
    name_hint: Option<NameHint>,
    ttl: u32,
    green_from: Option<Date>,
) -> Result<(), Failure> {
    let store = Keystore::open(dir).map_err(anyhow::Error::from)?;
    let t = now();
    let secret = signing_secret()?;
    let signer = store.active_signer(t, secret).map_err(anyhow::Error::from)?;
    let subject = match subject {
        Some(s) => s,
        None => HolderId::random().map_err(|e| anyhow!("cannot get random bytes: {e}"))?,
    };
    // A code never outlives the key that signs it (verifiers refuse retired keys).
    let key_end = store.signing_key(t).map_err(anyhow::Error::from)?.not_after;
    let mut expires_at = t + Duration::seconds(ttl.into());
    if expires_at > key_end {
        eprintln!(
            "note: the signing key ends at {}: the code expires then",
            rfc3339(key_end)
        );
        expires_at = key_end;
    }
    let claims = CodeClaims {
        issuer: store.issuer().clone(),
        subject,
        issued_at: t,
        expires_at,
        colour,
        name_hint,
        green_from,
    };
    let token = signer
        .issue(&claims)
        .map_err(|e| anyhow!("cannot issue the code: {e}"))?;
    println!("{}", token.to_text());
    Ok(())
}

/// `code render`: draws a code as PNG and/or SVG.
fn render(token: &str, png: Option<PathBuf>, svg: Option<PathBuf>, module_px: u32) -> Result<(), Failure> {
    let qr = Qr::new(token.trim()).map_err(anyhow::Error::from)?;
    let write = |path: &Path, bytes: &[u8]| -> anyhow::Result<()> {
        std::fs::write(path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!(
            "QR version {} ({}×{} modules) written to {}",
            qr.version(),
            qr.width(),
            qr.width(),
            path.display()
        );
        Ok(())
    };
    if let Some(path) = png {
        write(&path, &qr.to_png(module_px).map_err(anyhow::Error::from)?)?;
    }
    if let Some(path) = svg {
        write(&path, qr.to_svg(module_px).as_bytes())?;
    }
    Ok(())
}

/// `code verify`: verifies a code offline against a trust list; the verdict in one line.
fn verify(
    token: Option<String>,
    image: Option<PathBuf>,
    trust_list: &Path,
    root: &str,
    at: Option<OffsetDateTime>,
) -> Result<(), Failure> {
    let list = load_trust_list(trust_list, root)?;
    let text = match (token, image) {
        (Some(t), _) => t,
        (None, Some(path)) => {
            let bytes = std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
            healthcode_qr::decode_image(&bytes).with_context(|| format!("{}", path.display()))?
        }
        (None, None) => return Err(anyhow!("give a code or --image FILE").into()),
    };
    let t = at.unwrap_or_else(now);
    let age = describe_duration(list.age(t));
    // Said on the verdict line itself, so the result stays one line.
    let stale = if list.is_stale(t) {
        format!("  (trust list {age} old, past its next update: fetch a fresh copy)")
    } else {
        String::new()
    };
    let verifier = Verifier::new(list);
    match verifier.verify_text(&text, t) {
        Ok(code) => {
            let mut line = format!("VALID {}", code.colour().as_str().to_uppercase());
            if let Some(hint) = code.name_hint() {
                line.push_str(&format!("  name {hint}"));
            }
            if let Some(d) = code.green_from() {
                line.push_str(&format!("  green from {d}"));
            }
            line.push_str(&format!(
                "  issuer {}  expires {} (in {})  key {}  trust list {} old",
                code.claims.issuer,
                rfc3339(code.expires_at()),
                describe_duration(code.expires_at() - t),
                code.kid,
                age
            ));
            println!("{line}{stale}");
            Ok(())
        }
        Err(e) => Err(Failure::Rejected(format!("INVALID: {e}{stale}"))),
    }
}
