//! Pacing Clerk requests: the sliding 10-second window over the requests
//! actually issued, and `Retry-After`. Both are pure functions of the times
//! passed in.

use clerk_sync_contract::UnixMillis;
use serde::{Deserialize, Serialize};

use crate::config::MAX_RATE_LIMIT_PER_10S;

pub const WINDOW_MS: i64 = 10_000;
/// Added to the window when pacing: the time a request is recorded at is
/// not the time Clerk counts it at (a Worker's clock stands still between
/// I/O, and the request still has to travel), so a request 10 s after
/// another by the run's clock can reach Clerk 9.9 s after it. Seen as a
/// 13th request in a window of 12 against the stand-in after a restart.
pub const MARGIN_MS: i64 = 500;
const SPAN_MS: i64 = WINDOW_MS + MARGIN_MS;

/// When each Clerk request in the last 10 seconds was issued, ascending.
/// Persisted with the run, so a restart keeps the promise; never longer
/// than the largest rate limit.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RateWindow(Vec<i64>);

impl RateWindow {
    /// The first moment at or after `now` when one more request keeps every
    /// 10-second window at `limit` requests or fewer, with [`MARGIN_MS`] to spare.
    pub fn next_slot(&self, now: UnixMillis, limit: u32) -> UnixMillis {
        let limit = limit.max(1) as usize;
        let mut recent: Vec<i64> = self
            .0
            .iter()
            .copied()
            .filter(|&t| t > now.as_millis().saturating_sub(SPAN_MS))
            .collect();
        if recent.len() < limit {
            return now;
        }
        // A state from elsewhere may not be sorted; never trust it to be.
        recent.sort_unstable();
        // With n ≥ limit requests in the window, one more may go once only
        // limit − 1 remain: when the (n − limit)-th has left it.
        UnixMillis(recent[recent.len() - limit].saturating_add(SPAN_MS)).max(now)
    }

    /// Records a request issued at `now` and forgets those that left the window.
    pub fn record(&mut self, now: UnixMillis) {
        let horizon = now.as_millis().saturating_sub(SPAN_MS);
        self.0.retain(|&t| t > horizon);
        self.0.push(now.as_millis());
        self.0.sort_unstable();
        let max = MAX_RATE_LIMIT_PER_10S as usize;
        if self.0.len() > max {
            self.0.drain(..self.0.len() - max);
        }
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// How long a 429's `Retry-After` asks to wait, in milliseconds from `now`:
/// delay-seconds (`7`) or an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`).
/// `None` when missing or unusable; the caller then waits one full window.
pub fn retry_after_ms(value: Option<&str>, now: UnixMillis) -> Option<i64> {
    let value = value?.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // Too many digits to be a number is "longer than any bound".
        let secs = value.parse::<i64>().unwrap_or(i64::MAX);
        return Some(secs.saturating_mul(1000));
    }
    let at = imf_fixdate(value)?;
    Some(at.millis_since(now).max(0))
}

/// `Sun, 06 Nov 1994 08:49:37 GMT` (RFC 9110 §5.6.7), the one date form a
/// sender must produce.
fn imf_fixdate(s: &str) -> Option<UnixMillis> {
    let b = s.as_bytes();
    if b.len() != 29 || &b[3..5] != b", " || &b[25..] != b" GMT" {
        return None;
    }
    const DAYS: [&[u8]; 7] = [b"Mon", b"Tue", b"Wed", b"Thu", b"Fri", b"Sat", b"Sun"];
    const MONTHS: [&[u8]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    if !DAYS.contains(&&b[0..3]) || b[7] != b' ' || b[11] != b' ' || b[16] != b' ' {
        return None;
    }
    if b[19] != b':' || b[22] != b':' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = &b[r];
        part.iter()
            .all(u8::is_ascii_digit)
            .then(|| part.iter().fold(0, |n, d| n * 10 + i64::from(d - b'0')))
    };
    let day = num(5..7)?;
    let month = MONTHS.iter().position(|m| *m == &b[8..11])? as i64 + 1;
    let year = num(12..16)?;
    let (hour, minute, second) = (num(17..19)?, num(20..22)?, num(23..25)?);
    if !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3_600 + minute * 60 + second;
    UnixMillis::from_secs(secs)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_slides_over_issued_requests() {
        let mut w = RateWindow::default();
        let limit = 3;
        for t in [0, 1_000, 2_000] {
            assert_eq!(w.next_slot(UnixMillis(t), limit), UnixMillis(t));
            w.record(UnixMillis(t));
        }
        // Full: the first leaves the window at 10 000, and the margin after.
        assert_eq!(w.next_slot(UnixMillis(2_500), limit), UnixMillis(10_500));
        assert_eq!(w.next_slot(UnixMillis(10_499), limit), UnixMillis(10_500));
        assert_eq!(w.next_slot(UnixMillis(10_500), limit), UnixMillis(10_500));
        w.record(UnixMillis(10_500));
        assert_eq!(w.next_slot(UnixMillis(10_500), limit), UnixMillis(11_500));
        assert_eq!(w.len(), 3);
        // A lower limit after a restart waits for enough to leave.
        assert_eq!(w.next_slot(UnixMillis(10_500), 1), UnixMillis(21_000));
    }

    #[test]
    fn an_unsorted_or_oversized_window_is_still_safe() {
        let w: RateWindow = serde_json::from_str("[5000, 1000, 3000]").unwrap();
        assert_eq!(w.next_slot(UnixMillis(5_000), 2), UnixMillis(13_500));
        let mut w: RateWindow = serde_json::from_str(&format!("{:?}", vec![0; 5000])).unwrap();
        w.record(UnixMillis(1));
        assert_eq!(w.len(), MAX_RATE_LIMIT_PER_10S as usize);
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        let now = UnixMillis(784_111_777_000); // Sun, 06 Nov 1994 08:49:37 GMT
        assert_eq!(retry_after_ms(Some("7"), now), Some(7_000));
        assert_eq!(retry_after_ms(Some(" 0 "), now), Some(0));
        assert_eq!(
            retry_after_ms(Some("99999999999999999999999"), now),
            Some(i64::MAX)
        );
        assert_eq!(
            retry_after_ms(Some("Sun, 06 Nov 1994 08:49:47 GMT"), now),
            Some(10_000)
        );
        assert_eq!(
            retry_after_ms(Some("Sun, 06 Nov 1994 08:49:30 GMT"), now),
            Some(0)
        );
        assert_eq!(
            imf_fixdate("Thu, 01 Jan 1970 00:00:00 GMT"),
            Some(UnixMillis(0))
        );
        assert_eq!(
            imf_fixdate("Tue, 29 Feb 2028 23:59:59 GMT"),
            Some(UnixMillis(1_835_481_599_000))
        );
        for bad in [
            None,
            Some(""),
            Some("-1"),
            Some("1.5"),
            Some("soon"),
            Some("Sun, 06 Nov 1994 08:49:37 UTC"),
            Some("Sun, 06 Foo 1994 08:49:37 GMT"),
            Some("Sun, 36 Nov 1994 08:49:37 GMT"),
            Some("Sun, 06 Nov 1994 25:49:37 GMT"),
            Some("Sunday, 06-Nov-94 08:49:37 GMT"),
            Some("Sun, 06 Nov 1994 08:49:37 GMT é"),
        ] {
            assert_eq!(retry_after_ms(bad, now), None, "{bad:?}");
        }
    }
}
