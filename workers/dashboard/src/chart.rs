//! The deliveries chart: the main API's 24 hourly buckets as stacked SVG
//! bars by outcome, with axes, labels and a legend, drawn on the server (no
//! script). Every text in it is a fixed word, a number or an hour, never
//! data from a source. Pure.

use clerk_sync_contract::metrics::{AuditOutcome, HourBucket};
use maud::{html, Markup};

/// The outcomes drawn, bottom of the stack first, with their colours.
pub const SERIES: [(AuditOutcome, &str, &str); 6] = [
    (AuditOutcome::Applied, "applied", "#2b7a0b"),
    (AuditOutcome::Duplicate, "duplicate", "#8fa3b8"),
    (AuditOutcome::Stale, "stale", "#e0a526"),
    (AuditOutcome::IgnoredDeleted, "ignored (deleted)", "#b9b2a6"),
    (AuditOutcome::Rejected, "rejected", "#c2410c"),
    (AuditOutcome::Failed, "failed", "#a4161a"),
];

const LEFT: f64 = 48.0;
const TOP: f64 = 30.0;
const SLOT: f64 = 28.0;
const BAR: f64 = 20.0;
const PLOT_H: f64 = 180.0;
const WIDTH: f64 = LEFT + 24.0 * SLOT + 10.0;
const HEIGHT: f64 = TOP + PLOT_H + 44.0;

/// Where the legend's entry `i` starts: after the ones before it, each as
/// wide as its label (about 7 px a character at 12 px) and its swatch.
fn legend_x(i: usize) -> f64 {
    LEFT + SERIES[..i]
        .iter()
        .map(|(_, label, _)| 16.0 + label.len() as f64 * 7.0 + 14.0)
        .sum::<f64>()
}

/// The top of the y axis: the smallest of 1, 2, 4, 10, 20, 40, 100, … at
/// or above `max`, so the half-way tick is a whole number too.
pub fn axis_max(max: u64) -> u64 {
    let mut scale = 1u64;
    loop {
        for step in [1, 2, 4] {
            let top = scale.saturating_mul(step);
            if top >= max || top == u64::MAX {
                return top;
            }
        }
        scale = scale.saturating_mul(10);
    }
}

/// `HH:00` of a bucket's start (UTC).
fn hour_label(bucket: &HourBucket) -> String {
    bucket
        .start
        .to_rfc3339()
        .and_then(|t| t.get(11..16).map(str::to_owned))
        .unwrap_or_default()
}

fn px(v: f64) -> String {
    format!("{v:.1}")
}

/// A bucket's non-empty segments, bottom first: outcome, label, colour,
/// count, top and height.
fn stack(
    bucket: &HourBucket,
    base: f64,
    scale: f64,
) -> Vec<(AuditOutcome, &'static str, &'static str, u64, f64, f64)> {
    let mut y = base;
    SERIES
        .iter()
        .filter_map(|&(outcome, label, colour)| {
            let n = bucket.outcomes.get(outcome);
            (n > 0).then(|| {
                let h = n as f64 * scale;
                y -= h;
                (outcome, label, colour, n, y, h)
            })
        })
        .collect()
}

