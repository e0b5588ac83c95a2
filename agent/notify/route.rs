//! The routing tree, compiled from `route:` (Alertmanager's `dispatch.Route`): depth-first
//! matching with `continue`, inheritance of `receiver`, `group_by` and timers, route keys and
//! group keys in Alertmanager's format, and the named time intervals that mute routes.
//! Used by the dispatcher.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{Datelike, TimeZone, Timelike};

use super::matcher::{Matcher, all_match, go_quote, matchers_string};
use crate::notify::config::{
    DEFAULT_GROUP_INTERVAL, DEFAULT_GROUP_WAIT, DEFAULT_REPEAT_INTERVAL, RouteConfig,
    TimeIntervalConfig, TimeRangeConfig,
};

/// How a route groups alerts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupBy {
    /// `['...']`: every label, so one group per alert.
    All,
    /// These labels (missing ones are left out of the group labels).
    Labels(Vec<String>),
}

/// One compiled node of the routing tree.
#[derive(Debug, Clone)]
pub struct Route {
    /// Alertmanager's route key: the parent's key, `/`, and this node's sorted matchers
    /// (`{}` for the root, e.g. `{}/{severity="page"}`).
    pub key: String,
    /// Receiver (inherited when not set).
    pub receiver: String,
    /// Grouping (inherited when not set).
    pub group_by: GroupBy,
    /// Wait before the first notification of a group.
    pub group_wait: Duration,
    /// Wait between notifications about changes of a group.
    pub group_interval: Duration,
    /// Wait before re-sending an unchanged firing group.
    pub repeat_interval: Duration,
    /// Matchers of this node.
    pub matchers: Vec<Matcher>,
    /// Keep matching later siblings after a match.
    pub continue_matching: bool,
    /// Children.
    pub routes: Vec<Route>,
    /// Time intervals during which this node's notifications are muted.
    pub mute_time_intervals: Vec<String>,
    /// Time intervals outside of which this node's notifications are muted.
    pub active_time_intervals: Vec<String>,
}

impl Route {
    /// Compiles the root route (defaults as Alertmanager: group_wait 30s, group_interval 5m,
    /// repeat_interval 4h, grouping by nothing).
    pub fn root(cfg: &RouteConfig) -> Self {
        let base = Route {
            key: String::new(),
            receiver: String::new(),
            group_by: GroupBy::Labels(Vec::new()),
            group_wait: DEFAULT_GROUP_WAIT,
            group_interval: DEFAULT_GROUP_INTERVAL,
            repeat_interval: DEFAULT_REPEAT_INTERVAL,
            matchers: Vec::new(),
            continue_matching: false,
            routes: Vec::new(),
            mute_time_intervals: Vec::new(),
            active_time_intervals: Vec::new(),
        };
        Self::build(cfg, &base, true)
    }

    fn build(cfg: &RouteConfig, parent: &Route, is_root: bool) -> Self {
        let own = matchers_string(&cfg.matchers);
        let key = if is_root {
            own
        } else {
            format!("{}/{own}", parent.key)
        };
        let group_by = match &cfg.group_by {
            None => parent.group_by.clone(),
            Some(g) if g.iter().any(|l| l == "...") => GroupBy::All,
            Some(g) => {
                let mut g = g.clone();
                g.sort();
                g.dedup();
                GroupBy::Labels(g)
            }
        };
        let mut node = Route {
            key,
            receiver: cfg
                .receiver
                .clone()
                .unwrap_or_else(|| parent.receiver.clone()),
            group_by,
            group_wait: cfg.group_wait.unwrap_or(parent.group_wait),
            group_interval: cfg.group_interval.unwrap_or(parent.group_interval),
            repeat_interval: cfg.repeat_interval.unwrap_or(parent.repeat_interval),
            matchers: cfg.matchers.clone(),
            continue_matching: cfg.continue_matching,
            routes: Vec::new(),
            mute_time_intervals: cfg.mute_time_intervals.clone(),
            active_time_intervals: cfg.active_time_intervals.clone(),
        };
        node.routes = cfg
            .routes
            .iter()
            .map(|c| Self::build(c, &node, false))
            .collect();
        node
    }

