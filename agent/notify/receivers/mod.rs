//! Receivers: the `receivers[]` entries of the alerts files (Alertmanager-shaped: a name and
//! lists of integrations) and the code that delivers one [`Notification`] to one integration.
//!
//! One file per integration, each with its config struct, its `validate` and its `send`:
//! [`email`] (SMTP through lettre), [`webhook`] (Alertmanager's webhook payload version 4),
//! [`slack`] (incoming webhook), [`pagerduty`] (Events API v2) and [`alertmanager`] (push to
//! `POST /api/v2/alerts`). The [`Integration`] enum is the registry: a new integration is one
//! file, one variant and one match arm. Called by the outbox (`notify/outbox.rs`), which owns
//! retries; a send here is one attempt.
//!
//! Also here: the small template language of the email subject and bodies and the Slack and
//! PagerDuty texts ([`render`]), and the Alertmanager-compatible helpers (common labels, RFC 3339
//! times as Go prints them).

pub mod alertmanager;
pub mod email;
pub mod pagerduty;
pub mod slack;
pub mod webhook;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use super::Notification;
use crate::alert::{Alert, AlertState};
use crate::config::Problem;
use crate::config::secret::{self, Secret};

/// One `receivers[]` entry: a name referenced by routes, the integrations a notification to it
/// goes to, and how hard the outbox tries.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiverConfig {
    /// Name, referenced by `route.receiver`; unique across the alerts files.
    pub name: String,
    /// Emails (SMTP).
    #[serde(default)]
    pub email_configs: Vec<email::EmailConfig>,
    /// Webhooks receiving Alertmanager's webhook payload (version 4).
    #[serde(default)]
    pub webhook_configs: Vec<webhook::WebhookConfig>,
    /// Slack incoming webhooks.
    #[serde(default)]
    pub slack_configs: Vec<slack::SlackConfig>,
    /// PagerDuty services (Events API v2).
    #[serde(default)]
    pub pagerduty_configs: Vec<pagerduty::PagerdutyConfig>,
    /// Alertmanagers the alerts are pushed to (`POST /api/v2/alerts`).
    #[serde(default)]
    pub alertmanager_configs: Vec<alertmanager::AlertmanagerConfig>,
    /// Attempts per notification and integration before it is marked failed (and counted in
    /// `vigil_notifications_failed_total`). Default 10.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// Wait before the first retry; doubled after every failed attempt, with jitter (a random
    /// wait between half and all of it). Default 1s.
    #[serde(default = "default_min_backoff", deserialize_with = "de_duration")]
    pub min_backoff: Duration,
    /// Longest wait between two attempts. Default 5m.
    #[serde(default = "default_max_backoff", deserialize_with = "de_duration")]
    pub max_backoff: Duration,
    /// Longest one attempt may take (connect, TLS, request, answer). Default 10s.
    #[serde(default = "default_timeout", deserialize_with = "de_duration")]
    pub timeout: Duration,
}

fn default_max_attempts() -> u32 {
    10
}

fn default_min_backoff() -> Duration {
    Duration::from_secs(1)
}

fn default_max_backoff() -> Duration {
    Duration::from_secs(300)
}

fn default_timeout() -> Duration {
    Duration::from_secs(10)
}

/// Delivery settings that are not per receiver: the link to vigil in payloads, how long the
/// history is kept and how often alerts are re-pushed to Alertmanagers. The `delivery:`
/// section of one alerts file; the outbox reads it from the current configuration.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveryConfig {
    /// The URL users reach vigil at; `externalURL` of webhook payloads and the base of links in
    /// emails. Default: empty.
    #[serde(default)]
    pub external_url: String,
    /// How long sent, failed and superseded notifications stay in the ledger (and in
    /// `GET /api/v1/alerts/history`). Pending ones are never pruned. Default 30d.
    #[serde(default = "default_retention", deserialize_with = "de_duration")]
    pub history_retention: Duration,
    /// How often firing alerts are re-pushed to `alertmanager_configs` targets; their `endsAt`
    /// is 4 times this in the future, so Alertmanager resolves them by itself if vigil stops.
    /// Default 1m (Prometheus' `--rules.alert.resend-delay`).
    #[serde(default = "default_resend_interval", deserialize_with = "de_duration")]
    pub resend_interval: Duration,
}

