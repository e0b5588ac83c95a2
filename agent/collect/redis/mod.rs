//! The `type: redis` collector: redis_exporter's metrics (INFO, CONFIG, SLOWLOG, keyspace,
//! commandstats, errorstats), queue depth of configured keys and SCAN patterns
//! (`redis_key_size`, streams and consumer groups) and BullMQ queue counts, gathered over one
//! long-lived redis-rs `MultiplexedConnection`.
//!
//! One collection is at most three pipelined round trips (plus SCAN rounds for patterns):
//! 1. `INFO ALL`, `CONFIG GET`, `SLOWLOG` and `TYPE` of every configured or scanned key;
//! 2. the length command chosen by type (`LLEN`, `ZCARD`, `SCARD`, `HLEN`, `XLEN`, `STRLEN`),
//!    `XINFO STREAM` / `XINFO GROUPS` for streams, and the BullMQ `LLEN` / `ZCARD`s.
//!
//! The connection is opened lazily and dropped by [`Redis::reset`] after a failure, so the
//! collector reconnects by itself. Called by the collector manager in `collect/mod.rs`.
//! Metric names and the intentional differences are documented in `docs/collectors-redis.md`.

mod info;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, ConnectionAddr, IntoConnectionInfo, Value};
use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncWrite};
use tracing::{debug, info, warn};

use super::{Kind, Output};
use crate::config::Problem;
use crate::config::secret::{self, Secret};

use info::Info;

/// `collectors[] type: redis`: the keys of this collector besides the common ones.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisConfig {
    /// Environment variable holding the URL (`redis://[user:password@]host:port/db` or
    /// `rediss://...` for TLS). Set this or `url_file`.
    #[serde(default)]
    pub url_env: Option<String>,
    /// File holding the URL (relative to the config file). Set this or `url_env`.
    #[serde(default)]
    pub url_file: Option<PathBuf>,
    /// PEM bundle of the CAs that sign the server certificate (`rediss://` only); default: the
    /// Mozilla roots built into vigil.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate for mutual TLS (with `key_file`).
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    /// PEM private key of `cert_file`.
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// Accept any server certificate. For tests only.
    #[serde(default)]
    pub insecure_skip_verify: bool,
    /// Keys whose length is exported as `redis_key_size{db,key}`: single keys
    /// (`{db: 0, key: jobs}`) and SCAN patterns (`{db: 0, pattern: "queue:*"}`).
    #[serde(default)]
    pub keys: Vec<KeyConfig>,
    /// Most keys one pattern may SCAN through per collection (and most keys it reports); a
    /// truncated scan sets `redis_keys_scan_truncated 1` and logs a warning once.
    #[serde(default = "default_scan_limit")]
    pub scan_limit: u64,
    /// BullMQ queue names: `bullmq_queue_jobs{queue,state}` for each, in the URL's database.
    #[serde(default)]
    pub bullmq: Vec<String>,
    /// Key prefix of the BullMQ queues (BullMQ's `prefix` option).
    #[serde(default = "default_bullmq_prefix")]
    pub bullmq_prefix: String,
    /// Number of databases for which `redis_db_keys` is zero-filled; default: the server's
    /// `databases` setting (16 when `CONFIG` is not allowed).
    #[serde(default)]
    pub databases: Option<u32>,
    /// Longest wait for TCP connect, TLS handshake and AUTH; keep it below `timeout` so that a
    /// server that does not answer (e.g. a plain server behind a `rediss://` URL) is named
    /// as such rather than as a slow collection.
    #[serde(
        default = "default_connect_timeout",
        deserialize_with = "super::de_duration"
    )]
    pub connect_timeout: Duration,
}

/// One `keys[]` entry: a single key or a SCAN pattern, in a database.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyConfig {
    /// Database number (default 0).
    #[serde(default)]
    pub db: u32,
    /// A key name, taken literally.
    #[serde(default)]
    pub key: Option<String>,
    /// A SCAN `MATCH` pattern (`*`, `?`, `[...]`).
    #[serde(default)]
    pub pattern: Option<String>,
}

fn default_scan_limit() -> u64 {
    10_000
}

fn default_connect_timeout() -> Duration {
    Duration::from_secs(5)
}

fn default_bullmq_prefix() -> String {
    "bull".into()
}

/// The BullMQ job states and the Redis type of their key (`true` = list, else sorted set).
const BULLMQ_STATES: &[(&str, bool)] = &[
    ("wait", true),
    ("active", true),
    ("delayed", false),
    ("failed", false),
    ("completed", false),
    ("paused", true),
    ("prioritized", false),
];

