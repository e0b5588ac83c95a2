//! `scrape:` section: jobs, their targets (static URLs and file-based discovery), relabelling,
//! authentication, TLS and limits. Key names inside a job follow Prometheus' `scrape_config`
//! (`relabel_configs`, `metric_relabel_configs`, `file_sd_configs`, `authorization`,
//! `basic_auth`, `tls_config`, `sample_limit`, ...) so that blocks can be pasted across; secrets
//! are `*_env` / `*_file` only.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use super::secret::{self, Secret};
use super::{Problem, check_label_name, duration, join_key};

/// `scrape:`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScrapeConfig {
    /// Default interval between scrapes of a target (Prometheus' `scrape_interval`).
    #[serde(default = "default_interval", deserialize_with = "duration")]
    pub interval: Duration,
    /// Default timeout of one scrape; at most the interval.
    #[serde(default = "default_timeout", deserialize_with = "duration")]
    pub timeout: Duration,
    /// Scrape jobs.
    #[serde(default)]
    pub targets: Vec<JobConfig>,
}

impl Default for ScrapeConfig {
    fn default() -> Self {
        Self {
            interval: default_interval(),
            timeout: default_timeout(),
            targets: Vec::new(),
        }
    }
}

fn default_interval() -> Duration {
    Duration::from_secs(15)
}
fn default_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_scheme() -> String {
    "http".into()
}
fn default_metrics_path() -> String {
    "/metrics".into()
}
fn default_true() -> bool {
    true
}
fn default_sd_refresh() -> Duration {
    Duration::from_secs(5)
}

/// One job: a set of targets scraped the same way.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobConfig {
    /// The `job` label of every target of this job; unique.
    pub job: String,
    /// Static targets as full URLs (`http://host:port/metrics?x=y`).
    #[serde(default)]
    pub urls: Vec<String>,
    /// Labels added to every static target.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Interval for this job (default: `scrape.interval`).
    #[serde(default, deserialize_with = "opt_duration")]
    pub interval: Option<Duration>,
    /// Timeout for this job (default: `scrape.timeout`, capped at the interval).
    #[serde(default, deserialize_with = "opt_duration")]
    pub timeout: Option<Duration>,
    /// Scheme for discovered targets (`http` or `https`).
    #[serde(default = "default_scheme")]
    pub scheme: String,
    /// Path for discovered targets.
    #[serde(default = "default_metrics_path")]
    pub metrics_path: String,
    /// URL query parameters for discovered targets.
    #[serde(default)]
    pub params: BTreeMap<String, Vec<String>>,
    /// File-based discovery, in Prometheus' file_sd format (JSON or YAML).
    #[serde(default)]
    pub file_sd_configs: Vec<FileSdConfig>,
    /// Kubernetes discovery (pods, services, endpoints or endpoint slices, watched through the
    /// API server), with Prometheus' `__meta_kubernetes_*` labels. See docs/kubernetes-sd.md.
    #[serde(default)]
    pub kubernetes_sd_configs: Vec<KubernetesSdConfig>,
    /// Relabelling of targets before scraping.
    #[serde(default)]
    pub relabel_configs: Vec<RelabelConfig>,
    /// Relabelling of scraped series before they are stored.
    #[serde(default)]
    pub metric_relabel_configs: Vec<RelabelConfig>,
    /// `Authorization` header with a credential from env or file.
    #[serde(default)]
    pub authorization: Option<AuthorizationConfig>,
    /// HTTP basic authentication.
    #[serde(default)]
    pub basic_auth: Option<BasicAuthConfig>,
    /// TLS settings for https targets.
    #[serde(default)]
    pub tls_config: Option<TlsConfig>,
    /// Largest uncompressed body accepted (`10MiB`, `512KB`; units are powers of 1024 as in
    /// Prometheus); 0 means no limit. A larger body fails the scrape.
    #[serde(default, deserialize_with = "byte_size")]
    pub body_size_limit: u64,
    /// Most samples accepted after metric relabelling; 0 means no limit. More fails the scrape.
    #[serde(default)]
    pub sample_limit: usize,
    /// Most labels per series; 0 means no limit. More fails the scrape.
    #[serde(default)]
    pub label_limit: usize,
    /// On a clash between a scraped label and a target label, keep the scraped one (otherwise
    /// the scraped one is renamed `exported_<name>`).
    #[serde(default)]
    pub honor_labels: bool,
    /// Use the timestamps the target exposes (otherwise the scrape time).
    #[serde(default = "default_true")]
    pub honor_timestamps: bool,
}

