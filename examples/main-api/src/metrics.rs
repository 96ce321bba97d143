//! `GET /internal/metrics`: the SQL that reads the numbers, as one D1
//! batch of reads, and the contract's [`Metrics`] made from its rows. `now`
//! is a parameter (the glue reads the clock); no I/O here.
//!
//! ```text
//! ROW_COUNTS      live rows by sync_status, deleted rows    one pass over users (a count costs its rows)
//! OLDEST_PENDING  MIN(created_at) of live pending rows      first entry of users_pending_created_at (0005)
//! AUDIT_BY_HOUR   sync_audit since now − 24 h by hour, outcome  a range of sync_audit_received_at (0005)
//! LAST_TIMES      latest applied / any audit row            sync_audit_outcome (outcome, id); the rowid
//! ```

use clerk_sync_contract::metrics::{
    empty_buckets, first_bucket_start, AuditOutcome, Metrics, OldestPending, OutcomeWindows,
    RowCounts, HOUR_MS,
};
use clerk_sync_contract::time::UnixMillis;
use serde_json::Value as Json;

use crate::error::ApiError;
use crate::plan::{Batch, Statement, Value};

pub const ROW_COUNTS: &str = "\
SELECT COUNT(CASE WHEN deleted_at IS NULL AND sync_status = 'synced' THEN 1 END) AS synced,
       COUNT(CASE WHEN deleted_at IS NULL AND sync_status = 'pending' THEN 1 END) AS pending,
       COUNT(CASE WHEN deleted_at IS NULL AND sync_status = 'failed' THEN 1 END) AS failed,
       COUNT(deleted_at) AS deleted
FROM users";

/// NULL when no live row is pending. Named, so that the planner never
/// walks `users_status_clerk_id`'s pending rows instead.
pub const OLDEST_PENDING: &str = "\
SELECT MIN(created_at) AS created_at FROM users INDEXED BY users_pending_created_at
WHERE sync_status = 'pending' AND deleted_at IS NULL";

/// The commands received since `?1` (24 hours before now) by hour
/// (`2026-01-01T10`) and outcome; `last_hour` counts those since `?2`.
/// Times are the contract's text, so the hour is its first 13 characters.
pub const AUDIT_BY_HOUR: &str = "\
SELECT substr(received_at, 1, 13) AS hour, outcome, COUNT(*) AS n,
       COUNT(CASE WHEN received_at >= ?2 THEN 1 END) AS last_hour
FROM sync_audit WHERE received_at >= ?1
GROUP BY hour, outcome";

/// The latest audit rows (by id, the order they were written): applied,
/// and of any outcome. NULL when there is none.
pub const LAST_TIMES: &str = "\
SELECT (SELECT received_at FROM sync_audit WHERE outcome = 'applied'
        ORDER BY id DESC LIMIT 1) AS last_applied_at,
       (SELECT received_at FROM sync_audit
        WHERE id = (SELECT MAX(id) FROM sync_audit)) AS last_received_at";

/// The four reads, in one batch; `None` when `now` has no text form.
pub fn reads(now: UnixMillis) -> Option<Batch> {
    let since = |ms: i64| now.plus_millis(-ms).to_rfc3339().map(Value::Text);
    let read = |sql, params: Vec<Value>| Statement { sql, params };
    Some(Batch {
        statements: vec![
            read(ROW_COUNTS, vec![]),
            read(OLDEST_PENDING, vec![]),
            read(AUDIT_BY_HOUR, vec![since(24 * HOUR_MS)?, since(HOUR_MS)?]),
            read(LAST_TIMES, vec![]),
        ],
    })
}

