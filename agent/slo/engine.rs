//! The evaluation engine: turns store snapshots into per-SLO (and per group) event buckets and
//! computes, per window, the SLI, error ratio, burn rate, error budget remaining and time to
//! exhaustion. Pure with respect to time: every call takes `now_ms`, so tests drive it with
//! synthetic series and clocks.
//!
//! - Counters (ratio, latency): per-series deltas between scrapes; a value lower than the last
//!   one is a counter reset and counts from 0 (as Prometheus' `increase`). The first sample of a
//!   series sets the baseline and counts nothing, so events from before the agent saw the
//!   series (or while it was down) never count as good.
//! - Gauges (uptime, threshold): one observation per group per round.
//! - Time slices: observations are collected per slice and each finished slice becomes one
//!   good or bad event (or, for ratio time slices, its bad share).
//! - No traffic (0 events) burns nothing; a primary selector that matches no series is "no
//!   data", or "target down" when the `up` series of its job is 0.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use chrono_tz::Tz;

use super::budget::{self, Counts};
use super::calendar;
use super::spec::{Aggregate, Budgeting, Sli, Slo, Window};
use super::window::{Buckets, WindowSpec, alerting_windows, window_name};
use crate::store::selector::MatchOp;
use crate::store::series::{LabelSet, Snapshot};

/// Role of a series in an SLO.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Role {
    /// Counter of bad events.
    Bad,
    /// Counter of good events.
    Good,
    /// Counter of all events.
    Total,
    /// Histogram bucket at the threshold.
    LatencyGood,
    /// Histogram `+Inf` bucket.
    LatencyTotal,
    /// Another bucket of the histogram (only used to name the existing buckets).
    OtherBucket(f64),
    /// Gauge (uptime, threshold).
    Gauge,
}

/// State of an SLO in the last round.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    /// Series matched and evaluated.
    Ok,
    /// The primary selector matched no series.
    NoData,
    /// No series matched and the `up` series of the selector's job is 0.
    TargetDown,
    /// The spec does not fit the data (e.g. a latency threshold that is not a bucket).
    Invalid,
}

/// One window of one instance.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct WindowStatus {
    /// `5m` … `3d`, then the SLO window (`30d`, `month`).
    pub window: String,
    /// Good events.
    pub good: f64,
    /// All events.
    pub total: f64,
    /// bad / total, None without traffic.
    pub error_ratio: Option<f64>,
    /// 1 - error ratio, None without traffic.
    pub sli: Option<f64>,
    /// error ratio / (1 - objective); 0 without traffic.
    pub burn_rate: f64,
}

/// One SLO instance (one value of the `group_by` labels).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct InstanceStatus {
    /// The group labels.
    pub group: BTreeMap<String, String>,
    /// Per window, the alerting windows first, the SLO window last.
    pub windows: Vec<WindowStatus>,
    /// Error budget remaining over the SLO window (1 untouched, may go negative).
    pub error_budget_remaining: f64,
    /// Seconds until the budget is spent at the 1h burn rate (+Inf when nothing burns).
    pub time_to_exhaustion_seconds: f64,
    /// Good events counted since the agent started.
    pub events_good: f64,
    /// Events counted since the agent started.
    pub events_total: f64,
}

/// A completed calendar period.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PeriodRecord {
    /// SLO id.
    pub slo: String,
    /// Group key (JSON array of the group label values).
    pub group: String,
    /// Human name (`2026-11`).
    pub name: String,
    /// Start, ms.
    pub start_ms: i64,
    /// End (exclusive), ms.
    pub end_ms: i64,
    /// Good events.
    pub good: f64,
    /// All events.
    pub total: f64,
    /// Objective ratio at the time.
    pub objective: f64,
    /// Whether the SLI met the objective (a period without traffic is met).
    pub met: bool,
    /// Share of the budget used (1 = all of it).
    pub budget_used: f64,
}

/// The result of a round for one SLO.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SloStatus {
    /// `service/name`.
    pub id: String,
    /// Service.
    pub service: String,
    /// Name.
    pub name: String,
    /// Objective as a ratio.
    pub objective: f64,
    /// Name of the SLO window (`30d`, `month`).
    pub window: String,
    /// Condition of the round.
    pub condition: Condition,
    /// Why the condition is not ok, in words.
    pub problem: Option<String>,
    /// Instances, by group.
    pub instances: Vec<InstanceStatus>,
    /// Minimum events per window before burn alerts may fire.
    pub min_events: f64,
    /// The SLO itself (labels, alert tiers), for the alert engine.
    #[serde(skip)]
    pub slo: Arc<Slo>,
}

struct Instance {
    buckets: Buckets,
    slices: BTreeMap<i64, Counts>,
    events: Counts,
    period: Option<(i64, i64)>,
}

struct SloState {
    slo: Arc<Slo>,
    windows: Vec<WindowSpec>,
    tz: Option<Tz>,
    instances: BTreeMap<Vec<String>, Instance>,
    condition: Condition,
    problem: Option<String>,
}

struct CounterTrack {
    last: f64,
    last_ts: i64,
}

struct MatchEntry {
    roles: Vec<(usize, Role)>,
    seen_round: u64,
}

/// The engine.
pub struct Engine {
    slos: Vec<SloState>,
    /// SLOs whose selectors fix a metric name, by that name: a new series is matched only
    /// against the SLOs that can use it, not against all of them.
    by_name: HashMap<String, Vec<usize>>,
    /// SLOs with a selector that does not fix the metric name.
    unnamed: Vec<usize>,
    /// SLOs by (metric name, label, value) of a selector's first equality matcher.
    by_pair: HashMap<String, Vec<usize>>,
    /// SLO index by id, for loading ledger rows.
    by_id: HashMap<String, usize>,
    counters: HashMap<u64, CounterTrack>,
    matches: HashMap<u64, MatchEntry>,
    /// Per source: the series list last walked and the positions in it that any SLO uses (or
    /// `up`). A source whose series list is unchanged (shared `Arc`) is visited only at those
    /// positions, so a round costs O(series SLOs use), not O(series scraped).
    relevant: HashMap<String, Relevant>,
    round: u64,
}