/// One file_sd block.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSdConfig {
    /// Files to read; the last path element may be a glob (`targets/*.json`).
    pub files: Vec<String>,
    /// How often the files are checked for changes.
    #[serde(default = "default_sd_refresh", deserialize_with = "duration")]
    pub refresh_interval: Duration,
}

/// One `kubernetes_sd_configs` block (Prometheus' `kubernetes_sd_config`, roles `pod`,
/// `service`, `endpoints` and `endpointslice`, plus Vigil's `node_local`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubernetesSdConfig {
    /// What becomes a target: `pod` (one target per declared container port, or per container
    /// without ports), `service` (one target per service port, `<name>.<namespace>.svc:<port>`),
    /// `endpoints` (one target per address and port of a core/v1 Endpoints object) or
    /// `endpointslice` (the same from discovery.k8s.io/v1 EndpointSlices); the last two also
    /// carry the labels of their Service and of the Pods behind the addresses.
    pub role: KubernetesRole,
    /// A kubeconfig file whose current context gives the API server and credentials. Default: the
    /// in-cluster service account (or `$KUBECONFIG` / `~/.kube/config` outside a cluster).
    #[serde(default)]
    pub kubeconfig_file: Option<PathBuf>,
    /// Namespaces to watch. Default: all namespaces.
    #[serde(default)]
    pub namespaces: KubernetesNamespaces,
    /// Label and field selectors sent to the API server: at most one, of the block's role; the
    /// `endpoints` and `endpointslice` roles also take one of role `service` and one of role
    /// `pod` (for the Services and Pods they watch to attach metadata).
    #[serde(default)]
    pub selectors: Vec<KubernetesSelector>,
    /// Only what runs on this node (`NODE_NAME` from the downward API, as in the DaemonSet):
    /// role `pod` adds the field selector `spec.nodeName=$NODE_NAME`; roles `endpoints` and
    /// `endpointslice` keep only the addresses whose `nodeName` is `$NODE_NAME` (and watch only
    /// this node's pods). Not for role `service`.
    #[serde(default)]
    pub node_local: bool,
}

/// `kubernetes_sd_configs[].role`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KubernetesRole {
    /// Pods and their container ports.
    Pod,
    /// Services and their ports.
    Service,
    /// core/v1 Endpoints: every address of every subset, per port.
    Endpoints,
    /// discovery.k8s.io/v1 EndpointSlices: every address of every endpoint, per port.
    EndpointSlice,
}

impl KubernetesRole {
    /// The name used in the configuration (`pod`, `service`, `endpoints`, `endpointslice`).
    pub fn as_str(self) -> &'static str {
        match self {
            KubernetesRole::Pod => "pod",
            KubernetesRole::Service => "service",
            KubernetesRole::Endpoints => "endpoints",
            KubernetesRole::EndpointSlice => "endpointslice",
        }
    }

    /// Roles whose targets are endpoint addresses backed by Services and Pods.
    pub fn is_endpoints(self) -> bool {
        matches!(
            self,
            KubernetesRole::Endpoints | KubernetesRole::EndpointSlice
        )
    }
}

/// `kubernetes_sd_configs[].namespaces`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct KubernetesNamespaces {
    /// Also watch the namespace Vigil runs in (the service account's, or the kubeconfig
    /// context's).
    #[serde(default)]
    pub own_namespace: bool,
    /// Namespaces to watch.
    #[serde(default)]
    pub names: Vec<String>,
}

/// `kubernetes_sd_configs[].selectors[]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubernetesSelector {
    /// The role this selector applies to; must be the block's role.
    pub role: KubernetesRole,
    /// A label selector (`app=web,tier!=cache`).
    #[serde(default)]
    pub label: Option<String>,
    /// A field selector (`status.phase=Running`).
    #[serde(default)]
    pub field: Option<String>,
}