impl RedisConfig {
    /// Semantic checks; `path` is e.g. `collectors[2]`.
    pub fn validate(&self, path: &str, base_dir: &Path, out: &mut Vec<Problem>) {
        let mut bad = |key: &str, message: String| out.push(Problem::at(path, key, message));
        let url_key = if self.url_file.is_some() && self.url_env.is_none() {
            "url_file"
        } else {
            "url_env"
        };
        let mut tls_url = None;
        match secret::resolve(
            "url",
            self.url_env.as_deref(),
            self.url_file.as_deref(),
            base_dir,
        ) {
            Ok(None) => bad(
                "url_env",
                "missing url_env or url_file; set one to a redis:// or rediss:// URL".into(),
            ),
            Ok(Some(url)) => match parse_url(&url) {
                Ok(target) => tls_url = Some(target.tls),
                Err(e) => bad(url_key, e),
            },
            Err(e) => bad(url_key, e),
        }
        let mut found = Vec::new();
        crate::config::check_tls_files(
            "",
            self.ca_file.as_deref(),
            self.cert_file.as_deref(),
            self.key_file.as_deref(),
            base_dir,
            &mut found,
        );
        for pr in found {
            bad(&pr.path, pr.message);
        }
        let tls_opts = self.ca_file.is_some()
            || self.cert_file.is_some()
            || self.key_file.is_some()
            || self.insecure_skip_verify;
        if tls_opts && tls_url == Some(false) {
            bad(
                url_key,
                "TLS options (ca_file, cert_file, key_file, insecure_skip_verify) need a rediss:// URL; use rediss:// or remove them".into(),
            );
        }
        for (i, k) in self.keys.iter().enumerate() {
            match (&k.key, &k.pattern) {
                (None, None) => bad(
                    &format!("keys[{i}]"),
                    "set key (a key name) or pattern (a SCAN pattern like queue:*)".into(),
                ),
                (Some(_), Some(_)) => bad(
                    &format!("keys[{i}]"),
                    "set either key or pattern, not both".into(),
                ),
                (Some(name), None) if name.is_empty() => {
                    bad(&format!("keys[{i}].key"), "must not be empty".into())
                }
                (None, Some(p)) if p.is_empty() => bad(
                    &format!("keys[{i}].pattern"),
                    "must not be empty; e.g. queue:*".into(),
                ),
                _ => {}
            }
            if let Some(n) = self.databases {
                if k.db >= n {
                    bad(
                        &format!("keys[{i}].db"),
                        format!(
                            "db {} is not below databases ({n}); use 0..{}",
                            k.db,
                            n.saturating_sub(1)
                        ),
                    );
                }
            }
        }
        if self.scan_limit == 0 {
            bad("scan_limit", "must be at least 1; e.g. 10000".into());
        }
        for (i, q) in self.bullmq.iter().enumerate() {
            if q.trim().is_empty() {
                bad(
                    &format!("bullmq[{i}]"),
                    "queue names must not be empty".into(),
                );
            }
        }
        if self.bullmq_prefix.is_empty() {
            bad(
                "bullmq_prefix",
                "must not be empty; BullMQ's default is bull".into(),
            );
        }
        if self.connect_timeout.is_zero() {
            bad("connect_timeout", "must be more than 0s; e.g. 5s".into());
        }
        if self.databases == Some(0) {
            bad(
                "databases",
                "must be at least 1; remove it to use the server's setting".into(),
            );
        }
    }

    /// Makes relative file paths relative to the config file's directory.
    pub fn resolve_paths(&mut self, base_dir: &Path) {
        for f in [
            &mut self.url_file,
            &mut self.ca_file,
            &mut self.cert_file,
            &mut self.key_file,
        ]
        .into_iter()
        .flatten()
        {
            if f.is_relative() {
                *f = base_dir.join(&*f);
            }
        }
    }
}

/// Why a redis collection failed. Messages name the collector and the server (never the
/// password).
#[derive(Debug, thiserror::Error)]
pub enum RedisError {
    /// The URL could not be read or parsed.
    #[error("redis collector {collector}: {message}")]
    Config {
        /// Collector name.
        collector: String,
        /// What is wrong.
        message: String,
    },
    /// The TCP (or unix socket) connection failed.
    #[error("redis collector {collector}: cannot connect to {target}: {source}")]
    Connect {
        /// Collector name.
        collector: String,
        /// The server, without credentials.
        target: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// No answer while connecting (TCP, TLS handshake, AUTH) within `connect_timeout`.
    #[error(
        "redis collector {collector}: no answer from {target} within {after} while connecting{hint}"
    )]
    ConnectTimeout {
        /// Collector name.
        collector: String,
        /// The server, without credentials.
        target: String,
        /// `connect_timeout`, formatted.
        after: String,
        /// What to check.
        hint: &'static str,
    },
    /// TLS setup or handshake failed.
    #[error("redis collector {collector}: TLS with {target} failed: {message}")]
    Tls {
        /// Collector name.
        collector: String,
        /// The server, without credentials.
        target: String,
        /// What went wrong and what to check.
        message: String,
    },
    /// The server refused or failed a command (AUTH, INFO, ...), or the connection broke.
    #[error("redis collector {collector}: {target}: {what} failed: {source}")]
    Command {
        /// Collector name.
        collector: String,
        /// The server, without credentials.
        target: String,
        /// The step (`AUTH/SELECT`, `INFO`, ...).
        what: &'static str,
        /// The client's error.
        #[source]
        source: redis::RedisError,
    },
}

/// A parsed URL: what to dial and how to name it in messages.
struct Target {
    info: redis::ConnectionInfo,
    /// `redis://host:port/db`, without credentials.
    display: String,
    tls: bool,
}

