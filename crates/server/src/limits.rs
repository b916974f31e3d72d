//! Limits on what one person can make the server store or write (`[limits]`), the retention of
//! personal data (`[retention]`), pages of officers' lists, and the plausible window of dates
//! officers enter (the policy's `[plausibility]`).

use axum::http::{HeaderMap, HeaderValue, header};
use serde::{Deserialize, Serialize};

use time::OffsetDateTime;

use crate::App;
use crate::problem::ApiError;

/// `[limits]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Appeals one holder may have waiting for a decision at once.
    pub open_appeals_per_holder: u32,
    /// Characters in an appeal's text.
    pub appeal_max_chars: u32,
    /// Items in one page of an officers' list (and the default page).
    pub page_max: u32,
    /// A scan of the same code at the same device within this many seconds of a recorded one is
    /// the same visit: answered as recorded under the first scan's sequence number, not stored
    /// again (0: off).
    pub same_visit_seconds: u32,
}

impl Default for LimitsConfig {
    fn default() -> LimitsConfig {
        LimitsConfig {
            open_appeals_per_holder: 3,
            appeal_max_chars: 2000,
            page_max: 100,
            same_visit_seconds: 300,
        }
    }
}

/// `[retention]`: how long personal data is kept (check-ins, declarations, reports and exposures
/// follow `retention_days`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionConfig {
    /// A holder who has not signed in for this many days (or registered and never signed in),
    /// with nothing holding a colour and no check-in stored, is erased.
    pub holder_inactive_days: u32,
    /// Test results are deleted this many days after sampling.
    pub test_result_days: u32,
    /// Decided appeals are deleted this many days after the decision (open ones are kept).
    pub decided_appeal_days: u32,
}

impl Default for RetentionConfig {
    fn default() -> RetentionConfig {
        RetentionConfig {
            holder_inactive_days: 365,
            test_result_days: 90,
            decided_appeal_days: 180,
        }
    }
}

impl RetentionConfig {
    /// Refuses periods that would erase what is still needed.
    pub fn check(&self, retention_days: u16) -> Result<(), String> {
        if self.holder_inactive_days < 90 || self.holder_inactive_days < u32::from(retention_days) {
            return Err(format!(
                "retention.holder_inactive_days must be at least 90 (the longest hold a policy rule may give) and at least retention_days ({retention_days})"
            ));
        }
        if self.test_result_days < u32::from(retention_days) || self.decided_appeal_days < 30 {
            return Err(format!(
                "retention.test_result_days must be at least retention_days ({retention_days}), decided_appeal_days at least 30"
            ));
        }
        Ok(())
    }
}

impl LimitsConfig {
    /// Refuses limits that make the service unusable.
    pub fn check(&self) -> Result<(), String> {
        if self.open_appeals_per_holder == 0
            || self.appeal_max_chars < 10
            || !(1..=1000).contains(&self.page_max)
        {
            return Err("limits: open_appeals_per_holder at least 1, appeal_max_chars at least 10, page_max 1 to 1000".into());
        }
        Ok(())
    }
}

/// A page of an officers' list: items with an id above `after`, at most `limit`. (Each list's
/// query names these two fields itself: a flattened struct would take numbers as text.)
#[derive(Debug, Clone, Copy, Default)]
pub struct PageQuery {
    /// Start after this id (the last id of the previous page; 0 or absent: from the start).
    pub after: i64,
    /// Items in the page, at most `[limits] page_max` (the default).
    pub limit: Option<u32>,
}

impl PageQuery {
    /// A page after `after` of `limit` items (the maximum when absent).
    pub fn new(after: i64, limit: Option<u32>) -> PageQuery {
        PageQuery { after, limit }
    }

    /// The page's size: `limit`, refused above the maximum or at 0.
    pub fn size(&self, max: u32) -> Result<u32, ApiError> {
        match self.limit {
            None => Ok(max),
            Some(n) if (1..=max).contains(&n) => Ok(n),
            Some(n) => Err(ApiError::InvalidField(format!("limit: 1 to {max}, not {n}"))),
        }
    }
}

/// The `Link: <…>; rel="next"` header (RFC 8288) of a full page, whose last item has id `last`:
/// the same list from after it. `path_and_query` is the list's path with its other parameters
/// (ending in `?` or `&`).
pub fn next_link(path_and_query: &str, last: Option<i64>, shown: usize, size: u32) -> HeaderMap {
    let mut h = HeaderMap::new();
    let value = last.filter(|_| shown == size as usize).and_then(|last| {
        HeaderValue::from_str(&format!(
            "<{path_and_query}after={last}&limit={size}>; rel=\"next\""
        ))
        .ok()
    });
    if let Some(v) = value {
        h.insert(header::LINK, v);
    }
    h
}

impl<S> App<S> {
    /// Refuses a date an officer entered outside the policy's plausible window, naming the field
    /// (422). `future`: whether it may lie ahead at all.
    pub(crate) fn plausible(
        &self,
        field: &str,
        t: OffsetDateTime,
        now: OffsetDateTime,
        future: bool,
    ) -> Result<(), ApiError> {
        self.policy()
            .plausibility()
            .check(field, t, now, future)
            .map_err(|e| ApiError::InvalidField(e.0))
    }

    /// The limits in force.
    pub fn limits(&self) -> &LimitsConfig {
        &self.settings.limits
    }
}
