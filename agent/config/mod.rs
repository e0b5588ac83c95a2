//! Typed configuration (`vigil.yaml`): loading, every problem reported at once, and reload.
//!
//! Loading goes text -> `serde_yaml::Value` -> typed [`Config`]. Structural problems (unknown
//! keys, wrong types, bad durations) are collected by deserializing repeatedly and pruning each
//! offending node; semantic problems come from [`Config::validate`]. Every problem is reported as
//! `<file>:<line>:<col>: <yaml.path>: <what is wrong; what to do>`.
//!
//! Called by `main.rs` (`vigil run`, `vigil check config`) and by the daemon's reload loop.

mod locate;
pub mod reload;
pub mod scrape;
pub mod secret;

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Deserializer};
use serde_yaml::Value;

pub use locate::LocationIndex;
use locate::join_key;

/// The configuration the repository ships (`vigil.yaml`), embedded so that `vigil run` works from
/// any directory without flags.
pub const EMBEDDED_DEFAULT: &str = include_str!("../../vigil.yaml");

/// The demo SLOs, embedded for the embedded default when `rules/` is not beside it.
pub const EMBEDDED_RULES: &str = include_str!("../../rules/demo.yaml");

/// The demo's alerting file, embedded for the embedded default when `alerts/` is not beside it.
pub const EMBEDDED_ALERTS: &str = include_str!("../../alerts/demo.yaml");

/// Keys that would hold a secret inline. Secrets are referenced as `<key>_env` / `<key>_file`.
const INLINE_SECRET_KEYS: &[&str] = &[
    "password",
    "token",
    "bearer_token",
    "secret",
    "api_key",
    "auth_token",
    "service_key",
    "routing_key",
];

/// The whole `vigil.yaml`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The agent itself: where it listens, where it keeps state, how often it evaluates.
    #[serde(default)]
    pub agent: AgentConfig,
    /// The built-in demo service: an HTTP endpoint with request counters and latency histograms
    /// whose error rate and latency can be changed at run time.
    #[serde(default)]
    pub demo: DemoConfig,
    /// Scrape jobs: which endpoints are scraped, how often, with which relabelling and limits.
    #[serde(default)]
    pub scrape: scrape::ScrapeConfig,
    /// Native collectors (Postgres, Redis, Kafka), each `type:` with its own keys; see
    /// docs/collectors.md.
    #[serde(default)]
    pub collectors: Vec<crate::collect::CollectorConfig>,
    /// SLO files (globs, relative to the config file), e.g. `rules/*.yaml`. Files ending in
    /// `.test.yaml` are rule tests and are skipped.
    #[serde(default)]
    pub rules: Vec<String>,
    /// Alerting files (globs, relative to the config file), e.g. `alerts/*.yaml`: the route
    /// tree, receivers, inhibit rules and threshold rules; see docs/alerting.md.
    #[serde(default)]
    pub alerts: Vec<String>,
    /// The Kubernetes external metrics API (`external.metrics.k8s.io/v1beta1`) for the HPA;
    /// absent: off. See docs/hpa.md.
    #[serde(default)]
    pub hpa: Option<crate::hpa::HpaConfig>,
    /// Grafana to provision the generated dashboards into through its HTTP API; absent: no
    /// sync. See docs/dashboards.md.
    #[serde(default)]
    pub grafana: Option<crate::dashboards::GrafanaConfig>,
    /// The SLOs loaded from `rules` (filled by [`ConfigSource::load`]).
    #[serde(skip)]
    pub slos: Vec<Arc<crate::slo::spec::Slo>>,
    /// The alerting configuration loaded from `alerts` (filled by [`ConfigSource::load`]).
    #[serde(skip)]
    pub alerting: Arc<crate::notify::config::AlertingConfig>,
}