/// Parses a `redis://` / `rediss://` / `unix://` URL; the error never contains the URL.
fn parse_url(url: &Secret) -> Result<Target, String> {
    let text = url.expose();
    let scheme = text.split("://").next().unwrap_or_default();
    if !matches!(scheme, "redis" | "rediss" | "unix" | "redis+unix") || !text.contains("://") {
        return Err(
            "the URL must start with redis:// or rediss:// (or unix:// for a socket)".into(),
        );
    }
    let info = text
        .into_connection_info()
        .map_err(|e| format!("invalid redis URL: {e}"))?;
    let db = info.redis_settings().db();
    let (display, tls) = match info.addr() {
        ConnectionAddr::Tcp(host, port) => {
            (format!("redis://{}:{port}/{db}", host_text(host)), false)
        }
        ConnectionAddr::TcpTls { host, port, .. } => {
            (format!("rediss://{}:{port}/{db}", host_text(host)), true)
        }
        ConnectionAddr::Unix(path) => (format!("unix://{}?db={db}", path.display()), false),
        _ => return Err("unsupported redis address".into()),
    };
    Ok(Target { info, display, tls })
}

fn host_text(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

/// An open connection and the database it selected.
struct Conn {
    mc: MultiplexedConnection,
    db: i64,
    target: String,
}

/// A redis collector and its connection.
pub struct Redis {
    name: String,
    cfg: RedisConfig,
    conn: Option<Conn>,
    /// `CONFIG GET` with several parameters (Redis 7+), learnt from the last INFO.
    multi_config_get: bool,
    /// Patterns whose truncation was already logged.
    warned: HashSet<(u32, String)>,
}

/// What one key turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyType {
    None,
    String,
    List,
    Set,
    ZSet,
    Hash,
    Stream,
    Other,
}

impl KeyType {
    fn parse(text: &str) -> Self {
        match text {
            "none" => Self::None,
            "string" => Self::String,
            "list" => Self::List,
            "set" => Self::Set,
            "zset" => Self::ZSet,
            "hash" => Self::Hash,
            "stream" => Self::Stream,
            _ => Self::Other,
        }
    }

    fn length_command(self) -> Option<&'static str> {
        match self {
            Self::String => Some("STRLEN"),
            Self::List => Some("LLEN"),
            Self::Set => Some("SCARD"),
            Self::ZSet => Some("ZCARD"),
            Self::Hash => Some("HLEN"),
            Self::Stream => Some("XLEN"),
            Self::None | Self::Other => None,
        }
    }
}

/// Result of SCANning one pattern.
struct Scanned {
    db: u32,
    pattern: String,
    keys: BTreeSet<String>,
    truncated: bool,
}

/// Where a reply of the second pipeline goes.
enum Slot {
    Select,
    Size(usize),
    XinfoStream(usize),
    XinfoGroups(usize),
    Bull(usize, usize),
}

/// A metric family derived from one field of `T`: name, help, getter.
type FamilyOf<T> = (&'static str, &'static str, fn(&T) -> Option<f64>);

/// One stream's `XINFO` data.
#[derive(Default)]
struct StreamInfo {
    length: f64,
    radix_keys: Option<f64>,
    radix_nodes: Option<f64>,
    groups: f64,
    last_id_ms: Option<f64>,
    group_rows: Vec<GroupInfo>,
}

struct GroupInfo {
    name: String,
    consumers: f64,
    pending: f64,
    last_delivered_ms: Option<f64>,
    lag: Option<f64>,
}

impl Redis {
    /// Builds the collector; connects lazily on the first collection.
    pub fn new(name: &str, cfg: &RedisConfig) -> Self {
        Self {
            name: name.to_string(),
            cfg: cfg.clone(),
            conn: None,
            multi_config_get: false,
            warned: HashSet::new(),
        }
    }

    /// Drops the connection; the next collection reconnects.
    pub async fn reset(&mut self) {
        self.conn = None;
    }

    fn config_error(&self, message: String) -> RedisError {
        RedisError::Config {
            collector: self.name.clone(),
            message,
        }
    }

    /// Resolves the URL (read at every connect, so a rotated file is picked up), dials the
    /// server, does TLS when asked, then AUTH/SELECT through redis-rs.
    async fn connect(&self) -> Result<Conn, RedisError> {
        let url = secret::resolve(
            "url",
            self.cfg.url_env.as_deref(),
            self.cfg.url_file.as_deref(),
            Path::new("."),
        )
        .map_err(|e| self.config_error(e))?
        .ok_or_else(|| self.config_error("missing url_env or url_file".into()))?;
        let target = parse_url(&url).map_err(|e| self.config_error(e))?;
        let shown = target.display.clone();
        let tls = target.tls;
        match tokio::time::timeout(self.cfg.connect_timeout, self.dial(target)).await {
            Ok(result) => result,
            Err(_) => Err(RedisError::ConnectTimeout {
                collector: self.name.clone(),
                target: shown,
                after: humantime::format_duration(self.cfg.connect_timeout).to_string(),
                hint: if tls {
                    "; check that the server serves TLS on this port (use redis:// for a plain server)"
                } else {
                    "; check the host, the port and the server's load"
                },
            }),
        }
    }

