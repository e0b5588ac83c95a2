//! `webhook_configs`: POSTs Alertmanager's webhook payload, version "4", byte for byte as
//! Alertmanager's Go code emits it (struct field order, sorted label maps, Go's HTML-safe string
//! escaping, RFC 3339 times, `0001-01-01T00:00:00Z` as `endsAt` while firing, a trailing
//! newline), so existing webhook consumers work unchanged. Every request carries an
//! `Idempotency-Key` header that is stable across retries and restarts.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::{
    GO_ZERO_TIME, SendContext, SendError, alert_status, check_http_url, check_secret, common,
    go_time, origin, post_json, redact, secret_at_send, starts_ms,
};
use crate::alert::AlertState;
use crate::config::Problem;
use crate::notify::Notification;

/// One `webhook_configs[]` entry.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// The URL to POST to. Use `url_env` or `url_file` instead when the URL holds a secret.
    #[serde(default)]
    pub url: Option<String>,
    /// Environment variable holding the URL.
    #[serde(default)]
    pub url_env: Option<String>,
    /// File holding the URL (relative to the alerts file).
    #[serde(default)]
    pub url_file: Option<PathBuf>,
    /// Environment variable holding a bearer token (`Authorization: Bearer ...`).
    #[serde(default)]
    pub credentials_env: Option<String>,
    /// File holding a bearer token.
    #[serde(default)]
    pub credentials_file: Option<PathBuf>,
    /// Most alerts in one payload (0: all); the rest are counted in `truncatedAlerts`.
    #[serde(default)]
    pub max_alerts: u64,
    /// Whether resolved alerts are sent. Default true (as in Alertmanager).
    #[serde(default = "yes")]
    pub send_resolved: bool,
    /// Longest one attempt may take; default: the receiver's `timeout`.
    #[serde(default, deserialize_with = "super::de_opt_duration")]
    pub timeout: Option<Duration>,
}

fn yes() -> bool {
    true
}

