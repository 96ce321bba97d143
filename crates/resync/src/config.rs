//! How a run paces and bounds itself. Stored with the run, so a restart keeps
//! the settings it started with. Every field is read through an accessor
//! that clamps it to its range: a hand-edited or old state cannot make a
//! run loop, page by zero, or exceed the contract's sizes.

use serde::{Deserialize, Serialize};

use crate::clerk_api::{MAX_LIST_LIMIT, MAX_LOOKUP_VALUES};

/// Clerk's rate limits: 100 requests per 10 s on development instances,
/// 1000 on production ones.
pub const DEFAULT_RATE_LIMIT_PER_10S: u32 = 100;
pub const MAX_RATE_LIMIT_PER_10S: u32 = 1000;
/// Lookups one page of the main API's rows needs at most: a page is redone
/// whole after a restart, so it must stay short when lookups are small and
/// 429s frequent.
pub const LOOKUPS_PER_ROWS_PAGE: u32 = 5;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RunConfig {
    /// Most Clerk requests in any 10-second window (1–1000).
    pub rate_limit_per_10s: u32,
    /// Users per `GET /v1/users` page, and so per upsert batch (1–500).
    pub page_size: u32,
    /// Values per Clerk lookup (1–100); rows per main-API page follow from
    /// it and `page_size` ([`RunConfig::rows_limit`]).
    pub lookup_size: u32,
    /// Tries of one request before the run fails (1–20).
    pub max_attempts: u32,
    /// First backoff after a 5xx, network error, timeout or bad answer.
    pub backoff_base_ms: u32,
    /// Longest backoff between two tries.
    pub backoff_max_ms: u32,
    /// Longest `Retry-After` the run waits; a longer one fails the run.
    pub max_retry_after_ms: u32,
    /// 429s in a row on one request before the run fails.
    pub max_rate_limited: u32,
}

impl Default for RunConfig {
    fn default() -> Self {
        Self {
            rate_limit_per_10s: DEFAULT_RATE_LIMIT_PER_10S,
            page_size: MAX_LIST_LIMIT,
            lookup_size: MAX_LOOKUP_VALUES,
            max_attempts: 8,
            backoff_base_ms: 1_000,
            backoff_max_ms: 60_000,
            max_retry_after_ms: 3_600_000,
            max_rate_limited: 100,
        }
    }
}

/// `CLERK_RATE_LIMIT_PER_10S` is not a whole number in 1–1000.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the rate limit must be a whole number from 1 to 1000")]
pub struct InvalidRateLimit;

impl RunConfig {
    /// The defaults with the relay's `CLERK_RATE_LIMIT_PER_10S` (unset or
    /// empty: 100).
    pub fn from_rate_limit_var(value: Option<&str>) -> Result<Self, InvalidRateLimit> {
        let rate = match value.map(str::trim) {
            None | Some("") => DEFAULT_RATE_LIMIT_PER_10S,
            Some(v) => v.parse::<u32>().map_err(|_| InvalidRateLimit)?,
        };
        if !(1..=MAX_RATE_LIMIT_PER_10S).contains(&rate) {
            return Err(InvalidRateLimit);
        }
        Ok(Self {
            rate_limit_per_10s: rate,
            ..Self::default()
        })
    }

    pub fn rate_limit(&self) -> u32 {
        self.rate_limit_per_10s.clamp(1, MAX_RATE_LIMIT_PER_10S)
    }
    pub fn page_size(&self) -> u32 {
        self.page_size.clamp(1, MAX_LIST_LIMIT)
    }
    pub fn lookup_size(&self) -> u32 {
        self.lookup_size.clamp(1, MAX_LOOKUP_VALUES)
    }
    /// Rows per page of the main API's rows (the sweep, `failed`,
    /// `pending`): as many as [`LOOKUPS_PER_ROWS_PAGE`] lookups take, at
    /// most a Clerk page (500 by default, the rows endpoint's limit too).
    pub fn rows_limit(&self) -> u32 {
        self.page_size()
            .min(self.lookup_size().saturating_mul(LOOKUPS_PER_ROWS_PAGE))
    }
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts.clamp(1, 20)
    }
    pub fn max_rate_limited(&self) -> u32 {
        self.max_rate_limited.clamp(1, 10_000)
    }
    pub fn max_retry_after_ms(&self) -> i64 {
        i64::from(self.max_retry_after_ms)
    }
    /// The wait before try `attempt + 1` after `attempt` failures (≥ 1):
    /// base, 2×base, 4×base, … capped at the maximum.
    pub fn backoff_ms(&self, attempt: u32) -> i64 {
        let base = i64::from(self.backoff_base_ms.max(1));
        let max = i64::from(self.backoff_max_ms.max(self.backoff_base_ms).max(1));
        let shift = attempt.saturating_sub(1).min(32);
        base.saturating_mul(1_i64 << shift).min(max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limit_var() {
        assert_eq!(
            RunConfig::from_rate_limit_var(None).unwrap().rate_limit(),
            100
        );
        assert_eq!(
            RunConfig::from_rate_limit_var(Some(""))
                .unwrap()
                .rate_limit(),
            100
        );
        assert_eq!(
            RunConfig::from_rate_limit_var(Some(" 1000 "))
                .unwrap()
                .rate_limit(),
            1000
        );
        for bad in ["0", "1001", "-1", "1e3", "ten"] {
            assert_eq!(
                RunConfig::from_rate_limit_var(Some(bad)),
                Err(InvalidRateLimit),
                "{bad}"
            );
        }
    }

    #[test]
    fn out_of_range_values_are_clamped() {
        let c = RunConfig {
            rate_limit_per_10s: 0,
            page_size: 0,
            lookup_size: 1000,
            max_attempts: 0,
            backoff_base_ms: 0,
            backoff_max_ms: 0,
            ..RunConfig::default()
        };
        assert_eq!(
            (
                c.rate_limit(),
                c.page_size(),
                c.lookup_size(),
                c.max_attempts()
            ),
            (1, 1, 100, 1)
        );
        assert_eq!(c.backoff_ms(1), 1);
        assert_eq!(c.backoff_ms(u32::MAX), 1);
    }

    #[test]
    fn rows_pages_hold_five_lookups_at_most_a_clerk_page() {
        let rows = |page_size, lookup_size| {
            RunConfig {
                page_size,
                lookup_size,
                ..RunConfig::default()
            }
            .rows_limit()
        };
        assert_eq!(RunConfig::default().rows_limit(), 500);
        assert_eq!(rows(500, 1), 5);
        assert_eq!(rows(500, 10), 50);
        assert_eq!(rows(7, 100), 7);
        assert_eq!(rows(0, 0), 1);
        assert_eq!(rows(u32::MAX, u32::MAX), 500);
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let c = RunConfig::default();
        let waits: Vec<i64> = (1..=8).map(|a| c.backoff_ms(a)).collect();
        assert_eq!(
            waits,
            [1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 60_000, 60_000]
        );
        assert_eq!(c.backoff_ms(0), 1_000);
        assert_eq!(c.backoff_ms(u32::MAX), 60_000);
    }
}
