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

    /// The contract's text form read back; `None` for any other text.
    pub fn from_rfc3339(text: &str) -> Option<Self> {
        parse_millis(text).map(Self)
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

/// Reads exactly the text [`format_millis`] writes
/// (`2022-05-31T15:56:31.514Z`); anything else is `None`.
pub fn parse_millis(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    let punctuation = [
        (4, b'-'),
        (7, b'-'),
        (10, b'T'),
        (13, b':'),
        (16, b':'),
        (19, b'.'),
        (23, b'Z'),
    ];
    if b.len() != 24 || punctuation.iter().any(|&(i, c)| b[i] != c) {
        return None;
    }
    let digits = |from: usize, to: usize| -> Option<u16> {
        b[from..to].iter().try_fold(0u16, |n, &c| {
            c.is_ascii_digit().then(|| n * 10 + u16::from(c - b'0'))
        })
    };
    let small = |from, to| digits(from, to).and_then(|n| u8::try_from(n).ok());
    let month = time::Month::try_from(small(5, 7)?).ok()?;
    let date =
        time::Date::from_calendar_date(i32::from(digits(0, 4)?), month, small(8, 10)?).ok()?;
    let clock = time::Time::from_hms_milli(
        small(11, 13)?,
        small(14, 16)?,
        small(17, 19)?,
        digits(20, 23)?,
    )
    .ok()?;
    let nanos = date.with_time(clock).assume_utc().unix_timestamp_nanos();
    i64::try_from(nanos / 1_000_000).ok()
}

/// Serde for a [`UnixMillis`] as the contract's text form:
/// `#[serde(with = "clerk_sync_contract::time::rfc3339")]`, or
/// `rfc3339::option` for an `Option<UnixMillis>` (`null` when `None`).
pub mod rfc3339 {
    use serde::{de::Error as _, ser::Error as _, Deserialize, Deserializer, Serializer};

    use super::UnixMillis;

    pub fn serialize<S: Serializer>(t: &UnixMillis, s: S) -> Result<S::Ok, S::Error> {
        let text = t
            .to_rfc3339()
            .ok_or_else(|| S::Error::custom("time outside the years 0000-9999"))?;
        s.serialize_str(&text)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<UnixMillis, D::Error> {
        let text = String::deserialize(d)?;
        UnixMillis::from_rfc3339(&text)
            .ok_or_else(|| D::Error::custom("not an RFC 3339 UTC time with milliseconds"))
    }

    pub mod option {
        use serde::{Deserialize, Deserializer, Serializer};

        use super::UnixMillis;

        pub fn serialize<S: Serializer>(t: &Option<UnixMillis>, s: S) -> Result<S::Ok, S::Error> {
            match t {
                Some(t) => super::serialize(t, s),
                None => s.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(
            d: D,
        ) -> Result<Option<UnixMillis>, D::Error> {
            #[derive(Deserialize)]
            struct Text(#[serde(with = "super")] UnixMillis);
            Ok(Option::<Text>::deserialize(d)?.map(|Text(t)| t))
        }
    }
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
    fn the_text_form_reads_back_and_nothing_else_does() {
        for ms in [
            0,
            1_654_012_591_514,
            1_704_430_000_000,
            -62_167_219_200_000,
            253_402_300_799_999,
        ] {
            let text = format_millis(ms).unwrap();
            assert_eq!(parse_millis(&text), Some(ms), "{text}");
        }
        for bad in [
            "",
            "2022-05-31T15:56:31Z",
            "2022-05-31T15:56:31.51Z",
            "2022-05-31T15:56:31.514+00:00",
            "2022-05-31 15:56:31.514Z",
            "2022-13-31T15:56:31.514Z",
            "2022-02-30T15:56:31.514Z",
            "2022-05-31T24:00:00.000Z",
            "2022-05-31T15:60:31.514Z",
            "2022-05-31T15:56:60.000Z",
            "+022-05-31T15:56:31.514Z",
            "2022-05-31T15:56:31.514z",
        ] {
            assert_eq!(parse_millis(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn serde_uses_the_text_form() {
        #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
        struct At {
            #[serde(with = "rfc3339")]
            at: UnixMillis,
            #[serde(with = "rfc3339::option")]
            maybe: Option<UnixMillis>,
        }
        let v = At {
            at: UnixMillis(1_654_012_591_514),
            maybe: None,
        };
        let text = serde_json::to_string(&v).unwrap();
        assert_eq!(text, r#"{"at":"2022-05-31T15:56:31.514Z","maybe":null}"#);
        assert_eq!(serde_json::from_str::<At>(&text).unwrap(), v);
        let some = r#"{"at":"2022-05-31T15:56:31.514Z","maybe":"1970-01-01T00:00:00.001Z"}"#;
        assert_eq!(
            serde_json::from_str::<At>(some).unwrap().maybe,
            Some(UnixMillis(1))
        );
        assert!(serde_json::from_str::<At>(r#"{"at":"yesterday","maybe":null}"#).is_err());
        assert!(serde_json::to_string(&At {
            at: UnixMillis(i64::MAX),
            maybe: None
        })
        .is_err());
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
