//! The alerts files (`alerts/*.yaml`, named by `alerts:` globs in `vigil.yaml`), shaped like
//! Alertmanager's configuration: one `route` tree, `receivers`, `inhibit_rules`,
//! `time_intervals`, plus Vigil's threshold `rules`. Several files are merged: exactly one of
//! them holds the `route`, receiver names are unique over all of them.
//!
//! [`load`] reads every file, collects every problem of every file (structural ones from serde,
//! semantic ones from the checks here) as `<file>:<line>:<col>: <yaml.path>: <message>`, and
//! returns the merged [`AlertingConfig`]. Called by `crate::config::ConfigSource::load` (so by
//! `vigil run`, `vigil check config` and reloads).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use super::matcher::Matcher;
use crate::config::{LocationIndex, Problem, Problems, deserialize_collecting};

/// Alertmanager's default `group_wait`.
pub const DEFAULT_GROUP_WAIT: Duration = Duration::from_secs(30);
/// Alertmanager's default `group_interval`.
pub const DEFAULT_GROUP_INTERVAL: Duration = Duration::from_secs(5 * 60);
/// Alertmanager's default `repeat_interval`.
pub const DEFAULT_REPEAT_INTERVAL: Duration = Duration::from_secs(4 * 3600);

/// Everything loaded from the alerts files, merged.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AlertingConfig {
    /// Threshold rules.
    pub rules: Vec<crate::alert::threshold::ThresholdRuleConfig>,
    /// Receivers.
    pub receivers: Vec<super::receivers::ReceiverConfig>,
    /// The routing tree; None when no alerts file is configured (nothing is notified).
    pub route: Option<RouteConfig>,
    /// Inhibit rules of every file.
    pub inhibit_rules: Vec<InhibitRuleConfig>,
    /// Named time intervals of every file, for `mute_time_intervals` / `active_time_intervals`.
    pub time_intervals: Vec<TimeIntervalConfig>,
    /// Delivery settings of the outbox (at most one file sets them).
    pub delivery: super::receivers::DeliveryConfig,
}

/// One alerts file.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertingFile {
    /// The routing tree. Exactly one file of all those loaded has it.
    #[serde(default)]
    pub route: Option<RouteConfig>,
    /// Receivers: where notifications go. Names are unique over all files.
    #[serde(default)]
    pub receivers: Vec<super::receivers::ReceiverConfig>,
    /// Inhibit rules: a firing source alert mutes matching target alerts.
    #[serde(default)]
    pub inhibit_rules: Vec<InhibitRuleConfig>,
    /// Named time intervals, for `mute_time_intervals` and `active_time_intervals` of routes.
    #[serde(default)]
    pub time_intervals: Vec<TimeIntervalConfig>,
    /// Threshold rules.
    #[serde(default)]
    pub rules: Vec<crate::alert::threshold::ThresholdRuleConfig>,
    /// Delivery settings of the outbox (`external_url`, `history_retention`, ...); at most one
    /// file has them.
    #[serde(default)]
    pub delivery: Option<super::receivers::DeliveryConfig>,
}

/// One node of the routing tree (Alertmanager's `route`). Children inherit `receiver`,
/// `group_by` and the three timers from their parent when they do not set them.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Receiver of the alerts that end at this node. Required at the root.
    #[serde(default)]
    pub receiver: Option<String>,
    /// Labels to group by; `['...']` groups by every label (one group per alert); `[]` puts
    /// every alert of the route in one group.
    #[serde(default)]
    pub group_by: Option<Vec<String>>,
    /// How long to wait before the first notification of a new group (default 30s).
    #[serde(default, deserialize_with = "opt_duration")]
    pub group_wait: Option<Duration>,
    /// How long to wait before notifying about changes in a group already notified (default 5m).
    #[serde(default, deserialize_with = "opt_duration")]
    pub group_interval: Option<Duration>,
    /// How long to wait before re-sending an unchanged firing group (default 4h).
    #[serde(default, deserialize_with = "opt_duration")]
    pub repeat_interval: Option<Duration>,
    /// Label matchers an alert must all satisfy to enter this node: `name=value`,
    /// `name!=value`, `name=~regex`, `name!~regex`. Not allowed at the root.
    #[serde(default)]
    pub matchers: Vec<Matcher>,
    /// Keep matching the following siblings after this node matched.
    #[serde(default, rename = "continue")]
    pub continue_matching: bool,
    /// Child routes, tried in order; the first that matches wins unless it has `continue`.
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
    /// Names of `time_intervals` during which notifications of this node are muted.
    #[serde(default)]
    pub mute_time_intervals: Vec<String>,
    /// Names of `time_intervals` outside of which notifications of this node are muted.
    #[serde(default)]
    pub active_time_intervals: Vec<String>,
}

