//! Inline SVG charts for the SLO detail page, drawn on the server from the history endpoint's
//! JSON (`GET /api/v1/slos/{service}/{name}/history`): the error-budget burn-down and the burn
//! rates with the alert thresholds. Each chart carries a `<title>` and a `<desc>` that say the
//! numbers in words, for screen readers and for anyone who cannot see the colours.

use std::fmt::Write as _;

use serde_json::Value;

use super::render::escape;

const W: f64 = 720.0;
const H: f64 = 240.0;
const LEFT: f64 = 52.0;
const RIGHT: f64 = 112.0;
const TOP: f64 = 14.0;
const BOTTOM: f64 = 26.0;

/// Maps data to the plot area.
struct Scale {
    t0: i64,
    t1: i64,
    y0: f64,
    y1: f64,
}

impl Scale {
    fn x(&self, t: i64) -> f64 {
        let span = (self.t1 - self.t0).max(1) as f64;
        LEFT + (t - self.t0) as f64 / span * (W - LEFT - RIGHT)
    }
    fn y(&self, v: f64) -> f64 {
        let v = v.clamp(self.y0, self.y1);
        TOP + (self.y1 - v) / (self.y1 - self.y0).max(f64::EPSILON) * (H - TOP - BOTTOM)
    }
}

fn parse_points(v: &Value, floor: f64) -> Vec<(i64, f64)> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| {
            let t = p[0].as_i64()?;
            // Non-finite values arrive as JSON null: spent beyond measure, drawn at the floor.
            Some((t, p[1].as_f64().unwrap_or(floor)))
        })
        .collect()
}

fn hhmm(t_ms: i64, long: bool) -> String {
    tick(t_ms, if long { 2 * DAY_MS } else { HOUR_MS })
}

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 86_400_000;

/// A time label precise enough for an axis spanning `span_ms` (UTC).
fn tick(t_ms: i64, span_ms: i64) -> String {
    let fmt = if span_ms > 36 * HOUR_MS {
        "%b %d %H:%M"
    } else if span_ms >= 10 * 60_000 {
        "%H:%M"
    } else {
        "%H:%M:%S"
    };
    chrono::DateTime::from_timestamp_millis(t_ms)
        .map(|t| t.format(fmt).to_string())
        .unwrap_or_default()
}

fn line_path(points: &[(i64, f64)], s: &Scale) -> String {
    let mut d = String::with_capacity(points.len() * 16);
    for (i, (t, v)) in points.iter().enumerate() {
        let _ = write!(
            d,
            "{}{:.1},{:.1}",
            if i == 0 { "M" } else { " L" },
            s.x(*t),
            s.y(*v)
        );
    }
    d
}

/// Frame, horizontal grid with labels, and time ticks.
fn axes(out: &mut String, s: &Scale, grid: &[(f64, String)]) {
    for (v, label) in grid {
        let y = s.y(*v);
        let _ = write!(
            out,
            "<line class=\"grid\" x1=\"{LEFT}\" x2=\"{:.1}\" y1=\"{y:.1}\" y2=\"{y:.1}\"/><text class=\"axis\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            W - RIGHT,
            LEFT - 6.0,
            y + 4.0,
            escape(label)
        );
    }
    for i in 0..=4 {
        let t = s.t0 + (s.t1 - s.t0) * i / 4;
        let anchor = match i {
            0 => "start",
            4 => "end",
            _ => "middle",
        };
        let _ = write!(
            out,
            "<text class=\"axis\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"{anchor}\">{}</text>",
            s.x(t),
            H - 8.0,
            escape(&tick(t, s.t1 - s.t0))
        );
    }
}

fn open_svg(out: &mut String, id: &str, title: &str, desc: &str) {
    let _ = write!(
        out,
        "<svg class=\"chart\" id=\"{id}\" viewBox=\"0 0 {W} {H}\" role=\"img\" aria-labelledby=\"{id}-title {id}-desc\" preserveAspectRatio=\"xMidYMid meet\"><title id=\"{id}-title\">{}</title><desc id=\"{id}-desc\">{}</desc>",
        escape(title),
        escape(desc)
    );
}

fn pct(v: f64) -> String {
    if v.is_finite() {
        format!("{:.1}%", v * 100.0)
    } else {
        "less than -100%".into()
    }
}

