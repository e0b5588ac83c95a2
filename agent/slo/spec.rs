//! SLO specs: the YAML in `rules/*.yaml` (OpenSLO v1 files are accepted too, see
//! [`super::openslo`]) (close to Sloth's `prometheus/v1`, with series selectors
//! instead of raw PromQL), loaded and validated with every problem reported at once as
//! `<file>:<line>:<col>: <yaml.path>: <what is wrong; what to do>`.
//!
//! ```yaml
//! service: checkout
//! labels: {team: payments}
//! slos:
//!   - name: availability
//!     objective: 99.9
//!     window: 30d                      # or {calendar: month, time_zone: Europe/Berlin}
//!     sli:
//!       ratio:
//!         errors: http_requests_total{job="checkout",code=~"5.."}
//!         total: http_requests_total{job="checkout"}
//! ```

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use crate::config::{
    LocationIndex, Problem, Problems, check_label_name, deserialize_collecting, parse_duration,
};
use crate::store::selector::Selector;

/// One rules file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SloFile {
    /// Format marker; `vigil/v1` when given.
    #[serde(default)]
    pub version: Option<String>,
    /// The service the SLOs belong to; the `service` label of every SLO series.
    pub service: String,
    /// Labels added to every SLO of the file.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// The SLOs.
    pub slos: Vec<SloSpec>,
}

/// One SLO.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SloSpec {
    /// Name, unique within the service; the `slo` label.
    pub name: String,
    /// What it promises, for people.
    #[serde(default)]
    pub description: String,
    /// Target in percent, e.g. 99.9 (strictly between 0 and 100).
    pub objective: f64,
    /// Rolling duration (`30d`) or a calendar period.
    pub window: Window,
    /// How events count against the budget.
    #[serde(default, with = "serde_yaml::with::singleton_map")]
    pub budgeting: Option<Budgeting>,
    /// Extra labels of this SLO's series.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// One SLO instance per distinct value of these labels.
    #[serde(default)]
    pub group_by: Vec<String>,
    /// Traffic floor per alerting window below which burn alerts do not fire.
    #[serde(default)]
    pub min_events: f64,
    /// The indicator.
    #[serde(with = "serde_yaml::with::singleton_map")]
    pub sli: Sli,
    /// The alerts generated from this SLO (burn-rate tiers, budget exhausted, no data); all on
    /// by default. See docs/alerting-rules.md.
    #[serde(default)]
    pub alerts: SloAlerts,
}

/// `alerts:` of an SLO: multi-window multi-burn-rate tiers, budget exhausted and no data.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SloAlerts {
    /// `false` turns off every alert of this SLO.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Labels added to every alert of this SLO (templated).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Annotations added to every alert of this SLO (templated); a tier's own win.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// Burn-rate tiers by name: overrides of the default tiers (`page_fast`, `page_slow`,
    /// `ticket_fast`, `ticket_slow`) and custom tiers.
    #[serde(default)]
    pub tiers: BTreeMap<String, TierSpec>,
    /// The `SLOBudgetExhausted` alert.
    #[serde(default)]
    pub budget_exhausted: ConditionAlertSpec,
    /// The `SLONoData` alert.
    #[serde(default)]
    pub no_data: ConditionAlertSpec,
}

fn yes() -> bool {
    true
}

impl Default for SloAlerts {
    fn default() -> Self {
        Self {
            enabled: true,
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
            tiers: BTreeMap::new(),
            budget_exhausted: ConditionAlertSpec::default(),
            no_data: ConditionAlertSpec::default(),
        }
    }
}

/// One burn-rate tier: fires when the burn rate over both windows exceeds `factor`. Every key
/// is optional for the default tiers; a custom tier needs the windows and a factor (or a
/// budget share).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TierSpec {
    /// `false` turns the tier off.
    #[serde(default)]
    pub enabled: Option<bool>,
    /// The long window (`1h`): whole minutes up to 6h, whole hours above.
    #[serde(default, deserialize_with = "crate::config::scrape::opt_duration")]
    pub long_window: Option<Duration>,
    /// The short window (`5m`), shorter than the long one; it makes the alert stop soon after
    /// the burn stops.
    #[serde(default, deserialize_with = "crate::config::scrape::opt_duration")]
    pub short_window: Option<Duration>,
    /// Burn rate above which the tier fires (exclusive with `budget_share`).
    #[serde(default)]
    pub factor: Option<f64>,
    /// Share of the whole budget spent within the long window that makes it fire (0.02 = 2%);
    /// the factor is `budget_share x SLO window / long window`.
    #[serde(default)]
    pub budget_share: Option<f64>,
    /// The `severity` label (`page`, `ticket`, ...).
    #[serde(default)]
    pub severity: Option<String>,
    /// How long the condition must hold before the alert fires.
    #[serde(
        default,
        rename = "for",
        deserialize_with = "crate::config::scrape::opt_duration"
    )]
    pub for_: Option<Duration>,
    /// How long the alert keeps firing after the condition stopped.
    #[serde(default, deserialize_with = "crate::config::scrape::opt_duration")]
    pub keep_firing_for: Option<Duration>,
    /// Extra labels (templated).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Extra annotations (templated).
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