/// The chart for `hourly` (oldest first, as the metrics send it).
pub fn deliveries_chart(hourly: &[HourBucket]) -> Markup {
    let max = hourly.iter().map(|b| b.outcomes.total()).max().unwrap_or(0);
    let top = axis_max(max.max(1));
    let scale = PLOT_H / top as f64;
    let base = TOP + PLOT_H;
    let ticks = if top >= 2 {
        vec![0, top / 2, top]
    } else {
        vec![0, top]
    };
    html! {
        svg #deliveries-chart xmlns="http://www.w3.org/2000/svg" role="img"
            viewBox={ "0 0 " (px(WIDTH)) " " (px(HEIGHT)) } width=(px(WIDTH)) height=(px(HEIGHT))
            aria-label="Deliveries per hour over the last 24 hours, by outcome" data-max=(top) {
            // Legend along the top.
            @for (i, (outcome, label, colour)) in SERIES.iter().enumerate() {
                g.legend data-outcome=(outcome.as_str()) {
                    rect x=(px(legend_x(i))) y="6" width="12" height="12" fill=(colour) {}
                    text x=(px(legend_x(i) + 16.0)) y="16" font-size="12" { (label) }
                }
            }
            // Axes, the y ticks and their grid lines.
            line x1=(px(LEFT)) y1=(px(TOP)) x2=(px(LEFT)) y2=(px(base)) stroke="#68707a" {}
            line x1=(px(LEFT)) y1=(px(base)) x2=(px(WIDTH - 10.0)) y2=(px(base)) stroke="#68707a" {}
            @for t in &ticks {
                @let y = base - *t as f64 * scale;
                text.y-tick x=(px(LEFT - 6.0)) y=(px(y + 4.0)) font-size="11" text-anchor="end" { (t) }
                @if *t > 0 {
                    line x1=(px(LEFT)) y1=(px(y)) x2=(px(WIDTH - 10.0)) y2=(px(y)) stroke="#dde1e6" {}
                }
            }
            text x="12" y=(px(TOP + PLOT_H / 2.0)) font-size="12" text-anchor="middle"
                transform={ "rotate(-90 12 " (px(TOP + PLOT_H / 2.0)) ")" } { "deliveries per hour" }
            text x=(px(LEFT + 12.0 * SLOT)) y=(px(HEIGHT - 6.0)) font-size="12" text-anchor="middle" { "hour (UTC)" }
            // The bars: one stack per hour.
            @for (i, bucket) in hourly.iter().enumerate() {
                @let x = LEFT + i as f64 * SLOT + (SLOT - BAR) / 2.0;
                @let hour = hour_label(bucket);
                g.hour data-hour=(hour) data-total=(bucket.outcomes.total()) {
                    @for (outcome, label, colour, n, y, h) in stack(bucket, base, scale) {
                        rect class={ "bar bar-" (outcome.as_str()) } data-count=(n)
                            x=(px(x)) y=(px(y)) width=(px(BAR)) height=(px(h)) fill=(colour) {
                            title { (hour) " UTC: " (n) " " (label) }
                        }
                    }
                    @if i % 3 == 0 {
                        text.x-tick x=(px(x + BAR / 2.0)) y=(px(base + 16.0)) font-size="11" text-anchor="middle" { (hour) }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clerk_sync_contract::metrics::empty_buckets;
    use clerk_sync_contract::UnixMillis;

    #[test]
    fn the_legend_fits_without_overlap() {
        // "ignored (deleted)" ran into "rejected" at a fixed 108 px each.
        for i in 1..SERIES.len() {
            let before = SERIES[i - 1].1.len() as f64 * 7.0 + 16.0;
            assert!(legend_x(i) - legend_x(i - 1) > before, "entry {i}");
        }
        let last = SERIES[SERIES.len() - 1].1.len() as f64 * 7.0 + 16.0;
        assert!(legend_x(SERIES.len() - 1) + last <= WIDTH);
    }

    /// 2026-01-01T10:30:00.000Z
    const NOW: UnixMillis = UnixMillis(1_767_263_400_000);

    #[test]
    fn axis_tops_are_round() {
        let tops: Vec<u64> = [0, 1, 2, 3, 4, 5, 11, 40, 41, 399, 401]
            .into_iter()
            .map(axis_max)
            .collect();
        assert_eq!(tops, [1, 1, 2, 4, 4, 10, 20, 40, 100, 400, 1000]);
    }

    #[test]
    fn bars_stack_by_outcome_to_scale() {
        let mut hourly = empty_buckets(NOW);
        hourly[23].outcomes.add(AuditOutcome::Applied, 3);
        hourly[23].outcomes.add(AuditOutcome::Failed, 1);
        hourly[0].outcomes.add(AuditOutcome::Stale, 2);
        let svg = deliveries_chart(&hourly).into_string();
        assert!(svg.starts_with("<svg id=\"deliveries-chart\""), "{svg}");
        assert!(svg.contains("data-max=\"4\""));
        // The last hour (10:00): 3 applied at the bottom, 1 failed on top; 45 px a delivery.
        assert!(svg.contains(concat!(
            r##"<rect class="bar bar-applied" data-count="3" x="696.0" y="75.0" width="20.0" height="135.0" fill="#2b7a0b">"##,
            "<title>10:00 UTC: 3 applied</title></rect>"
        )), "{svg}");
        assert!(svg.contains(
            r##"<rect class="bar bar-failed" data-count="1" x="696.0" y="30.0" width="20.0" height="45.0" fill="#a4161a">"##
        ));
        // The first (11:00 the day before): 2 stale.
        assert!(svg.contains(r#"<g class="hour" data-hour="11:00" data-total="2">"#));
        assert!(svg.contains(r#"class="bar bar-stale" data-count="2" x="52.0" y="120.0""#));
        assert_eq!(
            svg.matches("<rect class=\"bar ").count(),
            3,
            "no empty bars"
        );
        assert_eq!(svg.matches("<g class=\"hour\"").count(), 24);
        for label in [
            "applied",
            "duplicate",
            "stale",
            "ignored (deleted)",
            "rejected",
            "failed",
            "deliveries per hour",
            "hour (UTC)",
        ] {
            assert!(svg.contains(&format!(">{label}</text>")), "{label}");
        }
        for tick in [">0</text>", ">2</text>", ">4</text>"] {
            assert!(svg.contains(tick), "{tick}");
        }
    }

    #[test]
    fn an_empty_day_draws_axes_and_no_bars() {
        let svg = deliveries_chart(&empty_buckets(NOW)).into_string();
        assert!(svg.contains("data-max=\"1\""));
        assert!(!svg.contains("<rect class=\"bar "));
        assert_eq!(svg.matches("class=\"x-tick\"").count(), 8);
    }
}