/// The metrics at `now` from the results of [`reads`], in order.
pub fn read(results: &[Vec<Json>], now: UnixMillis) -> Result<Metrics, ApiError> {
    let [rows, oldest, by_hour, last] = results else {
        return Err(ApiError::Database);
    };
    let rows = rows.first().ok_or(ApiError::Database)?;
    let oldest = oldest.first().ok_or(ApiError::Database)?;
    let last = last.first().ok_or(ApiError::Database)?;

    let mut outcomes = OutcomeWindows::default();
    let mut hourly = empty_buckets(now);
    let first = first_bucket_start(now);
    for row in by_hour {
        let outcome = row["outcome"]
            .as_str()
            .and_then(AuditOutcome::parse)
            .ok_or(ApiError::Database)?;
        let n = count(&row["n"])?;
        outcomes.last_24h.add(outcome, n);
        outcomes.last_hour.add(outcome, count(&row["last_hour"])?);
        let hour = row["hour"]
            .as_str()
            .and_then(|h| UnixMillis::from_rfc3339(&format!("{h}:00:00.000Z")))
            .ok_or(ApiError::Database)?;
        // The rolling 24 hours start before the first whole hour; a row
        // from after `now` (another isolate's clock) has no bucket.
        let at = usize::try_from(hour.millis_since(first).div_euclid(HOUR_MS)).ok();
        if let Some(bucket) = at.and_then(|i| hourly.get_mut(i)) {
            bucket.outcomes.add(outcome, n);
        }
    }

    Ok(Metrics {
        ok: true,
        generated_at: now,
        rows: RowCounts {
            synced: count(&rows["synced"])?,
            pending: count(&rows["pending"])?,
            failed: count(&rows["failed"])?,
            deleted: count(&rows["deleted"])?,
        },
        oldest_pending: time(&oldest["created_at"])?.map(|created_at| OldestPending {
            created_at,
            age_seconds: u64::try_from(now.millis_since(created_at).div_euclid(1000)).unwrap_or(0),
        }),
        outcomes,
        last_applied_at: time(&last["last_applied_at"])?,
        last_received_at: time(&last["last_received_at"])?,
        hourly,
    })
}

/// A count as SQLite gives it (D1 may give a whole number as a float).
fn count(v: &Json) -> Result<u64, ApiError> {
    v.as_u64()
        .or_else(|| {
            v.as_f64()
                .filter(|f| f.fract() == 0.0 && (0.0..9.0e15).contains(f))
                .map(|f| f as u64)
        })
        .ok_or(ApiError::Database)
}