/// `agent:` section.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// Address of the HTTP server (`/metrics`, `/healthz`, `/readyz`, the API). `host:port`;
    /// port 0 picks a free port (logged at start).
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Directory for the SQLite ledger and other state; created if missing. Relative paths are
    /// relative to the directory of the config file.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// How often SLOs and alerts are evaluated (and the ledger heartbeat is written).
    #[serde(default = "default_evaluation_interval", deserialize_with = "duration")]
    pub evaluation_interval: Duration,
    /// Labels added to every series and alert this agent sends elsewhere, as Prometheus'
    /// `global.external_labels`.
    #[serde(default)]
    pub external_labels: BTreeMap<String, String>,
    /// Identity of this agent in a shared ledger. Default: `$NODE_NAME`, else the host name.
    #[serde(default)]
    pub id: Option<String>,
    /// How long SIGTERM/SIGINT wait for in-flight work before the process exits anyway.
    #[serde(default = "default_grace", deserialize_with = "duration")]
    pub shutdown_grace_period: Duration,
    /// What this agent does with SLOs: `standalone` (collect, evaluate, serve), `node` (collect
    /// and write partial buckets to a shared ledger; evaluate nothing) or `aggregator` (evaluate
    /// the sum of every node's buckets from the shared ledger). node and aggregator need a
    /// shared Postgres ledger.
    #[serde(default)]
    pub role: Role,
    /// Ledger database URL without a password (`postgres://vigil@db/vigil`; the password then
    /// comes from PGPASSWORD). Default: SQLite `vigil.db` in `data_dir`.
    #[serde(default)]
    pub ledger_url: Option<String>,
    /// Environment variable holding the ledger URL (may contain a password).
    #[serde(default)]
    pub ledger_url_env: Option<String>,
    /// File holding the ledger URL (may contain a password).
    #[serde(default)]
    pub ledger_url_file: Option<PathBuf>,
    /// Leader election among replicas that share the Postgres ledger (two aggregators): only
    /// the leader sends notifications, writes completed SLO periods and syncs Grafana. See
    /// docs/leader-election.md.
    #[serde(default)]
    pub leader_election: crate::leader::LeaderElectionConfig,
}

impl Default for AgentConfig {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            data_dir: default_data_dir(),
            evaluation_interval: default_evaluation_interval(),
            external_labels: BTreeMap::new(),
            id: None,
            shutdown_grace_period: default_grace(),
            role: Role::Standalone,
            ledger_url: None,
            ledger_url_env: None,
            ledger_url_file: None,
            leader_election: Default::default(),
        }
    }
}

/// `agent.role`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Collects, evaluates and serves on its own.
    #[default]
    Standalone,
    /// Collects and writes partial SLO buckets to the shared ledger.
    Node,
    /// Evaluates SLOs over the sum of all nodes' buckets.
    Aggregator,
}

/// `demo:` section.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DemoConfig {
    /// Start the demo service in-process.
    #[serde(default)]
    pub enabled: bool,
    /// Address of the demo service's own HTTP server (`/metrics`, `/demo`). Port 0 picks one.
    #[serde(default = "default_demo_listen")]
    pub listen: String,
    /// Simulated requests per second (Poisson-distributed arrivals).
    #[serde(default = "default_rps")]
    pub requests_per_second: f64,
    /// Fraction of simulated requests answered with a 5xx code, 0 to 1. Changeable at run time
    /// with `POST /demo/error-rate`.
    #[serde(default = "default_error_rate")]
    pub error_rate: f64,
    /// Median simulated latency (log-normal distribution).
    #[serde(default = "default_latency_median", deserialize_with = "duration")]
    pub latency_median: Duration,
    /// 99th percentile of the simulated latency; must be at least the median.
    #[serde(default = "default_latency_p99", deserialize_with = "duration")]
    pub latency_p99: Duration,
}

impl Default for DemoConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            listen: default_demo_listen(),
            requests_per_second: default_rps(),
            error_rate: default_error_rate(),
            latency_median: default_latency_median(),
            latency_p99: default_latency_p99(),
        }
    }
}

fn default_listen() -> String {
    "127.0.0.1:9799".to_string()
}
fn default_data_dir() -> PathBuf {
    PathBuf::from("data")
}
fn default_evaluation_interval() -> Duration {
    Duration::from_secs(10)
}
fn default_grace() -> Duration {
    Duration::from_secs(10)
}
fn default_demo_listen() -> String {
    "127.0.0.1:9798".to_string()
}
fn default_rps() -> f64 {
    20.0
}
fn default_error_rate() -> f64 {
    0.001
}
fn default_latency_median() -> Duration {
    Duration::from_millis(40)
}
fn default_latency_p99() -> Duration {
    Duration::from_millis(250)
}