/// `authorization:`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthorizationConfig {
    /// The scheme, `Bearer` by default.
    #[serde(default = "default_bearer", rename = "type")]
    pub kind: String,
    /// Environment variable holding the credential.
    #[serde(default)]
    pub credentials_env: Option<String>,
    /// File holding the credential.
    #[serde(default)]
    pub credentials_file: Option<PathBuf>,
}

fn default_bearer() -> String {
    "Bearer".into()
}

/// `basic_auth:`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasicAuthConfig {
    /// User name.
    pub username: String,
    /// Environment variable holding the password.
    #[serde(default)]
    pub password_env: Option<String>,
    /// File holding the password.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
}

/// `tls_config:`.
#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM file of CA certificates to trust (in addition to the system roots).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate, with `key_file`.
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    /// PEM private key of the client certificate.
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// Accept any server certificate. Only for tests.
    #[serde(default)]
    pub insecure_skip_verify: bool,
}

/// Relabelling actions, as in Prometheus.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum RelabelAction {
    /// Set `target_label` to `replacement` (with `$1` groups) when `regex` matches.
    #[default]
    Replace,
    /// Keep the target/series only if `regex` matches the joined source labels.
    Keep,
    /// Drop the target/series if `regex` matches.
    Drop,
    /// Set `target_label` to a hash of the source labels modulo `modulus`.
    Hashmod,
    /// Copy labels whose name matches `regex` to the name given by `replacement`.
    Labelmap,
    /// Remove labels whose name matches `regex`.
    Labeldrop,
    /// Remove labels whose name does not match `regex`.
    Labelkeep,
    /// Lower-case the joined source labels into `target_label`.
    Lowercase,
    /// Upper-case the joined source labels into `target_label`.
    Uppercase,
    /// Keep when the joined source labels equal `target_label`'s value.
    Keepequal,
    /// Drop when the joined source labels equal `target_label`'s value.
    Dropequal,
}

/// One relabelling step (Prometheus' `relabel_config`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelabelConfig {
    /// Labels whose values are joined with `separator`.
    #[serde(default)]
    pub source_labels: Vec<String>,
    /// Separator of the joined source values.
    #[serde(default = "default_separator")]
    pub separator: String,
    /// Label written by replace, hashmod, lowercase, uppercase; compared by keepequal/dropequal.
    #[serde(default)]
    pub target_label: Option<String>,
    /// RE2 regular expression, anchored at both ends.
    #[serde(default = "default_regex")]
    pub regex: String,
    /// Modulus for hashmod.
    #[serde(default)]
    pub modulus: Option<u64>,
    /// Replacement with `$1`, `${name}` references.
    #[serde(default = "default_replacement")]
    pub replacement: String,
    /// What to do.
    #[serde(default)]
    pub action: RelabelAction,
}

fn default_separator() -> String {
    ";".into()
}
fn default_regex() -> String {
    "(.*)".into()
}
fn default_replacement() -> String {
    "$1".into()
}

/// Deserializes an optional humantime duration.
pub fn opt_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    duration(d).map(Some)
}

/// Deserializes a byte size: a number of bytes, or a number with B, KB, MB, GB, KiB, MiB, GiB
/// (all powers of 1024, as Prometheus' `body_size_limit`).
fn byte_size<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Int(u64),
        Text(String),
    }
    match Raw::deserialize(d)? {
        Raw::Int(n) => Ok(n),
        Raw::Text(t) => parse_byte_size(&t).map_err(serde::de::Error::custom),
    }
}

/// Parses `10MiB`, `512KB`, `1GB`, `100`.
pub fn parse_byte_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| bad_size(text))?;
    let mult: u64 = match unit.trim() {
        "" | "B" => 1,
        "KB" | "KiB" => 1 << 10,
        "MB" | "MiB" => 1 << 20,
        "GB" | "GiB" => 1 << 30,
        _ => return Err(bad_size(text)),
    };
    n.checked_mul(mult).ok_or_else(|| bad_size(text))
}

fn bad_size(text: &str) -> String {
    format!(
        "invalid size {text:?}; write a number of bytes or a number with B, KB, MB, GB (e.g. 10MB)"
    )
}

/// The reason of a regex error on one line (the full message draws the pattern over several).
pub fn regex_reason(e: &regex::Error) -> String {
    let text = e.to_string();
    let last = text.lines().last().unwrap_or_default().trim();
    last.strip_prefix("error: ").unwrap_or(last).to_string()
}