    async fn dial(&self, target: Target) -> Result<Conn, RedisError> {
        let shown = target.display.clone();
        let connect_err = |source| RedisError::Connect {
            collector: self.name.clone(),
            target: shown.clone(),
            source,
        };
        let settings = target.info.redis_settings().clone();
        let db = settings.db();
        let mc = match target.info.addr() {
            ConnectionAddr::Tcp(host, port) => {
                let tcp = tokio::net::TcpStream::connect((host.as_str(), *port))
                    .await
                    .map_err(connect_err)?;
                let _ = tcp.set_nodelay(true);
                self.handshake(&settings, tcp, &shown).await?
            }
            ConnectionAddr::TcpTls {
                host,
                port,
                insecure,
                ..
            } => {
                let tls_err = |message: String| RedisError::Tls {
                    collector: self.name.clone(),
                    target: shown.clone(),
                    message,
                };
                let opts = crate::collect::tls::TlsOptions {
                    ca_file: self.cfg.ca_file.as_deref(),
                    cert_file: self.cfg.cert_file.as_deref(),
                    key_file: self.cfg.key_file.as_deref(),
                    insecure_skip_verify: self.cfg.insecure_skip_verify || *insecure,
                };
                let config = crate::collect::tls::client_config(&opts).map_err(tls_err)?;
                let name = crate::collect::tls::server_name(host).map_err(tls_err)?;
                let tcp = tokio::net::TcpStream::connect((host.as_str(), *port))
                    .await
                    .map_err(connect_err)?;
                let _ = tcp.set_nodelay(true);
                let stream = tokio_rustls::TlsConnector::from(config)
                    .connect(name, tcp)
                    .await
                    .map_err(|e| {
                        tls_err(format!(
                            "{e}; check that the server serves TLS on this port (use redis:// for a plain server) and the ca_file"
                        ))
                    })?;
                self.handshake(&settings, stream, &shown).await?
            }
            ConnectionAddr::Unix(path) => {
                let unix = tokio::net::UnixStream::connect(path)
                    .await
                    .map_err(connect_err)?;
                self.handshake(&settings, unix, &shown).await?
            }
            _ => return Err(self.config_error("unsupported redis address".into())),
        };
        info!(collector = %self.name, target = %shown, "connected to redis");
        Ok(Conn {
            mc,
            db,
            target: shown,
        })
    }

    async fn handshake<C>(
        &self,
        settings: &redis::RedisConnectionInfo,
        stream: C,
        target: &str,
    ) -> Result<MultiplexedConnection, RedisError>
    where
        C: Unpin + AsyncRead + AsyncWrite + Send + 'static,
    {
        // The manager's `timeout` bounds every collection; no second per-request timer.
        let config = AsyncConnectionConfig::new().set_response_timeout(None);
        let (mc, driver) = MultiplexedConnection::new_with_config(settings, stream, config)
            .await
            .map_err(|source| RedisError::Command {
                collector: self.name.clone(),
                target: target.to_string(),
                what: "AUTH/SELECT",
                source,
            })?;
        tokio::spawn(driver);
        Ok(mc)
    }

    /// One collection into `out`.
    pub async fn collect(&mut self, out: &mut Output) -> Result<(), RedisError> {
        if self.conn.is_none() {
            self.conn = Some(self.connect().await?);
        }
        let Some(mut conn) = self.conn.take() else {
            return Ok(());
        };
        let result = self.collect_on(&mut conn, out).await;
        self.conn = Some(conn);
        result
    }

    async fn collect_on(&mut self, conn: &mut Conn, out: &mut Output) -> Result<(), RedisError> {
        let cmd_err = |what: &'static str, source: redis::RedisError| RedisError::Command {
            collector: self.name.clone(),
            target: conn.target.clone(),
            what,
            source,
        };
        // SCAN rounds for the patterns.
        let patterns: Vec<(u32, String)> = self
            .cfg
            .keys
            .iter()
            .filter_map(|k| Some((k.db, k.pattern.clone()?)))
            .collect();
        let scanned = if patterns.is_empty() {
            Vec::new()
        } else {
            scan(&mut conn.mc, conn.db, &patterns, self.cfg.scan_limit)
                .await
                .map_err(|e| cmd_err("SCAN", e))?
        };
        // Every key to look at, per database, each once.
        let mut by_db: BTreeMap<u32, BTreeSet<String>> = BTreeMap::new();
        for k in &self.cfg.keys {
            if let Some(name) = &k.key {
                by_db.entry(k.db).or_default().insert(name.clone());
            }
        }
        for s in &scanned {
            by_db
                .entry(s.db)
                .or_default()
                .extend(s.keys.iter().cloned());
        }
        let keys: Vec<(u32, String)> = by_db
            .iter()
            .flat_map(|(db, ks)| ks.iter().map(move |k| (*db, k.clone())))
            .collect();