struct Relevant {
    series: Arc<[Arc<crate::store::series::Series>]>,
    positions: Vec<u32>,
}

/// Encodes group label values as the ledger and API key.
pub fn group_key(values: &[String]) -> String {
    serde_json::to_string(values).unwrap_or_else(|_| "[]".into())
}

fn new_instance(slo: &Slo) -> Instance {
    Instance {
        buckets: Buckets::new(slo.window_length()),
        slices: BTreeMap::new(),
        events: Counts::default(),
        period: None,
    }
}

/// The windows an SLO reports: the standard alerting windows, the windows of its alert tiers,
/// then the SLO window last.
fn windows_of(slo: &Slo) -> (Vec<WindowSpec>, Option<Tz>) {
    let mut windows = alerting_windows();
    for d in slo.alert_windows() {
        let name = window_name(d);
        if !windows.iter().any(|w| w.name == name) {
            windows.push(WindowSpec {
                name,
                length_ms: d.as_millis() as i64,
            });
        }
    }
    let tz = match &slo.spec.window {
        Window::Rolling(d) => {
            let name = window_name(*d);
            windows.retain(|w| w.name != name);
            windows.push(WindowSpec {
                name,
                length_ms: d.as_millis() as i64,
            });
            None
        }
        Window::Calendar { unit, time_zone } => {
            windows.push(WindowSpec {
                name: format!("{unit:?}").to_lowercase(),
                length_ms: 0,
            });
            time_zone.parse::<Tz>().ok()
        }
    };
    (windows, tz)
}

impl SloState {
    fn new(slo: Arc<Slo>) -> Self {
        let (windows, tz) = windows_of(&slo);
        Self {
            slo,
            windows,
            tz,
            instances: BTreeMap::new(),
            condition: Condition::NoData,
            problem: None,
        }
    }

    fn group_of(&self, labels: &LabelSet) -> Vec<String> {
        self.slo
            .spec
            .group_by
            .iter()
            .map(|k| labels.get(k).unwrap_or("").to_string())
            .collect()
    }

    fn instance(&mut self, group: Vec<String>) -> &mut Instance {
        let slo = self.slo.clone();
        self.instances
            .entry(group)
            .or_insert_with(|| new_instance(&slo))
    }

    /// Records raw events of an instance at `t_ms` according to the budgeting.
    fn record(&mut self, group: Vec<String>, t_ms: i64, now_ms: i64, c: Counts) {
        let budgeting = self.slo.budgeting.clone();
        let inst = self.instance(group);
        inst.events.add(c);
        match budgeting {
            Budgeting::Occurrences => inst.buckets.add(t_ms, now_ms, c),
            Budgeting::Timeslices { slice, .. } | Budgeting::RatioTimeslices { slice } => {
                let len = slice.as_millis() as i64;
                let start = t_ms.min(now_ms).div_euclid(len) * len;
                inst.slices.entry(start).or_default().add(c);
            }
        }
    }

    /// Turns finished slices into events.
    fn close_slices(&mut self, now_ms: i64) {
        let (len, target) = match self.slo.budgeting {
            Budgeting::Occurrences => return,
            Budgeting::Timeslices { slice, target } => (slice.as_millis() as i64, Some(target)),
            Budgeting::RatioTimeslices { slice } => (slice.as_millis() as i64, None),
        };
        for inst in self.instances.values_mut() {
            let done: Vec<i64> = inst
                .slices
                .range(..now_ms - len + 1)
                .map(|(k, _)| *k)
                .filter(|k| k + len <= now_ms)
                .collect();
            for start in done {
                let Some(raw) = inst.slices.remove(&start) else {
                    continue;
                };
                let Some(err) = raw.error_ratio() else {
                    continue;
                };
                let good_ratio = 1.0 - err;
                let bad = match target {
                    Some(t) => f64::from(u8::from(good_ratio < t)),
                    None => err,
                };
                inst.buckets
                    .add(start + len - 1, now_ms, Counts { bad, total: 1.0 });
            }
        }
    }
}

impl Engine {
    /// An engine for `slos`.
    pub fn new(slos: Vec<Arc<Slo>>) -> Self {
        let mut e = Self {
            slos: slos.into_iter().map(SloState::new).collect(),
            by_name: HashMap::new(),
            unnamed: Vec::new(),
            by_id: HashMap::new(),
            by_pair: HashMap::new(),
            counters: HashMap::new(),
            matches: HashMap::new(),
            relevant: HashMap::new(),
            round: 0,
        };
        e.index();
        e
    }

    fn index(&mut self) {
        self.by_name.clear();
        self.unnamed.clear();
        self.by_id = self
            .slos
            .iter()
            .enumerate()
            .map(|(i, s)| (s.slo.id.clone(), i))
            .collect();
        self.by_pair.clear();
        for (i, st) in self.slos.iter().enumerate() {
            let mut keys: Vec<String> = Vec::new();
            let mut names: Vec<&str> = Vec::new();
            let mut any_unnamed = false;
            for sel in &st.slo.selectors {
                match sel.metric_name() {
                    // Most selectors also fix a label (`job="checkout"`): index by name and
                    // that pair, so that SLOs sharing a metric name do not all see each series.
                    Some(n) => match sel.matchers.iter().find(|m| {
                        m.name != "__name__" && m.op == MatchOp::Equal && !m.value.is_empty()
                    }) {
                        Some(m) => keys.push(pair_key(n, &m.name, &m.value)),
                        None => names.push(n),
                    },
                    None => any_unnamed = true,
                }
            }
            if any_unnamed {
                self.unnamed.push(i);
            }
            names.sort_unstable();
            names.dedup();
            for n in names {
                self.by_name.entry(n.to_string()).or_default().push(i);
            }
            keys.sort_unstable();
            keys.dedup();
            for k in keys {
                self.by_pair.entry(k).or_default().push(i);
            }
        }
    }