/// Anchors a relabel regex as Prometheus does.
pub fn anchored(regex: &str) -> String {
    format!("^(?s:{regex})$")
}

impl JobConfig {
    /// Effective interval.
    pub fn interval(&self, scrape: &ScrapeConfig) -> Duration {
        self.interval.unwrap_or(scrape.interval)
    }

    /// Effective timeout: the job's, else the default capped at the interval.
    pub fn timeout(&self, scrape: &ScrapeConfig) -> Duration {
        self.timeout
            .unwrap_or_else(|| scrape.timeout.min(self.interval(scrape)))
    }

    /// The `Authorization` header value, read from env or file.
    pub fn authorization_header(&self, base_dir: &Path) -> Result<Option<String>, String> {
        if let Some(b) = &self.basic_auth {
            let pw = secret::resolve(
                "password",
                b.password_env.as_deref(),
                b.password_file.as_deref(),
                base_dir,
            )?;
            let pw = pw.as_ref().map(Secret::expose).unwrap_or("");
            return Ok(Some(format!(
                "Basic {}",
                base64(&format!("{}:{pw}", b.username))
            )));
        }
        if let Some(a) = &self.authorization {
            let cred = secret::resolve(
                "credentials",
                a.credentials_env.as_deref(),
                a.credentials_file.as_deref(),
                base_dir,
            )?
            .ok_or_else(|| "set credentials_env or credentials_file".to_string())?;
            return Ok(Some(format!("{} {}", a.kind, cred.expose())));
        }
        Ok(None)
    }
}

/// Standard base64 with padding (for basic auth headers).
fn base64(input: &str) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes = input.as_bytes();
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

impl ScrapeConfig {
    /// Semantic checks of the scrape section; `base_dir` resolves secret and TLS files.
    pub fn validate(&self, base_dir: &Path, out: &mut Vec<Problem>) {
        let mut bad = |path: String, message: String| {
            out.push(Problem {
                path,
                message,
                location: None,
            })
        };
        if self.interval < Duration::from_millis(100) {
            bad(
                "scrape.interval".into(),
                "is too short; use at least 100ms".into(),
            );
        }
        if self.timeout.is_zero() {
            bad("scrape.timeout".into(), "must be more than 0s".into());
        }
        let mut jobs = HashSet::new();
        for (i, job) in self.targets.iter().enumerate() {
            let p = format!("scrape.targets[{i}]");
            if job.job.trim().is_empty() {
                bad(
                    format!("{p}.job"),
                    "must not be empty; it becomes the job label".into(),
                );
            } else if !jobs.insert(job.job.as_str()) {
                bad(
                    format!("{p}.job"),
                    format!(
                        "job {:?} is defined twice; job names must be unique",
                        job.job
                    ),
                );
            }
            if job.urls.is_empty()
                && job.file_sd_configs.is_empty()
                && job.kubernetes_sd_configs.is_empty()
            {
                bad(
                    p.clone(),
                    "has no targets; add urls or file_sd_configs".into(),
                );
            }
            for (u, url) in job.urls.iter().enumerate() {
                if let Err(e) = check_url(url) {
                    bad(format!("{p}.urls[{u}]"), e);
                }
            }
            if !matches!(job.scheme.as_str(), "http" | "https") {
                bad(
                    format!("{p}.scheme"),
                    format!("{:?} is not supported; use http or https", job.scheme),
                );
            }
            if !job.metrics_path.starts_with('/') {
                bad(
                    format!("{p}.metrics_path"),
                    format!("{:?} must start with /", job.metrics_path),
                );
            }
            for name in job.labels.keys() {
                if let Err(e) = check_label_name(name) {
                    bad(join_key(&format!("{p}.labels"), name), e);
                }
            }
            let interval = job.interval(self);
            if interval < Duration::from_millis(100) {
                bad(
                    format!("{p}.interval"),
                    "is too short; use at least 100ms".into(),
                );
            }
            if job.timeout(self) > interval {
                bad(
                    format!("{p}.timeout"),
                    format!(
                        "{} is longer than the interval ({}); a scrape must end before the next starts",
                        humantime::format_duration(job.timeout(self)),
                        humantime::format_duration(interval)
                    ),
                );
            }
            for (f, sd) in job.file_sd_configs.iter().enumerate() {
                if sd.files.is_empty() {
                    bad(
                        format!("{p}.file_sd_configs[{f}].files"),
                        "is empty; list at least one file or glob".into(),
                    );
                }
                for (n, pattern) in sd.files.iter().enumerate() {
                    if !(pattern.ends_with(".json")
                        || pattern.ends_with(".yaml")
                        || pattern.ends_with(".yml"))
                    {
                        bad(
                            format!("{p}.file_sd_configs[{f}].files[{n}]"),
                            format!("{pattern:?} must end in .json, .yaml or .yml"),
                        );
                    }
                }
            }
            for (k, sd) in job.kubernetes_sd_configs.iter().enumerate() {
                sd.validate(
                    &format!("{p}.kubernetes_sd_configs[{k}]"),
                    base_dir,
                    &mut bad,
                );
            }
            for (list, key) in [
                (&job.relabel_configs, "relabel_configs"),
                (&job.metric_relabel_configs, "metric_relabel_configs"),
            ] {
                for (r, rc) in list.iter().enumerate() {
                    for e in check_relabel(rc) {
                        bad(format!("{p}.{key}[{r}]"), e);
                    }
                }
            }
            if job.authorization.is_some() && job.basic_auth.is_some() {
                bad(
                    format!("{p}.authorization"),
                    "set either authorization or basic_auth, not both".into(),
                );
            } else if let Err(e) = job.authorization_header(base_dir) {
                let key = if job.basic_auth.is_some() {
                    "basic_auth"
                } else {
                    "authorization"
                };
                bad(format!("{p}.{key}"), e);
            }
            if let Some(tls) = &job.tls_config {
                let mut found = Vec::new();
                super::check_tls_files(
                    &format!("{p}.tls_config"),
                    tls.ca_file.as_deref(),
                    tls.cert_file.as_deref(),
                    tls.key_file.as_deref(),
                    base_dir,
                    &mut found,
                );
                for pr in found {
                    bad(pr.path, pr.message);
                }
            }
        }
    }

