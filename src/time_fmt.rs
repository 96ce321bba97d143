//! Clerk's Unix-millisecond integers as the contract's RFC 3339 strings
//! (`2022-05-31T15:56:31.514Z`: UTC, exactly three fractional digits).

use time::OffsetDateTime;

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
pub fn envelope_timestamp_to_millis(value: i64) -> Option<i64> {
    if (0..SECONDS_CUTOFF).contains(&value) {
        value.checked_mul(1000)
    } else {
        Some(value)
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
            envelope_timestamp_to_millis(1_716_883_200),
            Some(1_716_883_200_000)
        );
        assert_eq!(
            envelope_timestamp_to_millis(1_654_012_591_835),
            Some(1_654_012_591_835)
        );
    }
}