        // Round trip 1: INFO, CONFIG, SLOWLOG, TYPE of every key.
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        pipe.cmd("INFO").arg("ALL");
        let config_params = ["maxmemory", "maxclients", "io-threads", "databases"];
        let config_cmds = if self.multi_config_get {
            pipe.cmd("CONFIG").arg("GET").arg(&config_params[..]);
            1
        } else {
            for p in config_params {
                pipe.cmd("CONFIG").arg("GET").arg(p);
            }
            config_params.len()
        };
        pipe.cmd("SLOWLOG").arg("LEN");
        pipe.cmd("SLOWLOG").arg("GET").arg(1);
        let mut type_slots = Vec::with_capacity(keys.len());
        let mut current_db = conn.db;
        for (i, (db, key)) in keys.iter().enumerate() {
            if i64::from(*db) != current_db {
                pipe.cmd("SELECT").arg(*db);
                type_slots.push(None);
                current_db = i64::from(*db);
            }
            pipe.cmd("TYPE").arg(key);
            type_slots.push(Some(i));
        }
        if current_db != conn.db {
            pipe.cmd("SELECT").arg(conn.db);
            type_slots.push(None);
        }
        let replies: Vec<Value> = pipe
            .query_async(&mut conn.mc)
            .await
            .map_err(|e| cmd_err("INFO", e))?;
        let mut replies = replies.into_iter();
        let info_text = match replies.next() {
            Some(Value::ServerError(e)) => {
                return Err(cmd_err("INFO", redis::RedisError::from(e)));
            }
            Some(v) => value_text(v).unwrap_or_default(),
            None => String::new(),
        };
        let mut config: BTreeMap<String, String> = BTreeMap::new();
        for _ in 0..config_cmds {
            if let Some(Value::Array(items)) = replies.next() {
                let mut it = items.into_iter();
                while let (Some(k), Some(v)) = (it.next(), it.next()) {
                    if let (Some(k), Some(v)) = (value_text(k), value_text(v)) {
                        config.insert(k, v);
                    }
                }
            }
        }
        let slowlog_len = replies.next().and_then(value_f64);
        let slowlog_last = replies.next();
        let mut types = vec![KeyType::None; keys.len()];
        for slot in &type_slots {
            let reply = replies.next();
            if let (Some(i), Some(v)) = (slot, reply) {
                types[*i] = value_text(v).map_or(KeyType::Other, |t| KeyType::parse(&t));
            }
        }

        // Round trip 2: lengths by type, XINFO for streams, BullMQ counts.
        let mut sizes = vec![0.0_f64; keys.len()];
        let mut streams: BTreeMap<usize, StreamInfo> = BTreeMap::new();
        let mut bull = vec![[0.0_f64; 7]; self.cfg.bullmq.len()];
        if keys
            .iter()
            .zip(&types)
            .any(|(_, t)| t.length_command().is_some())
            || !self.cfg.bullmq.is_empty()
        {
            let mut pipe = redis::pipe();
            pipe.ignore_errors();
            let mut slots = Vec::new();
            let mut current_db = conn.db;
            for (i, ((db, key), t)) in keys.iter().zip(&types).enumerate() {
                let Some(command) = t.length_command() else {
                    continue;
                };
                if i64::from(*db) != current_db {
                    pipe.cmd("SELECT").arg(*db);
                    slots.push(Slot::Select);
                    current_db = i64::from(*db);
                }
                pipe.cmd(command).arg(key);
                slots.push(Slot::Size(i));
                if *t == KeyType::Stream {
                    pipe.cmd("XINFO").arg("STREAM").arg(key);
                    slots.push(Slot::XinfoStream(i));
                    pipe.cmd("XINFO").arg("GROUPS").arg(key);
                    slots.push(Slot::XinfoGroups(i));
                }
            }
            if current_db != conn.db {
                pipe.cmd("SELECT").arg(conn.db);
                slots.push(Slot::Select);
            }
            for (q, queue) in self.cfg.bullmq.iter().enumerate() {
                for (s, (state, list)) in BULLMQ_STATES.iter().enumerate() {
                    let key = format!("{}:{queue}:{state}", self.cfg.bullmq_prefix);
                    pipe.cmd(if *list { "LLEN" } else { "ZCARD" }).arg(key);
                    slots.push(Slot::Bull(q, s));
                }
            }
            let replies: Vec<Value> = pipe
                .query_async(&mut conn.mc)
                .await
                .map_err(|e| cmd_err("key lengths", e))?;
            for (slot, reply) in slots.iter().zip(replies) {
                if let Value::ServerError(e) = &reply {
                    debug!(collector = %self.name, error = ?e, "key command failed");
                    continue;
                }
                match slot {
                    Slot::Select => {}
                    Slot::Size(i) => sizes[*i] = value_f64(reply).unwrap_or(0.0),
                    Slot::XinfoStream(i) => {
                        let s = streams.entry(*i).or_default();
                        parse_xinfo_stream(reply, s);
                    }
                    Slot::XinfoGroups(i) => {
                        let s = streams.entry(*i).or_default();
                        s.group_rows = parse_xinfo_groups(reply);
                    }
                    Slot::Bull(q, s) => bull[*q][*s] = value_f64(reply).unwrap_or(0.0),
                }
            }
        }

