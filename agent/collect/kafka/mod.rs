//! The `type: kafka` collector: consumer-group lag and topic offsets under kafka_exporter's
//! metric names, gathered with a handful of batched requests per collection.
//!
//! One collection: Metadata from a bootstrap broker; per partition leader one ListOffsets for
//! the newest and one for the oldest offsets of every partition it leads (once per collection,
//! shared by all groups); ListGroups on every broker; one FindCoordinator for all groups; per
//! coordinator one DescribeGroups and one OffsetFetch for all its groups. Lag, drain time and a
//! Burrow-style status are computed in [`lag`]; the wire layer is [`conn`]. Connections are
//! kept between collections and dropped by [`Kafka::reset`] after a failure.
//!
//! Built by the collector manager in `collect/mod.rs`; see docs/collectors-kafka.md.

pub mod conn;
pub mod lag;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use kafka_protocol::error::ParseResponseErrorCode;
use kafka_protocol::messages::{
    DescribeGroupsRequest, DescribeGroupsResponse, FindCoordinatorRequest, GroupId,
    ListGroupsRequest, ListOffsetsRequest, MetadataRequest, OffsetFetchRequest, TopicName,
    list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic},
    offset_fetch_request::OffsetFetchRequestGroup,
};
use kafka_protocol::protocol::StrBytes;
use regex::Regex;
use serde::Deserialize;
use tracing::{debug, warn};

use self::conn::{Conn, ConnError, ConnectOptions, Mechanism, RequestCounter, SaslAuth};
use self::lag::{History, Point, Status};
use super::{Kind, Output};
use crate::config::Problem;
use crate::config::secret;

/// `collectors[] type: kafka`: the keys of this collector besides the common ones.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// Bootstrap brokers as `host:port`; the first that answers is used, the others are
    /// found in the cluster metadata.
    pub brokers: Vec<String>,
    /// TLS to the brokers (off when absent).
    #[serde(default)]
    pub tls: Option<KafkaTls>,
    /// SASL authentication (off when absent).
    #[serde(default)]
    pub sasl: Option<KafkaSasl>,
    /// Which consumer groups to report.
    #[serde(default)]
    pub groups: Filter,
    /// Which topics to report (topic metrics and group lag).
    #[serde(default)]
    pub topics: Filter,
}

/// `tls:` of a kafka collector.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaTls {
    /// PEM file of the CA(s) that signed the brokers' certificates; the Mozilla roots when
    /// absent.
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate (mutual TLS), with `key_file`.
    pub cert_file: Option<PathBuf>,
    /// PEM private key of `cert_file`.
    pub key_file: Option<PathBuf>,
    /// Accept any broker certificate (testing only).
    #[serde(default)]
    pub insecure_skip_verify: bool,
}

/// `sasl:` of a kafka collector.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSasl {
    /// `PLAIN`, `SCRAM-SHA-256` or `SCRAM-SHA-512`.
    pub mechanism: String,
    /// User name.
    pub username: String,
    /// Environment variable holding the password.
    pub password_env: Option<String>,
    /// File holding the password.
    pub password_file: Option<PathBuf>,
}

/// `include` / `exclude` regexes (whole-name matches). Empty `include` means everything.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Filter {
    /// Names to report; all when empty.
    #[serde(default)]
    pub include: Vec<String>,
    /// Names to leave out, even when included.
    #[serde(default)]
    pub exclude: Vec<String>,
}

/// A compiled [`Filter`].
#[derive(Debug, Clone, Default)]
struct Matcher {
    include: Vec<Regex>,
    exclude: Vec<Regex>,
}

fn anchored(re: &str) -> Result<Regex, regex::Error> {
    Regex::new(&format!("^(?:{re})$"))
}

impl Matcher {
    fn new(f: &Filter) -> Result<Self, String> {
        let compile = |list: &[String]| -> Result<Vec<Regex>, String> {
            list.iter()
                .map(|r| anchored(r).map_err(|e| format!("regex {r:?}: {e}")))
                .collect()
        };
        Ok(Self {
            include: compile(&f.include)?,
            exclude: compile(&f.exclude)?,
        })
    }

    fn matches(&self, name: &str) -> bool {
        (self.include.is_empty() || self.include.iter().any(|r| r.is_match(name)))
            && !self.exclude.iter().any(|r| r.is_match(name))
    }
}

fn check_broker(addr: &str) -> Result<(), String> {
    let Some((host, port)) = addr.rsplit_once(':') else {
        return Err(format!(
            "{addr:?} has no port; write host:port, e.g. kafka-0:9092"
        ));
    };
    if host.is_empty() {
        return Err(format!(
            "{addr:?} has no host; write host:port, e.g. kafka-0:9092"
        ));
    }
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(()),
        _ => Err(format!(
            "{addr:?}: port {port:?} is not a number from 1 to 65535; write host:port"
        )),
    }
}