/// A stored time (the contract's text), or NULL.
fn time(v: &Json) -> Result<Option<UnixMillis>, ApiError> {
    match v {
        Json::Null => Ok(None),
        Json::String(s) => UnixMillis::from_rfc3339(s)
            .map(Some)
            .ok_or(ApiError::Database),
        _ => Err(ApiError::Database),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// 2026-01-01T10:30:00.000Z
    const NOW: UnixMillis = UnixMillis(1_767_263_400_000);

    fn results(by_hour: Vec<Json>) -> Vec<Vec<Json>> {
        vec![
            vec![json!({"synced": 3, "pending": 1, "failed": 0, "deleted": 2.0})],
            vec![json!({"created_at": "2026-01-01T10:28:29.500Z"})],
            by_hour,
            vec![json!({"last_applied_at": "2026-01-01T10:00:00.000Z", "last_received_at": null})],
        ]
    }

    #[test]
    fn the_reads_are_bound_to_the_windows_before_now() {
        let b = reads(NOW).unwrap();
        let sqls: Vec<&str> = b.statements.iter().map(|s| s.sql).collect();
        assert_eq!(
            sqls,
            [ROW_COUNTS, OLDEST_PENDING, AUDIT_BY_HOUR, LAST_TIMES]
        );
        assert_eq!(
            b.statements[2].params,
            [
                Value::from("2025-12-31T10:30:00.000Z"),
                Value::from("2026-01-01T09:30:00.000Z")
            ]
        );
        for s in &b.statements {
            let highest = (1..=9).rev().find(|n| s.sql.contains(&format!("?{n}")));
            assert_eq!(highest.unwrap_or(0), s.params.len(), "{}", s.sql);
        }
        assert_eq!(reads(UnixMillis(i64::MAX)), None);
    }

    #[test]
    fn rows_become_the_metrics() {
        let m = read(
            &results(vec![
                json!({"hour": "2026-01-01T10", "outcome": "applied", "n": 2, "last_hour": 2}),
                json!({"hour": "2026-01-01T09", "outcome": "applied", "n": 3, "last_hour": 1}),
                json!({"hour": "2026-01-01T09", "outcome": "failed", "n": 1, "last_hour": 0}),
                // In the rolling 24 hours, before the first whole hour.
                json!({"hour": "2025-12-31T10", "outcome": "rejected", "n": 4, "last_hour": 0}),
                // From after `now`: counted, in no bucket.
                json!({"hour": "2026-01-01T11", "outcome": "stale", "n": 1, "last_hour": 1}),
            ]),
            NOW,
        )
        .unwrap();
        assert_eq!(
            (m.rows.synced, m.rows.pending, m.rows.failed, m.rows.deleted),
            (3, 1, 0, 2)
        );
        let p = m.oldest_pending.unwrap();
        assert_eq!(
            (p.created_at.as_millis(), p.age_seconds),
            (NOW.as_millis() - 90_500, 90)
        );
        let (hour, day) = (m.outcomes.last_hour, m.outcomes.last_24h);
        assert_eq!(
            (hour.applied, hour.failed, hour.stale, hour.rejected),
            (3, 0, 1, 0)
        );
        assert_eq!(
            (day.applied, day.failed, day.stale, day.rejected),
            (5, 1, 1, 4)
        );
        assert_eq!(m.hourly.len(), 24);
        assert_eq!(m.hourly[23].outcomes.applied, 2);
        assert_eq!(
            (m.hourly[22].outcomes.applied, m.hourly[22].outcomes.failed),
            (3, 1)
        );
        let bucketed: u64 = m.hourly.iter().map(|b| b.outcomes.total()).sum();
        assert_eq!(bucketed, 6);
        assert_eq!(
            m.last_applied_at,
            UnixMillis::from_rfc3339("2026-01-01T10:00:00.000Z")
        );
        assert_eq!(
            (m.last_received_at, m.generated_at, m.ok),
            (None, NOW, true)
        );
    }

    #[test]
    fn nothing_yet_is_zeros_and_nulls() {
        let mut r = results(vec![]);
        r[1] = vec![json!({"created_at": null})];
        r[3] = vec![json!({"last_applied_at": null, "last_received_at": null})];
        let m = read(&r, NOW).unwrap();
        assert_eq!(m.oldest_pending, None);
        assert_eq!(m.outcomes, OutcomeWindows::default());
        assert!(m.hourly.iter().all(|b| b.outcomes.total() == 0));
        // A row created after `now` is 0 seconds old.
        let mut r = results(vec![]);
        r[1] = vec![json!({"created_at": "2026-01-01T10:30:01.000Z"})];
        assert_eq!(
            read(&r, NOW).unwrap().oldest_pending.unwrap().age_seconds,
            0
        );
    }

    #[test]
    fn rows_that_are_not_what_the_reads_select_are_a_database_error() {
        let bad = [
            (
                0,
                json!({"synced": "3", "pending": 1, "failed": 0, "deleted": 0}),
            ),
            (
                0,
                json!({"synced": -1, "pending": 1, "failed": 0, "deleted": 0}),
            ),
            (
                0,
                json!({"synced": 1.5, "pending": 1, "failed": 0, "deleted": 0}),
            ),
            (1, json!({"created_at": "2026-01-01 10:28:29"})),
            (
                2,
                json!({"hour": "2026-01-01T10", "outcome": "lost", "n": 1, "last_hour": 0}),
            ),
            (
                2,
                json!({"hour": "2026-01-01", "outcome": "applied", "n": 1, "last_hour": 0}),
            ),
            (3, json!({"last_applied_at": 5, "last_received_at": null})),
        ];
        for (at, row) in bad {
            let mut r = results(vec![]);
            r[at] = vec![row.clone()];
            assert_eq!(read(&r, NOW), Err(ApiError::Database), "{row}");
        }
        assert_eq!(read(&results(vec![])[..3], NOW), Err(ApiError::Database));
        let mut r = results(vec![]);
        r[0].clear();
        assert_eq!(read(&r, NOW), Err(ApiError::Database));
    }
}
