//! `hpa:` in vigil.yaml: the external metrics API's listener, TLS, authentication and metrics.
//! Loaded with the rest of the config (agent/config); validated by [`HpaConfig::validate`].

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::config::Problem;
use crate::store::selector::Selector;

/// `hpa:` section (absent: the API is off).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HpaConfig {
    /// `host:port` of the HTTPS listener, e.g. `0.0.0.0:6443` (what an APIService's Service
    /// targets) or `127.0.0.1:9443`.
    pub listen: String,
    /// The serving certificate. Absent or without files: a self-signed CA and certificate are
    /// generated in `data_dir` (`hpa-ca.crt`, `hpa-tls.crt`, `hpa-tls.key`) and reused.
    #[serde(default)]
    pub tls: HpaTls,
    /// Who may read the API.
    #[serde(default)]
    pub auth: HpaAuth,
    /// What a known metric without current data answers: `zero` (one item with value "0", the
    /// default: the HPA treats an empty list as an error) or `empty` (an empty list).
    #[serde(default)]
    pub no_data: NoData,
    /// The external metrics served.
    #[serde(default)]
    pub metrics: Vec<HpaMetric>,
}

/// `hpa.tls`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HpaTls {
    /// PEM certificate chain (e.g. `/etc/vigil/tls/tls.crt` from a Secret).
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// Subject alternative names of the generated certificate (DNS names or IP addresses).
    /// Default: `localhost`, `127.0.0.1`, `::1` and the Service names
    /// `vigil-aggregator.vigil.svc`, `vigil-aggregator.vigil.svc.cluster.local`.
    #[serde(default)]
    pub sans: Vec<String>,
}

/// `hpa.auth`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HpaAuth {
    /// Serve every request, authenticated or not (default false). `/healthz`, `/readyz` and
    /// `/livez` are always open.
    #[serde(default)]
    pub anonymous: bool,
    /// Static bearer tokens, one per line: `TOKEN` or the kube-apiserver `--token-auth-file`
    /// CSV form `TOKEN,USER,UID,"GROUP1,GROUP2"`. When absent and `anonymous` is false, a
    /// random token is generated into `<data_dir>/hpa-token` (mode 0600) and reused.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// Front-proxy (kube-aggregator) client certificates.
    #[serde(default)]
    pub requestheader: Option<RequestHeader>,
    /// Delegation to the Kubernetes API server (TokenReview, SubjectAccessReview).
    #[serde(default)]
    pub delegate: Delegate,
}

/// `hpa.auth.requestheader`: like kube-apiserver's `--requestheader-*` flags.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestHeader {
    /// CA that signs the aggregator's client certificate: `requestheader-client-ca-file` of
    /// the `kube-system/extension-apiserver-authentication` ConfigMap.
    pub client_ca_file: PathBuf,
    /// Common names allowed (`requestheader-allowed-names`); empty: any certificate signed by
    /// the CA.
    #[serde(default)]
    pub allowed_names: Vec<String>,
    /// Headers that carry the user name (default `[X-Remote-User]`).
    #[serde(default = "default_username_headers")]
    pub username_headers: Vec<String>,
    /// Headers that carry groups (default `[X-Remote-Group]`).
    #[serde(default = "default_group_headers")]
    pub group_headers: Vec<String>,
}

fn default_username_headers() -> Vec<String> {
    vec!["X-Remote-User".into()]
}
fn default_group_headers() -> Vec<String> {
    vec!["X-Remote-Group".into()]
}

