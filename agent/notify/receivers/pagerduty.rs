//! `pagerduty_configs`: PagerDuty Events API v2 (`POST /v2/enqueue`). `event_action` is
//! `trigger` while any alert of the group fires and `resolve` once all resolved; `dedup_key` is
//! the SHA-256 of the group key (as Alertmanager computes it), so the resolve closes the
//! incident the trigger opened and re-sends do not open new ones. The routing key is a secret:
//! `routing_key_env` or `routing_key_file`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::{
    SendContext, SendError, TemplateData, check_http_url, check_opt_template, check_secret,
    post_json, redact, render, secret_at_send,
};
use crate::config::Problem;
use crate::notify::Notification;

/// PagerDuty's Events API v2 endpoint.
pub const DEFAULT_URL: &str = "https://events.pagerduty.com/v2/enqueue";

/// One `pagerduty_configs[]` entry.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PagerdutyConfig {
    /// Environment variable holding the integration (routing) key of the service.
    #[serde(default)]
    pub routing_key_env: Option<String>,
    /// File holding the routing key.
    #[serde(default)]
    pub routing_key_file: Option<PathBuf>,
    /// Events API URL. Default `https://events.pagerduty.com/v2/enqueue`.
    #[serde(default = "default_url")]
    pub url: String,
    /// `payload.severity`: `critical`, `error`, `warning` or `info`. Default: from the
    /// `severity` label (`page` -> critical, `ticket` -> warning, or the label itself when it
    /// is one of the four), else `error`.
    #[serde(default)]
    pub severity: Option<String>,
    /// `payload.source`. Default `vigil`.
    #[serde(default)]
    pub source: Option<String>,
    /// `payload.summary` template; default `[{{ STATUS }}:{{ firing_count }}] {{ alertname }}
    /// ({{ group_labels }})`. Truncated to 1024 characters.
    #[serde(default)]
    pub description: Option<String>,
    /// `client` shown in PagerDuty. Default `vigil`.
    #[serde(default)]
    pub client: Option<String>,
    /// `client_url`. Default: the delivery settings' `external_url`.
    #[serde(default)]
    pub client_url: Option<String>,
    /// Whether resolved groups are sent (as `resolve` events). Default true.
    #[serde(default = "yes")]
    pub send_resolved: bool,
    /// Longest one attempt may take; default: the receiver's `timeout`.
    #[serde(default, deserialize_with = "super::de_opt_duration")]
    pub timeout: Option<Duration>,
}

fn default_url() -> String {
    DEFAULT_URL.into()
}

fn yes() -> bool {
    true
}

const SEVERITIES: &[&str] = &["critical", "error", "warning", "info"];

/// Alertmanager's `hashKey`: hex SHA-256 of the group key.
pub fn dedup_key(group_key: &str) -> String {
    Sha256::digest(group_key.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl PagerdutyConfig {
    /// Semantic checks.
    pub fn validate(&self, path: &str, base_dir: &Path, out: &mut Vec<Problem>) {
        check_secret(
            path,
            "routing_key",
            self.routing_key_env.as_deref(),
            self.routing_key_file.as_deref(),
            base_dir,
            true,
            out,
        );
        check_http_url(&self.url, &format!("{path}.url"), out);
        if let Some(s) = &self.severity {
            if !SEVERITIES.contains(&s.as_str()) {
                out.push(Problem {
                    path: format!("{path}.severity"),
                    message: format!(
                        "{s:?} is not a PagerDuty severity; use critical, error, warning or info"
                    ),
                    location: None,
                });
            }
        }
        check_opt_template(
            self.description.as_deref(),
            format!("{path}.description"),
            out,
        );
        if self.timeout.is_some_and(|t| t.is_zero()) {
            out.push(Problem {
                path: format!("{path}.timeout"),
                message: "must be more than 0s; e.g. 10s".into(),
                location: None,
            });
        }
    }

    /// The event for `n` with `routing_key`.
    pub fn body(&self, n: &Notification, routing_key: &str, external_url: &str) -> String {
        let dedup = dedup_key(&n.group_key);
        if n.status() == "resolved" {
            return json!({
                "routing_key": routing_key,
                "dedup_key": dedup,
                "event_action": "resolve",
            })
            .to_string();
        }
        let d = TemplateData::new(n, external_url);
        let summary: String = render(
            self.description
                .as_deref()
                .unwrap_or(super::slack::DEFAULT_TITLE),
            &d,
            false,
        )
        .chars()
        .take(1024)
        .collect();
        let severity = self.severity.clone().unwrap_or_else(|| {
            match d.common_labels.get("severity").map(String::as_str) {
                Some("page") => "critical".into(),
                Some("ticket") => "warning".into(),
                Some(s) if SEVERITIES.contains(&s) => s.into(),
                _ => "error".into(),
            }
        });
        let mut details: BTreeMap<String, String> = BTreeMap::new();
        details.insert("firing".into(), d.alerts_text());
        details.insert("num_firing".into(), n.alerts.len().to_string());
        for (k, v) in &d.common_labels {
            details.insert(format!("label.{k}"), v.clone());
        }
        let links: Vec<serde_json::Value> = n
            .alerts
            .iter()
            .filter(|a| !a.generator_url.is_empty())
            .map(|a| json!({"href": a.generator_url, "text": "vigil"}))
            .take(1)
            .collect();
        json!({
            "routing_key": routing_key,
            "dedup_key": dedup,
            "event_action": "trigger",
            "payload": {
                "summary": summary,
                "source": self.source.as_deref().unwrap_or("vigil"),
                "severity": severity,
                "custom_details": details,
            },
            "client": self.client.as_deref().unwrap_or("vigil"),
            "client_url": self.client_url.as_deref().unwrap_or(external_url),
            "links": links,
        })
        .to_string()
    }

    /// One attempt.
    pub async fn send(&self, ctx: &SendContext<'_>, n: &Notification) -> Result<(), SendError> {
        let key = secret_at_send(
            "routing_key",
            self.routing_key_env.as_deref(),
            self.routing_key_file.as_deref(),
        )?
        .ok_or_else(|| SendError::permanent("pagerduty has no routing key; set routing_key_env"))?;
        let ctx = SendContext {
            timeout: self.timeout.unwrap_or(ctx.timeout),
            ..ctx.clone()
        };
        let body = self.body(n, key.expose(), ctx.external_url);
        post_json(&ctx, &self.url, &redact(&self.url), None, &[], body).await
    }
}