    /// The nodes an alert with `labels` ends at, in order (Alertmanager's `Route.Match`): a
    /// node that matches hands the alert to its first matching child (and the following ones
    /// while they have `continue`); when no child takes it, the node itself does.
    pub fn matches<'a>(&'a self, labels: &BTreeMap<String, String>) -> Vec<&'a Route> {
        if !all_match(&self.matchers, labels) {
            return Vec::new();
        }
        let mut all = Vec::new();
        for child in &self.routes {
            let m = child.matches(labels);
            let matched = !m.is_empty();
            all.extend(m);
            if matched && !child.continue_matching {
                break;
            }
        }
        if all.is_empty() {
            all.push(self);
        }
        all
    }

    /// The group labels of an alert on this route.
    pub fn group_labels(&self, labels: &BTreeMap<String, String>) -> BTreeMap<String, String> {
        match &self.group_by {
            GroupBy::All => labels.clone(),
            GroupBy::Labels(names) => names
                .iter()
                .filter_map(|n| labels.get(n).map(|v| (n.clone(), v.clone())))
                .collect(),
        }
    }

    /// Alertmanager's group key: `<route key>:<group labels>`, e.g.
    /// `{}/{severity="page"}:{alertname="X", slo="api"}`.
    pub fn group_key(&self, group_labels: &BTreeMap<String, String>) -> String {
        format!("{}:{}", self.key, label_set_string(group_labels))
    }
}

/// `model.LabelSet.String()`: `{a="b", c="d"}` (sorted, `, ` separated).
pub fn label_set_string(labels: &BTreeMap<String, String>) -> String {
    let parts: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}={}", go_quote(v)))
        .collect();
    format!("{{{}}}", parts.join(", "))
}

/// A compiled named time interval.
#[derive(Debug, Clone, Default)]
pub struct TimeInterval {
    ranges: Vec<TimeRange>,
}

#[derive(Debug, Clone, Default)]
struct TimeRange {
    /// Minutes of the day, [start, end).
    times: Vec<(u32, u32)>,
    /// 0 = Sunday.
    weekdays: Vec<(i32, i32)>,
    days_of_month: Vec<(i32, i32)>,
    months: Vec<(i32, i32)>,
    years: Vec<(i32, i32)>,
    tz: Option<chrono_tz::Tz>,
    never: bool,
}

impl TimeInterval {
    /// Compiles a validated interval (invalid parts are skipped; [`check_time_range`] reports
    /// them at load).
    pub fn compile(cfg: &TimeIntervalConfig) -> Self {
        let ranges = cfg
            .time_intervals
            .iter()
            .map(|r| TimeRange {
                times: r
                    .times
                    .iter()
                    .filter_map(|t| Some((hhmm(&t.start_time).ok()?, hhmm(&t.end_time).ok()?)))
                    .collect(),
                weekdays: r
                    .weekdays
                    .iter()
                    .filter_map(|w| range(w, weekday).ok())
                    .collect(),
                days_of_month: r
                    .days_of_month
                    .iter()
                    .filter_map(|d| range(d, day_of_month).ok())
                    .collect(),
                months: r
                    .months
                    .iter()
                    .filter_map(|m| range(m, month).ok())
                    .collect(),
                years: r.years.iter().filter_map(|y| range(y, year).ok()).collect(),
                tz: r.location.as_deref().and_then(|l| l.parse().ok()),
                // A part that does not compile (reported at load) never matches.
                never: !check_time_range(r).is_empty(),
            })
            .collect();
        Self { ranges }
    }

    /// Whether the instant `ms` (since the epoch) lies in the interval.
    pub fn contains(&self, ms: i64) -> bool {
        self.ranges.iter().any(|r| r.contains(ms))
    }
}

impl TimeRange {
    fn contains(&self, ms: i64) -> bool {
        if self.never {
            return false;
        }
        let Some(utc) = chrono::DateTime::from_timestamp_millis(ms) else {
            return false;
        };
        let tz = self.tz.unwrap_or(chrono_tz::UTC);
        let t = tz.from_utc_datetime(&utc.naive_utc());
        let minute = t.hour() * 60 + t.minute();
        let in_any =
            |v: &[(i32, i32)], x: i32| v.is_empty() || v.iter().any(|(a, b)| *a <= x && x <= *b);
        let times_ok =
            self.times.is_empty() || self.times.iter().any(|(a, b)| *a <= minute && minute < *b);
        let days_in_month = days_in_month(t.year(), t.month());
        let day = t.day() as i32;
        let dom_ok = self.days_of_month.is_empty()
            || self.days_of_month.iter().any(|(a, b)| {
                let fix = |d: i32| if d < 0 { days_in_month + 1 + d } else { d };
                fix(*a) <= day && day <= fix(*b)
            });
        times_ok
            && dom_ok
            && in_any(&self.weekdays, t.weekday().num_days_from_sunday() as i32)
            && in_any(&self.months, t.month() as i32)
            && in_any(&self.years, t.year())
    }
}