/// The budget-exhausted or no-data alert of an SLO.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConditionAlertSpec {
    /// `false` turns it off.
    #[serde(default)]
    pub enabled: Option<bool>,
    /// The `severity` label (default `ticket`).
    #[serde(default)]
    pub severity: Option<String>,
    /// How long the condition must hold before the alert fires (default 5m for budget
    /// exhausted, 10m for no data).
    #[serde(
        default,
        rename = "for",
        deserialize_with = "crate::config::scrape::opt_duration"
    )]
    pub for_: Option<Duration>,
    /// How long the alert keeps firing after the condition stopped.
    #[serde(default, deserialize_with = "crate::config::scrape::opt_duration")]
    pub keep_firing_for: Option<Duration>,
    /// Extra labels (templated).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Extra annotations (templated).
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

/// A burn-rate tier with every default applied, as the alert engine evaluates it.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertTier {
    /// Tier name (`page_fast`), the `tier` label.
    pub name: String,
    /// The `severity` label.
    pub severity: String,
    /// Long window.
    pub long_window: Duration,
    /// Short window.
    pub short_window: Duration,
    /// Burn rate threshold (exclusive).
    pub factor: f64,
    /// `for`.
    pub for_: Duration,
    /// `keep_firing_for`.
    pub keep_firing_for: Duration,
    /// Extra labels (templated).
    pub labels: BTreeMap<String, String>,
    /// Extra annotations (templated).
    pub annotations: BTreeMap<String, String>,
}

/// The default tiers as (name, severity, long window, short window, budget share), as Sloth and
/// the Google SRE workbook define them: 2% of the budget in 1h, 5% in 6h, 10% in 1d and 10% in
/// 3d. For a 30d window the factors are 14.4, 6, 3 and 1.
pub const DEFAULT_TIERS: [(&str, &str, u64, u64, f64); 4] = [
    ("page_fast", "page", 3600, 300, 0.02),
    ("page_slow", "page", 6 * 3600, 1800, 0.05),
    ("ticket_fast", "ticket", 86_400, 2 * 3600, 0.10),
    ("ticket_slow", "ticket", 3 * 86_400, 6 * 3600, 0.10),
];

/// The burn-rate factor that spends `budget_share` of the budget of a `window` within `long`.
pub fn burn_factor(budget_share: f64, window: Duration, long: Duration) -> f64 {
    budget_share * window.as_secs_f64() / long.as_secs_f64().max(1.0)
}

/// The SLO window.
#[derive(Debug, Clone, PartialEq)]
pub enum Window {
    /// The last `duration`, moving.
    Rolling(Duration),
    /// The current calendar period in a time zone.
    Calendar {
        /// week, month or quarter.
        unit: CalendarUnit,
        /// IANA time zone name.
        time_zone: String,
    },
}

/// Calendar period units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CalendarUnit {
    /// Monday 00:00 to Monday 00:00.
    Week,
    /// First of the month 00:00.
    Month,
    /// January, April, July, October 1st 00:00.
    Quarter,
}

impl<'de> Deserialize<'de> for Window {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Cal {
            calendar: CalendarUnit,
            #[serde(default = "utc")]
            time_zone: String,
        }
        fn utc() -> String {
            "UTC".into()
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Text(String),
            Cal(Cal),
        }
        match Raw::deserialize(d).map_err(|_| {
            serde::de::Error::custom(
                "expected a duration like 30d, or {calendar: week|month|quarter, time_zone: Europe/Berlin}",
            )
        })? {
            Raw::Text(t) => parse_duration(&t).map(Window::Rolling).map_err(serde::de::Error::custom),
            Raw::Cal(c) => Ok(Window::Calendar { unit: c.calendar, time_zone: c.time_zone }),
        }
    }
}

/// How the budget counts.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Budgeting {
    /// Every event counts (good/total events). Default for ratio and latency SLIs.
    Occurrences,
    /// Time is cut into slices; a slice is good when its good ratio reaches `target`; the SLI
    /// is good slices / slices. Default for uptime and threshold SLIs (1m, target 1).
    Timeslices {
        /// Slice length, a whole number of minutes.
        #[serde(deserialize_with = "crate::config::duration")]
        slice: Duration,
        /// Good ratio a slice needs (0 to 1).
        target: f64,
    },
    /// The SLI is the average of the slices' good ratios.
    RatioTimeslices {
        /// Slice length, a whole number of minutes.
        #[serde(deserialize_with = "crate::config::duration")]
        slice: Duration,
    },
}