/// Deserializes a humantime duration string ("30s", "5m", "1h30m", "30d").
pub fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    /// A bare number (`10`) is a common mistake; say what is expected instead of "expected a
    /// string".
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Text(String),
        Int(i64),
        Float(f64),
    }
    let text = match Raw::deserialize(d)? {
        Raw::Text(t) => t,
        Raw::Int(i) => i.to_string(),
        Raw::Float(f) => f.to_string(),
    };
    parse_duration(&text).map_err(serde::de::Error::custom)
}

/// Parses a humantime duration with an error message that says what is expected.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim()).map_err(|_| {
        format!("invalid duration {text:?}; write a number and a unit, like 30s, 5m, 1h or 30d")
    })
}

/// One problem in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// YAML path of the offending node, e.g. `agent.listen` or `slos[2].objective`.
    pub path: String,
    /// What is wrong and what to do.
    pub message: String,
    /// 1-based line and column, when known.
    pub location: Option<(usize, usize)>,
}

impl Problem {
    /// A problem at `key` of the block at `block` (`collectors[2]` + `interval` ->
    /// `collectors[2].interval`); an empty `key` names the block itself.
    pub fn at(block: &str, key: &str, message: impl Into<String>) -> Self {
        let path = match (block.is_empty(), key.is_empty()) {
            (_, true) => block.to_string(),
            (true, false) => key.to_string(),
            (false, false) => format!("{block}.{key}"),
        };
        Self {
            path,
            message: message.into(),
            location: None,
        }
    }
}

/// Every problem found in one file, in document order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problems {
    /// The file as the user named it.
    pub file: String,
    /// The problems; never empty.
    pub items: Vec<Problem>,
}

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.items.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            match p.location {
                Some((line, col)) => write!(f, "{}:{line}:{col}: ", self.file)?,
                None => write!(f, "{}: ", self.file)?,
            }
            if p.path.is_empty() {
                write!(f, "{}", p.message)?;
            } else {
                write!(f, "{}: {}", p.path, p.message)?;
            }
        }
        Ok(())
    }
}

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{file}: cannot read the config file: {source}; check the path given to --config")]
    Read {
        /// The file as the user named it.
        file: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The text is not valid YAML.
    #[error("{file}{location}: invalid YAML: {message}")]
    Syntax {
        /// The file as the user named it.
        file: String,
        /// `:line:col` or empty.
        location: String,
        /// The parser's message.
        message: String,
    },
    /// The YAML is valid but the configuration is not.
    #[error("{0}")]
    Invalid(Problems),
    /// The configuration is valid but SLO files it references are not.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Rules(Vec<Problems>),
}

impl ConfigError {
    /// Number of problems reported.
    pub fn count(&self) -> usize {
        match self {
            Self::Invalid(p) => p.items.len(),
            Self::Rules(ps) => ps.iter().map(|p| p.items.len()).sum(),
            _ => 1,
        }
    }
}

/// Where the configuration came from, for reloads and relative paths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigSource {
    /// A file on disk.
    File(PathBuf),
    /// The embedded default (no `--config` and no `vigil.yaml` in the working directory).
    Embedded,
}

impl ConfigSource {
    /// The source to use for `--config`: the given path, else `./vigil.yaml` when it exists,
    /// else the embedded default.
    pub fn resolve(arg: Option<PathBuf>) -> Self {
        match arg {
            Some(p) => Self::File(p),
            None if Path::new("vigil.yaml").exists() => Self::File(PathBuf::from("vigil.yaml")),
            None => Self::Embedded,
        }
    }

    /// A name for messages.
    pub fn display_name(&self) -> String {
        match self {
            Self::File(p) => p.display().to_string(),
            Self::Embedded => "<embedded vigil.yaml>".to_string(),
        }
    }

    /// Directory that relative paths in the config are resolved against.
    pub fn base_dir(&self) -> PathBuf {
        match self {
            Self::File(p) => match p.parent() {
                Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
                _ => PathBuf::from("."),
            },
            Self::Embedded => PathBuf::from("."),
        }
    }