fn default_retention() -> Duration {
    Duration::from_secs(30 * 86_400)
}

fn default_resend_interval() -> Duration {
    Duration::from_secs(60)
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        Self {
            external_url: String::new(),
            history_retention: default_retention(),
            resend_interval: default_resend_interval(),
        }
    }
}

impl DeliveryConfig {
    /// Semantic checks; `path` is e.g. `global`.
    pub fn validate(&self, path: &str, out: &mut Vec<Problem>) {
        if !self.external_url.is_empty() {
            check_http_url(&self.external_url, &format!("{path}.external_url"), out);
        }
        if self.history_retention < Duration::from_secs(60) {
            out.push(Problem {
                path: format!("{path}.history_retention"),
                message: "must be at least 1m; e.g. 30d".into(),
                location: None,
            });
        }
        if self.resend_interval < Duration::from_secs(1) {
            out.push(Problem {
                path: format!("{path}.resend_interval"),
                message: "must be at least 1s; e.g. 1m".into(),
                location: None,
            });
        }
    }
}

/// Deserializes a humantime duration (`30s`, `5m`).
pub(crate) fn de_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    crate::config::parse_duration(&text).map_err(serde::de::Error::custom)
}

/// Deserializes an optional humantime duration.
pub(crate) fn de_opt_duration<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Duration>, D::Error> {
    let text = Option::<String>::deserialize(d)?;
    text.map(|t| crate::config::parse_duration(&t).map_err(serde::de::Error::custom))
        .transpose()
}