    /// Makes file paths relative to the config file's directory absolute.
    pub fn resolve_paths(&mut self, base_dir: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base_dir.join(&*p);
            }
        };
        for job in &mut self.targets {
            for sd in &mut job.file_sd_configs {
                for f in &mut sd.files {
                    if Path::new(f).is_relative() {
                        *f = base_dir.join(&*f).display().to_string();
                    }
                }
            }
            for sd in &mut job.kubernetes_sd_configs {
                sd.kubeconfig_file.as_mut().map(fix);
            }
            if let Some(a) = &mut job.authorization {
                a.credentials_file.as_mut().map(fix);
            }
            if let Some(b) = &mut job.basic_auth {
                b.password_file.as_mut().map(fix);
            }
            if let Some(t) = &mut job.tls_config {
                t.ca_file.as_mut().map(fix);
                t.cert_file.as_mut().map(fix);
                t.key_file.as_mut().map(fix);
            }
        }
    }
}

impl KubernetesSdConfig {
    /// Checks one block; `p` is its key path.
    fn validate(&self, p: &str, base_dir: &Path, bad: &mut impl FnMut(String, String)) {
        if let Some(file) = &self.kubeconfig_file {
            let full = if file.is_relative() {
                base_dir.join(file)
            } else {
                file.clone()
            };
            if !full.is_file() {
                bad(
                    format!("{p}.kubeconfig_file"),
                    format!(
                        "{} does not exist; give the path of a kubeconfig, or remove the key to use the in-cluster service account",
                        file.display()
                    ),
                );
            }
        }
        if self.node_local && self.role == KubernetesRole::Service {
            bad(
                format!("{p}.node_local"),
                "only applies to roles pod, endpoints and endpointslice; remove it or use one of those roles"
                    .into(),
            );
        }
        for (n, name) in self.namespaces.names.iter().enumerate() {
            if !is_dns_label(name) {
                bad(
                    format!("{p}.namespaces.names[{n}]"),
                    format!(
                        "{name:?} is not a namespace name; use lower-case letters, digits and '-' (at most 63)"
                    ),
                );
            }
        }
        if self.role.is_endpoints() {
            // Prometheus' endpoints roles also select the Services and Pods they watch.
            for role in [self.role, KubernetesRole::Service, KubernetesRole::Pod] {
                if self.selectors.iter().filter(|s| s.role == role).count() > 1 {
                    bad(
                        format!("{p}.selectors"),
                        format!(
                            "has more than one selector of role {}; combine them into one label and one field selector",
                            role.as_str()
                        ),
                    );
                }
            }
        } else if self.selectors.len() > 1 {
            bad(
                format!("{p}.selectors"),
                "has more than one selector; combine them into one label and one field selector"
                    .into(),
            );
        }
        for (s, sel) in self.selectors.iter().enumerate() {
            if self.role.is_endpoints() {
                if ![self.role, KubernetesRole::Service, KubernetesRole::Pod].contains(&sel.role) {
                    bad(
                        format!("{p}.selectors[{s}].role"),
                        format!(
                            "{} does not apply to role {}; use {}, service or pod",
                            sel.role.as_str(),
                            self.role.as_str(),
                            self.role.as_str()
                        ),
                    );
                }
            } else if sel.role != self.role {
                bad(
                    format!("{p}.selectors[{s}].role"),
                    format!(
                        "{:?} does not match the block's role {:?}; selectors apply to the discovered objects",
                        sel.role, self.role
                    )
                    .to_lowercase(),
                );
            }
            if sel.label.is_none() && sel.field.is_none() {
                bad(
                    format!("{p}.selectors[{s}]"),
                    "selects nothing; set label, field or both".into(),
                );
            }
            for (key, value) in [("label", &sel.label), ("field", &sel.field)] {
                if value.as_deref().is_some_and(|v| v.trim().is_empty()) {
                    bad(
                        format!("{p}.selectors[{s}].{key}"),
                        "is empty; remove it or write e.g. app=web".into(),
                    );
                }
            }
        }
    }
}