    /// Reads the raw text.
    pub fn read(&self) -> Result<String, ConfigError> {
        match self {
            Self::File(p) => std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                file: self.display_name(),
                source,
            }),
            Self::Embedded => Ok(EMBEDDED_DEFAULT.to_string()),
        }
    }

    /// Reads, parses and validates the config and every SLO file it references.
    pub fn load(&self) -> Result<Config, ConfigError> {
        let text = self.read()?;
        let base = self.base_dir();
        let mut cfg = Config::from_yaml(&text, &self.display_name(), &base)?;
        let embedded_fallback = *self == Self::Embedded && !base.join("rules").is_dir();
        let slos = if embedded_fallback {
            crate::slo::spec::parse_file(EMBEDDED_RULES, Path::new("rules/demo.yaml (embedded)"))
                .map_err(|p| ConfigError::Rules(vec![p]))?
        } else {
            crate::slo::spec::load_rules(&cfg.rules, &base, &self.display_name())
                .map_err(ConfigError::Rules)?
        };
        cfg.slos = slos.into_iter().map(Arc::new).collect();
        let alerting = if *self == Self::Embedded && !base.join("alerts").is_dir() {
            crate::notify::config::parse_files(
                &[(
                    "alerts/demo.yaml (embedded)".to_string(),
                    EMBEDDED_ALERTS.to_string(),
                )],
                &base,
            )
        } else {
            crate::notify::config::load(&cfg.alerts, &base, &self.display_name())
        };
        cfg.alerting = Arc::new(alerting.map_err(ConfigError::Rules)?);
        Ok(cfg)
    }
}

impl Config {
    /// Parses and validates `text`. `file` names it in messages; relative paths are resolved
    /// against `base_dir`.
    pub fn from_yaml(text: &str, file: &str, base_dir: &Path) -> Result<Self, ConfigError> {
        let mut value: Value = serde_yaml::from_str(text).map_err(|e| ConfigError::Syntax {
            file: file.to_string(),
            location: e
                .location()
                .map(|l| format!(":{}:{}", l.line(), l.column()))
                .unwrap_or_default(),
            message: e.to_string(),
        })?;
        if value.is_null() {
            value = Value::Mapping(Default::default());
        }
        let index = LocationIndex::build(text);
        let mut problems = Vec::new();
        remove_inline_secrets(&mut value, "", &mut problems);
        let parsed = deserialize_collecting::<Config>(value, &mut problems);
        if let Some(cfg) = &parsed {
            problems.extend(cfg.validate(base_dir));
        }
        if problems.is_empty() {
            if let Some(mut cfg) = parsed {
                cfg.resolve_paths(base_dir);
                return Ok(cfg);
            }
        }
        for p in &mut problems {
            if p.location.is_none() {
                p.location = index.find(&p.path);
            }
        }
        problems.sort_by_key(|p| p.location.unwrap_or((usize::MAX, 0)));
        if problems.is_empty() {
            problems.push(Problem {
                path: String::new(),
                message: "the configuration could not be read; see the messages above".into(),
                location: None,
            });
        }
        Err(ConfigError::Invalid(Problems {
            file: file.to_string(),
            items: problems,
        }))
    }