impl KafkaConfig {
    /// Semantic checks; `path` is e.g. `collectors[2]`.
    pub fn validate(&self, path: &str, base_dir: &Path, out: &mut Vec<Problem>) {
        let mut bad = |key: String, message: String| out.push(Problem::at(path, &key, message));
        if self.brokers.is_empty() {
            bad(
                "brokers".into(),
                "needs at least one host:port, e.g. [kafka-0:9092]".into(),
            );
        }
        for (i, b) in self.brokers.iter().enumerate() {
            if let Err(e) = check_broker(b) {
                bad(format!("brokers[{i}]"), e);
            }
        }
        for (name, f) in [("groups", &self.groups), ("topics", &self.topics)] {
            for (kind, list) in [("include", &f.include), ("exclude", &f.exclude)] {
                for (i, r) in list.iter().enumerate() {
                    if let Err(e) = anchored(r) {
                        let first = e.to_string();
                        let first = first.lines().last().unwrap_or("").trim();
                        let first = first.strip_prefix("error: ").unwrap_or(first);
                        bad(
                            format!("{name}.{kind}[{i}]"),
                            format!("regex {r:?} does not compile: {first}"),
                        );
                    }
                }
            }
        }
        if let Some(s) = &self.sasl {
            if Mechanism::parse(&s.mechanism).is_none() {
                bad(
                    "sasl.mechanism".into(),
                    format!(
                        "unknown mechanism {:?}; use PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512",
                        s.mechanism
                    ),
                );
            }
            if s.username.is_empty() {
                bad("sasl.username".into(), "must not be empty".into());
            }
            match secret::resolve(
                "password",
                s.password_env.as_deref(),
                s.password_file.as_deref(),
                base_dir,
            ) {
                Ok(Some(_)) => {}
                Ok(None) => bad("sasl".into(), "needs password_env or password_file".into()),
                Err(e) => bad("sasl".into(), e),
            }
        }
        if let Some(t) = &self.tls {
            let mut found = Vec::new();
            crate::config::check_tls_files(
                "tls",
                t.ca_file.as_deref(),
                t.cert_file.as_deref(),
                t.key_file.as_deref(),
                base_dir,
                &mut found,
            );
            for pr in found {
                bad(pr.path, pr.message);
            }
        }
    }

    /// Makes relative file paths relative to the config file's directory.
    pub fn resolve_paths(&mut self, base_dir: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base_dir.join(&*p);
            }
        };
        if let Some(t) = &mut self.tls {
            t.ca_file.as_mut().map(fix);
            t.cert_file.as_mut().map(fix);
            t.key_file.as_mut().map(fix);
        }
        if let Some(s) = &mut self.sasl {
            s.password_file.as_mut().map(fix);
        }
    }
}

/// Why a kafka collection failed.
#[derive(Debug, thiserror::Error)]
pub enum KafkaError {
    /// The configuration cannot be used (a secret that vanished, a TLS file, a regex).
    #[error("kafka collector {collector}: {message}")]
    Config {
        /// Collector name.
        collector: String,
        /// What is wrong.
        message: String,
    },
    /// No bootstrap broker answered.
    #[error("kafka collector {collector}: no broker reachable: {errors}")]
    Unreachable {
        /// Collector name.
        collector: String,
        /// One error per broker tried.
        errors: String,
    },
    /// A broker failed mid-collection.
    #[error("kafka collector {collector}: {source}")]
    Broker {
        /// Collector name.
        collector: String,
        /// The cause.
        #[source]
        source: ConnError,
    },
    /// The cluster answered with an error where the collection cannot continue.
    #[error("kafka collector {collector}: {message}")]
    Cluster {
        /// Collector name.
        collector: String,
        /// What the broker said.
        message: String,
    },
}

/// Highest versions this collector uses (what kafka-protocol 0.18 encodes and this code reads).
mod caps {
    pub const METADATA: i16 = 12;
    pub const LIST_OFFSETS: i16 = 10;
    pub const OFFSET_FETCH: i16 = 9;
    pub const FIND_COORDINATOR: i16 = 6;
    pub const DESCRIBE_GROUPS: i16 = 6;
    pub const LIST_GROUPS: i16 = 5;
}

/// Group-level error codes that mean "ask again later" (rebalance, coordinator moving).
fn transient_group_error(code: i16) -> bool {
    matches!(code, 14..=16) // COORDINATOR_LOAD_IN_PROGRESS, COORDINATOR_NOT_AVAILABLE, NOT_COORDINATOR
}

fn error_text(code: i16) -> String {
    match code.err() {
        Some(e) => format!("{e} (error {code})"),
        None => "no error".into(),
    }
}

/// Offsets of one partition.
#[derive(Debug, Clone, Copy, Default)]
struct Offsets {
    oldest: Option<i64>,
    newest: Option<i64>,
}

/// One group's OffsetFetch answer: group, error code, (topic, partition, offset, error code).
type Fetched = (String, i16, Vec<(String, i32, i64, i16)>);

/// What one group looks like this collection.
#[derive(Debug, Default)]
struct GroupView {
    members: usize,
    /// topic -> partition -> committed offset
    committed: BTreeMap<String, BTreeMap<i32, i64>>,
    /// topics in the members' assignments
    assigned: BTreeSet<String>,
}

