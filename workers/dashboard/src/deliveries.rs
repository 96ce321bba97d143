//! The overview's deliveries section, from the main API's
//! `GET /internal/metrics` (its bearer, server-side): the oldest pending
//! row's age, the last command received and applied, outcomes over the last
//! hour and 24 hours, and the [`chart`](crate::chart) of the hourly buckets.
//! Ages are taken at the metrics' own `generated_at`, never a clock here.

use clerk_sync_contract::metrics::{Metrics, METRICS_PATH};
use clerk_sync_contract::UnixMillis;
use maud::{html, Markup};

use crate::chart::{deliveries_chart, SERIES};
use crate::config::{DashboardConfig, API_SECRET};
use crate::sources::{json_of, Answer, Fetch, SourceError};

/// The metrics request.
pub fn metrics_fetch(config: &DashboardConfig) -> Fetch<'_> {
    Fetch::api(config, METRICS_PATH)
}

pub fn read_metrics(answer: Answer) -> Result<Metrics, SourceError> {
    let (_, j) = json_of(answer, API_SECRET, &[])?;
    let metrics: Metrics = serde_json::from_value(j).map_err(|_| SourceError::Unreadable)?;
    if !metrics.ok {
        return Err(SourceError::Unreadable);
    }
    Ok(metrics)
}

/// `90` → `1 min 30 s`; two units at most.
pub fn duration_text(seconds: u64) -> String {
    let (d, h, m, s) = (
        seconds / 86_400,
        seconds / 3_600 % 24,
        seconds / 60 % 60,
        seconds % 60,
    );
    match (d, h, m) {
        (0, 0, 0) => format!("{s} s"),
        (0, 0, _) if s == 0 => format!("{m} min"),
        (0, 0, _) => format!("{m} min {s} s"),
        (0, _, 0) => format!("{h} h"),
        (0, _, _) => format!("{h} h {m} min"),
        (_, 0, _) => format!("{d} d"),
        _ => format!("{d} d {h} h"),
    }
}

/// A time and how long before `now` it was.
fn when(at: Option<UnixMillis>, now: UnixMillis) -> Markup {
    match at {
        None => html! { span.muted { "never (in the last audit rows)" } },
        Some(at) => {
            let ago = u64::try_from(now.millis_since(at) / 1000).unwrap_or(0);
            html! {
                time datetime=(at.to_rfc3339().unwrap_or_default()) { (at.to_rfc3339().unwrap_or_default()) }
                " (" (duration_text(ago)) " ago)"
            }
        }
    }
}

