//! `alertmanager_configs`: pushes the alerts to one or more real Alertmanagers with
//! `POST /api/v2/alerts`, as Prometheus does: firing alerts with `endsAt` 4 resend intervals in
//! the future (the outbox re-pushes them every resend interval while they fire, so Alertmanager
//! resolves them by itself if vigil stops), resolved alerts with `endsAt` = the resolve time.
//! For users who keep their Alertmanager for routing. A push is one attempt to every URL; it
//! succeeds when every Alertmanager accepted it (pushes are idempotent: the same labels are the
//! same alert).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde_json::json;

use super::{
    SendContext, SendError, check_http_url, check_secret, go_time, post_json, redact,
    secret_at_send, starts_ms,
};
use crate::alert::AlertState;
use crate::config::Problem;
use crate::notify::Notification;

/// One `alertmanager_configs[]` entry.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertmanagerConfig {
    /// Base URLs of the Alertmanagers (`http://alertmanager:9093`); `/api/v2/alerts` is
    /// appended. Every one receives every alert (they do not share alerts among themselves).
    pub urls: Vec<String>,
    /// Environment variable holding a bearer token.
    #[serde(default)]
    pub credentials_env: Option<String>,
    /// File holding a bearer token.
    #[serde(default)]
    pub credentials_file: Option<PathBuf>,
    /// Longest one attempt may take; default: the receiver's `timeout`.
    #[serde(default, deserialize_with = "super::de_opt_duration")]
    pub timeout: Option<Duration>,
}

impl AlertmanagerConfig {
    /// Semantic checks.
    pub fn validate(&self, path: &str, base_dir: &Path, out: &mut Vec<Problem>) {
        if self.urls.is_empty() {
            out.push(Problem {
                path: format!("{path}.urls"),
                message: "needs at least one URL; e.g. [http://alertmanager:9093]".into(),
                location: None,
            });
        }
        for (i, u) in self.urls.iter().enumerate() {
            check_http_url(u, &format!("{path}.urls[{i}]"), out);
        }
        check_secret(
            path,
            "credentials",
            self.credentials_env.as_deref(),
            self.credentials_file.as_deref(),
            base_dir,
            false,
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

    /// The `POST /api/v2/alerts` body: firing alerts end `4 x resend_interval` after `now_ms`.
    pub fn body(n: &Notification, now_ms: i64, resend_interval: Duration) -> String {
        let ahead =
            i64::try_from(resend_interval.as_millis().saturating_mul(4)).unwrap_or(i64::MAX);
        let alerts: Vec<serde_json::Value> = n
            .alerts
            .iter()
            .filter(|a| a.state != AlertState::Pending)
            .map(|a| {
                let ends = match (a.state, a.resolved_at_ms) {
                    (AlertState::Resolved, Some(ms)) => ms,
                    _ => now_ms.saturating_add(ahead),
                };
                json!({
                    "labels": a.labels,
                    "annotations": a.annotations,
                    "startsAt": go_time(starts_ms(a)),
                    "endsAt": go_time(ends),
                    "generatorURL": a.generator_url,
                })
            })
            .collect();
        serde_json::Value::Array(alerts).to_string()
    }

    /// One push to every Alertmanager.
    pub async fn send(&self, ctx: &SendContext<'_>, n: &Notification) -> Result<(), SendError> {
        let token = secret_at_send(
            "credentials",
            self.credentials_env.as_deref(),
            self.credentials_file.as_deref(),
        )?;
        let ctx = SendContext {
            timeout: self.timeout.unwrap_or(ctx.timeout),
            ..ctx.clone()
        };
        let body = Self::body(n, ctx.now_ms, ctx.resend_interval);
        let mut errors: Vec<SendError> = Vec::new();
        for base in &self.urls {
            let url = format!("{}/api/v2/alerts", base.trim_end_matches('/'));
            let shown = redact(&url);
            if let Err(e) = post_json(&ctx, &url, &shown, token.as_ref(), &[], body.clone()).await {
                errors.push(e);
            }
        }
        if errors.is_empty() {
            return Ok(());
        }
        let retryable = errors.iter().any(|e| e.retryable);
        let message = errors
            .into_iter()
            .map(|e| e.message)
            .collect::<Vec<_>>()
            .join("; ");
        Err(SendError { retryable, message })
    }
}