/// One integration of a receiver, borrowed from its config.
#[derive(Debug, Clone, Copy)]
pub enum Integration<'a> {
    /// `email_configs[i]`.
    Email(&'a email::EmailConfig),
    /// `webhook_configs[i]`.
    Webhook(&'a webhook::WebhookConfig),
    /// `slack_configs[i]`.
    Slack(&'a slack::SlackConfig),
    /// `pagerduty_configs[i]`.
    Pagerduty(&'a pagerduty::PagerdutyConfig),
    /// `alertmanager_configs[i]`.
    Alertmanager(&'a alertmanager::AlertmanagerConfig),
}

impl Integration<'_> {
    /// The integration label of the metrics: `email`, `webhook`, `slack`, `pagerduty`,
    /// `alertmanager`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Email(_) => "email",
            Self::Webhook(_) => "webhook",
            Self::Slack(_) => "slack",
            Self::Pagerduty(_) => "pagerduty",
            Self::Alertmanager(_) => "alertmanager",
        }
    }

    /// Whether resolved alerts are sent (Alertmanager's `send_resolved`; always for pushes to
    /// Alertmanager, which must see alerts end).
    pub fn send_resolved(&self) -> bool {
        match self {
            Self::Email(c) => c.send_resolved,
            Self::Webhook(c) => c.send_resolved,
            Self::Slack(c) => c.send_resolved,
            Self::Pagerduty(c) => c.send_resolved,
            Self::Alertmanager(_) => true,
        }
    }

    /// One attempt to deliver `n` (already filtered for `send_resolved`).
    pub async fn send(&self, ctx: &SendContext<'_>, n: &Notification) -> Result<(), SendError> {
        match self {
            Self::Email(c) => c.send(ctx, n).await,
            Self::Webhook(c) => c.send(ctx, n).await,
            Self::Slack(c) => c.send(ctx, n).await,
            Self::Pagerduty(c) => c.send(ctx, n).await,
            Self::Alertmanager(c) => c.send(ctx, n).await,
        }
    }
}

impl ReceiverConfig {
    /// Every integration with its id (`email[0]`, `webhook[1]`, ...), the id being the key of
    /// a delivery in the outbox.
    pub fn integrations(&self) -> Vec<(String, Integration<'_>)> {
        let mut out = Vec::new();
        for (i, c) in self.email_configs.iter().enumerate() {
            out.push((format!("email[{i}]"), Integration::Email(c)));
        }
        for (i, c) in self.webhook_configs.iter().enumerate() {
            out.push((format!("webhook[{i}]"), Integration::Webhook(c)));
        }
        for (i, c) in self.slack_configs.iter().enumerate() {
            out.push((format!("slack[{i}]"), Integration::Slack(c)));
        }
        for (i, c) in self.pagerduty_configs.iter().enumerate() {
            out.push((format!("pagerduty[{i}]"), Integration::Pagerduty(c)));
        }
        for (i, c) in self.alertmanager_configs.iter().enumerate() {
            out.push((format!("alertmanager[{i}]"), Integration::Alertmanager(c)));
        }
        out
    }

    /// The integration with id `id` (as made by [`ReceiverConfig::integrations`]).
    pub fn integration(&self, id: &str) -> Option<Integration<'_>> {
        self.integrations()
            .into_iter()
            .find(|(i, _)| i == id)
            .map(|(_, x)| x)
    }

    /// Semantic checks (missing secrets and their env vars included); `path` is e.g.
    /// `receivers[2]`.
    pub fn validate(&self, path: &str, base_dir: &Path, out: &mut Vec<Problem>) {
        if self.name.trim().is_empty() {
            out.push(Problem {
                path: format!("{path}.name"),
                message: "must not be empty; routes refer to receivers by name".into(),
                location: None,
            });
        }
        for (i, c) in self.email_configs.iter().enumerate() {
            c.validate(&format!("{path}.email_configs[{i}]"), base_dir, out);
        }
        for (i, c) in self.webhook_configs.iter().enumerate() {
            c.validate(&format!("{path}.webhook_configs[{i}]"), base_dir, out);
        }
        for (i, c) in self.slack_configs.iter().enumerate() {
            c.validate(&format!("{path}.slack_configs[{i}]"), base_dir, out);
        }
        for (i, c) in self.pagerduty_configs.iter().enumerate() {
            c.validate(&format!("{path}.pagerduty_configs[{i}]"), base_dir, out);
        }
        for (i, c) in self.alertmanager_configs.iter().enumerate() {
            c.validate(&format!("{path}.alertmanager_configs[{i}]"), base_dir, out);
        }
        let mut bad = |key: &str, message: &str| out.push(Problem::at(path, key, message));
        if self.max_attempts == 0 {
            bad("max_attempts", "must be at least 1; e.g. 10");
        }
        if self.min_backoff.is_zero() {
            bad("min_backoff", "must be more than 0s; e.g. 1s");
        }
        if self.max_backoff < self.min_backoff {
            bad("max_backoff", "must be at least min_backoff; e.g. 5m");
        }
        if self.timeout.is_zero() {
            bad("timeout", "must be more than 0s; e.g. 10s");
        }
    }

    /// Makes relative `*_file` paths relative to the alerts file's directory.
    pub fn resolve_paths(&mut self, base_dir: &Path) {
        let mut files: Vec<&mut Option<PathBuf>> = Vec::new();
        for c in &mut self.email_configs {
            files.push(&mut c.password_file);
        }
        for c in &mut self.webhook_configs {
            files.push(&mut c.url_file);
            files.push(&mut c.credentials_file);
        }
        for c in &mut self.slack_configs {
            files.push(&mut c.api_url_file);
        }
        for c in &mut self.pagerduty_configs {
            files.push(&mut c.routing_key_file);
        }
        for c in &mut self.alertmanager_configs {
            files.push(&mut c.credentials_file);
        }
        for f in files.into_iter().flatten() {
            if f.is_relative() {
                *f = base_dir.join(&*f);
            }
        }
    }
}

/// What an integration needs besides its config for one attempt.
#[derive(Debug, Clone)]
pub struct SendContext<'a> {
    /// Shared HTTP client (rustls).
    pub http: &'a reqwest::Client,
    /// Longest the attempt may take.
    pub timeout: Duration,
    /// Stable id of this delivery (notification idempotency key and integration id): the
    /// webhook's `Idempotency-Key` header, the email's Message-ID.
    pub delivery_key: &'a str,
    /// `externalURL` and the base of links.
    pub external_url: &'a str,
    /// Re-push interval to Alertmanagers (their `endsAt` is 4 times this ahead).
    pub resend_interval: Duration,
    /// Now, ms since the epoch.
    pub now_ms: i64,
}