impl WebhookConfig {
    /// Semantic checks; `path` is e.g. `receivers[0].webhook_configs[1]`.
    pub fn validate(&self, path: &str, base_dir: &Path, out: &mut Vec<Problem>) {
        let set = usize::from(self.url.is_some())
            + usize::from(self.url_env.is_some())
            + usize::from(self.url_file.is_some());
        if set != 1 {
            out.push(Problem {
                path: format!("{path}.url"),
                message: "set exactly one of url, url_env or url_file".into(),
                location: None,
            });
        } else if let Some(u) = &self.url {
            check_http_url(u, &format!("{path}.url"), out);
        } else if let Some(u) = check_secret(
            path,
            "url",
            self.url_env.as_deref(),
            self.url_file.as_deref(),
            base_dir,
            true,
            out,
        ) {
            let key = if self.url_env.is_some() {
                "url_env"
            } else {
                "url_file"
            };
            check_http_url(u.expose(), &format!("{path}.{key}"), out);
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

    /// One attempt.
    pub async fn send(&self, ctx: &SendContext<'_>, n: &Notification) -> Result<(), SendError> {
        // A URL from env/file is a secret as a whole: only its origin is shown.
        let (url, shown) = match &self.url {
            Some(u) => (u.clone(), redact(u)),
            None => {
                let u = secret_at_send("url", self.url_env.as_deref(), self.url_file.as_deref())?
                    .map(|s| s.expose().to_string())
                    .ok_or_else(|| SendError::permanent("webhook has no url; set url"))?;
                let shown = origin(&u);
                (u, shown)
            }
        };
        let token = secret_at_send(
            "credentials",
            self.credentials_env.as_deref(),
            self.credentials_file.as_deref(),
        )?;
        let body = payload(n, ctx.external_url, self.max_alerts);
        let ctx = SendContext {
            timeout: self.timeout.unwrap_or(ctx.timeout),
            ..ctx.clone()
        };
        post_json(
            &ctx,
            &url,
            &shown,
            token.as_ref(),
            &[("Idempotency-Key", ctx.delivery_key)],
            body,
        )
        .await
    }
}

/// The version-4 payload of `n`, as Alertmanager's `json.Encoder` writes it (with its trailing
/// newline).
pub fn payload(n: &Notification, external_url: &str, max_alerts: u64) -> String {
    let total = n.alerts.len();
    let keep = if max_alerts > 0 {
        total.min(usize::try_from(max_alerts).unwrap_or(usize::MAX))
    } else {
        total
    };
    let alerts = &n.alerts[..keep];
    let status = if alerts.iter().any(|a| a.state == AlertState::Firing) {
        "firing"
    } else {
        "resolved"
    };
    let mut o = String::with_capacity(512 + 512 * alerts.len());
    o.push_str("{\"receiver\":");
    go_str(&mut o, &n.receiver);
    o.push_str(",\"status\":");
    go_str(&mut o, status);
    o.push_str(",\"alerts\":[");
    for (i, a) in alerts.iter().enumerate() {
        if i > 0 {
            o.push(',');
        }
        o.push_str("{\"status\":");
        go_str(&mut o, alert_status(a));
        o.push_str(",\"labels\":");
        go_map(&mut o, &a.labels);
        o.push_str(",\"annotations\":");
        go_map(&mut o, &a.annotations);
        o.push_str(",\"startsAt\":");
        go_str(&mut o, &go_time(starts_ms(a)));
        o.push_str(",\"endsAt\":");
        let ends = match (a.state, a.resolved_at_ms) {
            (AlertState::Resolved, Some(ms)) => go_time(ms),
            _ => GO_ZERO_TIME.to_string(),
        };
        go_str(&mut o, &ends);
        o.push_str(",\"generatorURL\":");
        go_str(&mut o, &a.generator_url);
        o.push_str(",\"fingerprint\":");
        go_str(&mut o, &a.fingerprint());
        o.push('}');
    }
    o.push_str("],\"groupLabels\":");
    go_map(&mut o, &n.group_labels);
    o.push_str(",\"commonLabels\":");
    go_map(&mut o, &common(alerts, |a| &a.labels));
    o.push_str(",\"commonAnnotations\":");
    go_map(&mut o, &common(alerts, |a| &a.annotations));
    o.push_str(",\"externalURL\":");
    go_str(&mut o, external_url);
    o.push_str(",\"version\":\"4\",\"groupKey\":");
    go_str(&mut o, &n.group_key);
    o.push_str(",\"truncatedAlerts\":");
    o.push_str(&(total - keep).to_string());
    o.push_str("}\n");
    o
}

/// A `map[string]string` as Go's encoder writes it: keys sorted.
fn go_map(o: &mut String, m: &BTreeMap<String, String>) {
    o.push('{');
    for (i, (k, v)) in m.iter().enumerate() {
        if i > 0 {
            o.push(',');
        }
        go_str(o, k);
        o.push(':');
        go_str(o, v);
    }
    o.push('}');
}

/// A string as Go's `encoding/json` writes it with HTML escaping on (the default of
/// `json.Marshal` and `json.NewEncoder`): `<`, `>`, `&`, U+2028 and U+2029 as `\u` escapes.
pub fn go_str(o: &mut String, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    o.push('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            '\r' => o.push_str("\\r"),
            '\t' => o.push_str("\\t"),
            '\u{8}' => o.push_str("\\b"),
            '\u{c}' => o.push_str("\\f"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' | '\u{0}'..='\u{1f}' => {
                let v = c as u32;
                o.push_str("\\u");
                for shift in [12, 8, 4, 0] {
                    o.push(char::from(HEX[((v >> shift) & 0xf) as usize]));
                }
            }
            c => o.push(c),
        }
    }
    o.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_escaping() {
        let mut o = String::new();
        go_str(&mut o, "a<b>&\"\\\n\u{1}\u{2028}é");
        assert_eq!(o, r#""a\u003cb\u003e\u0026\"\\\n\u0001\u2028é""#);
    }
}