    /// Replaces the SLOs, keeping the state of those whose definition did not change.
    pub fn reconfigure(&mut self, slos: Vec<Arc<Slo>>) {
        let mut old: HashMap<String, SloState> =
            self.slos.drain(..).map(|s| (s.slo.id.clone(), s)).collect();
        self.slos = slos
            .into_iter()
            .map(|slo| match old.remove(&slo.id) {
                Some(mut st) if same_definition(&st.slo, &slo) => {
                    // Alert tiers may have changed the windows to report.
                    st.windows = windows_of(&slo).0;
                    st.slo = slo;
                    st
                }
                _ => SloState::new(slo),
            })
            .collect();
        self.matches.clear();
        self.relevant.clear();
        self.index();
    }

    /// The SLOs, in order.
    pub fn slos(&self) -> Vec<Arc<Slo>> {
        self.slos.iter().map(|s| s.slo.clone()).collect()
    }

    /// Loads a bucket row from the ledger (`resolution_s` 60 or 3600; `idx` = start / resolution).
    pub fn load_bucket(&mut self, slo: &str, group: &str, resolution_s: i64, idx: i64, c: Counts) {
        let Some(st) = self.by_id.get(slo).and_then(|&i| self.slos.get_mut(i)) else {
            return;
        };
        let values: Vec<String> = serde_json::from_str(group).unwrap_or_default();
        if values.len() != st.slo.spec.group_by.len() {
            return;
        }
        let inst = st.instance(values);
        if resolution_s == 60 {
            inst.buckets.set_minute(idx, c);
        } else {
            inst.buckets.set_hour(idx, c);
        }
    }

    /// Buckets changed since the last call, per SLO and group: (slo id, group key, resolution
    /// seconds, index, counts).
    pub fn take_dirty(&mut self) -> Vec<(String, String, i64, i64, Counts)> {
        let mut out = Vec::new();
        for st in &mut self.slos {
            for (group, inst) in &mut st.instances {
                let key = group_key(group);
                let (mins, hours) = inst.buckets.take_dirty();
                out.extend(
                    mins.into_iter()
                        .map(|(i, c)| (st.slo.id.clone(), key.clone(), 60, i, c)),
                );
                out.extend(
                    hours
                        .into_iter()
                        .map(|(i, c)| (st.slo.id.clone(), key.clone(), 3600, i, c)),
                );
            }
        }
        out
    }

    /// One evaluation round over the store's snapshots. Returns the status of every SLO and
    /// the calendar periods that ended.
    pub fn round(
        &mut self,
        now_ms: i64,
        snapshots: &[(String, Arc<Snapshot>)],
    ) -> (Vec<SloStatus>, Vec<PeriodRecord>) {
        self.round += 1;
        let round = self.round;
        let n = self.slos.len();
        let mut matched = vec![0usize; n];
        let mut buckets_seen: Vec<Vec<f64>> = vec![Vec::new(); n];
        let mut gauges: Vec<BTreeMap<Vec<String>, Vec<f64>>> = vec![BTreeMap::new(); n];
        let mut up_by_job: HashMap<String, f64> = HashMap::new();

        // Without SLOs there is nothing to match (and a node scraping many targets should not pay
        // for walking them).
        let walk = if n == 0 { &[][..] } else { snapshots };
        // Split borrows: the cached roles of a series are read while the SLOs and counter
        // tracks are updated, without cloning the roles for every sample.
        let Self {
            slos,
            counters,
            matches,
            by_name,
            by_pair,
            unnamed,
            relevant,
            ..
        } = self;
        for (source, snap) in walk {
            let known = relevant
                .get(source.as_str())
                .filter(|r| Arc::ptr_eq(&r.series, &snap.series))
                .map(|r| &r.positions);
            let mut fresh = Vec::new();
            let positions: Box<dyn Iterator<Item = usize> + '_> = match known {
                Some(p) => Box::new(p.iter().map(|&i| i as usize)),
                None => Box::new(0..snap.len()),
            };
            let walking_all = known.is_none();
            for i in positions {
                let Some(series) = snap.series.get(i) else {
                    continue;
                };
                let sample = crate::store::series::SampleRef {
                    series,
                    value: snap.values[i],
                    timestamp_ms: snap
                        .timestamps_ms
                        .get(i)
                        .copied()
                        .unwrap_or(snap.collected_at_ms),
                };
                let labels = &sample.series.labels;
                if labels.name() == "up" {
                    if let Some(job) = labels.get("job") {
                        let e = up_by_job.entry(job.to_string()).or_insert(1.0);
                        *e = e.min(sample.value);
                    }
                }
                let id = sample.series.id;
                let entry = matches.entry(id).or_insert_with(|| {
                    let name = labels.name();
                    let named = by_name.get(name).map(Vec::as_slice).unwrap_or(&[]);
                    let mut candidates: Vec<usize> =
                        named.iter().chain(unnamed.iter()).copied().collect();
                    if !by_pair.is_empty() {
                        for (k, v) in labels.iter() {
                            if let Some(list) = by_pair.get(&pair_key(name, k, v)) {
                                candidates.extend_from_slice(list);
                            }
                        }
                    }
                    candidates.sort_unstable();
                    candidates.dedup();
                    MatchEntry {
                        roles: roles_of(slos, &candidates, labels),
                        seen_round: round,
                    }
                });
                entry.seen_round = round;
                if walking_all && (!entry.roles.is_empty() || labels.name() == "up") {
                    fresh.push(i as u32);
                }
                // Counter delta (computed once per series, shared by every SLO using it).
                let mut delta = None;
                for &(i, role) in &entry.roles {
                    matched[i] += usize::from(matches!(
                        role,
                        Role::Total | Role::LatencyTotal | Role::Gauge
                    ));
                    match role {
                        Role::OtherBucket(le) => buckets_seen[i].push(le),
                        Role::Gauge => {
                            let g = slos[i].group_of(labels);
                            gauges[i].entry(g).or_default().push(sample.value);
                        }
                        _ => {
                            let d = *delta.get_or_insert_with(|| {
                                counter_delta(counters, id, sample.value, sample.timestamp_ms)
                            });
                            let g = slos[i].group_of(labels);
                            // The group exists from its first series on, even before it has
                            // events (its first sample is only a baseline).
                            let Some(d) = d else {
                                slos[i].instance(g);
                                continue;
                            };
                            let c = match role {
                                Role::Bad => Counts { bad: d, total: 0.0 },
                                Role::Good | Role::LatencyGood => Counts {
                                    bad: -d,
                                    total: 0.0,
                                },
                                Role::Total | Role::LatencyTotal => Counts {
                                    bad: if good_based(&slos[i]) { d } else { 0.0 },
                                    total: d,
                                },
                                _ => continue,
                            };
                            if role == Role::LatencyGood {
                                buckets_seen[i].push(f64::NAN);
                            }
                            slos[i].record(g, sample.timestamp_ms, now_ms, c);
                        }
                    }
                }
            }
            if walking_all {
                relevant.insert(
                    source.clone(),
                    Relevant {
                        series: snap.series.clone(),
                        positions: fresh,
                    },
                );
            }
        }
        if walk.len() != self.relevant.len() {
            let live: std::collections::HashSet<&str> =
                walk.iter().map(|(k, _)| k.as_str()).collect();
            self.relevant.retain(|k, _| live.contains(k.as_str()));
        }
        if round % 64 == 0 {
            self.matches.retain(|_, e| e.seen_round + 64 > round);
            let live: std::collections::HashSet<u64> = self.matches.keys().copied().collect();
            self.counters.retain(|id, _| live.contains(id));
        }