/// A kafka collector and its connections.
pub struct Kafka {
    name: String,
    brokers: Vec<String>,
    opts: Result<ConnectOptions, String>,
    groups: Matcher,
    topics: Matcher,
    conns: HashMap<String, Conn>,
    bootstrap: Option<String>,
    history: History,
    warned: HashSet<String>,
    started: Instant,
    counter: RequestCounter,
}

fn build_options(cfg: &KafkaConfig) -> Result<ConnectOptions, String> {
    let tls = match &cfg.tls {
        Some(t) => Some(conn::tls_config(
            t.ca_file.as_deref(),
            t.cert_file.as_deref(),
            t.key_file.as_deref(),
            t.insecure_skip_verify,
        )?),
        None => None,
    };
    let sasl = match &cfg.sasl {
        Some(s) => {
            let mechanism = Mechanism::parse(&s.mechanism)
                .ok_or_else(|| format!("unknown SASL mechanism {:?}", s.mechanism))?;
            let password = secret::resolve(
                "password",
                s.password_env.as_deref(),
                s.password_file.as_deref(),
                Path::new(""),
            )?
            .ok_or_else(|| "sasl needs password_env or password_file".to_string())?;
            Some(SaslAuth {
                mechanism,
                username: s.username.clone(),
                password,
            })
        }
        None => None,
    };
    Ok(ConnectOptions {
        tls,
        sasl,
        // A backstop per connect/request; the collection as a whole is bounded by the
        // collector's `timeout`, enforced by the manager.
        timeout: Duration::from_secs(10),
        counter: RequestCounter::default(),
    })
}

/// Connection to `addr` from the pool, opened if needed.
async fn pooled<'a>(
    conns: &'a mut HashMap<String, Conn>,
    opts: &ConnectOptions,
    addr: &str,
) -> Result<&'a mut Conn, ConnError> {
    if !conns.contains_key(addr) {
        let c = Conn::connect(addr, opts).await?;
        conns.insert(addr.to_string(), c);
    }
    conns.get_mut(addr).ok_or_else(|| ConnError::Protocol {
        addr: addr.into(),
        api: "connect",
        message: "connection vanished from the pool".into(),
    })
}

/// Topics of a `consumer` protocol member assignment (version, [topic, [partition]], userdata).
fn assignment_topics(bytes: &[u8]) -> Vec<String> {
    fn take<'a>(b: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
        if b.len() < n {
            return None;
        }
        let (h, t) = b.split_at(n);
        *b = t;
        Some(h)
    }
    fn i16_(b: &mut &[u8]) -> Option<i16> {
        take(b, 2).map(|s| i16::from_be_bytes([s[0], s[1]]))
    }
    fn i32_(b: &mut &[u8]) -> Option<i32> {
        take(b, 4).map(|s| i32::from_be_bytes([s[0], s[1], s[2], s[3]]))
    }
    let mut b = bytes;
    let mut topics = Vec::new();
    let parse = |b: &mut &[u8], topics: &mut Vec<String>| -> Option<()> {
        i16_(b)?;
        let n = i32_(b)?;
        for _ in 0..n.max(0) {
            let len = usize::try_from(i16_(b)?).ok()?;
            let name = take(b, len)?;
            topics.push(String::from_utf8_lossy(name).into_owned());
            let parts = i32_(b)?;
            take(b, usize::try_from(parts).ok()? * 4)?;
        }
        Some(())
    };
    let _ = parse(&mut b, &mut topics);
    topics
}

/// Problems found in one collection: (log-once key, message).
type Problems = Vec<(String, String)>;

/// Takes the DescribeGroups answer into `views`; returns the groups to skip (errors such as
/// COORDINATOR_LOAD_IN_PROGRESS or NOT_COORDINATOR for that group only).
fn apply_describe(
    collector: &str,
    resp: DescribeGroupsResponse,
    views: &mut BTreeMap<String, GroupView>,
    problems: &mut Problems,
) -> HashSet<String> {
    let mut skip = HashSet::new();
    for g in resp.groups {
        let id = g.group_id.as_str().to_string();
        if g.error_code != 0 {
            let what = if transient_group_error(g.error_code) {
                "coordinator busy"
            } else {
                "error"
            };
            problems.push((
                format!("describe {id}"),
                format!(
                    "DescribeGroups for group {id}: {what}: {}; group skipped this time",
                    error_text(g.error_code)
                ),
            ));
            skip.insert(id);
            continue;
        }
        if matches!(
            g.group_state.as_str(),
            "PreparingRebalance" | "CompletingRebalance"
        ) {
            // Offsets are still valid during a rebalance; members are in flux.
            debug!(collector = %collector, group = %id, state = g.group_state.as_str(), "group is rebalancing");
        }
        let mut view = GroupView {
            members: g.members.len(),
            ..GroupView::default()
        };
        if g.protocol_type.as_str() == "consumer" {
            for m in &g.members {
                view.assigned
                    .extend(assignment_topics(&m.member_assignment));
            }
        }
        views.insert(id, view);
    }
    skip
}