fn days_in_month(year: i32, month: u32) -> i32 {
    let (ny, nm) = if month == 12 {
        (year + 1, 1)
    } else {
        (year, month + 1)
    };
    chrono::NaiveDate::from_ymd_opt(ny, nm, 1)
        .and_then(|d| d.pred_opt())
        .map(|d| d.day() as i32)
        .unwrap_or(31)
}

/// Every problem of one time range, as (key relative to the range, message).
pub fn check_time_range(r: &TimeRangeConfig) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (i, t) in r.times.iter().enumerate() {
        match (hhmm(&t.start_time), hhmm(&t.end_time)) {
            (Err(e), _) => out.push((format!("times[{i}].start_time"), e)),
            (_, Err(e)) => out.push((format!("times[{i}].end_time"), e)),
            (Ok(a), Ok(b)) if a >= b => out.push((
                format!("times[{i}].end_time"),
                "must be after start_time (ranges do not cross midnight; split them)".into(),
            )),
            _ => {}
        }
    }
    let lists: [(&str, &Vec<String>, ParseFn); 4] = [
        ("weekdays", &r.weekdays, weekday),
        ("days_of_month", &r.days_of_month, day_of_month),
        ("months", &r.months, month),
        ("years", &r.years, year),
    ];
    for (key, items, parse) in lists {
        for (i, item) in items.iter().enumerate() {
            if let Err(e) = range(item, parse) {
                out.push((format!("{key}[{i}]"), e));
            }
        }
    }
    if let Some(l) = &r.location {
        if l.parse::<chrono_tz::Tz>().is_err() {
            out.push((
                "location".into(),
                format!(
                    "{l:?} is not a known time zone; use an IANA name like Europe/Berlin or UTC"
                ),
            ));
        }
    }
    out
}

/// Parses one end of a range.
type ParseFn = fn(&str) -> Result<i32, String>;