/// A Kubernetes namespace name (RFC 1123 label).
fn is_dns_label(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

fn check_url(url: &str) -> Result<(), String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| {
        format!("{url:?} is not a URL ({e}); write e.g. http://127.0.0.1:9100/metrics")
    })?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!(
            "{url:?}: scheme {} is not supported; use http or https",
            parsed.scheme()
        ));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(format!("{url:?} has no host"));
    }
    Ok(())
}

fn check_relabel(rc: &RelabelConfig) -> Vec<String> {
    use RelabelAction as A;
    let mut out = Vec::new();
    if let Err(e) = regex::Regex::new(&anchored(&rc.regex)) {
        out.push(format!(
            "regex {:?} does not compile: {}",
            rc.regex,
            regex_reason(&e)
        ));
    }
    let needs_target = matches!(
        rc.action,
        A::Replace | A::Hashmod | A::Lowercase | A::Uppercase | A::Keepequal | A::Dropequal
    );
    if needs_target && rc.target_label.as_deref().is_none_or(str::is_empty) {
        out.push(format!("action {:?} needs target_label", rc.action).to_lowercase());
    }
    if rc.action == A::Hashmod && rc.modulus.is_none_or(|m| m == 0) {
        out.push("action hashmod needs a modulus above 0".into());
    }
    if matches!(rc.action, A::Labeldrop | A::Labelkeep | A::Labelmap)
        && !rc.source_labels.is_empty()
    {
        out.push(
            format!(
                "action {:?} works on label names; remove source_labels",
                rc.action
            )
            .to_lowercase(),
        );
    }
    if matches!(
        rc.action,
        A::Keep | A::Drop | A::Hashmod | A::Lowercase | A::Uppercase | A::Keepequal | A::Dropequal
    ) && rc.source_labels.is_empty()
    {
        out.push(format!("action {:?} needs source_labels", rc.action).to_lowercase());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_byte_size("10MB"), Ok(10 << 20));
        assert_eq!(parse_byte_size("512KiB"), Ok(512 << 10));
        assert_eq!(parse_byte_size("100"), Ok(100));
        assert!(parse_byte_size("10 parsecs").is_err());
        assert!(parse_byte_size("").is_err());
    }

    #[test]
    fn base64_matches_rfc4648() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("user:pass", "dXNlcjpwYXNz"),
        ] {
            assert_eq!(base64(i), o);
        }
    }
}