/// Takes OffsetFetch answers into `views`: a group-level error drops that group for this
/// collection; partition errors, missing commits (-1) and topics not reported are ignored.
fn apply_offsets(
    fetched: Vec<Fetched>,
    partitions: &BTreeMap<String, Vec<i32>>,
    views: &mut BTreeMap<String, GroupView>,
    problems: &mut Problems,
) {
    for (g, code, parts) in fetched {
        if code != 0 {
            problems.push((
                format!("offsets {g}"),
                format!(
                    "OffsetFetch for group {g}: {}; group skipped this time",
                    error_text(code)
                ),
            ));
            views.remove(&g);
            continue;
        }
        let Some(view) = views.get_mut(&g) else {
            continue;
        };
        for (topic, partition, offset, perr) in parts {
            if perr != 0 || offset < 0 || !partitions.contains_key(&topic) {
                continue;
            }
            view.committed
                .entry(topic)
                .or_default()
                .insert(partition, offset);
        }
    }
}

impl Kafka {
    /// Builds the collector; connects lazily on the first collection.
    pub fn new(name: &str, cfg: &KafkaConfig) -> Self {
        let opts = build_options(cfg);
        let counter = opts.as_ref().map(|o| o.counter.clone()).unwrap_or_default();
        let (groups, topics, opts) = match (Matcher::new(&cfg.groups), Matcher::new(&cfg.topics)) {
            (Ok(g), Ok(t)) => (g, t, opts),
            (Err(e), _) | (_, Err(e)) => (Matcher::default(), Matcher::default(), Err(e)),
        };
        Self {
            name: name.to_string(),
            brokers: cfg.brokers.clone(),
            opts,
            groups,
            topics,
            conns: HashMap::new(),
            bootstrap: None,
            history: History::default(),
            warned: HashSet::new(),
            started: Instant::now(),
            counter,
        }
    }