/// Why one attempt failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct SendError {
    /// Worth retrying (connection errors, timeouts, 5xx, 429, transient SMTP errors); false
    /// for what will fail again (4xx, permanent SMTP errors, bad config).
    pub retryable: bool,
    /// What happened, without secrets.
    pub message: String,
}

impl SendError {
    /// A failure worth retrying.
    pub fn retry(message: impl Into<String>) -> Self {
        Self {
            retryable: true,
            message: message.into(),
        }
    }

    /// A failure that will not go away by retrying.
    pub fn permanent(message: impl Into<String>) -> Self {
        Self {
            retryable: false,
            message: message.into(),
        }
    }
}

/// Resolves a `*_env`/`*_file` secret at send time (a config error is permanent).
pub(crate) fn secret_at_send(
    key: &str,
    env: Option<&str>,
    file: Option<&Path>,
) -> Result<Option<Secret>, SendError> {
    secret::resolve(key, env, file, Path::new(".")).map_err(SendError::permanent)
}

/// Pushes a problem if the secret cannot be resolved; `required` also when it is missing.
pub(crate) fn check_secret(
    path: &str,
    key: &str,
    env: Option<&str>,
    file: Option<&Path>,
    base_dir: &Path,
    required: bool,
    out: &mut Vec<Problem>,
) -> Option<Secret> {
    let key_path = if file.is_some() && env.is_none() {
        format!("{path}.{key}_file")
    } else {
        format!("{path}.{key}_env")
    };
    match secret::resolve(key, env, file, base_dir) {
        Ok(Some(s)) => Some(s),
        Ok(None) => {
            if required {
                out.push(Problem {
                    path: key_path,
                    message: format!("missing {key}_env or {key}_file; set one"),
                    location: None,
                });
            }
            None
        }
        Err(message) => {
            out.push(Problem {
                path: key_path,
                message,
                location: None,
            });
            None
        }
    }
}

/// Pushes a problem unless `url` is an absolute http(s) URL.
pub(crate) fn check_http_url(url: &str, path: &str, out: &mut Vec<Problem>) {
    match reqwest::Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
        _ => out.push(Problem {
            path: path.into(),
            message: "is not an http:// or https:// URL; e.g. https://hooks.example.com/alerts"
                .into(),
            location: None,
        }),
    }
}

/// A URL without its user info, for logs and errors.
pub(crate) fn redact(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) => {
            let _ = u.set_password(None);
            let _ = u.set_username("");
            u.set_query(None);
            u.to_string()
        }
        Err(_) => "<invalid url>".into(),
    }
}

/// Scheme, host and port of a URL whose path may hold a secret (Slack's webhook URLs do), for
/// logs and errors.
pub(crate) fn origin(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => format!("{}/...", u.origin().ascii_serialization()),
        Err(_) => "<invalid url>".into(),
    }
}

/// One HTTP POST of a JSON body; classifies the outcome. `shown` names the target in errors
/// and logs (see [`redact`] and [`origin`]; never the secret parts of the URL).
pub(crate) async fn post_json(
    ctx: &SendContext<'_>,
    url: &str,
    shown: &str,
    bearer: Option<&Secret>,
    extra_headers: &[(&str, &str)],
    body: String,
) -> Result<(), SendError> {
    let mut req = ctx
        .http
        .post(url)
        .timeout(ctx.timeout)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(reqwest::header::USER_AGENT, USER_AGENT)
        .body(body);
    if let Some(token) = bearer {
        req = req.bearer_auth(token.expose());
    }
    for (k, v) in extra_headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.map_err(|e| {
        let kind = if e.is_timeout() {
            "timed out"
        } else if e.is_connect() {
            "cannot connect"
        } else {
            "request failed"
        };
        SendError::retry(format!("POST {shown}: {kind}: {}", e.without_url()))
    })?;
    let status = resp.status();
    if status.is_success() {
        return Ok(());
    }
    let text: String = resp
        .text()
        .await
        .unwrap_or_default()
        .chars()
        .take(200)
        .collect();
    let msg = format!("POST {shown}: HTTP {status}: {}", text.trim());
    if status.is_server_error() || status.as_u16() == 429 || status.as_u16() == 408 {
        Err(SendError::retry(msg))
    } else {
        Err(SendError::permanent(msg))
    }
}