/// One inhibit rule: while an alert matching `source_matchers` fires, alerts matching
/// `target_matchers` that have the same values for the `equal` labels are muted.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InhibitRuleConfig {
    /// Matchers of the inhibiting (source) alert.
    #[serde(default)]
    pub source_matchers: Vec<Matcher>,
    /// Matchers of the muted (target) alerts.
    #[serde(default)]
    pub target_matchers: Vec<Matcher>,
    /// Labels that must have equal values (a missing label counts as empty) in source and
    /// target.
    #[serde(default)]
    pub equal: Vec<String>,
}

/// A named set of time ranges (Alertmanager's `time_intervals[]`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeIntervalConfig {
    /// Name, referenced by `mute_time_intervals` / `active_time_intervals`.
    pub name: String,
    /// The ranges; the interval holds when any of them holds.
    #[serde(default)]
    pub time_intervals: Vec<TimeRangeConfig>,
}

/// One range: every field given must hold (an empty field holds always).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeRangeConfig {
    /// Times of day, `{start_time: "09:00", end_time: "17:00"}` (end exclusive, `24:00` allowed).
    #[serde(default)]
    pub times: Vec<TimeOfDayConfig>,
    /// Weekdays or ranges: `monday`, `monday:friday`.
    #[serde(default)]
    pub weekdays: Vec<String>,
    /// Days of the month or ranges, negative counting from the end: `1`, `1:5`, `-3:-1`.
    #[serde(default)]
    pub days_of_month: Vec<String>,
    /// Months by name or number, or ranges: `january`, `1:3`, `october:december`.
    #[serde(default)]
    pub months: Vec<String>,
    /// Years or ranges: `2026`, `2026:2027`.
    #[serde(default)]
    pub years: Vec<String>,
    /// IANA time zone the range is read in (default UTC), e.g. `Europe/Berlin`.
    #[serde(default)]
    pub location: Option<String>,
}

/// A time-of-day range.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeOfDayConfig {
    /// Start, `HH:MM` (inclusive).
    pub start_time: String,
    /// End, `HH:MM` (exclusive; `24:00` is the end of the day).
    pub end_time: String,
}

fn opt_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    crate::config::duration(d).map(Some)
}

/// Loads the alerts files matched by `globs` (relative to `base_dir`); every problem of every
/// file at once. A glob that matches nothing is a problem of `config_name`.
pub fn load(
    globs: &[String],
    base_dir: &Path,
    config_name: &str,
) -> Result<AlertingConfig, Vec<Problems>> {
    let mut files: Vec<PathBuf> = Vec::new();
    let mut config_problems = Vec::new();
    for (i, pattern) in globs.iter().enumerate() {
        let full = if Path::new(pattern).is_relative() {
            base_dir.join(pattern)
        } else {
            PathBuf::from(pattern)
        };
        match glob::glob(&full.to_string_lossy()) {
            Ok(paths) => {
                let mut found: Vec<PathBuf> = paths.filter_map(Result::ok).collect();
                found.sort();
                if found.is_empty() {
                    config_problems.push(problem(
                        &format!("alerts[{i}]"),
                        format!("{pattern:?} matches no file; fix the path or remove the entry"),
                    ));
                }
                for f in found {
                    if !files.contains(&f) {
                        files.push(f);
                    }
                }
            }
            Err(e) => config_problems.push(problem(
                &format!("alerts[{i}]"),
                format!("{pattern:?} is not a valid glob: {e}"),
            )),
        }
    }
    let mut all = Vec::new();
    if !config_problems.is_empty() {
        all.push(Problems {
            file: config_name.to_string(),
            items: config_problems,
        });
    }
    let mut sources = Vec::new();
    for f in &files {
        let name = f.display().to_string();
        match std::fs::read_to_string(f) {
            Ok(text) => sources.push((name, text)),
            Err(e) => all.push(Problems {
                file: name,
                items: vec![problem("", format!("cannot read the alerts file: {e}"))],
            }),
        }
    }
    match parse_files(&sources, base_dir) {
        Ok(cfg) if all.is_empty() => Ok(cfg),
        Ok(_) => Err(all),
        Err(mut p) => {
            all.append(&mut p);
            Err(all)
        }
    }
}

