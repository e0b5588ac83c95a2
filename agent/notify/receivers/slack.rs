//! `slack_configs`: a message to a Slack incoming webhook (`text` plus one attachment with a
//! colour, a title linking back to vigil and the alert listing), in the shape Alertmanager's
//! Slack notifier sends. The webhook URL is a secret: `api_url_env` or `api_url_file`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{
    SendContext, SendError, TemplateData, check_http_url, check_opt_template, check_secret, origin,
    post_json, render, secret_at_send,
};
use crate::config::Problem;
use crate::notify::Notification;

/// One `slack_configs[]` entry.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackConfig {
    /// Environment variable holding the incoming-webhook URL
    /// (`https://hooks.slack.com/services/...`).
    #[serde(default)]
    pub api_url_env: Option<String>,
    /// File holding the incoming-webhook URL.
    #[serde(default)]
    pub api_url_file: Option<PathBuf>,
    /// Channel override (`#alerts`); default: the webhook's channel.
    #[serde(default)]
    pub channel: Option<String>,
    /// Sender name override.
    #[serde(default)]
    pub username: Option<String>,
    /// Sender icon (`:rotating_light:`).
    #[serde(default)]
    pub icon_emoji: Option<String>,
    /// Title template; default `[{{ STATUS }}:{{ firing_count }}] {{ alertname }}
    /// ({{ group_labels }})`. Placeholders as in email templates.
    #[serde(default)]
    pub title: Option<String>,
    /// Text template; default `{{ alerts }}` (the built-in listing).
    #[serde(default)]
    pub text: Option<String>,
    /// Whether resolved alerts are sent. Default false (as in Alertmanager).
    #[serde(default)]
    pub send_resolved: bool,
    /// Longest one attempt may take; default: the receiver's `timeout`.
    #[serde(default, deserialize_with = "super::de_opt_duration")]
    pub timeout: Option<Duration>,
}

/// Default Slack title.
pub const DEFAULT_TITLE: &str =
    "[{{ STATUS }}:{{ firing_count }}] {{ alertname }} ({{ group_labels }})";

impl SlackConfig {
    /// Semantic checks.
    pub fn validate(&self, path: &str, base_dir: &Path, out: &mut Vec<Problem>) {
        if let Some(u) = check_secret(
            path,
            "api_url",
            self.api_url_env.as_deref(),
            self.api_url_file.as_deref(),
            base_dir,
            true,
            out,
        ) {
            let key = if self.api_url_env.is_some() {
                "api_url_env"
            } else {
                "api_url_file"
            };
            check_http_url(u.expose(), &format!("{path}.{key}"), out);
        }
        check_opt_template(self.title.as_deref(), format!("{path}.title"), out);
        check_opt_template(self.text.as_deref(), format!("{path}.text"), out);
        if self.timeout.is_some_and(|t| t.is_zero()) {
            out.push(Problem {
                path: format!("{path}.timeout"),
                message: "must be more than 0s; e.g. 10s".into(),
                location: None,
            });
        }
    }

    /// The JSON body for `n`.
    pub fn body(&self, n: &Notification, external_url: &str) -> String {
        let d = TemplateData::new(n, external_url);
        let title = render(self.title.as_deref().unwrap_or(DEFAULT_TITLE), &d, false);
        let text = render(self.text.as_deref().unwrap_or("{{ alerts }}"), &d, false);
        let color = if n.status() == "firing" {
            "danger"
        } else {
            "good"
        };
        let title_link = n
            .alerts
            .first()
            .map(|a| a.generator_url.clone())
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| external_url.to_string());
        let mut m = Map::new();
        for (k, v) in [
            ("channel", &self.channel),
            ("username", &self.username),
            ("icon_emoji", &self.icon_emoji),
        ] {
            if let Some(v) = v {
                m.insert(k.into(), Value::String(v.clone()));
            }
        }
        m.insert("text".into(), Value::String(title.clone()));
        m.insert(
            "attachments".into(),
            json!([{
                "color": color,
                "title": title,
                "title_link": title_link,
                "text": text,
                "fallback": title,
                "mrkdwn_in": ["fallback", "pretext", "text"],
            }]),
        );
        Value::Object(m).to_string()
    }

    /// One attempt.
    pub async fn send(&self, ctx: &SendContext<'_>, n: &Notification) -> Result<(), SendError> {
        let url = secret_at_send(
            "api_url",
            self.api_url_env.as_deref(),
            self.api_url_file.as_deref(),
        )?
        .ok_or_else(|| SendError::permanent("slack has no api_url; set api_url_env"))?;
        let ctx = SendContext {
            timeout: self.timeout.unwrap_or(ctx.timeout),
            ..ctx.clone()
        };
        let body = self.body(n, ctx.external_url);
        post_json(&ctx, url.expose(), &origin(url.expose()), None, &[], body).await
    }
}