fn hhmm(s: &str) -> Result<u32, String> {
    let bad = || format!("{s:?} is not a time of day; write HH:MM, e.g. 09:00 or 24:00");
    let (h, m) = s.split_once(':').ok_or_else(bad)?;
    let h: u32 = h.trim().parse().map_err(|_| bad())?;
    let m: u32 = m.trim().parse().map_err(|_| bad())?;
    if m >= 60 || h > 24 || (h == 24 && m != 0) {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

fn range(s: &str, parse: ParseFn) -> Result<(i32, i32), String> {
    let (a, b) = match s.split_once(':') {
        Some((a, b)) => (parse(a.trim())?, parse(b.trim())?),
        None => {
            let v = parse(s.trim())?;
            (v, v)
        }
    };
    let ordered = if a < 0 && b < 0 || a >= 0 && b >= 0 {
        a <= b
    } else {
        true
    };
    if !ordered {
        return Err(format!("{s:?}: the start of the range is after its end"));
    }
    Ok((a, b))
}

const WEEKDAYS: [&str; 7] = [
    "sunday",
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
];
const MONTHS: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];

fn weekday(s: &str) -> Result<i32, String> {
    WEEKDAYS
        .iter()
        .position(|w| w.eq_ignore_ascii_case(s))
        .map(|p| p as i32)
        .ok_or_else(|| {
            format!("{s:?} is not a weekday; write monday, tuesday, ... or monday:friday")
        })
}

fn month(s: &str) -> Result<i32, String> {
    if let Some(p) = MONTHS.iter().position(|m| m.eq_ignore_ascii_case(s)) {
        return Ok(p as i32 + 1);
    }
    match s.parse::<i32>() {
        Ok(n) if (1..=12).contains(&n) => Ok(n),
        _ => Err(format!(
            "{s:?} is not a month; write january..december, 1..12 or a range like 1:3"
        )),
    }
}

fn day_of_month(s: &str) -> Result<i32, String> {
    match s.parse::<i32>() {
        Ok(n) if (1..=31).contains(&n) || (-31..=-1).contains(&n) => Ok(n),
        _ => Err(format!(
            "{s:?} is not a day of the month; write 1..31, -31..-1 (from the end) or a range like 1:5"
        )),
    }
}

fn year(s: &str) -> Result<i32, String> {
    match s.parse::<i32>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("{s:?} is not a year; write e.g. 2026 or 2026:2027")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn tree(yaml: &str) -> Route {
        let cfg: RouteConfig = serde_yaml::from_str(yaml).unwrap_or_else(|e| panic!("{e}"));
        Route::root(&cfg)
    }

    const TREE: &str = r#"
receiver: default
group_by: [alertname]
routes:
  - matchers: [severity="page"]
    receiver: pager
    group_wait: 10s
    routes:
      - matchers: [team=db]
        receiver: dba
        continue: true
      - matchers: [team=~"db|web"]
        group_by: ['...']
  - matchers: [severity=ticket]
    receiver: tickets
    continue: true
  - matchers: [severity=~ticket|info]
    receiver: chat
    repeat_interval: 1h
"#;

    #[test]
    fn depth_first_with_continue_and_inheritance() {
        let root = tree(TREE);
        let ends = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            root.matches(&labels(pairs))
                .iter()
                .map(|r| (r.key.clone(), r.receiver.clone()))
                .collect()
        };
        assert_eq!(
            ends(&[("severity", "page"), ("team", "db")]),
            vec![
                (r#"{}/{severity="page"}/{team="db"}"#.into(), "dba".into()),
                (
                    r#"{}/{severity="page"}/{team=~"db|web"}"#.into(),
                    "pager".into()
                ),
            ]
        );
        assert_eq!(
            ends(&[("severity", "page"), ("team", "ops")]),
            vec![(r#"{}/{severity="page"}"#.into(), "pager".into())]
        );
        assert_eq!(
            ends(&[("severity", "ticket")]),
            vec![
                (r#"{}/{severity="ticket"}"#.into(), "tickets".into()),
                (r#"{}/{severity=~"ticket|info"}"#.into(), "chat".into()),
            ]
        );
        assert_eq!(
            ends(&[("severity", "x")]),
            vec![("{}".into(), "default".into())]
        );

        let page = &root.routes[0];
        assert_eq!(page.group_wait, Duration::from_secs(10));
        assert_eq!(page.group_interval, DEFAULT_GROUP_INTERVAL);
        assert_eq!(page.group_by, GroupBy::Labels(vec!["alertname".into()]));
        assert_eq!(page.routes[0].group_wait, Duration::from_secs(10));
        assert_eq!(page.routes[1].group_by, GroupBy::All);
        assert_eq!(root.routes[2].repeat_interval, Duration::from_secs(3600));
    }

    #[test]
    fn group_keys_as_alertmanager() {
        let root = tree(TREE);
        let l = labels(&[("alertname", "X"), ("severity", "page"), ("team", "ops")]);
        let r = root.matches(&l)[0];
        assert_eq!(
            r.group_key(&r.group_labels(&l)),
            r#"{}/{severity="page"}:{alertname="X"}"#
        );
        let l2 = labels(&[("alertname", "Y"), ("severity", "page"), ("team", "web")]);
        let r2 = root.matches(&l2)[0];
        assert_eq!(
            r2.group_key(&r2.group_labels(&l2)),
            r#"{}/{severity="page"}/{team=~"db|web"}:{alertname="Y", severity="page", team="web"}"#
        );
    }

    #[test]
    fn time_intervals() {
        let cfg: TimeIntervalConfig = serde_yaml::from_str(
            r#"
name: offhours
time_intervals:
  - weekdays: ['saturday', 'sunday']
  - times: [{start_time: "18:00", end_time: "24:00"}]
    weekdays: ['monday:friday']
    location: Europe/Berlin
"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let ti = TimeInterval::compile(&cfg);
        let at = |s: &str| {
            chrono::DateTime::parse_from_rfc3339(s)
                .map(|t| t.timestamp_millis())
                .unwrap_or_default()
        };
        // 2026-11-21 is a Saturday.
        assert!(ti.contains(at("2026-11-21T12:00:00Z")));
        // Monday 17:30 UTC = 18:30 in Berlin.
        assert!(ti.contains(at("2026-11-23T17:30:00Z")));
        assert!(!ti.contains(at("2026-11-23T16:30:00Z")));
        let bad: TimeRangeConfig = serde_yaml::from_str(
            "{times: [{start_time: '10:00', end_time: '09:00'}], weekdays: [funday], months: ['13'], location: Mars/Base}",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let keys: Vec<String> = check_time_range(&bad).into_iter().map(|(k, _)| k).collect();
        assert_eq!(
            keys,
            vec!["times[0].end_time", "weekdays[0]", "months[0]", "location"]
        );
    }
}