        let mut statuses = Vec::with_capacity(n);
        let mut periods = Vec::new();
        for (i, st) in self.slos.iter_mut().enumerate() {
            // Gauge SLIs: one observation per group per round.
            let slo = st.slo.clone();
            match &slo.spec.sli {
                Sli::Uptime(_) => {
                    for (g, values) in std::mem::take(&mut gauges[i]) {
                        // NaN counts as down.
                        let bad = values.iter().filter(|v| v.is_nan() || **v < 1.0).count() as f64;
                        st.record(
                            g,
                            now_ms,
                            now_ms,
                            Counts {
                                bad,
                                total: values.len() as f64,
                            },
                        );
                    }
                }
                Sli::Threshold(t) => {
                    for (g, values) in std::mem::take(&mut gauges[i]) {
                        let agg = aggregate(t.aggregate, &values);
                        let good = t.op.holds(agg, t.value);
                        st.record(
                            g,
                            now_ms,
                            now_ms,
                            Counts {
                                bad: f64::from(u8::from(!good)),
                                total: 1.0,
                            },
                        );
                    }
                }
                _ => {}
            }
            st.close_slices(now_ms);
            let (condition, problem) = condition_of(st, matched[i], &buckets_seen[i], &up_by_job);
            st.condition = condition;
            st.problem = problem;
            periods.extend(close_periods(st, now_ms));
            statuses.push(status_of(st, now_ms));
        }
        (statuses, periods)
    }

    /// A round for the aggregator: no samples, only the buckets loaded from the shared ledger.
    pub fn round_buckets_only(&mut self, now_ms: i64) -> (Vec<SloStatus>, Vec<PeriodRecord>) {
        let mut statuses = Vec::with_capacity(self.slos.len());
        let mut periods = Vec::new();
        for st in &mut self.slos {
            if st.instances.is_empty() {
                st.condition = Condition::NoData;
                st.problem =
                    Some("no node has written events for this SLO to the shared ledger yet".into());
            } else {
                st.condition = Condition::Ok;
                st.problem = None;
            }
            periods.extend(close_periods(st, now_ms));
            statuses.push(status_of(st, now_ms));
        }
        (statuses, periods)
    }

    /// Approximate memory held by the buckets of every instance, in bytes.
    pub fn memory_bytes(&self) -> usize {
        self.slos
            .iter()
            .flat_map(|s| s.instances.values())
            .map(|i| i.buckets.memory_bytes())
            .sum()
    }
}

/// Whether bad events are derived as total - good (ratio with `good`, latency).
fn good_based(st: &SloState) -> bool {
    match &st.slo.spec.sli {
        Sli::Ratio(r) => r.good.is_some(),
        Sli::Latency(_) => true,
        _ => false,
    }
}

fn same_definition(a: &Slo, b: &Slo) -> bool {
    a.spec.sli == b.spec.sli
        && a.budgeting == b.budgeting
        && a.spec.group_by == b.spec.group_by
        && a.spec.window == b.spec.window
}

/// Delta of a counter since its last sample; None for the first sample or a repeated one.
fn counter_delta(
    tracks: &mut HashMap<u64, CounterTrack>,
    id: u64,
    value: f64,
    ts: i64,
) -> Option<f64> {
    if !value.is_finite() {
        return None;
    }
    match tracks.get_mut(&id) {
        None => {
            tracks.insert(
                id,
                CounterTrack {
                    last: value,
                    last_ts: ts,
                },
            );
            None
        }
        Some(t) if ts <= t.last_ts => None,
        Some(t) => {
            let d = if value < t.last {
                value
            } else {
                value - t.last
            };
            t.last = value;
            t.last_ts = ts;
            Some(d)
        }
    }
}