/// The User-Agent of every HTTP request vigil sends to a receiver.
pub const USER_AGENT: &str = concat!("vigil/", env!("CARGO_PKG_VERSION"));

/// The copy of `n` an integration sends: without pending alerts, and without resolved ones
/// unless `send_resolved`; None when nothing is left to send.
pub fn for_integration(n: &Notification, send_resolved: bool) -> Option<Notification> {
    let alerts: Vec<Alert> = n
        .alerts
        .iter()
        .filter(|a| match a.state {
            AlertState::Firing => true,
            AlertState::Resolved => send_resolved,
            AlertState::Pending => false,
        })
        .cloned()
        .collect();
    if alerts.is_empty() {
        return None;
    }
    Some(Notification {
        alerts,
        ..n.clone()
    })
}

/// `firing` or `resolved` for one alert, as Alertmanager names it.
pub fn alert_status(a: &Alert) -> &'static str {
    if a.state == AlertState::Resolved {
        "resolved"
    } else {
        "firing"
    }
}

/// `startsAt` of an alert (ms).
pub fn starts_ms(a: &Alert) -> i64 {
    a.fired_at_ms.unwrap_or(a.active_at_ms)
}

/// Go's zero `time.Time` as JSON prints it: `endsAt` of a firing alert.
pub const GO_ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// A time as Go's `time.Time` marshals to JSON (RFC 3339 with the fraction trimmed of
/// trailing zeros), in UTC.
pub fn go_time(ms: i64) -> String {
    let Some(t) = chrono::DateTime::from_timestamp_millis(ms) else {
        return GO_ZERO_TIME.into();
    };
    let base = t.format("%Y-%m-%dT%H:%M:%S").to_string();
    let frac = ms.rem_euclid(1000);
    if frac == 0 {
        format!("{base}Z")
    } else {
        let digits = format!("{frac:03}");
        format!("{base}.{}Z", digits.trim_end_matches('0'))
    }
}

/// Labels (or annotations) with the same value in every alert, as Alertmanager's
/// `commonLabels`.
pub fn common(
    alerts: &[Alert],
    pick: impl Fn(&Alert) -> &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut it = alerts.iter();
    let Some(first) = it.next() else {
        return BTreeMap::new();
    };
    let mut out = pick(first).clone();
    for a in it {
        let m = pick(a);
        out.retain(|k, v| m.get(k) == Some(v));
    }
    out
}

/// What the templates see of one notification.
#[derive(Debug, Clone)]
pub struct TemplateData<'a> {
    /// The notification (filtered for the integration).
    pub n: &'a Notification,
    /// `externalURL`.
    pub external_url: &'a str,
    /// Labels common to all alerts.
    pub common_labels: BTreeMap<String, String>,
    /// Annotations common to all alerts.
    pub common_annotations: BTreeMap<String, String>,
}

impl<'a> TemplateData<'a> {
    /// Computes the common labels and annotations of `n`.
    pub fn new(n: &'a Notification, external_url: &'a str) -> Self {
        Self {
            n,
            external_url,
            common_labels: common(&n.alerts, |a| &a.labels),
            common_annotations: common(&n.alerts, |a| &a.annotations),
        }
    }

    fn firing(&self) -> usize {
        self.n
            .alerts
            .iter()
            .filter(|a| a.state != AlertState::Resolved)
            .count()
    }

