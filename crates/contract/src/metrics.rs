//! A main API's metrics (`GET /internal/metrics`): the JSON shape the
//! reference main API serializes and the dashboard and the alerts read, and
//! its Prometheus text exposition (format 0.0.4, `?format=prometheus`).
//!
//! ```text
//! rows          live rows by sync_status, and deleted rows
//! oldest_pending the oldest live pending row: created_at, age at generated_at
//! outcomes      sync_audit rows by outcome, last hour and last 24 hours
//! last_*_at     the latest audit row applied, and of any outcome
//! hourly        24 hour-aligned UTC buckets by outcome, oldest first (JSON only)
//! ```
//!
//! Pure: the time of the answer is in the value, never read from a clock.

use serde::{Deserialize, Serialize};

use crate::time::{rfc3339, UnixMillis};

pub const METRICS_PATH: &str = "/internal/metrics";

/// The `Content-Type` of the Prometheus text exposition format 0.0.4.
pub const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

pub const HOUR_MS: i64 = 3_600_000;
/// `hourly` has this many buckets: the current hour and the 23 before it.
pub const HOURLY_BUCKETS: usize = 24;

/// What became of a command the API received: a `sync_audit` row's `outcome`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditOutcome {
    Applied,
    Duplicate,
    Stale,
    IgnoredDeleted,
    Rejected,
    Failed,
}

impl AuditOutcome {
    pub const ALL: [Self; 6] = [
        Self::Applied,
        Self::Duplicate,
        Self::Stale,
        Self::IgnoredDeleted,
        Self::Rejected,
        Self::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Applied => "applied",
            Self::Duplicate => "duplicate",
            Self::Stale => "stale",
            Self::IgnoredDeleted => "ignored_deleted",
            Self::Rejected => "rejected",
            Self::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|o| o.as_str() == text)
    }
}

/// A count per [`AuditOutcome`]: every key always present, zero when none.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutcomeCounts {
    pub applied: u64,
    pub duplicate: u64,
    pub stale: u64,
    pub ignored_deleted: u64,
    pub rejected: u64,
    pub failed: u64,
}

impl OutcomeCounts {
    pub fn get(&self, outcome: AuditOutcome) -> u64 {
        *self.field(outcome)
    }

    pub fn add(&mut self, outcome: AuditOutcome, n: u64) {
        let count = self.field_mut(outcome);
        *count = count.saturating_add(n);
    }

    pub fn total(&self) -> u64 {
        AuditOutcome::ALL.iter().map(|&o| self.get(o)).sum()
    }

    fn field(&self, outcome: AuditOutcome) -> &u64 {
        match outcome {
            AuditOutcome::Applied => &self.applied,
            AuditOutcome::Duplicate => &self.duplicate,
            AuditOutcome::Stale => &self.stale,
            AuditOutcome::IgnoredDeleted => &self.ignored_deleted,
            AuditOutcome::Rejected => &self.rejected,
            AuditOutcome::Failed => &self.failed,
        }
    }

    fn field_mut(&mut self, outcome: AuditOutcome) -> &mut u64 {
        match outcome {
            AuditOutcome::Applied => &mut self.applied,
            AuditOutcome::Duplicate => &mut self.duplicate,
            AuditOutcome::Stale => &mut self.stale,
            AuditOutcome::IgnoredDeleted => &mut self.ignored_deleted,
            AuditOutcome::Rejected => &mut self.rejected,
            AuditOutcome::Failed => &mut self.failed,
        }
    }
}

/// Live rows (`deleted_at` null) by `sync_status`, and deleted rows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowCounts {
    pub synced: u64,
    pub pending: u64,
    pub failed: u64,
    pub deleted: u64,
}

/// The oldest live `pending` row: when it was created, and its age at
/// [`Metrics::generated_at`] in whole seconds (0 if it seems to be from
/// the future).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct OldestPending {
    #[serde(with = "rfc3339")]
    pub created_at: UnixMillis,
    pub age_seconds: u64,
}

/// Audit outcomes over two windows ending at [`Metrics::generated_at`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutcomeWindows {
    pub last_hour: OutcomeCounts,
    pub last_24h: OutcomeCounts,
}