fn problem(path: &str, message: String) -> Problem {
    Problem {
        path: path.to_string(),
        message,
        location: None,
    }
}

/// One parsed file with its problems so far.
struct Parsed {
    name: String,
    text: String,
    file: Option<AlertingFile>,
    problems: Vec<Problem>,
}

/// Parses and validates alerts files given as (name, text), merged. `base_dir` resolves the
/// relative paths of receivers (e.g. `*_file` keys).
pub fn parse_files(
    sources: &[(String, String)],
    base_dir: &Path,
) -> Result<AlertingConfig, Vec<Problems>> {
    let mut parsed: Vec<Parsed> = sources
        .iter()
        .map(|(name, text)| parse_one(name, text))
        .collect();
    let mut cfg = AlertingConfig::default();

    // Receivers: unique names over all files.
    let mut receiver_at: HashMap<String, (String, usize)> = HashMap::new();
    for p in &mut parsed {
        let Some(f) = &p.file else { continue };
        for (i, r) in f.receivers.iter().enumerate() {
            r.validate(&format!("receivers[{i}]"), base_dir, &mut p.problems);
            if r.name.trim().is_empty() {
                continue;
            }
            if let Some((file, j)) = receiver_at.get(&r.name) {
                let where_ = if *file == p.name {
                    format!("receivers[{j}]")
                } else {
                    format!("{file} receivers[{j}]")
                };
                p.problems.push(problem(
                    &format!("receivers[{i}].name"),
                    format!(
                        "receiver {:?} is already defined ({where_}); receiver names must be unique over all alerts files",
                        r.name
                    ),
                ));
            } else {
                receiver_at.insert(r.name.clone(), (p.name.clone(), i));
            }
        }
    }
    // Threshold rules and delivery settings.
    let mut delivery_file: Option<String> = None;
    for p in &mut parsed {
        let Some(f) = &p.file else { continue };
        for (i, r) in f.rules.iter().enumerate() {
            r.validate(&format!("rules[{i}]"), base_dir, &mut p.problems);
        }
        if let Some(d) = &f.delivery {
            d.validate("delivery", &mut p.problems);
            if let Some(first) = &delivery_file {
                p.problems.push(problem(
                    "delivery",
                    format!("delivery settings are already defined in {first}; keep them in one alerts file"),
                ));
            } else {
                delivery_file = Some(p.name.clone());
            }
        }
    }

    // Time intervals: unique names, valid ranges.
    let mut interval_names: HashSet<String> = HashSet::new();
    for p in &mut parsed {
        let Some(f) = &p.file else { continue };
        for (i, ti) in f.time_intervals.iter().enumerate() {
            let path = format!("time_intervals[{i}]");
            if ti.name.trim().is_empty() {
                p.problems.push(problem(
                    &format!("{path}.name"),
                    "must not be empty; routes refer to time intervals by name".into(),
                ));
            } else if !interval_names.insert(ti.name.clone()) {
                p.problems.push(problem(
                    &format!("{path}.name"),
                    format!(
                        "time interval {:?} is defined twice; names must be unique over all alerts files",
                        ti.name
                    ),
                ));
            }
            for (k, r) in ti.time_intervals.iter().enumerate() {
                for (sub, msg) in super::route::check_time_range(r) {
                    p.problems
                        .push(problem(&format!("{path}.time_intervals[{k}].{sub}"), msg));
                }
            }
        }
    }

    // Exactly one route.
    let mut route_file: Option<String> = None;
    for p in &mut parsed {
        let Some(f) = &p.file else { continue };
        let Some(route) = &f.route else { continue };
        if let Some(first) = &route_file {
            p.problems.push(problem(
                "route",
                format!(
                    "a route is already defined in {first}; keep exactly one route over all alerts files"
                ),
            ));
            continue;
        }
        route_file = Some(p.name.clone());
        let mut out = Vec::new();
        if route
            .receiver
            .as_deref()
            .is_none_or(|r| r.trim().is_empty())
        {
            out.push(problem(
                "route.receiver",
                "the root route needs a receiver (the default for alerts no child route takes); add receiver: <name>".into(),
            ));
        }
        if !route.matchers.is_empty() {
            out.push(problem(
                "route.matchers",
                "the root route matches every alert and cannot have matchers; move them to a child route under routes".into(),
            ));
        }
        check_route(route, "route", &receiver_at, &interval_names, &mut out);
        p.problems.extend(out);
    }
    if route_file.is_none() {
        if let Some(p) = parsed.first_mut() {
            if p.file.is_some() {
                p.problems.push(problem(
                    "route",
                    "no alerts file has a route; add `route: {receiver: <name>}` to one of them"
                        .into(),
                ));
            }
        }
    }

    // Inhibit rules.
    for p in &mut parsed {
        let Some(f) = &p.file else { continue };
        for (i, r) in f.inhibit_rules.iter().enumerate() {
            for (k, l) in r.equal.iter().enumerate() {
                if let Err(e) = crate::config::check_label_name(l) {
                    p.problems
                        .push(problem(&format!("inhibit_rules[{i}].equal[{k}]"), e));
                }
            }
        }
    }

    let mut failed = Vec::new();
    for p in parsed {
        if p.problems.is_empty() {
            if let Some(f) = p.file {
                if f.route.is_some() {
                    cfg.route = f.route;
                }
                cfg.receivers.extend(f.receivers.into_iter().map(|mut r| {
                    // Secrets in `*_file` keys are read at send time: make them absolute now.
                    r.resolve_paths(base_dir);
                    r
                }));
                cfg.inhibit_rules.extend(f.inhibit_rules);
                cfg.time_intervals.extend(f.time_intervals);
                cfg.rules.extend(f.rules);
                if let Some(d) = f.delivery {
                    cfg.delivery = d;
                }
            }
            continue;
        }
        let index = LocationIndex::build(&p.text);
        let mut items = p.problems;
        items.dedup();
        for it in &mut items {
            if it.location.is_none() {
                it.location = index.find(&it.path);
            }
        }
        items.sort_by_key(|it| it.location.unwrap_or((usize::MAX, 0)));
        failed.push(Problems {
            file: p.name,
            items,
        });
    }
    if failed.is_empty() {
        Ok(cfg)
    } else {
        Err(failed)
    }
}