    /// The value of one placeholder; None for an unknown name.
    fn value(&self, name: &str, html: bool) -> Option<String> {
        let join = |m: &BTreeMap<String, String>| {
            m.iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let v = match name {
            "status" => self.n.status().to_string(),
            "STATUS" => self.n.status().to_uppercase(),
            "receiver" => self.n.receiver.clone(),
            "group_key" => self.n.group_key.clone(),
            "external_url" => self.external_url.to_string(),
            "alertname" => self
                .common_labels
                .get("alertname")
                .or_else(|| self.n.group_labels.get("alertname"))
                .cloned()
                .unwrap_or_default(),
            "count" => self.n.alerts.len().to_string(),
            "firing_count" => self.firing().to_string(),
            "resolved_count" => (self.n.alerts.len() - self.firing()).to_string(),
            "group_labels" => join(&self.n.group_labels),
            "common_labels" => join(&self.common_labels),
            "alerts" => {
                // Already escaped where needed.
                return Some(if html {
                    self.alerts_html()
                } else {
                    self.alerts_text()
                });
            }
            _ => {
                let (map, key) = if let Some(k) = name.strip_prefix("labels.") {
                    (&self.common_labels, k)
                } else if let Some(k) = name.strip_prefix("annotations.") {
                    (&self.common_annotations, k)
                } else if let Some(k) = name.strip_prefix("group_labels.") {
                    (&self.n.group_labels, k)
                } else {
                    return None;
                };
                map.get(key).cloned().unwrap_or_default()
            }
        };
        Some(if html { html_escape(&v) } else { v })
    }

    /// The built-in plain-text listing of the alerts: status, name, summary, description, value
    /// (the burn rate of SLO alerts), every other annotation (budget, runbook), times, labels
    /// and the link back to vigil.
    pub fn alerts_text(&self) -> String {
        let mut out = String::new();
        for a in &self.n.alerts {
            let name = a.labels.get("alertname").map_or("", String::as_str);
            out.push_str(&format!("[{}] {name}\n", alert_status(a).to_uppercase()));
            for key in ["summary", "description"] {
                if let Some(v) = a.annotations.get(key) {
                    out.push_str(&format!("  {key}: {v}\n"));
                }
            }
            out.push_str(&format!("  value: {}\n", format_value(a.value)));
            for (k, v) in &a.annotations {
                if k != "summary" && k != "description" {
                    out.push_str(&format!("  {k}: {v}\n"));
                }
            }
            out.push_str(&format!("  started: {}\n", go_time(starts_ms(a))));
            if let Some(end) = a.resolved_at_ms.filter(|_| a.state == AlertState::Resolved) {
                out.push_str(&format!("  resolved: {}\n", go_time(end)));
            }
            let labels: Vec<String> = a.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            out.push_str(&format!("  labels: {}\n", labels.join(", ")));
            if !a.generator_url.is_empty() {
                out.push_str(&format!("  source: {}\n", a.generator_url));
            }
            out.push('\n');
        }
        out
    }

    /// The built-in HTML listing of the alerts (the same content as [`Self::alerts_text`]).
    pub fn alerts_html(&self) -> String {
        let mut out = String::new();
        for a in &self.n.alerts {
            let name = a.labels.get("alertname").map_or("", String::as_str);
            let status = alert_status(a);
            let color = if status == "firing" {
                "#d9534f"
            } else {
                "#5cb85c"
            };
            out.push_str(&format!(
                "<h3><span style=\"color:{color}\">[{}]</span> {}</h3>\n<table>\n",
                status.to_uppercase(),
                html_escape(name)
            ));
            let mut row = |k: &str, v: &str| {
                out.push_str(&format!(
                    "<tr><th align=\"left\">{}</th><td>{}</td></tr>\n",
                    html_escape(k),
                    html_escape(v)
                ));
            };
            for key in ["summary", "description"] {
                if let Some(v) = a.annotations.get(key) {
                    row(key, v);
                }
            }
            row("value", &format_value(a.value));
            for (k, v) in &a.annotations {
                if k != "summary" && k != "description" {
                    row(k, v);
                }
            }
            row("started", &go_time(starts_ms(a)));
            if let Some(end) = a.resolved_at_ms.filter(|_| a.state == AlertState::Resolved) {
                row("resolved", &go_time(end));
            }
            let labels: Vec<String> = a.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            row("labels", &labels.join(", "));
            out.push_str("</table>\n");
            if !a.generator_url.is_empty() {
                out.push_str(&format!(
                    "<p><a href=\"{0}\">{0}</a></p>\n",
                    html_escape(&a.generator_url)
                ));
            }
        }
        out
    }
}

/// A value as the text format prints it (`14.4`, `3`, `NaN`).
fn format_value(v: f64) -> String {
    let mut s = String::new();
    crate::api::metrics::format_value(v, &mut s);
    s
}

/// Escapes `&`, `<`, `>`, `"` and `'` for HTML.
pub fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Renders a template: `{{ name }}` placeholders replaced by their values (HTML-escaped when
/// `html`). Names: `status`, `STATUS`, `receiver`, `group_key`, `external_url`, `alertname`,
/// `count`, `firing_count`, `resolved_count`, `group_labels`, `common_labels`, `alerts`,
/// `labels.<name>`, `annotations.<name>`, `group_labels.<name>`. Unknown names are left as
/// written ([`check_template`] refuses them at load).
pub fn render(template: &str, data: &TemplateData<'_>, html: bool) -> String {
    let mut out = String::with_capacity(template.len() + 256);
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            out.push_str(&rest[start..]);
            return out;
        };
        let name = after[..end].trim();
        match data.value(name, html) {
            Some(v) => out.push_str(&v),
            None => out.push_str(&rest[start..start + 2 + end + 2]),
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    out
}

/// Checks a template's placeholders; the error names the first unknown one.
pub fn check_template(template: &str) -> Result<(), String> {
    const NAMES: &[&str] = &[
        "status",
        "STATUS",
        "receiver",
        "group_key",
        "external_url",
        "alertname",
        "count",
        "firing_count",
        "resolved_count",
        "group_labels",
        "common_labels",
        "alerts",
    ];
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            return Err("a {{ has no closing }}".into());
        };
        let name = after[..end].trim();
        let known = NAMES.contains(&name)
            || ["labels.", "annotations.", "group_labels."]
                .iter()
                .any(|p| name.strip_prefix(p).is_some_and(|k| !k.is_empty()));
        if !known {
            return Err(format!(
                "unknown placeholder {{{{ {name} }}}}; use status, STATUS, alertname, count, firing_count, resolved_count, group_labels, common_labels, alerts, receiver, group_key, external_url, labels.<name>, annotations.<name> or group_labels.<name>"
            ));
        }
        rest = &after[end + 2..];
    }
    Ok(())
}