/// The error-budget burn-down: budget remaining over the current window, 100% at the top.
pub fn burn_down(history: &Value) -> String {
    let data = &history["data"];
    let raw = parse_points(&data["burnDown"], f64::NEG_INFINITY);
    let resolution = data["resolution"].as_str().unwrap_or("1m");
    let mut out = String::new();
    if raw.is_empty() {
        open_svg(
            &mut out,
            "burn-down",
            "Error budget burn-down",
            "No events recorded in this window yet.",
        );
        let _ = write!(
            out,
            "<text class=\"axis\" x=\"{}\" y=\"{}\" text-anchor=\"middle\">No events in this window yet</text></svg>",
            W / 2.0,
            H / 2.0
        );
        return out;
    }
    let lowest = raw.iter().map(|p| p.1).fold(0.0f64, f64::min).max(-1.0);
    let y0 = (lowest * 4.0).floor() / 4.0;
    let points: Vec<(i64, f64)> = raw.iter().map(|&(t, v)| (t, v.max(y0))).collect();
    let (first, last) = (raw[0], raw[raw.len() - 1]);
    let s = Scale {
        t0: first.0,
        t1: last.0.max(first.0 + 60_000),
        y0,
        y1: 1.0,
    };
    let desc = format!(
        "Error budget remaining from {} at {} to {} at {} UTC, {} points at {} resolution.",
        pct(first.1),
        hhmm(first.0, true),
        pct(last.1),
        hhmm(last.0, true),
        raw.len(),
        resolution
    );
    open_svg(&mut out, "burn-down", "Error budget burn-down", &desc);
    let mut grid = Vec::new();
    let mut v = 1.0;
    while v >= y0 - 1e-9 {
        grid.push((v, format!("{:.0}%", v * 100.0)));
        v -= 0.25;
    }
    axes(&mut out, &s, &grid);
    let zero = s.y(0.0);
    let line = line_path(&points, &s);
    let class = super::render::budget_class(last.1, "ok");
    let _ = write!(
        out,
        "<path class=\"area {class}\" d=\"{line} L{:.1},{zero:.1} L{:.1},{zero:.1} Z\"/><line class=\"zero\" x1=\"{LEFT}\" x2=\"{:.1}\" y1=\"{zero:.1}\" y2=\"{zero:.1}\"/><path class=\"line {class} burn-down-line\" data-points=\"{}\" d=\"{line}\"/>",
        s.x(s.t1),
        s.x(s.t0),
        W - RIGHT,
        points.len()
    );
    let _ = write!(
        out,
        "<circle class=\"dot {class}\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"4\"/><text class=\"value {class}-text\" x=\"{:.1}\" y=\"{:.1}\">{}</text></svg>",
        s.x(last.0),
        s.y(last.1.max(y0)),
        s.x(last.0) + 8.0,
        s.y(last.1.max(y0)) + 4.0,
        escape(&pct(last.1))
    );
    out
}

/// The burn rates of the short alerting windows with every tier's threshold as a dashed line.
/// Returns the SVG and an HTML legend.
pub fn burn_rate(history: &Value) -> String {
    let data = &history["data"];
    let series: Vec<(String, Vec<(i64, f64)>)> = data["burnRate"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            (
                s["window"].as_str().unwrap_or("").to_string(),
                parse_points(&s["points"], 0.0),
            )
        })
        .filter(|s| !s.1.is_empty())
        .collect();
    let thresholds: Vec<(String, f64)> = data["thresholds"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| {
            (
                format!(
                    "{} ×{} ({}/{})",
                    t["tier"].as_str().unwrap_or(""),
                    trim_float(t["factor"].as_f64().unwrap_or(0.0)),
                    t["longWindow"].as_str().unwrap_or(""),
                    t["shortWindow"].as_str().unwrap_or("")
                ),
                t["factor"].as_f64().unwrap_or(0.0),
            )
        })
        .collect();
    let mut out = String::new();
    let (t0, t1) = series
        .iter()
        .flat_map(|s| s.1.iter().map(|p| p.0))
        .fold((i64::MAX, i64::MIN), |(a, b), t| (a.min(t), b.max(t)));
    let now = data["nowMs"].as_i64().unwrap_or(0);
    // Young data (one or two minutes) sits at the right edge, where "now" is.
    let (t0, t1) = if t0 > t1 {
        (now - 3_600_000, now)
    } else {
        (t0.min(t1 - 60_000), t1)
    };
    let top = series
        .iter()
        .flat_map(|s| s.1.iter().map(|p| p.1))
        .chain(thresholds.iter().map(|t| t.1))
        .fold(1.0f64, f64::max)
        * 1.1;
    let s = Scale {
        t0,
        t1,
        y0: 0.0,
        y1: nice_ceiling(top),
    };
    let mut desc = String::from("Burn rate (1 spends exactly the budget over the window).");
    for (name, pts) in &series {
        let now_v = pts.last().map_or(0.0, |p| p.1);
        let max = pts.iter().map(|p| p.1).fold(0.0f64, f64::max);
        let _ = write!(desc, " {name} window: now {now_v:.2}, peak {max:.2}.");
    }
    if !thresholds.is_empty() {
        let list: Vec<&str> = thresholds.iter().map(|t| t.0.as_str()).collect();
        let _ = write!(desc, " Alert thresholds: {}.", list.join(", "));
    }
    open_svg(
        &mut out,
        "burn-rate",
        "Burn rate and alert thresholds",
        &desc,
    );
    let grid: Vec<(f64, String)> = (0..=4)
        .map(|i| {
            let v = s.y1 * f64::from(i) / 4.0;
            (v, trim_float(v))
        })
        .collect();
    axes(&mut out, &s, &grid);
    for (label, factor) in &thresholds {
        let y = s.y(*factor);
        let _ = write!(
            out,
            "<line class=\"threshold\" x1=\"{LEFT}\" x2=\"{:.1}\" y1=\"{y:.1}\" y2=\"{y:.1}\"/><text class=\"threshold-label\" x=\"{:.1}\" y=\"{:.1}\">{}</text>",
            W - RIGHT,
            W - RIGHT + 4.0,
            y + 4.0,
            escape(label.split(' ').next().unwrap_or(""))
        );
    }
    for (i, (name, pts)) in series.iter().enumerate() {
        let _ = write!(
            out,
            "<path class=\"line s{}\" data-window=\"{}\" d=\"{}\"/>",
            i % 4 + 1,
            escape(name),
            line_path(pts, &s)
        );
        // The current value as a dot: visible even while a series has a single point.
        if let Some(&(t, v)) = pts.last() {
            let _ = write!(
                out,
                "<circle class=\"dot s{}\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"3.5\"/>",
                i % 4 + 1,
                s.x(t),
                s.y(v)
            );
        }
    }
    out.push_str("</svg><ul class=\"legend\">");
    for (i, (name, _)) in series.iter().enumerate() {
        let _ = write!(
            out,
            "<li><span class=\"swatch s{}\"></span>{} window</li>",
            i % 4 + 1,
            escape(name)
        );
    }
    for (label, _) in &thresholds {
        let _ = write!(
            out,
            "<li><span class=\"swatch threshold\"></span>{}</li>",
            escape(label)
        );
    }
    out.push_str("</ul>");
    out
}