fn parse_one(name: &str, text: &str) -> Parsed {
    let mut out = Parsed {
        name: name.to_string(),
        text: text.to_string(),
        file: None,
        problems: Vec::new(),
    };
    let mut value: serde_yaml::Value = match serde_yaml::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            out.problems.push(Problem {
                path: String::new(),
                message: format!("invalid YAML: {e}"),
                location: e.location().map(|l| (l.line(), l.column())),
            });
            return out;
        }
    };
    if value.is_null() {
        value = serde_yaml::Value::Mapping(Default::default());
    }
    precheck_matchers(&mut value, &mut out.problems);
    out.file = deserialize_collecting::<AlertingFile>(value, &mut out.problems);
    if out.file.is_none() && out.problems.is_empty() {
        out.problems.push(problem(
            "",
            "the alerts file could not be read; see the messages above".into(),
        ));
    }
    out
}

/// Reports every matcher that does not parse, at its exact index, and removes it: serde would
/// stop at the first one of a list and the pruning would shift the indexes of the others.
fn precheck_matchers(value: &mut serde_yaml::Value, problems: &mut Vec<Problem>) {
    fn list(node: &mut serde_yaml::Value, key: &str, path: &str, problems: &mut Vec<Problem>) {
        let Some(serde_yaml::Value::Sequence(items)) = node.get_mut(key) else {
            return;
        };
        let mut bad = Vec::new();
        for (i, item) in items.iter().enumerate() {
            if let Some(text) = item.as_str() {
                if let Err(e) = Matcher::parse(text) {
                    problems.push(problem(&format!("{path}.{key}[{i}]"), e));
                    bad.push(i);
                }
            }
        }
        for i in bad.into_iter().rev() {
            items.remove(i);
        }
    }
    fn route(node: &mut serde_yaml::Value, path: &str, problems: &mut Vec<Problem>) {
        list(node, "matchers", path, problems);
        if let Some(serde_yaml::Value::Sequence(children)) = node.get_mut("routes") {
            for (i, c) in children.iter_mut().enumerate() {
                route(c, &format!("{path}.routes[{i}]"), problems);
            }
        }
    }
    if let Some(r) = value.get_mut("route") {
        route(r, "route", problems);
    }
    if let Some(serde_yaml::Value::Sequence(rules)) = value.get_mut("inhibit_rules") {
        for (i, r) in rules.iter_mut().enumerate() {
            let path = format!("inhibit_rules[{i}]");
            list(r, "source_matchers", &path, problems);
            list(r, "target_matchers", &path, problems);
        }
    }
}