/// Key of the (metric name, label, value) index.
fn pair_key(name: &str, label: &str, value: &str) -> String {
    format!("{name}\u{0}{label}\u{0}{value}")
}

fn roles_of(slos: &[SloState], candidates: &[usize], labels: &LabelSet) -> Vec<(usize, Role)> {
    let mut out = Vec::new();
    for &i in candidates {
        let st = &slos[i];
        let sels = &st.slo.selectors;
        match &st.slo.spec.sli {
            Sli::Ratio(r) => {
                if sels.first().is_some_and(|s| s.matches(labels)) {
                    out.push((
                        i,
                        if r.errors.is_some() {
                            Role::Bad
                        } else {
                            Role::Good
                        },
                    ));
                }
                if sels.get(1).is_some_and(|s| s.matches(labels)) {
                    out.push((i, Role::Total));
                }
            }
            Sli::Latency(l) => {
                if sels.first().is_some_and(|s| s.matches(labels)) {
                    let le = labels.get("le").unwrap_or("");
                    let v = parse_le(le);
                    if v == Some(f64::INFINITY) {
                        out.push((i, Role::LatencyTotal));
                    } else if v == Some(l.threshold) {
                        out.push((i, Role::LatencyGood));
                    } else if let Some(v) = v {
                        out.push((i, Role::OtherBucket(v)));
                    }
                }
            }
            Sli::Uptime(_) | Sli::Threshold(_) => {
                if sels.first().is_some_and(|s| s.matches(labels)) {
                    out.push((i, Role::Gauge));
                }
            }
        }
    }
    out
}

fn parse_le(le: &str) -> Option<f64> {
    match le {
        "+Inf" | "Inf" | "+inf" | "inf" => Some(f64::INFINITY),
        v => v.parse().ok(),
    }
}

fn aggregate(a: Aggregate, v: &[f64]) -> f64 {
    match a {
        Aggregate::Sum => v.iter().sum(),
        Aggregate::Max => v.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        Aggregate::Min => v.iter().copied().fold(f64::INFINITY, f64::min),
        Aggregate::Avg => v.iter().sum::<f64>() / v.len().max(1) as f64,
    }
}

fn condition_of(
    st: &SloState,
    matched: usize,
    buckets: &[f64],
    up_by_job: &HashMap<String, f64>,
) -> (Condition, Option<String>) {
    if let Sli::Latency(l) = &st.slo.spec.sli {
        let has_threshold = buckets.iter().any(|b| b.is_nan());
        let others: Vec<f64> = buckets.iter().copied().filter(|b| !b.is_nan()).collect();
        if !has_threshold && !others.is_empty() {
            let mut les = others;
            les.sort_by(f64::total_cmp);
            les.dedup();
            let list: Vec<String> = les.iter().map(|b| b.to_string()).collect();
            return (
                Condition::Invalid,
                Some(format!(
                    "threshold {} is not one of the histogram's buckets; the buckets are {}",
                    l.threshold,
                    list.join(", ")
                )),
            );
        }
    }
    if matched > 0 {
        return (Condition::Ok, None);
    }
    let primary = st.slo.selectors.last();
    let job = primary.and_then(|s| {
        s.matchers
            .iter()
            .find(|m| m.name == "job" && m.op == crate::store::selector::MatchOp::Equal)
            .map(|m| m.value.clone())
    });
    if let Some(job) = job {
        if up_by_job.get(&job) == Some(&0.0) {
            return (
                Condition::TargetDown,
                Some(format!(
                    "no series match and the targets of job {job:?} are down"
                )),
            );
        }
    }
    let sel = primary.map(|s| s.to_string()).unwrap_or_default();
    (Condition::NoData, Some(format!("{sel} matches no series")))
}

fn close_periods(st: &mut SloState, now_ms: i64) -> Vec<PeriodRecord> {
    let (Window::Calendar { unit, .. }, Some(tz)) = (&st.slo.spec.window, st.tz) else {
        return Vec::new();
    };
    let unit = *unit;
    let objective = st.slo.objective;
    let id = st.slo.id.clone();
    let mut out = Vec::new();
    for (group, inst) in &mut st.instances {
        let current = calendar::period_containing(unit, tz, now_ms);
        match inst.period {
            Some((start, end)) if now_ms >= end => {
                let c = inst.buckets.since(start, end - 1);
                let err = c.error_ratio().unwrap_or(0.0);
                out.push(PeriodRecord {
                    slo: id.clone(),
                    group: group_key(group),
                    name: calendar::period_name(unit, tz, start),
                    start_ms: start,
                    end_ms: end,
                    good: c.good(),
                    total: c.total,
                    objective,
                    met: 1.0 - err >= objective,
                    budget_used: 1.0 - budget::budget_remaining(c, objective),
                });
                inst.period = Some(current);
            }
            None => inst.period = Some(current),
            _ => {}
        }
    }
    out
}