/// The indicator.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Sli {
    /// Counters: errors (or good) over total events.
    Ratio(RatioSli),
    /// A histogram: good = requests at or under `threshold` (an `le` bucket).
    Latency(LatencySli),
    /// A 0/1 gauge such as `up`, observed every evaluation round.
    Uptime(UptimeSli),
    /// A gauge aggregated and compared with a value every round (queue depth).
    Threshold(ThresholdSli),
}

/// `sli.ratio`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RatioSli {
    /// Counter selector of bad events (exclusive with `good`).
    #[serde(default)]
    pub errors: Option<String>,
    /// Counter selector of good events (exclusive with `errors`).
    #[serde(default)]
    pub good: Option<String>,
    /// Counter selector of all events.
    pub total: String,
}

/// `sli.latency`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LatencySli {
    /// Selector of the histogram's `_bucket` series.
    pub histogram: String,
    /// Latency in seconds; must equal one of the `le` buckets.
    pub threshold: f64,
}

/// `sli.uptime`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UptimeSli {
    /// Selector of a 0/1 gauge (`up{job="x"}`, `pg_up`, `probe_success`).
    pub selector: String,
}

/// Aggregations of matched gauges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Aggregate {
    /// Sum.
    Sum,
    /// Maximum.
    Max,
    /// Minimum.
    Min,
    /// Mean.
    Avg,
}

/// Comparison operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Op {
    /// `<`
    #[serde(rename = "<")]
    Lt,
    /// `<=`
    #[serde(rename = "<=")]
    Le,
    /// `>`
    #[serde(rename = ">")]
    Gt,
    /// `>=`
    #[serde(rename = ">=")]
    Ge,
    /// `==`
    #[serde(rename = "==")]
    Eq,
    /// `!=`
    #[serde(rename = "!=")]
    Ne,
}

impl Op {
    /// Applies the comparison.
    pub fn holds(self, a: f64, b: f64) -> bool {
        match self {
            Self::Lt => a < b,
            Self::Le => a <= b,
            Self::Gt => a > b,
            Self::Ge => a >= b,
            Self::Eq => a == b,
            Self::Ne => a != b,
        }
    }
}

/// `sli.threshold`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThresholdSli {
    /// Gauge selector.
    pub selector: String,
    /// How matched series combine.
    pub aggregate: Aggregate,
    /// The comparison that makes a round good.
    pub op: Op,
    /// The value compared with.
    pub value: f64,
}

/// An SLO ready to evaluate: the spec with its file's service and labels, selectors parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct Slo {
    /// `service/name`, unique.
    pub id: String,
    /// The service.
    pub service: String,
    /// File labels merged with SLO labels.
    pub labels: BTreeMap<String, String>,
    /// The spec.
    pub spec: SloSpec,
    /// Objective as a ratio (99.9 -> 0.999).
    pub objective: f64,
    /// Budgeting with defaults applied.
    pub budgeting: Budgeting,
    /// Parsed selectors of the SLI, in the order the SLI names them.
    pub selectors: Vec<Selector>,
    /// The file it came from.
    pub file: PathBuf,
}

impl Slo {
    /// The whole SLO window, for rolling windows, or the longest calendar period.
    pub fn window_length(&self) -> Duration {
        match &self.spec.window {
            Window::Rolling(d) => *d,
            Window::Calendar {
                unit: CalendarUnit::Week,
                ..
            } => Duration::from_secs(7 * 86_400),
            Window::Calendar {
                unit: CalendarUnit::Month,
                ..
            } => Duration::from_secs(31 * 86_400),
            Window::Calendar {
                unit: CalendarUnit::Quarter,
                ..
            } => Duration::from_secs(92 * 86_400),
        }
    }
}

impl Slo {
    /// The window length budget shares are taken of: the rolling window, or the nominal
    /// calendar period (week 7d, month 30d, quarter 90d).
    pub fn budget_window(&self) -> Duration {
        nominal_length(&self.spec.window)
    }

    /// The enabled burn-rate tiers with defaults applied, most severe first (by severity, then
    /// by factor). Default tiers whose long window exceeds the SLO window are left out.
    pub fn alert_tiers(&self) -> Vec<AlertTier> {
        let alerts = &self.spec.alerts;
        if !alerts.enabled {
            return Vec::new();
        }
        let window = self.budget_window();
        let mut out = Vec::new();
        let none = TierSpec::default();
        for (name, severity, long, short, share) in DEFAULT_TIERS {
            let t = alerts.tiers.get(name).unwrap_or(&none);
            let long_window = t.long_window.unwrap_or(Duration::from_secs(long));
            if t.enabled == Some(false) || (t.long_window.is_none() && long_window > window) {
                continue;
            }
            out.push(resolve_tier(
                name,
                t,
                severity,
                long_window,
                Duration::from_secs(short),
                share,
                window,
            ));
        }
        for (name, t) in &alerts.tiers {
            if DEFAULT_TIERS.iter().any(|d| d.0 == name) || t.enabled == Some(false) {
                continue;
            }
            let (Some(long), Some(short)) = (t.long_window, t.short_window) else {
                continue;
            };
            out.push(resolve_tier(name, t, "page", long, short, 0.0, window));
        }
        out.sort_by(|a, b| {
            severity_rank(&a.severity)
                .cmp(&severity_rank(&b.severity))
                .then(b.factor.total_cmp(&a.factor))
                .then(a.name.cmp(&b.name))
        });
        out
    }