/// `hpa.auth.delegate`: like an aggregated API server's `--authentication-kubeconfig` /
/// `--authorization-kubeconfig` delegation (k8s.io/apiserver `DelegatingAuthenticatorConfig` and
/// `DelegatingAuthorizerConfig`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Delegate {
    /// Ask the API server to authenticate bearer tokens that are not in the token file
    /// (TokenReview) and to authorize every request that is not from the token file or the
    /// `system:masters` group (SubjectAccessReview). Default false.
    #[serde(default)]
    pub enabled: bool,
    /// Kubeconfig of the API server to ask (its current context). Absent: the in-cluster
    /// service account, else `$KUBECONFIG` / `~/.kube/config`.
    #[serde(default)]
    pub kubeconfig_file: Option<PathBuf>,
    /// Audiences sent in TokenReview `spec.audiences` (kube-apiserver's `--api-audiences`); a
    /// review whose `status.audiences` shares none of them is refused. Empty (default): no
    /// audience check.
    #[serde(default)]
    pub audiences: Vec<String>,
    /// How long a TokenReview answer is reused, authenticated or not
    /// (`--authentication-token-webhook-cache-ttl`; default 10s). Errors are not cached.
    #[serde(
        default = "default_cache_ttl",
        deserialize_with = "crate::config::duration"
    )]
    pub cache_ttl: Duration,
    /// How long an allowing SubjectAccessReview answer is reused
    /// (`--authorization-webhook-cache-authorized-ttl`; default 10s).
    #[serde(
        default = "default_cache_ttl",
        deserialize_with = "crate::config::duration"
    )]
    pub authorized_cache_ttl: Duration,
    /// How long a denying SubjectAccessReview answer is reused
    /// (`--authorization-webhook-cache-unauthorized-ttl`; default 10s).
    #[serde(
        default = "default_cache_ttl",
        deserialize_with = "crate::config::duration"
    )]
    pub unauthorized_cache_ttl: Duration,
    /// Time limit of one review request (default 10s, as the apiserver's delegating client).
    #[serde(
        default = "default_cache_ttl",
        deserialize_with = "crate::config::duration"
    )]
    pub timeout: Duration,
}

impl Default for Delegate {
    fn default() -> Self {
        Self {
            enabled: false,
            kubeconfig_file: None,
            audiences: Vec::new(),
            cache_ttl: default_cache_ttl(),
            authorized_cache_ttl: default_cache_ttl(),
            unauthorized_cache_ttl: default_cache_ttl(),
            timeout: default_cache_ttl(),
        }
    }
}

fn default_cache_ttl() -> Duration {
    Duration::from_secs(10)
}

/// `hpa.no_data`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoData {
    /// One item with value "0".
    #[default]
    Zero,
    /// An empty item list.
    Empty,
}

/// One entry of `hpa.metrics`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HpaMetric {
    /// The metric name in the URL and in the HPA's `external.metric.name`: one path segment.
    pub name: String,
    /// A series selector over the store, e.g. `kafka_consumergroup_lag_sum{topic="orders"}`.
    #[serde(default)]
    pub selector: Option<String>,
    /// How matching series are combined: `sum` (default), `max`, `min` or `avg`.
    #[serde(default)]
    pub aggregate: Aggregate,
    /// Labels kept (one item per distinct value set); they become `metricLabels`.
    #[serde(default)]
    pub by: Vec<String>,
    /// An SLO id (`service/name`, e.g. `demo/availability`) instead of a selector.
    #[serde(default)]
    pub slo: Option<String>,
    /// With `slo`: `burn_rate`, `error_budget_remaining` or `error_ratio`.
    #[serde(default)]
    pub value: Option<SloValue>,
    /// With `slo`: the window of `burn_rate` (required) or `error_ratio` (default: the SLO
    /// window), one of the SLO's alerting windows such as `5m`, `1h`, `6h`.
    #[serde(default)]
    pub window: Option<String>,
    /// Namespaces the metric is served in; empty: all.
    #[serde(default)]
    pub namespaces: Vec<String>,
}

/// `hpa.metrics[].aggregate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Aggregate {
    /// Sum of the values.
    #[default]
    Sum,
    /// Largest value.
    Max,
    /// Smallest value.
    Min,
    /// Mean value.
    Avg,
}

/// `hpa.metrics[].value`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SloValue {
    /// Burn rate over `window`.
    BurnRate,
    /// Error budget remaining over the SLO window (1 untouched, may go negative).
    ErrorBudgetRemaining,
    /// Error ratio over `window` (default the SLO window).
    ErrorRatio,
}