/// Checks an optional template and pushes a problem at `path`.
pub(crate) fn check_opt_template(t: Option<&str>, path: String, out: &mut Vec<Problem>) {
    if let Some(t) = t {
        if let Err(message) = check_template(t) {
            out.push(Problem {
                path,
                message,
                location: None,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn alert(name: &str, state: AlertState) -> Alert {
        let mut labels = BTreeMap::new();
        labels.insert("alertname".to_string(), name.to_string());
        labels.insert("severity".to_string(), "page".to_string());
        let mut annotations = BTreeMap::new();
        annotations.insert("summary".to_string(), "burning <fast> & hot".to_string());
        Alert {
            labels,
            annotations,
            state,
            active_at_ms: 1_700_000_000_000,
            fired_at_ms: Some(1_700_000_060_500),
            resolved_at_ms: (state == AlertState::Resolved).then_some(1_700_000_600_000),
            value: 14.4,
            inhibited_by: None,
            generator_url: "http://vigil/slo".into(),
        }
    }

    #[test]
    fn go_times() {
        assert_eq!(go_time(0), "1970-01-01T00:00:00Z");
        assert_eq!(go_time(1_700_000_060_500), "2023-11-14T22:14:20.5Z");
        assert_eq!(go_time(1_700_000_060_123), "2023-11-14T22:14:20.123Z");
        assert_eq!(go_time(1_700_000_060_120), "2023-11-14T22:14:20.12Z");
    }

    #[test]
    fn templates() {
        let n = Notification {
            receiver: "team".into(),
            group_key: "{}:{alertname=\"X\"}".into(),
            group_labels: [("alertname".to_string(), "X".to_string())].into(),
            alerts: vec![
                alert("X", AlertState::Firing),
                alert("X", AlertState::Resolved),
            ],
            idempotency_key: "k".into(),
            created_ms: 0,
        };
        let d = TemplateData::new(&n, "http://vigil");
        assert_eq!(
            render(
                "[{{ STATUS }}:{{firing_count}}] {{alertname}} {{labels.severity}} {{ nope }}",
                &d,
                false
            ),
            "[FIRING:1] X page {{ nope }}"
        );
        assert_eq!(
            render("{{annotations.summary}}", &d, true),
            "burning &lt;fast&gt; &amp; hot"
        );
        assert!(check_template("{{ alerts }} {{labels.x}}").is_ok());
        assert!(
            check_template("{{ nope }}")
                .expect_err("unknown")
                .contains("nope")
        );
        assert!(check_template("{{ labels. }}").is_err());
        let text = d.alerts_text();
        assert!(text.contains("[RESOLVED] X"), "{text}");
        assert!(text.contains("value: 14.4"), "{text}");
        let f = for_integration(&n, false).expect("firing left");
        assert_eq!(f.alerts.len(), 1);
        let r = Notification {
            alerts: vec![alert("X", AlertState::Resolved)],
            ..n.clone()
        };
        assert!(for_integration(&r, false).is_none());
        assert!(for_integration(&r, true).is_some());
    }

    #[test]
    fn receiver_yaml_and_validate() {
        let r: ReceiverConfig = serde_yaml::from_str(
            "name: team\nwebhook_configs:\n  - url: http://127.0.0.1:1/hook\nmax_backoff: 1m\n",
        )
        .expect("parse");
        assert_eq!(r.max_backoff, Duration::from_secs(60));
        assert_eq!(r.integrations()[0].0, "webhook[0]");
        let mut out = Vec::new();
        r.validate("receivers[0]", Path::new("."), &mut out);
        assert!(out.is_empty(), "{out:?}");
        let r: ReceiverConfig = serde_yaml::from_str(
            "name: bad\n\
             webhook_configs: [{url: 'ftp://x', credentials_env: VIGIL_SURELY_UNSET_TOKEN}]\n\
             email_configs: [{to: 'not an address', from: a@b.c, smarthost: nohost, username: u, subject: '{{ nope }}'}]\n\
             slack_configs: [{}]\n\
             pagerduty_configs: [{routing_key_env: VIGIL_SURELY_UNSET_KEY, severity: high}]\n\
             alertmanager_configs: [{urls: []}]\n\
             max_attempts: 0\n",
        )
        .expect("parse");
        let mut out = Vec::new();
        r.validate("receivers[1]", Path::new("."), &mut out);
        let got: Vec<String> = out
            .iter()
            .map(|p| format!("{}: {}", p.path, p.message))
            .collect();
        let want = [
            "receivers[1].email_configs[0].to[0]: \"not an address\" is not an email address",
            "receivers[1].email_configs[0].smarthost: \"nohost\" is not host:port",
            "receivers[1].email_configs[0].password_env: username needs password_env or password_file",
            "receivers[1].email_configs[0].subject: unknown placeholder {{ nope }}",
            "receivers[1].webhook_configs[0].url: is not an http:// or https:// URL",
            "receivers[1].webhook_configs[0].credentials_env: environment variable VIGIL_SURELY_UNSET_TOKEN (from credentials_env) is not set",
            "receivers[1].slack_configs[0].api_url_env: missing api_url_env or api_url_file",
            "receivers[1].pagerduty_configs[0].routing_key_env: environment variable VIGIL_SURELY_UNSET_KEY (from routing_key_env) is not set",
            "receivers[1].pagerduty_configs[0].severity: \"high\" is not a PagerDuty severity",
            "receivers[1].alertmanager_configs[0].urls: needs at least one URL",
            "receivers[1].max_attempts: must be at least 1",
        ];
        for w in want {
            assert!(
                got.iter().any(|g| g.starts_with(w)),
                "missing {w:?} in {got:#?}"
            );
        }
        assert_eq!(got.len(), want.len(), "{got:#?}");
        let e =
            serde_yaml::from_str::<ReceiverConfig>("name: a\nbogus: 1\n").expect_err("unknown key");
        assert!(e.to_string().contains("bogus"), "{e}");
    }
}
