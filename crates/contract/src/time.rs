//! Time, in one representation: [`UnixMillis`], Unix milliseconds as `i64`,
//! everywhere a clock is read or compared (verification, mapping, re-sync
//! pacing, queue ages). On the wire it is the contract's RFC 3339 text
//! (`2022-05-31T15:56:31.514Z`: UTC, exactly three fractional digits), which
//! sorts correctly as text.

use time::OffsetDateTime;

/// A point in time, in Unix milliseconds. The core never reads a clock: the
/// glue passes `now` in as one of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct UnixMillis(pub i64);

impl UnixMillis {
    pub const fn from_secs(secs: i64) -> Option<Self> {
        match secs.checked_mul(1000) {
            Some(ms) => Some(Self(ms)),
            None => None,
        }
    }

    /// Whole seconds, rounded down (toward minus infinity).
    pub const fn as_secs(self) -> i64 {
        self.0.div_euclid(1000)
    }

    pub const fn as_millis(self) -> i64 {
        self.0
    }

    /// `self + ms`, saturating.
    pub const fn plus_millis(self, ms: i64) -> Self {
        Self(self.0.saturating_add(ms))
    }

    /// Milliseconds from `earlier` to `self`, saturating (negative if
    /// `earlier` is later).
    pub const fn millis_since(self, earlier: Self) -> i64 {
        self.0.saturating_sub(earlier.0)
    }

    /// The contract's text form; `None` outside the years 0000–9999.
    pub fn to_rfc3339(self) -> Option<String> {
        format_millis(self.0)
    }
}

/// Seconds below this are taken as seconds, not milliseconds: 10^11 ms is
/// 1973, 10^11 s is the year 5138, so the two ranges cannot be confused.
pub const SECONDS_CUTOFF: i64 = 100_000_000_000;

/// Formats Unix milliseconds; `None` when outside the years 0000–9999
/// (the format is only sortable as text within them).
pub fn format_millis(ms: i64) -> Option<String> {
    let nanos = i128::from(ms).checked_mul(1_000_000)?;
    let t = OffsetDateTime::from_unix_timestamp_nanos(nanos).ok()?;
    if !(0..=9999).contains(&t.year()) {
        return None;
    }
    // `format!` over the getters, not `time`'s `formatting` feature: same
    // text, and the format-description interpreter stays out of the bundle.
    Some(format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    ))
}

/// A Clerk envelope `timestamp`, which is milliseconds except in Clerk's
/// OpenAPI examples, where it is seconds.
pub fn envelope_timestamp(value: i64) -> Option<UnixMillis> {
    if (0..SECONDS_CUTOFF).contains(&value) {
        UnixMillis::from_secs(value)
    } else {
        Some(UnixMillis(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_with_three_fraction_digits_and_z() {
        assert_eq!(
            format_millis(1_654_012_591_514).as_deref(),
            Some("2022-05-31T15:56:31.514Z")
        );
        assert_eq!(
            format_millis(0).as_deref(),
            Some("1970-01-01T00:00:00.000Z")
        );
        assert_eq!(
            format_millis(1_704_430_000_000).as_deref(),
            Some("2024-01-05T04:46:40.000Z")
        );
    }

    #[test]
    fn out_of_range_is_none() {
        assert_eq!(format_millis(i64::MAX), None);
        assert_eq!(format_millis(i64::MIN), None);
        assert_eq!(format_millis(253_402_300_800_000), None); // year 10000
    }

    #[test]
    fn seconds_are_scaled() {
        assert_eq!(
            envelope_timestamp(1_716_883_200),
            Some(UnixMillis(1_716_883_200_000))
        );
        assert_eq!(
            envelope_timestamp(1_654_012_591_835),
            Some(UnixMillis(1_654_012_591_835))
        );
    }

    #[test]
    fn millis_arithmetic_saturates_and_rounds_down() {
        assert_eq!(UnixMillis(1_999).as_secs(), 1);
        assert_eq!(UnixMillis(-1).as_secs(), -1);
        assert_eq!(UnixMillis::from_secs(i64::MAX), None);
        assert_eq!(UnixMillis(i64::MAX).plus_millis(1), UnixMillis(i64::MAX));
        assert_eq!(UnixMillis(5_000).millis_since(UnixMillis(7_000)), -2_000);
    }
}