/// Whether `name` is a valid metric name for the API: one URL path segment, not a name the
/// API server reserves for subresources.
pub fn check_metric_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("must not be empty; e.g. kafka-lag".into());
    }
    if name == "status" || name == "finalize" || name == "." || name == ".." {
        return Err(format!(
            "{name:?} is reserved by the Kubernetes API (subresource or path); choose another name"
        ));
    }
    if name.contains(['/', '%', '?', '#']) || name.chars().any(|c| c.is_whitespace()) {
        return Err(format!(
            "{name:?} is not a single path segment; use letters, digits, '-', '_', '.' and ':'"
        ));
    }
    Ok(())
}

impl HpaConfig {
    /// Problems with this block, paths under `hpa`.
    pub fn validate(&self, base_dir: &Path, out: &mut Vec<Problem>) {
        if let Err(e) = crate::config::parse_listen(&self.listen) {
            out.push(Problem::at("hpa", "listen", e));
        }
        crate::config::check_tls_files(
            "hpa.tls",
            None,
            self.tls.cert_file.as_deref(),
            self.tls.key_file.as_deref(),
            base_dir,
            out,
        );
        for (i, san) in self.tls.sans.iter().enumerate() {
            let ok = san.parse::<std::net::IpAddr>().is_ok()
                || (!san.is_empty()
                    && san
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '*'));
            if !ok {
                out.push(Problem::at(
                    "hpa.tls",
                    &format!("sans[{i}]"),
                    format!("{san:?} is neither a DNS name nor an IP address"),
                ));
            }
        }
        if let Some(f) = &self.auth.token_file {
            if let Err(e) = crate::config::secret::resolve("token", None, Some(f), base_dir) {
                out.push(Problem::at("hpa.auth", "token_file", e));
            }
        }
        if let Some(rh) = &self.auth.requestheader {
            let full = abs(base_dir, &rh.client_ca_file);
            if !full.is_file() {
                out.push(Problem::at(
                    "hpa.auth.requestheader",
                    "client_ca_file",
                    format!(
                        "{} does not exist; mount requestheader-client-ca-file from the kube-system/extension-apiserver-authentication ConfigMap",
                        full.display()
                    ),
                ));
            }
            if rh.username_headers.is_empty() {
                out.push(Problem::at(
                    "hpa.auth.requestheader",
                    "username_headers",
                    "must not be empty; e.g. [X-Remote-User]",
                ));
            }
        }
        let d = &self.auth.delegate;
        if d.enabled {
            for (key, ttl) in [
                ("cache_ttl", d.cache_ttl),
                ("authorized_cache_ttl", d.authorized_cache_ttl),
                ("unauthorized_cache_ttl", d.unauthorized_cache_ttl),
            ] {
                if ttl > Duration::from_secs(300) {
                    out.push(Problem::at(
                        "hpa.auth.delegate",
                        key,
                        "is above 5m; a revoked token or permission would stay valid that long; use 10s to 2m",
                    ));
                }
            }
            if d.timeout.is_zero() || d.timeout > Duration::from_secs(60) {
                out.push(Problem::at(
                    "hpa.auth.delegate",
                    "timeout",
                    "must be between 1s and 1m; the HPA controller waits for the answer; use 10s",
                ));
            }
            for (i, a) in d.audiences.iter().enumerate() {
                if a.trim().is_empty() {
                    out.push(Problem::at(
                        "hpa.auth.delegate",
                        &format!("audiences[{i}]"),
                        "must not be empty; e.g. https://kubernetes.default.svc",
                    ));
                }
            }
        }
        if let Some(kc) = &d.kubeconfig_file {
            let full = abs(base_dir, kc);
            if !full.is_file() {
                out.push(Problem::at(
                    "hpa.auth.delegate",
                    "kubeconfig_file",
                    format!(
                        "{} does not exist; point it at a kubeconfig for the API server, or remove it to use the in-cluster service account",
                        full.display()
                    ),
                ));
            }
        }
        let mut seen = std::collections::BTreeSet::new();
        for (i, m) in self.metrics.iter().enumerate() {
            let block = format!("hpa.metrics[{i}]");
            if let Err(e) = check_metric_name(&m.name) {
                out.push(Problem::at(&block, "name", e));
            } else if !seen.insert(m.name.as_str()) {
                out.push(Problem::at(
                    &block,
                    "name",
                    format!(
                        "{:?} is already defined; metric names must be unique",
                        m.name
                    ),
                ));
            }
            match (&m.selector, &m.slo) {
                (Some(_), Some(_)) => out.push(Problem::at(
                    &block,
                    "",
                    "set either selector or slo, not both",
                )),
                (None, None) => out.push(Problem::at(
                    &block,
                    "",
                    "needs a selector (e.g. kafka_consumergroup_lag_sum) or an slo (e.g. demo/availability)",
                )),
                (Some(sel), None) => {
                    if let Err(e) = sel.parse::<Selector>() {
                        out.push(Problem::at(&block, "selector", e.to_string()));
                    }
                    for (j, l) in m.by.iter().enumerate() {
                        if let Err(e) = crate::config::check_label_name(l) {
                            out.push(Problem::at(&block, &format!("by[{j}]"), e));
                        }
                    }
                    for key in [
                        ("value", m.value.is_some()),
                        ("window", m.window.is_some()),
                    ]
                    .iter()
                    .filter(|k| k.1)
                    {
                        out.push(Problem::at(
                            &block,
                            key.0,
                            "applies to slo metrics only; remove it",
                        ));
                    }
                }
                (None, Some(slo)) => {
                    if !slo.contains('/') {
                        out.push(Problem::at(
                            &block,
                            "slo",
                            format!("{slo:?} is not an SLO id; write service/name, e.g. demo/availability"),
                        ));
                    }
                    if !m.by.is_empty() {
                        out.push(Problem::at(
                            &block,
                            "by",
                            "applies to selector metrics only; SLO instances carry their group_by labels",
                        ));
                    }
                    match m.value {
                        None => out.push(Problem::at(
                            &block,
                            "value",
                            "is required with slo; use burn_rate, error_budget_remaining or error_ratio",
                        )),
                        Some(SloValue::BurnRate) if m.window.is_none() => out.push(Problem::at(
                            &block,
                            "window",
                            "is required for burn_rate; e.g. 1h (one of the SLO's alerting windows)",
                        )),
                        _ => {}
                    }
                    if let Some(w) = &m.window {
                        if let Err(e) = crate::config::parse_duration(w) {
                            out.push(Problem::at(&block, "window", e));
                        }
                    }
                }
            }
            for (j, ns) in m.namespaces.iter().enumerate() {
                let ok = !ns.is_empty()
                    && ns.len() <= 63
                    && ns
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                    && !ns.starts_with('-')
                    && !ns.ends_with('-');
                if !ok {
                    out.push(Problem::at(
                        &block,
                        &format!("namespaces[{j}]"),
                        format!("{ns:?} is not a namespace name (RFC 1123 label: a-z, 0-9, '-')"),
                    ));
                }
            }
        }
    }

    /// Makes relative file paths relative to the config file's directory.
    pub fn resolve_paths(&mut self, base_dir: &Path) {
        for p in [
            &mut self.tls.cert_file,
            &mut self.tls.key_file,
            &mut self.auth.token_file,
            &mut self.auth.delegate.kubeconfig_file,
        ]
        .into_iter()
        .flatten()
        {
            *p = abs(base_dir, p);
        }
        if let Some(rh) = &mut self.auth.requestheader {
            rh.client_ca_file = abs(base_dir, &rh.client_ca_file);
        }
    }
}

fn abs(base_dir: &Path, p: &Path) -> PathBuf {
    if p.is_relative() {
        base_dir.join(p)
    } else {
        p.to_path_buf()
    }
}