    /// The windows (long and short) of every enabled tier, for the SLO engine to compute.
    pub fn alert_windows(&self) -> Vec<Duration> {
        let mut w: Vec<Duration> = self
            .alert_tiers()
            .iter()
            .flat_map(|t| [t.long_window, t.short_window])
            .collect();
        w.sort();
        w.dedup();
        w
    }
}

/// A rolling window's length, or the nominal length of a calendar period.
fn nominal_length(window: &Window) -> Duration {
    match window {
        Window::Rolling(d) => *d,
        Window::Calendar { unit, .. } => Duration::from_secs(
            86_400
                * match unit {
                    CalendarUnit::Week => 7,
                    CalendarUnit::Month => 30,
                    CalendarUnit::Quarter => 90,
                },
        ),
    }
}

/// Labels the alert engine sets itself.
const RESERVED_ALERT_LABELS: [&str; 5] = ["alertname", "severity", "service", "slo", "tier"];

fn check_alert_maps(
    prefix: &str,
    labels: &BTreeMap<String, String>,
    annotations: &BTreeMap<String, String>,
    bad: &mut dyn FnMut(&str, String),
) {
    use crate::alert::template::{SLO_VARS, check};
    for (k, v) in labels {
        let path = format!("{prefix}labels.{k}");
        if let Err(e) = check_label_name(k) {
            bad(&path, e);
        } else if RESERVED_ALERT_LABELS.contains(&k.as_str()) {
            let hint = if k == "severity" {
                "set it with the severity key instead"
            } else {
                "use another label name"
            };
            bad(&path, format!("{k} is set by vigil; {hint}"));
        }
        if let Err(e) = check(v, SLO_VARS) {
            bad(&path, e);
        }
    }
    for (k, v) in annotations {
        let path = format!("{prefix}annotations.{k}");
        if let Err(e) = check_label_name(k) {
            bad(&path, e);
        }
        if let Err(e) = check(v, SLO_VARS) {
            bad(&path, e);
        }
    }
}

/// An alert window: whole minutes from 1m, whole hours above 6h (what the SLO engine's minute
/// and hour buckets can sum).
fn check_alert_window(path: &str, d: Duration, bad: &mut dyn FnMut(&str, String)) {
    let s = d.as_secs();
    let text = humantime::format_duration(d);
    if s < 60 || s % 60 != 0 || d.subsec_nanos() != 0 {
        bad(
            path,
            format!("{text} is not a whole number of minutes; use 1m or more, e.g. 5m"),
        );
    } else if s > 6 * 3600 && s % 3600 != 0 {
        bad(
            path,
            format!("{text} is longer than 6h but not a whole number of hours; e.g. 12h"),
        );
    }
}

/// `30d`, `6h`, `90m` for whole minutes, else humantime's form.
fn dur(d: Duration) -> String {
    if d.as_secs() % 60 == 0 && d.subsec_nanos() == 0 && d.as_secs() > 0 {
        super::window::window_name(d)
    } else {
        humantime::format_duration(d).to_string()
    }
}