    /// Requests sent so far by API (for the benchmark and the debug metric).
    pub fn requests(&self) -> BTreeMap<&'static str, u64> {
        self.counter.snapshot()
    }

    /// Warns the first time `key` happens, then logs at debug.
    fn warn_once(&mut self, key: String, message: &str) {
        if self.warned.insert(key.clone()) {
            warn!(collector = %self.name, what = %key, "{message}");
        } else {
            debug!(collector = %self.name, what = %key, "{message}");
        }
    }

    async fn connect_bootstrap(&mut self, opts: &ConnectOptions) -> Result<String, KafkaError> {
        if let Some(b) = &self.bootstrap {
            if self.conns.contains_key(b) {
                return Ok(b.clone());
            }
        }
        let mut errors = Vec::new();
        for addr in &self.brokers {
            match pooled(&mut self.conns, opts, addr).await {
                Ok(_) => {
                    self.bootstrap = Some(addr.clone());
                    return Ok(addr.clone());
                }
                Err(e) => errors.push(e.to_string()),
            }
        }
        Err(KafkaError::Unreachable {
            collector: self.name.clone(),
            errors: errors.join("; "),
        })
    }

    /// One collection into `out`.
    pub async fn collect(&mut self, out: &mut Output) -> Result<(), KafkaError> {
        let opts = self.opts.clone().map_err(|message| KafkaError::Config {
            collector: self.name.clone(),
            message,
        })?;
        let result = self.collect_inner(&opts, out).await;
        self.write_requests(out);
        result
    }

    fn write_requests(&self, out: &mut Output) {
        out.family(
            "vigil_kafka_requests_total",
            "Requests the kafka collector sent, by API (debug).",
            Kind::Counter,
        );
        for (api, n) in self.counter.snapshot() {
            out.sample(&[("collector", &self.name), ("api", api)], n as f64);
        }
    }

    async fn collect_inner(
        &mut self,
        opts: &ConnectOptions,
        out: &mut Output,
    ) -> Result<(), KafkaError> {
        let now = self.started.elapsed().as_secs_f64();
        let name = self.name.clone();
        let berr = |source: ConnError| KafkaError::Broker {
            collector: name.clone(),
            source,
        };
        let boot = self.connect_bootstrap(opts).await?;

        // Metadata: brokers, topics, leaders.
        let meta_req = MetadataRequest::default().with_topics(None);
        let meta = match pooled(&mut self.conns, opts, &boot).await {
            Ok(c) => c.send(&meta_req, caps::METADATA).await,
            Err(e) => Err(e),
        };
        let (meta, _) = match meta {
            Ok(m) => m,
            Err(e) => {
                self.conns.remove(&boot);
                return Err(berr(e));
            }
        };
        if meta.error_code != 0 {
            return Err(KafkaError::Cluster {
                collector: self.name.clone(),
                message: format!("Metadata: {}", error_text(meta.error_code)),
            });
        }
        let brokers: BTreeMap<i32, String> = meta
            .brokers
            .iter()
            .map(|b| (b.node_id.0, format!("{}:{}", b.host.as_str(), b.port)))
            .collect();
        // partitions per topic (all, for kafka_topic_partitions), by leader (for ListOffsets)
        let mut partitions: BTreeMap<String, Vec<i32>> = BTreeMap::new();
        let mut by_leader: BTreeMap<i32, BTreeMap<String, Vec<i32>>> = BTreeMap::new();
        let mut problems = Vec::new();
        for t in &meta.topics {
            let Some(name) = t.name.as_ref().map(|n| n.as_str().to_string()) else {
                continue;
            };
            if !self.topics.matches(&name) {
                continue;
            }
            if t.error_code != 0 {
                problems.push((
                    format!("topic {name}"),
                    format!(
                        "Metadata for topic {name}: {}; skipped",
                        error_text(t.error_code)
                    ),
                ));
                continue;
            }
            let mut ps: Vec<i32> = t.partitions.iter().map(|p| p.partition_index).collect();
            ps.sort_unstable();
            for p in &t.partitions {
                if p.leader_id.0 < 0 || !brokers.contains_key(&p.leader_id.0) {
                    problems.push((
                        format!("leader {name}/{}", p.partition_index),
                        format!(
                            "topic {name} partition {} has no leader; offsets skipped",
                            p.partition_index
                        ),
                    ));
                    continue;
                }
                by_leader
                    .entry(p.leader_id.0)
                    .or_default()
                    .entry(name.clone())
                    .or_default()
                    .push(p.partition_index);
            }
            partitions.insert(name, ps);
        }

        // Newest and oldest offsets: per leader, one batched request each.
        let mut offsets: HashMap<String, HashMap<i32, Offsets>> = HashMap::new();
        for (leader, topics) in &by_leader {
            let Some(addr) = brokers.get(leader) else {
                continue;
            };
            for timestamp in [-1i64, -2] {
                let req = ListOffsetsRequest::default()
                    .with_replica_id((-1).into())
                    .with_topics(
                        topics
                            .iter()
                            .map(|(t, ps)| {
                                ListOffsetsTopic::default()
                                    .with_name(TopicName(StrBytes::from_string(t.clone())))
                                    .with_partitions(
                                        ps.iter()
                                            .map(|p| {
                                                ListOffsetsPartition::default()
                                                    .with_partition_index(*p)
                                                    .with_timestamp(timestamp)
                                            })
                                            .collect(),
                                    )
                            })
                            .collect(),
                    );
                let resp = match pooled(&mut self.conns, opts, addr).await {
                    Ok(c) => c.send(&req, caps::LIST_OFFSETS).await,
                    Err(e) => Err(e),
                };
                let (resp, _) = match resp {
                    Ok(r) => r,
                    Err(e) => {
                        self.conns.remove(addr);
                        return Err(berr(e));
                    }
                };
                for t in resp.topics {
                    for p in t.partitions {
                        if p.error_code != 0 {
                            problems.push((
                                format!("offsets {}/{}", t.name.as_str(), p.partition_index),
                                format!(
                                    "ListOffsets for topic {} partition {}: {}; skipped",
                                    t.name.as_str(),
                                    p.partition_index,
                                    error_text(p.error_code)
                                ),
                            ));
                            continue;
                        }
                        let e = offsets
                            .entry(t.name.as_str().to_string())
                            .or_default()
                            .entry(p.partition_index)
                            .or_default();
                        if timestamp == -1 {
                            e.newest = Some(p.offset);
                        } else {
                            e.oldest = Some(p.offset);
                        }
                    }
                }
            }
        }

        // Groups: ListGroups on every broker.
        let mut group_names: BTreeSet<String> = BTreeSet::new();
        for addr in brokers.values() {
            let resp = match pooled(&mut self.conns, opts, addr).await {
                Ok(c) => {
                    c.send(&ListGroupsRequest::default(), caps::LIST_GROUPS)
                        .await
                }
                Err(e) => Err(e),
            };
            let (resp, _) = match resp {
                Ok(r) => r,
                Err(e) => {
                    self.conns.remove(addr);
                    return Err(berr(e));
                }
            };
            if resp.error_code != 0 {
                problems.push((
                    format!("list groups {addr}"),
                    format!(
                        "ListGroups on {addr}: {}; its groups skipped",
                        error_text(resp.error_code)
                    ),
                ));
                continue;
            }
            for g in resp.groups {
                let id = g.group_id.as_str();
                if self.groups.matches(id) {
                    group_names.insert(id.to_string());
                }
            }
        }

        // Coordinators: one FindCoordinator for all groups (v4+), else one per group.
        let mut by_coordinator: BTreeMap<String, Vec<String>> = BTreeMap::new();
        if !group_names.is_empty() {
            let c = pooled(&mut self.conns, opts, &boot).await.map_err(&berr)?;
            let v = c
                .version::<FindCoordinatorRequest>(caps::FIND_COORDINATOR)
                .map_err(&berr)?;
            let mut found: Vec<(String, i16, String)> = Vec::new();
            if v >= 4 {
                let req = FindCoordinatorRequest::default()
                    .with_key_type(0)
                    .with_coordinator_keys(
                        group_names
                            .iter()
                            .map(|g| StrBytes::from_string(g.clone()))
                            .collect(),
                    );
                let (resp, _) = c.send(&req, caps::FIND_COORDINATOR).await.map_err(&berr)?;
                for co in resp.coordinators {
                    found.push((
                        co.key.as_str().to_string(),
                        co.error_code,
                        format!("{}:{}", co.host.as_str(), co.port),
                    ));
                }
            } else {
                for g in &group_names {
                    let req = FindCoordinatorRequest::default()
                        .with_key_type(0)
                        .with_key(StrBytes::from_string(g.clone()));
                    let (resp, _) = c.send(&req, caps::FIND_COORDINATOR).await.map_err(&berr)?;
                    found.push((
                        g.clone(),
                        resp.error_code,
                        format!("{}:{}", resp.host.as_str(), resp.port),
                    ));
                }
            }
            for (g, code, addr) in found {
                if code != 0 {
                    problems.push((
                        format!("coordinator {g}"),
                        format!(
                            "FindCoordinator for group {g}: {}; group skipped",
                            error_text(code)
                        ),
                    ));
                } else {
                    by_coordinator.entry(addr).or_default().push(g);
                }
            }
        }

        // Per coordinator: DescribeGroups + OffsetFetch, batched.
        let mut views: BTreeMap<String, GroupView> = BTreeMap::new();
        for (addr, groups) in &by_coordinator {
            let c = match pooled(&mut self.conns, opts, addr).await {
                Ok(c) => c,
                Err(e) => return Err(berr(e)),
            };
            let req = DescribeGroupsRequest::default().with_groups(
                groups
                    .iter()
                    .map(|g| GroupId(StrBytes::from_string(g.clone())))
                    .collect(),
            );
            let (resp, _) = c.send(&req, caps::DESCRIBE_GROUPS).await.map_err(&berr)?;
            let skip = apply_describe(&name, resp, &mut views, &mut problems);
            let c = pooled(&mut self.conns, opts, addr).await.map_err(&berr)?;
            let v = c
                .version::<OffsetFetchRequest>(caps::OFFSET_FETCH)
                .map_err(&berr)?;
            let wanted: Vec<&String> = groups.iter().filter(|g| !skip.contains(*g)).collect();
            // (group, error, [(topic, partition, offset, error)])
            let mut fetched: Vec<Fetched> = Vec::new();
            if v >= 8 {
                if !wanted.is_empty() {
                    let req = OffsetFetchRequest::default().with_groups(
                        wanted
                            .iter()
                            .map(|g| {
                                OffsetFetchRequestGroup::default()
                                    .with_group_id(GroupId(StrBytes::from_string((*g).clone())))
                                    .with_topics(None)
                            })
                            .collect(),
                    );
                    let (resp, _) = c.send(&req, caps::OFFSET_FETCH).await.map_err(&berr)?;
                    for g in resp.groups {
                        let parts = g
                            .topics
                            .iter()
                            .flat_map(|t| {
                                t.partitions.iter().map(move |p| {
                                    (
                                        t.name.as_str().to_string(),
                                        p.partition_index,
                                        p.committed_offset,
                                        p.error_code,
                                    )
                                })
                            })
                            .collect();
                        fetched.push((g.group_id.as_str().to_string(), g.error_code, parts));
                    }
                }
            } else {
                for g in &wanted {
                    let req = OffsetFetchRequest::default()
                        .with_group_id(GroupId(StrBytes::from_string((*g).clone())))
                        .with_topics(None);
                    let (resp, _) = c.send(&req, caps::OFFSET_FETCH).await.map_err(&berr)?;
                    let parts = resp
                        .topics
                        .iter()
                        .flat_map(|t| {
                            t.partitions.iter().map(move |p| {
                                (
                                    t.name.as_str().to_string(),
                                    p.partition_index,
                                    p.committed_offset,
                                    p.error_code,
                                )
                            })
                        })
                        .collect();
                    fetched.push(((*g).clone(), resp.error_code, parts));
                }
            }
            apply_offsets(fetched, &partitions, &mut views, &mut problems);
        }

        for (key, message) in problems {
            self.warn_once(key, &message);
        }
        let requests_done = self.started.elapsed().as_secs_f64() - now;
        self.write(out, now, &brokers, &partitions, &offsets, &views);
        debug!(
            collector = %self.name,
            groups = views.len(),
            requests_seconds = requests_done,
            total_seconds = self.started.elapsed().as_secs_f64() - now,
            "kafka collection done"
        );
        Ok(())
    }

    fn write(
        &mut self,
        out: &mut Output,
        now: f64,
        brokers: &BTreeMap<i32, String>,
        partitions: &BTreeMap<String, Vec<i32>>,
        offsets: &HashMap<String, HashMap<i32, Offsets>>,
        views: &BTreeMap<String, GroupView>,
    ) {
        out.family(
            "kafka_brokers",
            "Number of brokers in the Kafka cluster.",
            Kind::Gauge,
        );
        out.sample(&[], brokers.len() as f64);
        out.family(
            "kafka_topic_partitions",
            "Number of partitions for this topic.",
            Kind::Gauge,
        );
        for (t, ps) in partitions {
            out.sample(&[("topic", t)], ps.len() as f64);
        }
        let mut pbuf = String::new();
        out.family(
            "kafka_topic_partition_current_offset",
            "Current offset of a broker at topic/partition (the log end offset).",
            Kind::Gauge,
        );
        for (t, ps) in partitions {
            for p in ps {
                if let Some(n) = offsets.get(t).and_then(|m| m.get(p)).and_then(|o| o.newest) {
                    pbuf.clear();
                    let _ = write!(pbuf, "{}", p);
                    out.sample(&[("topic", t), ("partition", &pbuf)], n as f64);
                }
            }
        }
        out.family(
            "kafka_topic_partition_oldest_offset",
            "Oldest offset of a broker at topic/partition.",
            Kind::Gauge,
        );
        for (t, ps) in partitions {
            for p in ps {
                if let Some(n) = offsets.get(t).and_then(|m| m.get(p)).and_then(|o| o.oldest) {
                    pbuf.clear();
                    let _ = write!(pbuf, "{}", p);
                    out.sample(&[("topic", t), ("partition", &pbuf)], n as f64);
                }
            }
        }

        // Per group: the partitions of every topic it committed to or is assigned.
        struct Row<'a> {
            group: &'a str,
            topic: &'a str,
            partition: i32,
            committed: Option<i64>,
            lag: lag::PartitionLag,
            rate: Option<f64>,
            status: Status,
        }
        let mut rows: Vec<Row> = Vec::new();
        self.history.begin_round();
        for (g, view) in views {
            let topics: BTreeSet<&String> = view
                .committed
                .keys()
                .chain(view.assigned.iter())
                .filter(|t| partitions.contains_key(*t))
                .collect();
            let has_members = view.members > 0;
            for t in topics {
                for p in partitions.get(t).map(Vec::as_slice).unwrap_or(&[]) {
                    let Some(o) = offsets.get(t).and_then(|m| m.get(p)) else {
                        continue;
                    };
                    let (Some(oldest), Some(newest)) = (o.oldest, o.newest) else {
                        continue;
                    };
                    let committed = view.committed.get(t).and_then(|m| m.get(p)).copied();
                    let l = lag::partition_lag(committed, oldest, newest);
                    let point = Point {
                        t: now,
                        committed: committed.unwrap_or(oldest).max(oldest),
                        end: newest,
                        lag: l.lag,
                    };
                    let window = self.history.record(g, t, *p, point);
                    rows.push(Row {
                        group: g,
                        topic: t,
                        partition: *p,
                        committed,
                        lag: l,
                        rate: lag::consume_rate(window),
                        status: lag::partition_status(window, has_members),
                    });
                }
            }
        }
        self.history.end_round();

        out.family(
            "kafka_consumergroup_current_offset",
            "Current committed offset of a consumer group at topic/partition.",
            Kind::Gauge,
        );
        for r in &rows {
            if let Some(c) = r.committed {
                pbuf.clear();
                let _ = write!(pbuf, "{}", r.partition);
                out.sample(
                    &[
                        ("consumergroup", r.group),
                        ("topic", r.topic),
                        ("partition", &pbuf),
                    ],
                    c as f64,
                );
            }
        }
        out.family(
            "kafka_consumergroup_lag",
            "Current approximate lag of a consumer group at topic/partition (committed=\"false\": no commit, counted from the oldest offset).",
            Kind::Gauge,
        );
        for r in &rows {
            pbuf.clear();
            let _ = write!(pbuf, "{}", r.partition);
            out.sample(
                &[
                    ("consumergroup", r.group),
                    ("topic", r.topic),
                    ("partition", &pbuf),
                    ("committed", if r.lag.committed { "true" } else { "false" }),
                ],
                r.lag.lag as f64,
            );
        }
        // (group, topic) -> (lag sum, rate sum, any rate known)
        let mut sums: BTreeMap<(&str, &str), (i64, f64, bool)> = BTreeMap::new();
        let mut statuses: BTreeMap<&str, Status> = BTreeMap::new();
        for r in &rows {
            let e = sums.entry((r.group, r.topic)).or_insert((0, 0.0, false));
            e.0 += r.lag.lag;
            if let Some(rate) = r.rate {
                e.1 += rate;
                e.2 = true;
            }
            let worst = statuses.entry(r.group).or_insert(Status::Ok);
            *worst = (*worst).max(r.status);
        }
        out.family(
            "kafka_consumergroup_lag_sum",
            "Current approximate lag of a consumer group at topic for all partitions.",
            Kind::Gauge,
        );
        for ((g, t), (sum, _, _)) in &sums {
            out.sample(&[("consumergroup", g), ("topic", t)], *sum as f64);
        }
        out.family(
            "kafka_consumergroup_lag_seconds",
            "Estimated seconds for a consumer group to consume its lag on a topic at its recent rate (+Inf: not consuming).",
            Kind::Gauge,
        );
        for ((g, t), (sum, rate, known)) in &sums {
            if *known || *sum == 0 {
                out.sample(
                    &[("consumergroup", g), ("topic", t)],
                    lag::drain_seconds(*sum, *rate),
                );
            }
        }
        out.family(
            "kafka_consumergroup_members",
            "Amount of members in a consumer group.",
            Kind::Gauge,
        );
        for (g, v) in views {
            out.sample(&[("consumergroup", g)], v.members as f64);
        }
        out.family(
            "kafka_consumergroup_status",
            "Burrow-style evaluation of a consumer group (1 for the current status).",
            Kind::Gauge,
        );
        for g in views.keys() {
            let status = lag::group_status(statuses.get(g.as_str()).copied());
            for s in Status::ALL {
                out.sample(
                    &[("consumergroup", g), ("status", s.as_str())],
                    if s == status { 1.0 } else { 0.0 },
                );
            }
        }
    }

    /// Drops the connections (the next collection reconnects).
    pub async fn reset(&mut self) {
        self.conns.clear();
        self.bootstrap = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_match_whole_names() {
        let m = Matcher::new(&Filter {
            include: vec!["orders.*".into()],
            exclude: vec![".*-test".into()],
        })
        .expect("compile");
        assert!(m.matches("orders-eu"));
        assert!(!m.matches("my-orders"));
        assert!(!m.matches("orders-test"));
        assert!(
            Matcher::new(&Filter::default())
                .expect("empty")
                .matches("anything")
        );
    }

    #[test]
    fn broker_addresses() {
        assert!(check_broker("kafka-0:9092").is_ok());
        assert!(check_broker("kafka-0").is_err());
        assert!(check_broker(":9092").is_err());
        assert!(check_broker("k:99999").is_err());
    }

    #[test]
    fn consumer_assignment_topics() {
        // version 0, 2 topics: "a" [0, 1], "bc" [2], userdata null
        let mut b = vec![0, 0, 0, 0, 0, 2];
        b.extend_from_slice(&[0, 1, b'a', 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 1]);
        b.extend_from_slice(&[0, 2, b'b', b'c', 0, 0, 0, 1, 0, 0, 0, 2]);
        b.extend_from_slice(&[0xff, 0xff, 0xff, 0xff]);
        assert_eq!(
            assignment_topics(&b),
            vec!["a".to_string(), "bc".to_string()]
        );
        assert!(assignment_topics(&[0, 0, 0]).is_empty());
    }

    /// A rebalancing group, a group whose coordinator is loading and a group whose
    /// coordinator moved: only the failing groups are skipped, the rest is reported.
    #[test]
    fn one_group_failing_never_fails_the_others() {
        use kafka_protocol::messages::describe_groups_response::DescribedGroup;
        let group = |id: &'static str, code: i16, state: &'static str| {
            DescribedGroup::default()
                .with_group_id(GroupId(StrBytes::from_static_str(id)))
                .with_error_code(code)
                .with_group_state(StrBytes::from_static_str(state))
        };
        let resp = DescribeGroupsResponse::default().with_groups(vec![
            group("rebalancing", 0, "PreparingRebalance"),
            group("loading", 14, ""),
            group("moved", 0, "Stable"),
            group("stable", 0, "Stable"),
        ]);
        let (mut views, mut problems) = (BTreeMap::new(), Vec::new());
        let skip = apply_describe("k", resp, &mut views, &mut problems);
        assert_eq!(skip, HashSet::from(["loading".to_string()]));
        assert!(
            problems[0].1.contains("group loading: coordinator busy"),
            "{problems:?}"
        );
        assert!(problems[0].1.contains("(error 14)"), "{problems:?}");
        let parts = BTreeMap::from([("t".to_string(), vec![0, 1])]);
        let fetched: Vec<Fetched> = vec![
            (
                "rebalancing".into(),
                0,
                vec![("t".into(), 0, 5, 0), ("t".into(), 1, -1, 0)],
            ),
            ("moved".into(), 16, vec![]),
            (
                "stable".into(),
                0,
                vec![
                    ("t".into(), 0, 7, 0),
                    ("t".into(), 1, 3, 3),
                    ("gone".into(), 0, 1, 0),
                ],
            ),
        ];
        apply_offsets(fetched, &parts, &mut views, &mut problems);
        assert_eq!(
            views.keys().collect::<Vec<_>>(),
            ["rebalancing", "stable"],
            "moved (NOT_COORDINATOR) and loading are skipped"
        );
        assert!(
            problems[1].1.contains("OffsetFetch for group moved"),
            "{problems:?}"
        );
        assert_eq!(
            views["rebalancing"].committed["t"],
            BTreeMap::from([(0, 5)]),
            "-1 means no commit"
        );
        assert_eq!(
            views["stable"].committed.keys().collect::<Vec<_>>(),
            ["t"],
            "unknown topic ignored"
        );
        assert_eq!(
            views["stable"].committed["t"],
            BTreeMap::from([(0, 7)]),
            "partition error skipped"
        );
    }
}