fn trim_float(v: f64) -> String {
    let s = format!("{v:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// The next 1, 2 or 5 times a power of ten at or above `v`.
fn nice_ceiling(v: f64) -> f64 {
    if v <= 0.0 || !v.is_finite() {
        return 1.0;
    }
    let p = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * p)
        .find(|c| *c >= v - 1e-9)
        .unwrap_or(10.0 * p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn burn_down_has_a_path_and_says_its_numbers() {
        let h = json!({"data": {"resolution": "1m", "burnDown": [
            [1_795_341_600_000i64, 1.0], [1_795_341_660_000i64, 0.8], [1_795_341_720_000i64, 0.62]]}});
        let svg = burn_down(&h);
        assert!(svg.contains("<title id=\"burn-down-title\">Error budget burn-down</title>"));
        assert!(
            svg.contains("from 100.0% at Nov 22 10:00 to 62.0% at Nov 22 10:02 UTC, 3 points"),
            "{svg}"
        );
        assert!(
            svg.contains("data-points=\"3\" d=\"M52.0,14.0 L330.0,"),
            "{svg}"
        );
        assert!(svg.contains("aria-labelledby=\"burn-down-title burn-down-desc\""));
    }

    #[test]
    fn overspent_budget_extends_the_axis_below_zero() {
        let h = json!({"data": {"burnDown": [[0, 1.0], [60_000, -0.3], [120_000, null]]}});
        let svg = burn_down(&h);
        assert!(svg.contains(">-100%</text>"), "{svg}");
        assert!(svg.contains("to less than -100%"), "{svg}");
        assert!(svg.contains("class=\"line crit burn-down-line\""), "{svg}");
    }

    #[test]
    fn burn_rate_draws_thresholds_and_series() {
        let h = json!({"data": {"nowMs": 120_000, "burnRate": [
            {"window": "5m", "points": [[60_000, 0.0], [120_000, 20.0]]},
            {"window": "1h", "points": [[60_000, 0.0], [120_000, 3.0]]}],
            "thresholds": [{"tier": "page_fast", "factor": 14.4, "longWindow": "1h", "shortWindow": "5m"}]}});
        let svg = burn_rate(&h);
        assert!(svg.contains("5m window: now 20.00, peak 20.00."), "{svg}");
        assert!(
            svg.contains("Alert thresholds: page_fast ×14.4 (1h/5m)."),
            "{svg}"
        );
        assert!(svg.contains("class=\"threshold\""));
        assert!(svg.contains(">25</text>"), "scale rounds up to 25: {svg}");
        assert_eq!(nice_ceiling(15.84), 20.0);
        assert_eq!(nice_ceiling(0.3), 0.5);
    }
}