fn check_alerts(a: &SloAlerts, window: Duration, bad: &mut dyn FnMut(&str, String)) {
    check_alert_maps("alerts.", &a.labels, &a.annotations, bad);
    let defaults: Vec<&str> = DEFAULT_TIERS.iter().map(|d| d.0).collect();
    for (name, t) in &a.tiers {
        let p = format!("alerts.tiers.{name}");
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'))
        {
            bad(
                &p,
                format!("{name:?} is not a valid tier name; use letters, digits, _ and -"),
            );
            continue;
        }
        let default = DEFAULT_TIERS.iter().find(|d| d.0 == name);
        if default.is_none() && (t.long_window.is_none() || t.short_window.is_none()) {
            bad(
                &p,
                format!(
                    "custom tier {name} needs long_window and short_window (and factor or budget_share); the default tiers are {}",
                    defaults.join(", ")
                ),
            );
            continue;
        }
        if default.is_none() && t.factor.is_none() && t.budget_share.is_none() {
            bad(
                &p,
                format!("custom tier {name} needs factor (e.g. 14.4) or budget_share (e.g. 0.02)"),
            );
        }
        if let Some(f) = t.factor {
            if !(f > 0.0 && f.is_finite()) {
                bad(
                    &format!("{p}.factor"),
                    format!("{f} must be a burn rate above 0, e.g. 14.4"),
                );
            }
        }
        if let Some(b) = t.budget_share {
            if !(b > 0.0 && b <= 1.0) {
                bad(
                    &format!("{p}.budget_share"),
                    format!("{b} must be above 0 and at most 1, e.g. 0.02 for 2% of the budget"),
                );
            }
        }
        if t.factor.is_some() && t.budget_share.is_some() {
            bad(&p, "set factor or budget_share, not both".into());
        }
        let long = t
            .long_window
            .or(default.map(|d| Duration::from_secs(d.2)))
            .unwrap_or_default();
        let short = t
            .short_window
            .or(default.map(|d| Duration::from_secs(d.3)))
            .unwrap_or_default();
        if let Some(l) = t.long_window {
            check_alert_window(&format!("{p}.long_window"), l, bad);
            if l > window {
                bad(
                    &format!("{p}.long_window"),
                    format!(
                        "{} is longer than the SLO window ({}); use at most the SLO window",
                        dur(l),
                        dur(window)
                    ),
                );
            }
        }
        if let Some(s) = t.short_window {
            check_alert_window(&format!("{p}.short_window"), s, bad);
        }
        if short >= long {
            bad(
                &format!("{p}.short_window"),
                format!(
                    "{} is not shorter than the long window ({}); the short window must be shorter, typically long / 12",
                    dur(short),
                    dur(long)
                ),
            );
        }
        if t.severity.as_deref().is_some_and(|s| s.trim().is_empty()) {
            bad(
                &format!("{p}.severity"),
                "must not be empty; e.g. page or ticket".into(),
            );
        }
        check_alert_maps(&format!("{p}."), &t.labels, &t.annotations, bad);
    }
    for (key, c) in [
        ("budget_exhausted", &a.budget_exhausted),
        ("no_data", &a.no_data),
    ] {
        let p = format!("alerts.{key}");
        if c.severity.as_deref().is_some_and(|s| s.trim().is_empty()) {
            bad(
                &format!("{p}.severity"),
                "must not be empty; e.g. page or ticket".into(),
            );
        }
        check_alert_maps(&format!("{p}."), &c.labels, &c.annotations, bad);
    }
}

fn resolve_tier(
    name: &str,
    t: &TierSpec,
    severity: &str,
    long_window: Duration,
    default_short: Duration,
    default_share: f64,
    window: Duration,
) -> AlertTier {
    let factor = match (t.factor, t.budget_share) {
        (Some(f), _) => f,
        (None, Some(s)) => burn_factor(s, window, long_window),
        (None, None) => burn_factor(default_share, window, long_window),
    };
    AlertTier {
        name: name.to_string(),
        severity: t.severity.clone().unwrap_or_else(|| severity.to_string()),
        long_window,
        short_window: t.short_window.unwrap_or(default_short),
        factor,
        for_: t.for_.unwrap_or_default(),
        keep_firing_for: t.keep_firing_for.unwrap_or_default(),
        labels: t.labels.clone(),
        annotations: t.annotations.clone(),
    }
}

/// Order of severities, most severe first: critical, page, error, warning, ticket, info, then
/// any other value.
pub fn severity_rank(severity: &str) -> usize {
    ["critical", "page", "error", "warning", "ticket", "info"]
        .iter()
        .position(|s| *s == severity)
        .unwrap_or(6)
}

/// The longest window any SLO may use (a quarter), and the shortest.
pub const MAX_WINDOW: Duration = Duration::from_secs(92 * 86_400);
/// The shortest SLO window.
pub const MIN_WINDOW: Duration = Duration::from_secs(3600);