    /// Semantic checks that serde cannot express. Returns every problem found.
    pub fn validate(&self, base_dir: &Path) -> Vec<Problem> {
        let mut out = Vec::new();
        let mut bad = |path: &str, message: String| {
            out.push(Problem {
                path: path.to_string(),
                message,
                location: None,
            })
        };
        let a = &self.agent;
        if let Err(e) = parse_listen(&a.listen) {
            bad("agent.listen", e);
        }
        if a.evaluation_interval < Duration::from_secs(1) {
            bad(
                "agent.evaluation_interval",
                format!(
                    "{} is too short; use at least 1s",
                    humantime::format_duration(a.evaluation_interval)
                ),
            );
        }
        if a.shutdown_grace_period.is_zero() {
            bad(
                "agent.shutdown_grace_period",
                "must be more than 0s; e.g. 10s".into(),
            );
        }
        if a.data_dir.as_os_str().is_empty() {
            bad("agent.data_dir", "must not be empty; e.g. data".into());
        }
        for name in a.external_labels.keys() {
            if let Err(e) = check_label_name(name) {
                bad(&join_key("agent.external_labels", name), e);
            }
        }
        if let Some(id) = &a.id {
            if id.trim().is_empty() {
                bad(
                    "agent.id",
                    "must not be empty; remove the key to use the host name".into(),
                );
            }
        }
        let shared = a
            .ledger_url
            .as_deref()
            .is_some_and(|u| u.starts_with("postgres"))
            || a.ledger_url_env.is_some()
            || a.ledger_url_file.is_some();
        if a.role != Role::Standalone && !shared {
            bad(
                "agent.role",
                format!(
                    "{} needs a ledger shared with the other agents; set agent.ledger_url_env (or _file) to a Postgres URL",
                    format!("{:?}", a.role).to_lowercase()
                ),
            );
        }
        let ledger_keys = [
            a.ledger_url.is_some(),
            a.ledger_url_env.is_some(),
            a.ledger_url_file.is_some(),
        ];
        if ledger_keys.iter().filter(|k| **k).count() > 1 {
            bad(
                "agent.ledger_url",
                "set only one of ledger_url, ledger_url_env and ledger_url_file".into(),
            );
        } else if let Some(url) = &a.ledger_url {
            if crate::store::ledger::redact_url(url) != *url {
                bad(
                    "agent.ledger_url",
                    "contains a password; move the URL to ledger_url_env or ledger_url_file (or the password to PGPASSWORD)".into(),
                );
            } else if !(url.starts_with("postgres://")
                || url.starts_with("postgresql://")
                || url.starts_with("sqlite:"))
            {
                bad(
                    "agent.ledger_url",
                    "must start with postgres:// or sqlite:".into(),
                );
            }
        } else if let Err(e) = secret::resolve(
            "ledger_url",
            a.ledger_url_env.as_deref(),
            a.ledger_url_file.as_deref(),
            base_dir,
        ) {
            bad("agent.ledger_url_env", e);
        }
        for (i, r) in self.rules.iter().enumerate() {
            if r.trim().is_empty() {
                bad(
                    &format!("rules[{i}]"),
                    "is empty; give a path or glob such as rules/*.yaml".into(),
                );
            }
        }
        let d = &self.demo;
        if d.enabled {
            if let Err(e) = parse_listen(&d.listen) {
                bad("demo.listen", e);
            }
        }
        if !(0.0..=1.0).contains(&d.error_rate) {
            bad(
                "demo.error_rate",
                format!("{} is not a fraction; use 0 to 1", d.error_rate),
            );
        }
        if !(d.requests_per_second.is_finite()
            && (0.0..=100_000.0).contains(&d.requests_per_second))
        {
            bad(
                "demo.requests_per_second",
                format!("{} is out of range; use 0 to 100000", d.requests_per_second),
            );
        }
        if d.latency_median.is_zero() {
            bad(
                "demo.latency_median",
                "must be more than 0s; e.g. 40ms".into(),
            );
        }
        if d.latency_p99 < d.latency_median {
            bad(
                "demo.latency_p99",
                format!(
                    "{} is below latency_median ({}); the 99th percentile must be at least the median",
                    humantime::format_duration(d.latency_p99),
                    humantime::format_duration(d.latency_median)
                ),
            );
        }
        self.agent.leader_election.validate(shared, &mut out);
        self.scrape.validate(base_dir, &mut out);
        crate::collect::validate_all(&self.collectors, base_dir, &mut out);
        if let Some(h) = &self.hpa {
            h.validate(base_dir, &mut out);
        }
        if let Some(g) = &self.grafana {
            g.validate(base_dir, &mut out);
        }
        out
    }

    fn resolve_paths(&mut self, base_dir: &Path) {
        if base_dir == Path::new(".") {
            return;
        }
        if self.agent.data_dir.is_relative() {
            self.agent.data_dir = base_dir.join(&self.agent.data_dir);
        }
        if let Some(f) = &mut self.agent.ledger_url_file {
            if f.is_relative() {
                *f = base_dir.join(&*f);
            }
        }
        self.scrape.resolve_paths(base_dir);
        for c in &mut self.collectors {
            c.resolve_paths(base_dir);
        }
        if let Some(h) = &mut self.hpa {
            h.resolve_paths(base_dir);
        }
        if let Some(g) = &mut self.grafana {
            g.resolve_paths(base_dir);
        }
    }