fn status_of(st: &mut SloState, now_ms: i64) -> SloStatus {
    let objective = st.slo.objective;
    let lengths: Vec<i64> = st
        .windows
        .iter()
        .filter(|w| w.length_ms > 0)
        .map(|w| w.length_ms)
        .collect();
    let calendar = match (&st.slo.spec.window, st.tz) {
        (Window::Calendar { unit, .. }, Some(tz)) => {
            Some(calendar::period_containing(*unit, tz, now_ms))
        }
        _ => None,
    };
    let window_seconds = match calendar {
        Some((s, e)) => (e - s) as f64 / 1000.0,
        None => st.slo.window_length().as_secs_f64(),
    };
    let mut instances = Vec::new();
    for (group, inst) in &mut st.instances {
        let mut sums = inst.buckets.sums(now_ms, &lengths);
        if let Some((start, _)) = calendar {
            sums.push(inst.buckets.since(start, now_ms));
        }
        let windows: Vec<WindowStatus> = st
            .windows
            .iter()
            .zip(&sums)
            .map(|(w, c)| {
                let err = c.error_ratio();
                WindowStatus {
                    window: w.name.clone(),
                    good: c.good(),
                    total: c.total,
                    error_ratio: err,
                    sli: err.map(|e| 1.0 - e),
                    burn_rate: budget::burn_rate(*c, objective),
                }
            })
            .collect();
        let slo_window = sums.last().copied().unwrap_or_default();
        let remaining = budget::budget_remaining(slo_window, objective);
        let burn_1h = windows
            .iter()
            .find(|w| w.window == "1h")
            .map(|w| w.burn_rate)
            .unwrap_or(0.0);
        instances.push(InstanceStatus {
            group: st
                .slo
                .spec
                .group_by
                .iter()
                .cloned()
                .zip(group.iter().cloned())
                .collect(),
            windows,
            error_budget_remaining: remaining,
            time_to_exhaustion_seconds: budget::time_to_exhaustion(
                remaining,
                burn_1h,
                window_seconds,
            ),
            events_good: inst.events.good(),
            events_total: inst.events.total,
        });
    }
    SloStatus {
        id: st.slo.id.clone(),
        service: st.slo.service.clone(),
        name: st.slo.spec.name.clone(),
        objective,
        window: st
            .windows
            .last()
            .map(|w| w.name.clone())
            .unwrap_or_default(),
        condition: st.condition,
        problem: st.problem.clone(),
        instances,
        min_events: st.slo.spec.min_events,
        slo: st.slo.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::slo::spec::parse_file;
    use crate::store::series::{Sample, Series};
    use std::path::Path;

    /// An hour boundary (1_800_000_000_000 ms is one).
    const T0: i64 = 1_800_000_000_000;
    const S: i64 = 1000;

    /// Interns series by text so that the same labels keep the same id across rounds, like the
    /// scrape cache does.
    #[derive(Default)]
    struct World {
        series: HashMap<String, Arc<Series>>,
    }

    impl World {
        fn snap(&mut self, ts: i64, samples: &[(&str, f64)]) -> Vec<(String, Arc<Snapshot>)> {
            let samples = samples
                .iter()
                .map(|(text, v)| {
                    let series = self
                        .series
                        .entry(text.to_string())
                        .or_insert_with(|| Series::new(parse_labels(text)))
                        .clone();
                    Sample {
                        series,
                        value: *v,
                        timestamp_ms: ts,
                    }
                })
                .collect();
            vec![(
                "t".to_string(),
                Arc::new(Snapshot::from_samples(ts, samples)),
            )]
        }
    }

    /// `name{a="b",c="d"}` (no escapes) -> labels.
    fn parse_labels(text: &str) -> LabelSet {
        let (name, rest) = text.split_once('{').unwrap_or((text, "}"));
        let mut pairs = vec![("__name__".to_string(), name.to_string())];
        for kv in rest
            .trim_end_matches('}')
            .split(',')
            .filter(|s| !s.is_empty())
        {
            let (k, v) = kv.split_once('=').expect("k=v");
            pairs.push((k.to_string(), v.trim_matches('"').to_string()));
        }
        LabelSet::from_pairs(pairs)
    }

    fn engine(yaml: &str) -> Engine {
        let slos = parse_file(yaml, Path::new("t.yaml")).expect("valid spec");
        Engine::new(slos.into_iter().map(Arc::new).collect())
    }

    fn window<'a>(st: &'a SloStatus, group: usize, w: &str) -> &'a WindowStatus {
        st.instances[group]
            .windows
            .iter()
            .find(|x| x.window == w)
            .expect("window")
    }

    const RATIO: &str = r#"
service: shop
slos:
  - name: avail
    objective: 99
    window: 30d
    sli: {ratio: {errors: 'req_total{code="500"}', total: req_total}}