        // Emit.
        let info = Info::parse(&info_text);
        self.multi_config_get = info.major_version() >= 7;
        let databases = self
            .cfg
            .databases
            .or_else(|| config.get("databases").and_then(|d| d.parse().ok()))
            .filter(|n| *n > 0)
            .unwrap_or(16);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        info.write(databases, now, out);
        for (param, name) in [
            ("maxmemory", "maxmemory"),
            ("maxclients", "maxclients"),
            ("io-threads", "io_threads"),
        ] {
            if let Some(v) = config.get(param).and_then(|v| v.parse::<f64>().ok()) {
                let metric = format!("redis_config_{name}");
                out.family(&metric, &format!("config_{name} metric"), Kind::Gauge);
                out.sample(&[], v);
            }
        }
        if let Some(len) = slowlog_len {
            out.family("redis_slowlog_length", "Total slowlog", Kind::Gauge);
            out.sample(&[], len);
            let (id, micros) = slowlog_last.map(parse_slowlog_last).unwrap_or((0.0, 0.0));
            out.family("redis_slowlog_last_id", "Last id of slowlog", Kind::Gauge);
            out.sample(&[], id);
            out.family(
                "redis_last_slow_execution_duration_seconds",
                "The amount of time needed for last slow execution, in seconds",
                Kind::Gauge,
            );
            out.sample(&[], micros / 1e6);
        }
        self.write_keys(&keys, &types, &sizes, &streams, &scanned, out);
        self.write_bullmq(&bull, out);
        Ok(())
    }

    fn write_keys(
        &mut self,
        keys: &[(u32, String)],
        types: &[KeyType],
        sizes: &[f64],
        streams: &BTreeMap<usize, StreamInfo>,
        scanned: &[Scanned],
        out: &mut Output,
    ) {
        let dbs: Vec<String> = keys.iter().map(|(db, _)| format!("db{db}")).collect();
        if !keys.is_empty() {
            out.family(
                "redis_key_size",
                "The length or size of \"key\"",
                Kind::Gauge,
            );
            for (i, (_, key)) in keys.iter().enumerate() {
                if types[i] != KeyType::Other {
                    out.sample(&[("db", &dbs[i]), ("key", key)], sizes[i]);
                }
            }
        }
        if !scanned.is_empty() {
            out.family("redis_keys_count", "Count of keys", Kind::Gauge);
            for s in scanned {
                let db = format!("db{}", s.db);
                out.sample(&[("db", &db), ("key", &s.pattern)], s.keys.len() as f64);
            }
            out.family(
                "redis_keys_scan_truncated",
                "Whether the SCAN of a pattern stopped at scan_limit (1) or saw the whole keyspace (0)",
                Kind::Gauge,
            );
            for s in scanned {
                let db = format!("db{}", s.db);
                out.sample(
                    &[("db", &db), ("key", &s.pattern)],
                    if s.truncated { 1.0 } else { 0.0 },
                );
                if s.truncated && self.warned.insert((s.db, s.pattern.clone())) {
                    warn!(
                        collector = %self.name,
                        db = s.db,
                        pattern = %s.pattern,
                        scan_limit = self.cfg.scan_limit,
                        "SCAN of the pattern stopped at scan_limit; redis_key_size covers only the keys seen; narrow the pattern or raise scan_limit"
                    );
                }
            }
        }
        if streams.is_empty() {
            return;
        }
        let stream_fams: [FamilyOf<StreamInfo>; 5] = [
            (
                "redis_stream_length",
                "The number of elements of the stream",
                |s| Some(s.length),
            ),
            (
                "redis_stream_radix_tree_keys",
                "Radix tree keys count",
                |s| s.radix_keys,
            ),
            (
                "redis_stream_radix_tree_nodes",
                "Radix tree nodes count",
                |s| s.radix_nodes,
            ),
            ("redis_stream_groups", "Groups count of stream", |s| {
                Some(s.groups)
            }),
            (
                "redis_stream_last_generated_id",
                "The epoch timestamp (ms) of the latest message on the stream",
                |s| s.last_id_ms,
            ),
        ];
        for (name, help, get) in stream_fams {
            out.family(name, help, Kind::Gauge);
            for (i, s) in streams {
                if let Some(v) = get(s) {
                    out.sample(&[("db", &dbs[*i]), ("stream", &keys[*i].1)], v);
                }
            }
        }
        let group_fams: [FamilyOf<GroupInfo>; 4] = [
            (
                "redis_stream_group_consumers",
                "Consumers count of stream group",
                |g| Some(g.consumers),
            ),
            (
                "redis_stream_group_messages_pending",
                "Pending number of messages in that stream group",
                |g| Some(g.pending),
            ),
            (
                "redis_stream_group_last_delivered_id",
                "The epoch timestamp (ms) of the last delivered message",
                |g| g.last_delivered_ms,
            ),
            (
                "redis_stream_group_lag",
                "The number of messages in the stream not yet delivered to the group (Redis 7+)",
                |g| g.lag,
            ),
        ];
        for (name, help, get) in group_fams {
            let mut first = true;
            for (i, s) in streams {
                for g in &s.group_rows {
                    let Some(v) = get(g) else {
                        continue;
                    };
                    if first {
                        out.family(name, help, Kind::Gauge);
                        first = false;
                    }
                    out.sample(
                        &[
                            ("db", &dbs[*i]),
                            ("stream", &keys[*i].1),
                            ("group", &g.name),
                        ],
                        v,
                    );
                }
            }
        }
    }

    fn write_bullmq(&self, counts: &[[f64; 7]], out: &mut Output) {
        if counts.is_empty() {
            return;
        }
        out.family(
            "bullmq_queue_jobs",
            "Jobs in a BullMQ queue by state (wait, active, delayed, failed, completed, paused, prioritized)",
            Kind::Gauge,
        );
        for (queue, row) in self.cfg.bullmq.iter().zip(counts) {
            for ((state, _), v) in BULLMQ_STATES.iter().zip(row) {
                out.sample(&[("queue", queue), ("state", state)], *v);
            }
        }
    }
}