    /// `agent.listen` as a socket address (validated at load).
    pub fn listen_addr(&self) -> SocketAddr {
        parse_listen(&self.agent.listen).unwrap_or_else(|_| ([127, 0, 0, 1], 9799).into())
    }

    /// The ledger URL when one is configured (None: SQLite in `data_dir`).
    pub fn ledger_url(&self) -> Result<Option<secret::Secret>, String> {
        let a = &self.agent;
        if let Some(url) = &a.ledger_url {
            return Ok(Some(secret::Secret::new(url.clone())));
        }
        secret::resolve(
            "ledger_url",
            a.ledger_url_env.as_deref(),
            a.ledger_url_file.as_deref(),
            Path::new("."),
        )
    }

    /// This agent's identity: `agent.id`, else `$NODE_NAME`, else the host name.
    pub fn agent_id(&self) -> String {
        if let Some(id) = &self.agent.id {
            return id.clone();
        }
        if let Ok(node) = std::env::var("NODE_NAME") {
            if !node.is_empty() {
                return node;
            }
        }
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|s| s.trim().to_string())
            .ok()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "vigil".to_string())
    }
}

/// Parses a `host:port` listen address.
pub fn parse_listen(text: &str) -> Result<SocketAddr, String> {
    text.parse::<SocketAddr>().map_err(|_| {
        format!("{text:?} is not an address to listen on; write ip:port, e.g. 127.0.0.1:9799 or 0.0.0.0:9799")
    })
}

/// Checks a Prometheus label name (`[a-zA-Z_][a-zA-Z0-9_]*`, not reserved `__` prefix).
pub fn check_label_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let ok_first = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if !ok_first || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(format!(
            "{name:?} is not a valid label name; use letters, digits and _ (not starting with a digit)"
        ));
    }
    if name.starts_with("__") {
        return Err(format!(
            "{name:?} starts with __, which is reserved for internal labels"
        ));
    }
    Ok(())
}

/// Checks the PEM files of a TLS block (`tls_config:` of a scrape job, a collector's `tls:` or
/// its top-level `ca_file`/`cert_file`/`key_file`): each file given exists (relative paths
/// against `base_dir`), and `cert_file` and `key_file` come together. Problems are reported
/// under `block` (e.g. `scrape.targets[0].tls_config`, `collectors[2].tls`, `collectors[1]`).
pub fn check_tls_files(
    block: &str,
    ca_file: Option<&Path>,
    cert_file: Option<&Path>,
    key_file: Option<&Path>,
    base_dir: &Path,
    out: &mut Vec<Problem>,
) {
    for (file, key) in [
        (ca_file, "ca_file"),
        (cert_file, "cert_file"),
        (key_file, "key_file"),
    ] {
        let Some(f) = file else { continue };
        let full = if f.is_relative() {
            base_dir.join(f)
        } else {
            f.to_path_buf()
        };
        if !full.is_file() {
            out.push(Problem {
                path: join_key(block, key),
                message: format!("{} does not exist; check the path", full.display()),
                location: None,
            });
        }
    }
    if cert_file.is_some() != key_file.is_some() {
        out.push(Problem {
            path: block.to_string(),
            message: "cert_file and key_file go together; set both or neither".into(),
            location: None,
        });
    }
}

/// Reports and removes keys that would hold a secret inline.
fn remove_inline_secrets(value: &mut Value, path: &str, problems: &mut Vec<Problem>) {
    match value {
        Value::Mapping(map) => {
            let secret_keys: Vec<Value> = map
                .keys()
                .filter(|k| k.as_str().is_some_and(|k| INLINE_SECRET_KEYS.contains(&k)))
                .cloned()
                .collect();
            for key in secret_keys {
                let k = key.as_str().unwrap_or_default().to_string();
                problems.push(Problem {
                    path: join_key(path, &k),
                    message: format!(
                        "secrets are not accepted inline; put it in an environment variable or a file and set {k}_env or {k}_file"
                    ),
                    location: None,
                });
                map.remove(&key);
            }
            for (k, v) in map.iter_mut() {
                let child = join_key(path, &yaml_key(k));
                remove_inline_secrets(v, &child, problems);
            }
        }
        Value::Sequence(items) => {
            for (i, v) in items.iter_mut().enumerate() {
                remove_inline_secrets(v, &format!("{path}[{i}]"), problems);
            }
        }
        _ => {}
    }
}