/// The commands received in the hour from `start` (a whole UTC hour).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HourBucket {
    #[serde(with = "rfc3339")]
    pub start: UnixMillis,
    pub outcomes: OutcomeCounts,
}

/// The answer of `GET /internal/metrics`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metrics {
    /// Always `true` in a 200 answer (errors are `{"ok":false,…}`).
    pub ok: bool,
    /// The API's clock when it read the numbers: every window ends here.
    #[serde(with = "rfc3339")]
    pub generated_at: UnixMillis,
    pub rows: RowCounts,
    pub oldest_pending: Option<OldestPending>,
    pub outcomes: OutcomeWindows,
    /// `received_at` of the latest audit row whose outcome is `applied`.
    #[serde(with = "rfc3339::option")]
    pub last_applied_at: Option<UnixMillis>,
    /// `received_at` of the latest audit row of any outcome.
    #[serde(with = "rfc3339::option")]
    pub last_received_at: Option<UnixMillis>,
    /// [`HOURLY_BUCKETS`] buckets, oldest first; the last is the current
    /// (partial) hour.
    pub hourly: Vec<HourBucket>,
}

/// The start of the first of the [`HOURLY_BUCKETS`] buckets ending with
/// the hour `now` is in.
pub fn first_bucket_start(now: UnixMillis) -> UnixMillis {
    let hour = now.as_millis().div_euclid(HOUR_MS) * HOUR_MS;
    UnixMillis(hour - (HOURLY_BUCKETS as i64 - 1) * HOUR_MS)
}

/// The empty buckets for `now`, oldest first.
pub fn empty_buckets(now: UnixMillis) -> Vec<HourBucket> {
    let first = first_bucket_start(now);
    (0..HOURLY_BUCKETS as i64)
        .map(|i| HourBucket {
            start: first.plus_millis(i * HOUR_MS),
            outcomes: OutcomeCounts::default(),
        })
        .collect()
}

/// The stable metric names of the Prometheus exposition.
pub mod names {
    pub const ROWS: &str = "clerk_sync_rows";
    pub const DELETED_ROWS: &str = "clerk_sync_deleted_rows";
    pub const OLDEST_PENDING_AGE: &str = "clerk_sync_oldest_pending_age_seconds";
    pub const COMMANDS_LAST_HOUR: &str = "clerk_sync_commands_last_hour";
    pub const COMMANDS_LAST_24H: &str = "clerk_sync_commands_last_24h";
    pub const LAST_APPLIED: &str = "clerk_sync_last_applied_timestamp_seconds";
    pub const LAST_RECEIVED: &str = "clerk_sync_last_received_timestamp_seconds";
}

/// `m` in the Prometheus text exposition format 0.0.4: a `# HELP` and a
/// `# TYPE` line per metric, every metric a gauge. A time or an age that
/// does not exist (no pending row, nothing received) has no sample. Label
/// values are fixed words, never data.
pub fn to_prometheus(m: &Metrics) -> String {
    use std::fmt::Write as _;

    let mut out = String::with_capacity(2048);
    let head = |out: &mut String, name: &str, help: &str| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
    };
    head(
        &mut out,
        names::ROWS,
        "Live rows (deleted_at null) by sync_status.",
    );
    for (status, n) in [
        ("synced", m.rows.synced),
        ("pending", m.rows.pending),
        ("failed", m.rows.failed),
    ] {
        let _ = writeln!(out, "{}{{sync_status=\"{status}\"}} {n}", names::ROWS);
    }
    head(
        &mut out,
        names::DELETED_ROWS,
        "Deleted rows (deleted_at set).",
    );
    let _ = writeln!(out, "{} {}", names::DELETED_ROWS, m.rows.deleted);
    head(
        &mut out,
        names::OLDEST_PENDING_AGE,
        "Age of the oldest live pending row; no sample when there is none.",
    );
    if let Some(p) = &m.oldest_pending {
        let _ = writeln!(out, "{} {}", names::OLDEST_PENDING_AGE, p.age_seconds);
    }
    for (name, window, counts) in [
        (
            names::COMMANDS_LAST_HOUR,
            "the last hour",
            &m.outcomes.last_hour,
        ),
        (
            names::COMMANDS_LAST_24H,
            "the last 24 hours",
            &m.outcomes.last_24h,
        ),
    ] {
        head(
            &mut out,
            name,
            &format!("Commands received in {window} (sync_audit rows), by outcome."),
        );
        for o in AuditOutcome::ALL {
            let _ = writeln!(
                out,
                "{name}{{outcome=\"{}\"}} {}",
                o.as_str(),
                counts.get(o)
            );
        }
    }
    for (name, help, at) in [
        (
            names::LAST_APPLIED,
            "Unix time of the latest command applied; no sample when none.",
            m.last_applied_at,
        ),
        (
            names::LAST_RECEIVED,
            "Unix time of the latest command received; no sample when none.",
            m.last_received_at,
        ),
    ] {
        head(&mut out, name, help);
        if let Some(at) = at {
            let _ = writeln!(out, "{name} {}", seconds(at));
        }
    }
    out
}