/// Loads and validates the SLO files matching `globs` (relative to `base_dir`). Problems are
/// grouped per file; a glob that matches nothing is a problem of `config_file`.
pub fn load_rules(
    globs: &[String],
    base_dir: &Path,
    config_file: &str,
) -> Result<Vec<Slo>, Vec<Problems>> {
    let mut out = Vec::new();
    let mut all_problems = Vec::new();
    let mut seen_ids: HashSet<String> = HashSet::new();
    for (i, pattern) in globs.iter().enumerate() {
        let full = if Path::new(pattern).is_relative() {
            base_dir.join(pattern)
        } else {
            PathBuf::from(pattern)
        };
        let mut files: Vec<PathBuf> = match glob::glob(&full.to_string_lossy()) {
            Ok(paths) => paths
                .filter_map(Result::ok)
                .filter(|p| !is_test_file(p))
                .collect(),
            Err(e) => {
                all_problems.push(single(
                    config_file,
                    &format!("rules[{i}]"),
                    format!("{pattern:?} is not a valid glob: {e}"),
                ));
                continue;
            }
        };
        files.sort();
        if files.is_empty() {
            all_problems.push(single(
                config_file,
                &format!("rules[{i}]"),
                format!("{pattern:?} matches no file; fix the path or remove the entry"),
            ));
        }
        for file in files {
            match load_file(&file) {
                Ok(slos) => {
                    let mut dupes = Vec::new();
                    for (n, slo) in slos.iter().enumerate() {
                        if !seen_ids.insert(slo.id.clone()) {
                            dupes.push(Problem {
                                path: format!("slos[{n}].name"),
                                message: format!(
                                    "SLO {} is defined twice (names are unique per service)",
                                    slo.id
                                ),
                                location: None,
                            });
                        }
                    }
                    if dupes.is_empty() {
                        out.extend(slos);
                    } else {
                        let text = std::fs::read_to_string(&file).unwrap_or_default();
                        let index = LocationIndex::build(&text);
                        for d in &mut dupes {
                            d.location = index.find(&d.path);
                        }
                        all_problems.push(Problems {
                            file: file.display().to_string(),
                            items: dupes,
                        });
                    }
                }
                Err(p) => all_problems.push(p),
            }
        }
    }
    if all_problems.is_empty() {
        Ok(out)
    } else {
        Err(all_problems)
    }
}

/// `foo.test.yaml` files hold `vigil test rules` cases, not SLOs.
fn is_test_file(p: &Path) -> bool {
    p.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.ends_with(".test.yaml") || n.ends_with(".test.yml"))
}

fn single(file: &str, path: &str, message: String) -> Problems {
    Problems {
        file: file.to_string(),
        items: vec![Problem {
            path: path.to_string(),
            message,
            location: None,
        }],
    }
}

/// Loads one SLO file.
pub fn load_file(path: &Path) -> Result<Vec<Slo>, Problems> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|e| single(&name, "", format!("cannot read the SLO file: {e}")))?;
    parse_file(&text, path)
}

/// Parses and validates the text of one SLO file.
pub fn parse_file(text: &str, path: &Path) -> Result<Vec<Slo>, Problems> {
    if super::openslo::is_openslo(text) {
        return super::openslo::parse_openslo_slos(text, path);
    }
    let name = path.display().to_string();
    let value: serde_yaml::Value = serde_yaml::from_str(text).map_err(|e| {
        let loc = e.location().map(|l| (l.line(), l.column()));
        Problems {
            file: name.clone(),
            items: vec![Problem {
                path: String::new(),
                message: format!("invalid YAML: {e}"),
                location: loc,
            }],
        }
    })?;
    let mut problems = Vec::new();
    let parsed = deserialize_collecting::<RawFile>(value, &mut problems);
    let mut slos = Vec::new();
    if let Some(raw) = parsed {
        // Each SLO is read on its own, so that a broken one neither hides the problems of the
        // others nor shifts their paths.
        let mut items = Vec::new();
        for (i, v) in raw.slos.iter().enumerate() {
            let mut item_problems = Vec::new();
            if let Some(spec) = deserialize_collecting::<SloSpec>(v.clone(), &mut item_problems) {
                items.push((i, spec));
            }
            for mut p in item_problems {
                p.path = if p.path.is_empty() {
                    format!("slos[{i}]")
                } else {
                    format!("slos[{i}].{}", p.path)
                };
                problems.push(p);
            }
        }
        let file = SloFile {
            version: raw.version,
            service: raw.service,
            labels: raw.labels,
            slos: Vec::new(),
        };
        slos = validate_file(&file, raw.slos.len(), &items, path, &mut problems);
    }
    problems.dedup();
    if problems.is_empty() {
        return Ok(slos);
    }
    let index = LocationIndex::build(text);
    for p in &mut problems {
        if p.location.is_none() {
            p.location = index.find(&p.path);
        }
    }
    problems.sort_by_key(|p| p.location.unwrap_or((usize::MAX, 0)));
    Err(Problems {
        file: name,
        items: problems,
    })
}

/// [`SloFile`] with the SLOs still as YAML, so that each is deserialized on its own.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    version: Option<String>,
    service: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    slos: Vec<serde_yaml::Value>,
}

