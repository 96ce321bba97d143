//! What a cron starts. The relay's `[triggers] crons` fire two schedules:
//! the `failed` one (`RESYNC_FAILED_CRON`, every 15 minutes by default)
//! retries the rows the main API lists as `failed`, if there are any; every
//! other one (daily) is a full run. A cron that finds a run running does
//! nothing.

use clerk_sync_resync::main_api::{parse_rows, rows_path, RowFilter};
use clerk_sync_resync::Scope;

/// What the glue does for a cron.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CronStep {
    /// A run is running: nothing.
    SkipRunning,
    /// Start this run.
    Start(Scope),
    /// Ask the main API (`GET {API_URL}{path}`) whether any row failed,
    /// then [`after_probe`].
    ProbeFailed { path: String },
}

pub fn decide(cron: &str, failed_cron: &str, running: bool) -> CronStep {
    if running {
        CronStep::SkipRunning
    } else if cron.trim() == failed_cron {
        CronStep::ProbeFailed {
            path: rows_path(RowFilter::Failed, None, 1),
        }
    } else {
        CronStep::Start(Scope::All)
    }
}

/// After the probe: a `failed` run when the main API listed a failed row;
/// otherwise why not (`no_failed_rows`, or `probe_failed` when the answer
/// was not a 200 rows page: the next cron tries again).
pub fn after_probe(status: Option<u16>, body: &[u8]) -> Result<Scope, &'static str> {
    match status {
        Some(200) => match parse_rows(body, 1, None) {
            Ok(page) if !page.users.is_empty() => Ok(Scope::Failed),
            Ok(_) => Err("no_failed_rows"),
            Err(_) => Err("probe_failed"),
        },
        _ => Err("probe_failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAILED: &str = "*/15 * * * *";

    #[test]
    fn which_run_a_cron_starts() {
        assert_eq!(
            decide("0 3 * * *", FAILED, false),
            CronStep::Start(Scope::All)
        );
        // `curl …/cdn-cgi/handler/scheduled` sends wrangler's default cron.
        assert_eq!(
            decide("* * * * *", FAILED, false),
            CronStep::Start(Scope::All)
        );
        assert_eq!(
            decide("*/15 * * * *", FAILED, false),
            CronStep::ProbeFailed {
                path: "/internal/users?sync_status=failed&limit=1".into()
            }
        );
        assert_eq!(decide("0 3 * * *", FAILED, true), CronStep::SkipRunning);
        assert_eq!(decide("*/15 * * * *", FAILED, true), CronStep::SkipRunning);
    }

    #[test]
    fn the_failed_probe() {
        let one =
            br#"{"users":[{"clerk_id":"user_1","sync_status":"failed"}],"next_after":"c:user_1"}"#;
        assert_eq!(after_probe(Some(200), one), Ok(Scope::Failed));
        assert_eq!(
            after_probe(Some(200), br#"{"users":[],"next_after":null}"#),
            Err("no_failed_rows")
        );
        assert_eq!(after_probe(Some(200), b"<html>"), Err("probe_failed"));
        assert_eq!(after_probe(Some(503), one), Err("probe_failed"));
        assert_eq!(after_probe(None, b""), Err("probe_failed"));
    }
}