/// The section's content: what the metrics say, or why they are missing.
pub fn section(metrics: &Result<Metrics, SourceError>) -> Markup {
    let m = match metrics {
        Ok(m) => m,
        Err(e) => return html! { p.error.source-error { "Metrics: " (e.to_string()) } },
    };
    let now = m.generated_at;
    html! {
        table {
            tr {
                th { "Oldest pending row" }
                td #oldest-pending {
                    @match &m.oldest_pending {
                        Some(p) => { (duration_text(p.age_seconds)) " old" },
                        None => span.muted { "none pending" },
                    }
                }
            }
            tr { th { "Last command received" } td #last-received { (when(m.last_received_at, now)) } }
            tr { th { "Last command applied" } td #last-applied { (when(m.last_applied_at, now)) } }
        }
        h3 { "Outcomes" }
        table #outcomes {
            tr { th { "outcome" } th { "last hour" } th { "last 24 h" } }
            @for (outcome, label, _) in SERIES {
                tr {
                    th { (label) }
                    td.n id={ "outcome-1h-" (outcome.as_str()) } { (m.outcomes.last_hour.get(outcome)) }
                    td.n id={ "outcome-24h-" (outcome.as_str()) } { (m.outcomes.last_24h.get(outcome)) }
                }
            }
        }
        h3 { "Deliveries per hour, last 24 hours" }
        (deliveries_chart(&m.hourly))
        p.muted { "Every command the main API received (webhooks and re-sync runs), as of " (now.to_rfc3339().unwrap_or_default()) "." }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clerk_sync_contract::metrics::{
        empty_buckets, AuditOutcome, OldestPending, OutcomeCounts, OutcomeWindows, RowCounts,
    };

    /// 2026-01-01T10:30:00.000Z
    const NOW: UnixMillis = UnixMillis(1_767_263_400_000);

    pub(crate) fn sample() -> Metrics {
        let mut hourly = empty_buckets(NOW);
        hourly[23].outcomes.add(AuditOutcome::Applied, 4);
        hourly[22].outcomes.add(AuditOutcome::Rejected, 1);
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
                created_at: UnixMillis(NOW.as_millis() - 5_400_000),
                age_seconds: 5_400,
            }),
            outcomes: OutcomeWindows {
                last_hour: OutcomeCounts {
                    applied: 4,
                    ..OutcomeCounts::default()
                },
                last_24h: OutcomeCounts {
                    applied: 4,
                    rejected: 1,
                    ..OutcomeCounts::default()
                },
            },
            last_applied_at: Some(UnixMillis(NOW.as_millis() - 90_000)),
            last_received_at: Some(UnixMillis(NOW.as_millis() - 30_000)),
            hourly,
        }
    }

    #[test]
    fn durations_read_like_speech() {
        for (s, text) in [
            (0, "0 s"),
            (59, "59 s"),
            (60, "1 min"),
            (90, "1 min 30 s"),
            (3_600, "1 h"),
            (5_400, "1 h 30 min"),
            (86_400, "1 d"),
            (90_000, "1 d 1 h"),
            (86_400 + 60, "1 d"),
        ] {
            assert_eq!(duration_text(s), text, "{s}");
        }
    }

    #[test]
    fn the_section_shows_ages_times_outcomes_and_the_chart() {
        let html = section(&Ok(sample())).into_string();
        for text in [
            r#"<td id="oldest-pending">1 h 30 min old</td>"#,
            r#"<time datetime="2026-01-01T10:29:30.000Z">2026-01-01T10:29:30.000Z</time> (30 s ago)"#,
            "(1 min 30 s ago)",
            r#"<td class="n" id="outcome-1h-applied">4</td>"#,
            r#"<td class="n" id="outcome-24h-rejected">1</td>"#,
            r#"<td class="n" id="outcome-1h-rejected">0</td>"#,
            r#"<svg id="deliveries-chart""#,
            r#"<g class="hour" data-hour="09:00" data-total="1">"#,
        ] {
            assert!(html.contains(text), "{text} not in {html}");
        }
        let none = Metrics {
            oldest_pending: None,
            last_applied_at: None,
            ..sample()
        };
        let html = section(&Ok(none)).into_string();
        assert!(html.contains("none pending") && html.contains("never"));
    }

    #[test]
    fn metrics_are_read_or_their_failure_is_text() {
        let body = serde_json::to_vec(&sample()).unwrap();
        let read = read_metrics(Answer::Status { status: 200, body }).unwrap();
        assert_eq!(read, sample());
        let e = read_metrics(Answer::Status {
            status: 401,
            body: br#"{"ok":false,"error":"unauthorized"}"#.to_vec(),
        })
        .unwrap_err();
        assert_eq!(e.to_string(), "401 unauthorized: check API_SECRET");
        // A main API without the route.
        let e = read_metrics(Answer::Status {
            status: 404,
            body: br#"{"ok":false,"error":"not_found"}"#.to_vec(),
        })
        .unwrap_err();
        let html = section(&Err(e)).into_string();
        assert!(html.contains("Metrics: answered 404 (not_found)"), "{html}");
        assert_eq!(
            read_metrics(Answer::Status {
                status: 200,
                body: br#"{"ok":true}"#.to_vec()
            }),
            Err(SourceError::Unreadable)
        );
    }
}