"#;

    #[test]
    fn ratio_counts_deltas_with_baseline_and_resets() {
        let mut e = engine(RATIO);
        let mut w = World::default();
        // First sight sets the baseline: 1,000 requests from before the agent count nothing.
        let (st, _) = e.round(
            T0,
            &w.snap(
                T0,
                &[
                    ("req_total{code=\"200\"}", 990.0),
                    ("req_total{code=\"500\"}", 10.0),
                ],
            ),
        );
        assert_eq!(window(&st[0], 0, "5m").total, 0.0);
        assert_eq!(st[0].condition, Condition::Ok);
        // +100 requests, +2 errors.
        let (st, _) = e.round(
            T0 + 10 * S,
            &w.snap(
                T0 + 10 * S,
                &[
                    ("req_total{code=\"200\"}", 1088.0),
                    ("req_total{code=\"500\"}", 12.0),
                ],
            ),
        );
        let w5 = window(&st[0], 0, "5m");
        assert_eq!((w5.total, w5.good), (100.0, 98.0));
        assert!(
            (w5.burn_rate - 2.0).abs() < 1e-9,
            "2% errors against a 1% budget: {}",
            w5.burn_rate
        );
        // The same scrape seen again adds nothing.
        let (st, _) = e.round(
            T0 + 15 * S,
            &w.snap(
                T0 + 10 * S,
                &[
                    ("req_total{code=\"200\"}", 1088.0),
                    ("req_total{code=\"500\"}", 12.0),
                ],
            ),
        );
        assert_eq!(window(&st[0], 0, "5m").total, 100.0);
        // A counter reset (process restart): the new value counts from 0.
        let (st, _) = e.round(
            T0 + 20 * S,
            &w.snap(
                T0 + 20 * S,
                &[
                    ("req_total{code=\"200\"}", 50.0),
                    ("req_total{code=\"500\"}", 0.0),
                ],
            ),
        );
        let w5 = window(&st[0], 0, "5m");
        assert_eq!((w5.total, w5.good), (150.0, 148.0));
        // Budget over 30d: 2 bad of 150 against 1% allowed = 1.5 allowed -> -0.333 remaining.
        assert!((st[0].instances[0].error_budget_remaining - (1.0 - 2.0 / 1.5)).abs() < 1e-9);
        assert_eq!(st[0].instances[0].time_to_exhaustion_seconds, 0.0);
    }

    #[test]
    fn no_traffic_is_not_no_data() {
        let mut e = engine(RATIO);
        let mut w = World::default();
        let flat = [
            ("req_total{code=\"200\"}", 5.0),
            ("req_total{code=\"500\"}", 0.0),
        ];
        e.round(T0, &w.snap(T0, &flat));
        let (st, _) = e.round(T0 + 10 * S, &w.snap(T0 + 10 * S, &flat));
        let w5 = window(&st[0], 0, "5m");
        assert_eq!(
            (w5.total, w5.error_ratio, w5.sli, w5.burn_rate),
            (0.0, None, None, 0.0)
        );
        assert_eq!(st[0].condition, Condition::Ok);
        assert_eq!(st[0].instances[0].error_budget_remaining, 1.0);
        // No series at all: no data.
        let (st, _) = e.round(T0 + 20 * S, &w.snap(T0 + 20 * S, &[("other", 1.0)]));
        assert_eq!(st[0].condition, Condition::NoData);
        assert!(
            st[0]
                .problem
                .as_deref()
                .is_some_and(|p| p.contains("req_total matches no series"))
        );
    }

    #[test]
    fn target_down_is_reported_for_ratio_slis() {
        let mut e = engine(
            "service: s\nslos:\n  - name: a\n    objective: 99\n    window: 1d\n    sli: {ratio: {errors: 'x_total{job=\"api\",code=\"500\"}', total: 'x_total{job=\"api\"}'}}\n",
        );
        let mut w = World::default();
        let (st, _) = e.round(T0, &w.snap(T0, &[("up{job=\"api\"}", 0.0)]));
        assert_eq!(st[0].condition, Condition::TargetDown);
    }

    #[test]
    fn groups_appear_and_disappear() {
        let mut e = engine(
            "service: s\nslos:\n  - name: a\n    objective: 99.9\n    window: 7d\n    group_by: [route]\n    sli: {ratio: {good: 'r_total{ok=\"1\"}', total: r_total}}\n",
        );
        let mut w = World::default();
        e.round(
            T0,
            &w.snap(
                T0,
                &[
                    ("r_total{route=\"a\",ok=\"1\"}", 0.0),
                    ("r_total{route=\"a\",ok=\"0\"}", 0.0),
                ],
            ),
        );
        let (st, _) = e.round(
            T0 + 10 * S,
            &w.snap(
                T0 + 10 * S,
                &[
                    ("r_total{route=\"a\",ok=\"1\"}", 90.0),
                    ("r_total{route=\"a\",ok=\"0\"}", 10.0),
                    ("r_total{route=\"b\",ok=\"1\"}", 7.0),
                ],
            ),
        );
        assert_eq!(st[0].instances.len(), 2, "route b appeared (baseline only)");
        let a = &st[0].instances[0];
        assert_eq!(a.group.get("route").map(String::as_str), Some("a"));
        let w5 = a.windows.iter().find(|x| x.window == "5m").expect("5m");
        assert_eq!(
            (w5.good, w5.total),
            (90.0, 100.0),
            "good-based ratio: bad = total - good"
        );
        // Route a disappears: its instance keeps its history.
        let (st, _) = e.round(
            T0 + 20 * S,
            &w.snap(T0 + 20 * S, &[("r_total{route=\"b\",ok=\"1\"}", 9.0)]),
        );
        assert_eq!(window(&st[0], 0, "1h").total, 100.0);
        assert_eq!(window(&st[0], 1, "1h").total, 2.0);
    }

    const LATENCY: &str = r#"
service: s
slos:
  - name: fast
    objective: 90
    window: 30d
    sli: {latency: {histogram: 'lat_bucket{job="x"}', threshold: 0.25}}