/// Unix seconds with the milliseconds as a fraction: `1767225600.123`.
fn seconds(t: UnixMillis) -> String {
    let ms = t.as_millis();
    let sign = if ms < 0 { "-" } else { "" };
    let abs = ms.unsigned_abs();
    format!("{sign}{}.{:03}", abs / 1000, abs % 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-01-01T10:30:00.000Z
    const NOW: UnixMillis = UnixMillis(1_767_263_400_000);

    fn sample() -> Metrics {
        let mut hourly = empty_buckets(NOW);
        hourly[23].outcomes.add(AuditOutcome::Applied, 4);
        Metrics {
            ok: true,
            generated_at: NOW,
            rows: RowCounts {
                synced: 3,
                pending: 1,
                failed: 2,
                deleted: 5,
            },
            oldest_pending: Some(OldestPending {
                created_at: UnixMillis(NOW.as_millis() - 90_500),
                age_seconds: 90,
            }),
            outcomes: OutcomeWindows {
                last_hour: OutcomeCounts {
                    applied: 4,
                    rejected: 1,
                    ..OutcomeCounts::default()
                },
                last_24h: OutcomeCounts {
                    applied: 7,
                    duplicate: 1,
                    stale: 2,
                    ignored_deleted: 3,
                    rejected: 1,
                    failed: 6,
                },
            },
            last_applied_at: Some(UnixMillis(1_767_263_399_123)),
            last_received_at: Some(UnixMillis(1_767_263_399_456)),
            hourly,
        }
    }

    #[test]
    fn prometheus_text_is_exact() {
        let expected = "\
# HELP clerk_sync_rows Live rows (deleted_at null) by sync_status.
# TYPE clerk_sync_rows gauge
clerk_sync_rows{sync_status=\"synced\"} 3
clerk_sync_rows{sync_status=\"pending\"} 1
clerk_sync_rows{sync_status=\"failed\"} 2
# HELP clerk_sync_deleted_rows Deleted rows (deleted_at set).
# TYPE clerk_sync_deleted_rows gauge
clerk_sync_deleted_rows 5
# HELP clerk_sync_oldest_pending_age_seconds Age of the oldest live pending row; no sample when there is none.
# TYPE clerk_sync_oldest_pending_age_seconds gauge
clerk_sync_oldest_pending_age_seconds 90
# HELP clerk_sync_commands_last_hour Commands received in the last hour (sync_audit rows), by outcome.
# TYPE clerk_sync_commands_last_hour gauge
clerk_sync_commands_last_hour{outcome=\"applied\"} 4
clerk_sync_commands_last_hour{outcome=\"duplicate\"} 0
clerk_sync_commands_last_hour{outcome=\"stale\"} 0
clerk_sync_commands_last_hour{outcome=\"ignored_deleted\"} 0
clerk_sync_commands_last_hour{outcome=\"rejected\"} 1
clerk_sync_commands_last_hour{outcome=\"failed\"} 0
# HELP clerk_sync_commands_last_24h Commands received in the last 24 hours (sync_audit rows), by outcome.
# TYPE clerk_sync_commands_last_24h gauge
clerk_sync_commands_last_24h{outcome=\"applied\"} 7
clerk_sync_commands_last_24h{outcome=\"duplicate\"} 1
clerk_sync_commands_last_24h{outcome=\"stale\"} 2
clerk_sync_commands_last_24h{outcome=\"ignored_deleted\"} 3
clerk_sync_commands_last_24h{outcome=\"rejected\"} 1
clerk_sync_commands_last_24h{outcome=\"failed\"} 6
# HELP clerk_sync_last_applied_timestamp_seconds Unix time of the latest command applied; no sample when none.
# TYPE clerk_sync_last_applied_timestamp_seconds gauge
clerk_sync_last_applied_timestamp_seconds 1767263399.123
# HELP clerk_sync_last_received_timestamp_seconds Unix time of the latest command received; no sample when none.
# TYPE clerk_sync_last_received_timestamp_seconds gauge
clerk_sync_last_received_timestamp_seconds 1767263399.456
";
        assert_eq!(to_prometheus(&sample()), expected);
    }

    #[test]
    fn what_does_not_exist_has_no_sample_but_keeps_its_help_and_type() {
        let m = Metrics {
            oldest_pending: None,
            last_applied_at: None,
            last_received_at: None,
            ..sample()
        };
        let text = to_prometheus(&m);
        for name in [
            names::OLDEST_PENDING_AGE,
            names::LAST_APPLIED,
            names::LAST_RECEIVED,
        ] {
            assert!(text.contains(&format!("# TYPE {name} gauge\n")), "{name}");
            assert!(!text.contains(&format!("\n{name} ")), "{name}");
        }
        assert_eq!(seconds(UnixMillis(-1)), "-0.001");
        assert_eq!(seconds(UnixMillis(5)), "0.005");
    }

    #[test]
    fn json_has_every_key_and_reads_back() {
        let m = sample();
        let v = serde_json::to_value(&m).unwrap();
        assert_eq!(v["generated_at"], "2026-01-01T10:30:00.000Z");
        assert_eq!(
            v["oldest_pending"],
            serde_json::json!({"created_at": "2026-01-01T10:28:29.500Z", "age_seconds": 90})
        );
        assert_eq!(
            v["outcomes"]["last_hour"],
            serde_json::json!({"applied": 4, "duplicate": 0, "stale": 0,
                               "ignored_deleted": 0, "rejected": 1, "failed": 0})
        );
        assert_eq!(v["hourly"][0]["start"], "2025-12-31T11:00:00.000Z");
        assert_eq!(v["hourly"][23]["start"], "2026-01-01T10:00:00.000Z");
        assert_eq!(v["hourly"][23]["outcomes"]["applied"], 4);
        assert_eq!(serde_json::from_value::<Metrics>(v).unwrap(), m);
        let none = Metrics {
            oldest_pending: None,
            last_applied_at: None,
            ..sample()
        };
        let v = serde_json::to_value(&none).unwrap();
        assert_eq!(
            (&v["oldest_pending"], &v["last_applied_at"]),
            (&serde_json::Value::Null, &serde_json::Value::Null)
        );
        assert_eq!(serde_json::from_value::<Metrics>(v).unwrap(), none);
    }

    #[test]
    fn buckets_are_whole_utc_hours_ending_with_the_current_one() {
        let b = empty_buckets(NOW);
        assert_eq!(b.len(), HOURLY_BUCKETS);
        assert_eq!(b[23].start, UnixMillis(1_767_261_600_000)); // 10:00
        assert!(b
            .windows(2)
            .all(|w| w[1].start.millis_since(w[0].start) == HOUR_MS));
        // On the hour, the current hour is the last bucket.
        assert_eq!(first_bucket_start(b[23].start), b[0].start);
        assert_eq!(
            first_bucket_start(UnixMillis(b[23].start.as_millis() - 1)),
            UnixMillis(b[0].start.as_millis() - HOUR_MS)
        );
    }

    #[test]
    fn outcomes_parse_from_their_names_only() {
        for o in AuditOutcome::ALL {
            assert_eq!(AuditOutcome::parse(o.as_str()), Some(o));
            assert_eq!(
                serde_json::to_value(o).unwrap(),
                serde_json::json!(o.as_str())
            );
        }
        assert_eq!(AuditOutcome::parse("Applied"), None);
        let mut c = OutcomeCounts::default();
        c.add(AuditOutcome::Failed, 2);
        c.add(AuditOutcome::Failed, 1);
        c.add(AuditOutcome::Stale, 1);
        assert_eq!((c.failed, c.total()), (3, 4));
    }
}