fn check_route(
    r: &RouteConfig,
    path: &str,
    receivers: &HashMap<String, (String, usize)>,
    intervals: &HashSet<String>,
    out: &mut Vec<Problem>,
) {
    if let Some(name) = &r.receiver {
        if !name.trim().is_empty() && !receivers.contains_key(name) {
            let mut known: Vec<&String> = receivers.keys().collect();
            known.sort();
            let known = if known.is_empty() {
                "no receiver is defined; add one under receivers".to_string()
            } else {
                format!(
                    "define it under receivers or use one of: {}",
                    known
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            };
            out.push(problem(
                &format!("{path}.receiver"),
                format!("unknown receiver {name:?}; {known}"),
            ));
        }
    }
    if let Some(group_by) = &r.group_by {
        for (i, g) in group_by.iter().enumerate() {
            if g == "..." {
                if group_by.len() > 1 {
                    out.push(problem(
                        &format!("{path}.group_by[{i}]"),
                        "'...' (group by every label) must be the only entry of group_by".into(),
                    ));
                }
            } else if let Err(e) = crate::config::check_label_name(g) {
                out.push(problem(&format!("{path}.group_by[{i}]"), e));
            }
        }
        let mut seen = HashSet::new();
        for (i, g) in group_by.iter().enumerate() {
            if !seen.insert(g) {
                out.push(problem(
                    &format!("{path}.group_by[{i}]"),
                    format!("{g:?} is listed twice; remove one"),
                ));
            }
        }
    }
    for (key, v) in [
        ("group_interval", r.group_interval),
        ("repeat_interval", r.repeat_interval),
    ] {
        if v == Some(Duration::ZERO) {
            out.push(problem(
                &format!("{path}.{key}"),
                "must be greater than 0; write e.g. 5m".into(),
            ));
        }
    }
    for (key, names) in [
        ("mute_time_intervals", &r.mute_time_intervals),
        ("active_time_intervals", &r.active_time_intervals),
    ] {
        for (i, n) in names.iter().enumerate() {
            if !intervals.contains(n) {
                out.push(problem(
                    &format!("{path}.{key}[{i}]"),
                    format!("unknown time interval {n:?}; define it under time_intervals"),
                ));
            }
        }
    }
    for (i, child) in r.routes.iter().enumerate() {
        check_route(
            child,
            &format!("{path}.routes[{i}]"),
            receivers,
            intervals,
            out,
        );
    }
}

impl AlertingConfig {
    /// The receiver names, in definition order.
    pub fn receiver_names(&self) -> Vec<&str> {
        self.receivers.iter().map(|r| r.name.as_str()).collect()
    }

    /// The named time intervals.
    pub fn time_interval_map(&self) -> BTreeMap<&str, &TimeIntervalConfig> {
        self.time_intervals
            .iter()
            .map(|t| (t.name.as_str(), t))
            .collect()
    }
}