/// SCANs every pattern (in parallel, one pipeline per round) until each cursor is back at 0
/// or `limit` keys were examined / matched.
async fn scan(
    mc: &mut MultiplexedConnection,
    home_db: i64,
    patterns: &[(u32, String)],
    limit: u64,
) -> Result<Vec<Scanned>, redis::RedisError> {
    let count = limit.clamp(1, 1000);
    let mut state: Vec<(Scanned, u64, u64, bool)> = patterns
        .iter()
        .map(|(db, p)| {
            (
                Scanned {
                    db: *db,
                    pattern: p.clone(),
                    keys: BTreeSet::new(),
                    truncated: false,
                },
                0,
                0,
                false,
            )
        })
        .collect();
    while state.iter().any(|s| !s.3) {
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        // Reply index of each pattern's SCAN.
        let mut order = Vec::new();
        let mut replies_n = 0;
        let mut current = home_db;
        for (i, (s, cursor, _, done)) in state.iter().enumerate() {
            if *done {
                continue;
            }
            if i64::from(s.db) != current {
                pipe.cmd("SELECT").arg(s.db);
                replies_n += 1;
                current = i64::from(s.db);
            }
            pipe.cmd("SCAN")
                .arg(*cursor)
                .arg("MATCH")
                .arg(&s.pattern)
                .arg("COUNT")
                .arg(count);
            order.push((i, replies_n));
            replies_n += 1;
        }
        if current != home_db {
            pipe.cmd("SELECT").arg(home_db);
        }
        let replies: Vec<Value> = pipe.query_async(mc).await?;
        for (i, at) in order {
            let (s, cursor, examined, done) = &mut state[i];
            let reply = replies.get(at).cloned().unwrap_or(Value::Nil);
            let Some((next, found)) = parse_scan(reply) else {
                // An error reply (e.g. no permission): stop this pattern with what it has.
                *done = true;
                continue;
            };
            for k in found {
                if s.keys.len() as u64 >= limit {
                    s.truncated = true;
                    break;
                }
                s.keys.insert(k);
            }
            *examined += count;
            *cursor = next;
            if next == 0 {
                *done = true;
            } else if *examined >= limit || s.truncated {
                s.truncated = true;
                *done = true;
            }
        }
    }
    Ok(state.into_iter().map(|s| s.0).collect())
}

fn parse_scan(reply: Value) -> Option<(u64, Vec<String>)> {
    let Value::Array(items) = reply else {
        return None;
    };
    let mut it = items.into_iter();
    let cursor = value_text(it.next()?)?.parse().ok()?;
    let keys = match it.next()? {
        Value::Array(keys) => keys.into_iter().filter_map(value_text).collect(),
        _ => Vec::new(),
    };
    Some((cursor, keys))
}

/// Text of a string-like reply.
fn value_text(v: Value) -> Option<String> {
    match v {
        Value::BulkString(b) => Some(String::from_utf8_lossy(&b).into_owned()),
        Value::SimpleString(s) => Some(s),
        Value::VerbatimString { text, .. } => Some(text),
        Value::Okay => Some("OK".into()),
        Value::Int(i) => Some(i.to_string()),
        Value::Double(d) => Some(d.to_string()),
        _ => None,
    }
}

/// Number of an integer or numeric-string reply.
fn value_f64(v: Value) -> Option<f64> {
    match v {
        Value::Int(i) => Some(i as f64),
        Value::Double(d) => Some(d),
        other => value_text(other)?.parse().ok(),
    }
}

/// The millisecond part of a stream id (`1700000000000-0`).
fn id_ms(v: Value) -> Option<f64> {
    value_text(v)?.split('-').next()?.parse().ok()
}

/// Pairs of a RESP2 flat array or a RESP3 map.
fn pairs(v: Value) -> Vec<(String, Value)> {
    let items: Vec<(Value, Value)> = match v {
        Value::Map(m) => m,
        Value::Array(a) => {
            let mut it = a.into_iter();
            let mut out = Vec::new();
            while let (Some(k), Some(v)) = (it.next(), it.next()) {
                out.push((k, v));
            }
            out
        }
        _ => Vec::new(),
    };
    items
        .into_iter()
        .filter_map(|(k, v)| Some((value_text(k)?, v)))
        .collect()
}

fn parse_xinfo_stream(reply: Value, s: &mut StreamInfo) {
    for (k, v) in pairs(reply) {
        match k.as_str() {
            "length" => s.length = value_f64(v).unwrap_or(0.0),
            "radix-tree-keys" => s.radix_keys = value_f64(v),
            "radix-tree-nodes" => s.radix_nodes = value_f64(v),
            "groups" => s.groups = value_f64(v).unwrap_or(0.0),
            "last-generated-id" => s.last_id_ms = id_ms(v),
            _ => {}
        }
    }
}