fn yaml_key(k: &Value) -> String {
    match k {
        Value::String(s) => s.clone(),
        other => serde_yaml::to_string(other)
            .unwrap_or_default()
            .trim()
            .to_string(),
    }
}

/// Deserializes `value` as `T`, recording each structural problem and pruning the offending node
/// so that the next attempt can find the next one. Returns the value once it deserializes.
pub fn deserialize_collecting<T: serde::de::DeserializeOwned>(
    mut value: Value,
    problems: &mut Vec<Problem>,
) -> Option<T> {
    for _ in 0..64 {
        match serde_path_to_error::deserialize::<_, T>(value.clone()) {
            Ok(v) => return Some(v),
            Err(err) => {
                let mut segments = path_segments(err.path());
                let inner = err.into_inner();
                let mut message = inner.to_string();
                // A hand-written Deserialize (e.g. `collectors[]`, tagged by `type`) reports the
                // path inside its node through [`nested_error`]; continue the path there.
                if let Some((inner_path, rest)) = split_nested(&message) {
                    segments.extend(inner_path);
                    message = rest;
                }
                // For an unknown key serde points at the enclosing mapping; name the key itself.
                let unknown = unknown_field_name(&message);
                let mut target = segments.clone();
                if let Some(key) = &unknown {
                    if target.last() != Some(&Segment::Key(key.clone())) {
                        target.push(Segment::Key(key.clone()));
                    }
                }
                let path = render_path(&target);
                problems.push(Problem {
                    path: path.clone(),
                    message: friendly_message(&message, unknown.is_some()),
                    location: None,
                });
                if target.is_empty() || !remove_at(&mut value, &target) {
                    return None;
                }
            }
        }
    }
    None
}

const NESTED_MARK: char = '\u{1f}';

/// An error for a hand-written `Deserialize` that deserialized a sub-tree itself with
/// `serde_path_to_error`: carries the inner path so that the problem points at the exact key and
/// only that key is pruned.
pub fn nested_error<E: serde::de::Error>(path: &serde_path_to_error::Path, message: &str) -> E {
    let segments = path_segments(path);
    let encoded: Vec<String> = segments
        .iter()
        .map(|s| match s {
            Segment::Key(k) => format!("k{k}"),
            Segment::Index(i) => format!("i{i}"),
        })
        .collect();
    E::custom(format!(
        "{NESTED_MARK}{}{NESTED_MARK}{message}",
        encoded.join(&NESTED_MARK.to_string())
    ))
}

fn split_nested(message: &str) -> Option<(Vec<Segment>, String)> {
    let rest = message.strip_prefix(NESTED_MARK)?;
    let mut parts: Vec<&str> = rest.split(NESTED_MARK).collect();
    let text = parts.pop()?.to_string();
    let segments = parts
        .into_iter()
        .filter(|p| !p.is_empty())
        .filter_map(|p| match p.split_at(1) {
            ("k", k) => Some(Segment::Key(k.to_string())),
            ("i", i) => i.parse().ok().map(Segment::Index),
            _ => None,
        })
        .collect();
    Some((segments, text))
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Key(String),
    Index(usize),
}

fn path_segments(path: &serde_path_to_error::Path) -> Vec<Segment> {
    use serde_path_to_error::Segment as S;
    path.iter()
        .filter_map(|s| match s {
            S::Seq { index } => Some(Segment::Index(*index)),
            S::Map { key } => Some(Segment::Key(key.clone())),
            S::Enum { variant } => Some(Segment::Key(variant.clone())),
            S::Unknown => None,
        })
        .collect()
}