"#;

    #[test]
    fn latency_uses_the_threshold_bucket_and_names_buckets_otherwise() {
        let mut e = engine(LATENCY);
        let mut w = World::default();
        let b = |v1: f64, v2: f64, inf: f64| {
            [
                ("lat_bucket{job=\"x\",le=\"0.1\"}", v1),
                ("lat_bucket{job=\"x\",le=\"0.25\"}", v2),
                ("lat_bucket{job=\"x\",le=\"+Inf\"}", inf),
            ]
        };
        e.round(T0, &w.snap(T0, &b(0.0, 0.0, 0.0)));
        let (st, _) = e.round(T0 + 10 * S, &w.snap(T0 + 10 * S, &b(50.0, 80.0, 100.0)));
        let w5 = window(&st[0], 0, "5m");
        assert_eq!((w5.good, w5.total), (80.0, 100.0));
        assert!((w5.burn_rate - 2.0).abs() < 1e-9);

        let mut e = engine(&LATENCY.replace("0.25", "0.3"));
        let (st, _) = e.round(T0, &w.snap(T0, &b(1.0, 2.0, 3.0)));
        assert_eq!(st[0].condition, Condition::Invalid);
        assert_eq!(
            st[0].problem.as_deref(),
            Some("threshold 0.3 is not one of the histogram's buckets; the buckets are 0.1, 0.25")
        );
    }

    #[test]
    fn uptime_in_one_minute_slices() {
        let mut e = engine(
            "service: s\nslos:\n  - name: up\n    objective: 99\n    window: 7d\n    sli: {uptime: {selector: 'up{job=\"db\"}'}}\n",
        );
        let mut w = World::default();
        // Minute 0: up the whole time (6 rounds); minute 1: down once; minute 2 starts.
        for r in 0..6 {
            e.round(
                T0 + r * 10 * S,
                &w.snap(T0 + r * 10 * S, &[("up{job=\"db\"}", 1.0)]),
            );
        }
        for r in 6..12 {
            let v = if r == 8 { 0.0 } else { 1.0 };
            e.round(
                T0 + r * 10 * S,
                &w.snap(T0 + r * 10 * S, &[("up{job=\"db\"}", v)]),
            );
        }
        let (st, _) = e.round(
            T0 + 125 * S,
            &w.snap(T0 + 125 * S, &[("up{job=\"db\"}", 1.0)]),
        );
        let h = window(&st[0], 0, "1h");
        // Two finished slices: one good, one bad (target 1: any down observation spoils it).
        assert_eq!((h.good, h.total), (1.0, 2.0));
        assert_eq!(st[0].instances[0].events_total, 13.0, "13 raw observations");
    }

    #[test]
    fn queue_depth_threshold_with_ratio_timeslices() {
        let mut e = engine(
            "service: s\nslos:\n  - name: lag\n    objective: 95\n    window: 1d\n    budgeting: {ratio_timeslices: {slice: 1m}}\n    sli: {threshold: {selector: 'lag{group=\"orders\"}', aggregate: sum, op: \"<=\", value: 1000}}\n",
        );
        let mut w = World::default();
        // 4 rounds in the first minute: sums 600, 1200 (bad), 900, 1001 (bad) -> ratio 0.5.
        for (r, (a, b)) in [
            (300.0, 300.0),
            (700.0, 500.0),
            (450.0, 450.0),
            (1.0, 1000.0),
        ]
        .iter()
        .enumerate()
        {
            let t = T0 + r as i64 * 15 * S;
            e.round(
                t,
                &w.snap(
                    t,
                    &[
                        ("lag{group=\"orders\",p=\"0\"}", *a),
                        ("lag{group=\"orders\",p=\"1\"}", *b),
                    ],
                ),
            );
        }
        let (st, _) = e.round(
            T0 + 61 * S,
            &w.snap(T0 + 61 * S, &[("lag{group=\"orders\",p=\"0\"}", 1.0)]),
        );
        let h = window(&st[0], 0, "1h");
        assert_eq!(h.total, 1.0);
        assert!((h.error_ratio.expect("one slice") - 0.5).abs() < 1e-12);
    }

    #[test]
    fn calendar_period_closes_with_a_record() {
        let mut e = engine(
            "service: s\nslos:\n  - name: m\n    objective: 99\n    window: {calendar: month, time_zone: UTC}\n    sli: {ratio: {errors: 'e_total', total: 't_total'}}\n",
        );
        let mut w = World::default();
        let end_of_oct = chrono::DateTime::parse_from_rfc3339("2026-11-01T00:00:00Z")
            .expect("t")
            .timestamp_millis();
        let t1 = end_of_oct - 20 * 60 * S;
        e.round(t1, &w.snap(t1, &[("e_total", 0.0), ("t_total", 0.0)]));
        let t2 = end_of_oct - 10 * 60 * S;
        let (st, p) = e.round(t2, &w.snap(t2, &[("e_total", 3.0), ("t_total", 100.0)]));
        assert!(p.is_empty());
        assert_eq!(st[0].window, "month");
        assert_eq!(window(&st[0], 0, "month").total, 100.0);
        let t3 = end_of_oct + 10 * S;
        let (st, p) = e.round(t3, &w.snap(t3, &[("e_total", 3.0), ("t_total", 100.0)]));
        assert_eq!(p.len(), 1);
        assert_eq!(
            (p[0].name.as_str(), p[0].total, p[0].good, p[0].met),
            ("2026-10", 100.0, 97.0, false)
        );
        assert!(
            (p[0].budget_used - 3.0).abs() < 1e-9,
            "3 errors against 1 allowed"
        );
        // The new month starts empty.
        assert_eq!(window(&st[0], 0, "month").total, 0.0);
    }

    #[test]
    fn reconfigure_keeps_unchanged_slos_and_buckets_round_trip() {
        let mut e = engine(RATIO);
        let mut w = World::default();
        e.round(
            T0,
            &w.snap(
                T0,
                &[
                    ("req_total{code=\"500\"}", 0.0),
                    ("req_total{code=\"200\"}", 0.0),
                ],
            ),
        );
        e.round(
            T0 + 10 * S,
            &w.snap(
                T0 + 10 * S,
                &[
                    ("req_total{code=\"500\"}", 1.0),
                    ("req_total{code=\"200\"}", 9.0),
                ],
            ),
        );
        let dirty = e.take_dirty();
        assert_eq!(dirty.len(), 2, "one minute row and one hour row: {dirty:?}");
        // A fresh engine loaded from those rows reports the same window.
        let mut fresh = engine(RATIO);
        for (slo, g, res, idx, c) in &dirty {
            fresh.load_bucket(slo, g, *res, *idx, *c);
        }
        let (st, _) = fresh.round(T0 + 20 * S, &[]);
        assert_eq!(window(&st[0], 0, "30d").total, 10.0);
        // Reconfiguring with the same definition keeps the data.
        let slos = e.slos();
        e.reconfigure(slos);
        let (st, _) = e.round(T0 + 30 * S, &[]);
        assert_eq!(window(&st[0], 0, "1h").total, 10.0);
    }
}