fn parse_xinfo_groups(reply: Value) -> Vec<GroupInfo> {
    let Value::Array(groups) = reply else {
        return Vec::new();
    };
    groups
        .into_iter()
        .filter_map(|g| {
            let mut info = GroupInfo {
                name: String::new(),
                consumers: 0.0,
                pending: 0.0,
                last_delivered_ms: None,
                lag: None,
            };
            for (k, v) in pairs(g) {
                match k.as_str() {
                    "name" => info.name = value_text(v)?,
                    "consumers" => info.consumers = value_f64(v).unwrap_or(0.0),
                    "pending" => info.pending = value_f64(v).unwrap_or(0.0),
                    "last-delivered-id" => info.last_delivered_ms = id_ms(v),
                    "lag" => info.lag = value_f64(v),
                    _ => {}
                }
            }
            (!info.name.is_empty()).then_some(info)
        })
        .collect()
}

/// `SLOWLOG GET 1`: (id, duration in microseconds) of the newest entry.
fn parse_slowlog_last(reply: Value) -> (f64, f64) {
    let Value::Array(entries) = reply else {
        return (0.0, 0.0);
    };
    let Some(Value::Array(entry)) = entries.into_iter().next() else {
        return (0.0, 0.0);
    };
    let mut it = entry.into_iter();
    let id = it.next().and_then(value_f64).unwrap_or(0.0);
    let _timestamp = it.next();
    let micros = it.next().and_then(value_f64).unwrap_or(0.0);
    (id, micros)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn urls_are_checked_without_leaking_them() {
        let t = parse_url(&Secret::new("redis://:hunter2@127.0.0.1:6380/3".into())).expect("ok");
        assert_eq!(t.display, "redis://127.0.0.1:6380/3");
        assert!(!t.tls);
        let t = parse_url(&Secret::new("rediss://u:pw@cache.example:6390".into())).expect("ok");
        assert_eq!(t.display, "rediss://cache.example:6390/0");
        assert!(t.tls);
        let e = parse_url(&Secret::new("http://:hunter2@h/".into()))
            .err()
            .unwrap_or_default();
        assert!(e.contains("redis://") && !e.contains("hunter2"), "{e}");
        let e = parse_url(&Secret::new("redis://:hunter2@h/notadb".into()))
            .err()
            .unwrap_or_default();
        assert!(
            e.contains("invalid redis URL") && !e.contains("hunter2"),
            "{e}"
        );
    }

    #[test]
    fn key_types_choose_the_length_command() {
        assert_eq!(KeyType::parse("list").length_command(), Some("LLEN"));
        assert_eq!(KeyType::parse("zset").length_command(), Some("ZCARD"));
        assert_eq!(KeyType::parse("set").length_command(), Some("SCARD"));
        assert_eq!(KeyType::parse("hash").length_command(), Some("HLEN"));
        assert_eq!(KeyType::parse("stream").length_command(), Some("XLEN"));
        assert_eq!(KeyType::parse("string").length_command(), Some("STRLEN"));
        assert_eq!(KeyType::parse("none").length_command(), None);
        assert_eq!(KeyType::parse("ReJSON-RL"), KeyType::Other);
    }

    #[test]
    fn xinfo_and_scan_replies_parse() {
        let mut s = StreamInfo::default();
        parse_xinfo_stream(
            Value::Array(vec![
                bulk("length"),
                Value::Int(5),
                bulk("radix-tree-keys"),
                Value::Int(1),
                bulk("groups"),
                Value::Int(2),
                bulk("last-generated-id"),
                bulk("1700000000123-4"),
                bulk("first-entry"),
                Value::Nil,
            ]),
            &mut s,
        );
        assert_eq!((s.length, s.radix_keys, s.groups), (5.0, Some(1.0), 2.0));
        assert_eq!(s.last_id_ms, Some(1_700_000_000_123.0));
        let groups = parse_xinfo_groups(Value::Array(vec![Value::Array(vec![
            bulk("name"),
            bulk("g1"),
            bulk("consumers"),
            Value::Int(1),
            bulk("pending"),
            Value::Int(3),
            bulk("last-delivered-id"),
            bulk("1700000000000-0"),
            bulk("lag"),
            Value::Nil,
        ])]));
        assert_eq!(groups.len(), 1);
        assert_eq!((groups[0].pending, groups[0].lag), (3.0, None));
        let (cursor, keys) = parse_scan(Value::Array(vec![
            bulk("17"),
            Value::Array(vec![bulk("a"), bulk("b")]),
        ]))
        .unwrap_or_default();
        assert_eq!((cursor, keys.len()), (17, 2));
        assert_eq!(
            parse_slowlog_last(Value::Array(vec![Value::Array(vec![
                Value::Int(9),
                Value::Int(1),
                Value::Int(25000)
            ])])),
            (9.0, 25000.0)
        );
        assert_eq!(parse_slowlog_last(Value::Array(vec![])), (0.0, 0.0));
    }
}