fn render_path(segments: &[Segment]) -> String {
    let mut out = String::new();
    for s in segments {
        match s {
            Segment::Key(k) => out = join_key(&out, k),
            Segment::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

fn remove_at(value: &mut Value, path: &[Segment]) -> bool {
    let Some((last, parents)) = path.split_last() else {
        return false;
    };
    let mut node = value;
    for seg in parents {
        node = match (seg, node) {
            (Segment::Key(k), Value::Mapping(m)) => match m.get_mut(k.as_str()) {
                Some(v) => v,
                None => return false,
            },
            (Segment::Index(i), Value::Sequence(s)) => match s.get_mut(*i) {
                Some(v) => v,
                None => return false,
            },
            _ => return false,
        };
    }
    match (last, node) {
        (Segment::Key(k), Value::Mapping(m)) => m.remove(k.as_str()).is_some(),
        (Segment::Index(i), Value::Sequence(s)) if *i < s.len() => {
            s.remove(*i);
            true
        }
        _ => false,
    }
}

fn unknown_field_name(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    Some(rest[..rest.find('`')?].to_string())
}

/// serde's messages are precise but terse; add what to do.
fn friendly_message(message: &str, unknown_key: bool) -> String {
    let msg = message.split(" at line ").next().unwrap_or(message);
    if unknown_key {
        let expected = msg.split_once(", expected ").map(|(_, e)| e).unwrap_or("");
        if expected.is_empty() {
            return "unknown key; remove it".to_string();
        }
        let expected = expected
            .trim_start_matches("one of ")
            .replace('`', "")
            .replace(" or ", ", ");
        return format!("unknown key; remove it or use one of: {expected}");
    }
    msg.replace("expected f64", "expected a number")
        .replace("expected u64", "expected a whole number")
        .replace("expected u32", "expected a whole number")
        .replace("expected usize", "expected a whole number")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(text: &str) -> String {
        match Config::from_yaml(text, "t.yaml", Path::new(".")) {
            Ok(_) => String::new(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn embedded_default_is_valid() {
        let cfg = Config::from_yaml(EMBEDDED_DEFAULT, "vigil.yaml", Path::new("."));
        assert!(
            cfg.is_ok(),
            "{}",
            cfg.err().map(|e| e.to_string()).unwrap_or_default()
        );
    }

    #[test]
    fn empty_document_gives_defaults() {
        let cfg = Config::from_yaml("", "t.yaml", Path::new(".")).ok();
        assert_eq!(
            cfg.map(|c| c.agent.listen),
            Some("127.0.0.1:9799".to_string())
        );
    }

    #[test]
    fn reports_every_problem_with_location() {
        let text = "agent:\n  listen: nowhere\n  bogus: 1\n  evaluation_interval: soon\ndemo:\n  error_rate: 2\n  password: x\nextra: true\n";
        let out = problems(text);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 6, "{out}");
        assert!(lines[0].starts_with("t.yaml:2:3: agent.listen: \"nowhere\" is not an address"));
        assert!(
            lines[1].starts_with(
                "t.yaml:3:3: agent.bogus: unknown key; remove it or use one of: listen"
            )
        );
        assert!(
            lines[2]
                .starts_with("t.yaml:4:3: agent.evaluation_interval: invalid duration \"soon\"")
        );
        assert!(lines[3].starts_with("t.yaml:6:3: demo.error_rate: 2 is not a fraction"));
        assert!(lines[4].starts_with("t.yaml:7:3: demo.password: secrets are not accepted inline"));
        assert!(lines[5].starts_with("t.yaml:8:1: extra: unknown key"));
    }

    #[test]
    fn relative_data_dir_follows_the_config_file() {
        let cfg = Config::from_yaml("agent: {data_dir: state}", "x/v.yaml", Path::new("x"));
        assert_eq!(
            cfg.ok().map(|c| c.agent.data_dir),
            Some(PathBuf::from("x/state"))
        );
    }

    #[test]
    fn label_names() {
        assert!(check_label_name("region").is_ok());
        assert!(check_label_name("_x9").is_ok());
        assert!(check_label_name("9x").is_err());
        assert!(check_label_name("a-b").is_err());
        assert!(check_label_name("__name__").is_err());
        assert!(check_label_name("").is_err());
    }
}