fn validate_file(
    f: &SloFile,
    count: usize,
    items: &[(usize, SloSpec)],
    path: &Path,
    problems: &mut Vec<Problem>,
) -> Vec<Slo> {
    let mut bad = |p: String, m: String| {
        problems.push(Problem {
            path: p,
            message: m,
            location: None,
        })
    };
    if let Some(v) = &f.version {
        if v != "vigil/v1" {
            bad(
                "version".into(),
                format!("{v:?} is not a known version; use vigil/v1 or remove the key"),
            );
        }
    }
    if f.service.trim().is_empty() {
        bad(
            "service".into(),
            "must not be empty; it becomes the service label".into(),
        );
    }
    for k in f.labels.keys() {
        if let Err(e) = check_label_name(k) {
            bad(format!("labels.{k}"), e);
        }
    }
    if count == 0 {
        bad("slos".into(), "is empty; define at least one SLO".into());
    }
    let mut names = HashSet::new();
    let mut out = Vec::new();
    for (i, s) in items.iter().map(|(i, s)| (*i, s)) {
        let p = format!("slos[{i}]");
        let mut ok = true;
        let mut bad = |k: &str, m: String| {
            ok = false;
            problems.push(Problem {
                path: if k.is_empty() {
                    p.clone()
                } else {
                    format!("{p}.{k}")
                },
                message: m,
                location: None,
            })
        };
        if s.name.is_empty()
            || !s
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            bad(
                "name",
                format!(
                    "{:?} is not a valid name; use letters, digits, -, _ and .",
                    s.name
                ),
            );
        } else if !names.insert(s.name.clone()) {
            bad(
                "name",
                format!(
                    "{:?} is used twice in this service; SLO names must be unique",
                    s.name
                ),
            );
        }
        if !(s.objective > 0.0 && s.objective < 100.0) {
            bad(
                "objective",
                format!(
                    "{} is out of range; give a percentage above 0 and below 100, e.g. 99.9",
                    s.objective
                ),
            );
        }
        match &s.window {
            Window::Rolling(d) if *d < MIN_WINDOW || *d > MAX_WINDOW => bad(
                "window",
                format!(
                    "{} is out of range; use 1h to 92d (or a calendar window)",
                    humantime::format_duration(*d)
                ),
            ),
            Window::Calendar { time_zone, .. } if time_zone.parse::<chrono_tz::Tz>().is_err() => {
                bad(
                    "window.time_zone",
                    format!(
                        "{time_zone:?} is not an IANA time zone; e.g. UTC, Europe/Berlin, America/New_York"
                    ),
                )
            }
            _ => {}
        }
        match &s.budgeting {
            Some(Budgeting::Timeslices { slice, target }) => {
                check_slice(*slice, &mut bad);
                if !(*target > 0.0 && *target <= 1.0) {
                    bad(
                        "budgeting.timeslices.target",
                        format!(
                            "{target} is not a ratio; use a value above 0 and at most 1, e.g. 0.95"
                        ),
                    );
                }
            }
            Some(Budgeting::RatioTimeslices { slice }) => check_slice(*slice, &mut bad),
            _ => {}
        }
        for k in s.labels.keys() {
            if let Err(e) = check_label_name(k) {
                bad(&format!("labels.{k}"), e);
            }
        }
        for (g, k) in s.group_by.iter().enumerate() {
            if let Err(e) = check_label_name(k) {
                bad(&format!("group_by[{g}]"), e);
            }
        }
        if s.min_events < 0.0 || !s.min_events.is_finite() {
            bad("min_events", format!("{} must be 0 or more", s.min_events));
        }
        check_alerts(&s.alerts, nominal_length(&s.window), &mut bad);
        let mut selectors = Vec::new();
        let mut sel = |key: &str, text: &str, bad: &mut dyn FnMut(&str, String)| match text
            .parse::<Selector>()
        {
            Ok(s) => selectors.push(s),
            Err(e) => bad(
                key,
                format!(
                    "{e}; write a series selector such as http_requests_total{{job=\"api\",code=~\"5..\"}}"
                ),
            ),
        };
        match &s.sli {
            Sli::Ratio(r) => {
                match (&r.errors, &r.good) {
                    (Some(e), None) => sel("sli.ratio.errors", e, &mut bad),
                    (None, Some(g)) => sel("sli.ratio.good", g, &mut bad),
                    (Some(_), Some(_)) => {
                        bad("sli.ratio", "set either errors or good, not both".into())
                    }
                    (None, None) => bad("sli.ratio", "needs errors or good, and total".into()),
                }
                sel("sli.ratio.total", &r.total, &mut bad);
            }
            Sli::Latency(l) => {
                sel("sli.latency.histogram", &l.histogram, &mut bad);
                if !l
                    .histogram
                    .split('{')
                    .next()
                    .unwrap_or_default()
                    .ends_with("_bucket")
                {
                    bad(
                        "sli.latency.histogram",
                        format!(
                            "{:?} should select the histogram's _bucket series, e.g. http_request_duration_seconds_bucket{{job=\"api\"}}",
                            l.histogram
                        ),
                    );
                }
                if !(l.threshold > 0.0 && l.threshold.is_finite()) {
                    bad(
                        "sli.latency.threshold",
                        format!(
                            "{} must be a positive number of seconds equal to one of the histogram's le buckets",
                            l.threshold
                        ),
                    );
                }
            }
            Sli::Uptime(u) => sel("sli.uptime.selector", &u.selector, &mut bad),
            Sli::Threshold(t) => {
                sel("sli.threshold.selector", &t.selector, &mut bad);
                if !t.value.is_finite() {
                    bad("sli.threshold.value", "must be a finite number".into());
                }
            }
        }
        if ok {
            let mut labels = f.labels.clone();
            labels.extend(s.labels.clone());
            let budgeting = s.budgeting.clone().unwrap_or(match s.sli {
                Sli::Ratio(_) | Sli::Latency(_) => Budgeting::Occurrences,
                Sli::Uptime(_) | Sli::Threshold(_) => Budgeting::Timeslices {
                    slice: Duration::from_secs(60),
                    target: 1.0,
                },
            });
            out.push(Slo {
                id: format!("{}/{}", f.service, s.name),
                service: f.service.clone(),
                labels,
                objective: s.objective / 100.0,
                budgeting,
                selectors,
                spec: s.clone(),
                file: path.to_path_buf(),
            });
        }
    }
    out
}

