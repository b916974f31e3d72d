//! One subcommand a file.

pub mod city;
pub mod code;
pub mod keys;
pub mod loadgen;
pub mod serve;
pub mod trust_list;

use std::path::Path;

use anyhow::Context;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// The current time in whole seconds.
pub(crate) fn now() -> OffsetDateTime {
    let t = OffsetDateTime::now_utc();
    t.replace_nanosecond(0).unwrap_or(t)
}

/// Formats a time as RFC 3339.
pub(crate) fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

/// Parses an RFC 3339 time given on the command line.
pub(crate) fn parse_time(s: &str) -> Result<OffsetDateTime, String> {
    OffsetDateTime::parse(s, &Rfc3339)
        .map_err(|e| format!("{s:?} is not an RFC 3339 time such as 2026-11-29T08:00:00Z: {e}"))
}

/// Reads a whole text file with the path in the error.
pub(crate) fn read_text(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}