fn check_slice(slice: Duration, bad: &mut dyn FnMut(&str, String)) {
    let secs = slice.as_secs();
    if secs < 60 || secs % 60 != 0 || secs > 3600 || slice.subsec_nanos() != 0 {
        bad(
            "budgeting",
            format!(
                "slice {} must be a whole number of minutes from 1m to 1h",
                humantime::format_duration(slice)
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<Slo>, String> {
        parse_file(text, Path::new("r.yaml")).map_err(|e| e.to_string())
    }

    #[test]
    fn all_sli_kinds_and_defaults() {
        let slos = parse(
            r#"
service: shop
labels: {team: a}
slos:
  - name: avail
    objective: 99.9
    window: 30d
    sli: {ratio: {errors: 'http_requests_total{code=~"5.."}', total: http_requests_total}}
  - name: fast
    objective: 99
    window: {calendar: month, time_zone: Europe/Berlin}
    group_by: [handler]
    budgeting: {timeslices: {slice: 5m, target: 0.95}}
    sli: {latency: {histogram: 'lat_bucket{job="x"}', threshold: 0.25}}
  - name: up
    objective: 99.5
    window: 7d
    sli: {uptime: {selector: 'up{job="x"}'}}
  - name: queue
    objective: 99
    window: {calendar: week}
    labels: {team: b}
    sli: {threshold: {selector: kafka_consumergroup_lag, aggregate: sum, op: "<=", value: 1000}}
"#,
        )
        .expect("valid");
        assert_eq!(slos.len(), 4);
        assert_eq!(slos[0].id, "shop/avail");
        assert!((slos[0].objective - 0.999).abs() < 1e-12);
        assert_eq!(slos[0].budgeting, Budgeting::Occurrences);
        assert_eq!(
            slos[2].budgeting,
            Budgeting::Timeslices {
                slice: Duration::from_secs(60),
                target: 1.0
            }
        );
        assert_eq!(slos[3].labels.get("team").map(String::as_str), Some("b"));
        assert_eq!(slos[1].selectors.len(), 1);
        assert!(
            matches!(slos[3].spec.window, Window::Calendar { unit: CalendarUnit::Week, ref time_zone } if time_zone == "UTC")
        );
    }

    #[test]
    fn every_problem_with_path_and_line() {
        let err = parse(
            "service: s\nslos:\n  - name: a\n    objective: 100\n    window: 2m\n    sli: {ratio: {errors: 'x{', total: y}}\n  - name: a\n    objective: 99\n    window: {calendar: month, time_zone: Mars/Olympus}\n    sli: {latency: {histogram: lat, threshold: 0.3}}\n    extra: 1\n",
        )
        .expect_err("invalid");
        let lines: Vec<&str> = err.lines().collect();
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("r.yaml:4:5: slos[0].objective: 100 is out of range")),
            "{err}"
        );
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("r.yaml:5:5: slos[0].window: 2m is out of range")),
            "{err}"
        );
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("r.yaml:6:")
                    && l.contains("slos[0].sli.ratio.errors: \"x{\"")),
            "{err}"
        );
        assert!(
            lines
                .iter()
                .any(|l| l.contains("slos[1].extra: unknown key")),
            "{err}"
        );
        assert!(
            lines
                .iter()
                .any(|l| l.contains("slos[1].name: \"a\" is used twice")),
            "{err}"
        );
        assert!(
            lines.iter().any(|l| l
                .contains("slos[1].window.time_zone: \"Mars/Olympus\" is not an IANA time zone")),
            "{err}"
        );
        assert!(lines.iter().any(|l| l.contains("slos[1].sli.latency.histogram: \"lat\" should select the histogram's _bucket series")), "{err}");
    }
}
