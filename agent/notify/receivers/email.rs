//! `email_configs`: a multipart (plain text + HTML) email over SMTP with lettre on tokio:
//! STARTTLS (default), implicit TLS or, as an explicit opt-in, no TLS; optional AUTH with the
//! password from `password_env` / `password_file`. Subject and bodies are templates (see
//! [`super::render`]); the defaults list every alert with its SLO labels, value (the burn rate
//! of SLO alerts), annotations (budget, runbook) and the link back to vigil. The Message-ID is
//! derived from the delivery key, so a re-send after a crash carries the same Message-ID.

use std::path::{Path, PathBuf};
use std::time::Duration;

use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde::{Deserialize, Deserializer};
use sha2::{Digest, Sha256};

use super::{
    SendContext, SendError, TemplateData, check_opt_template, check_secret, render, secret_at_send,
};
use crate::config::Problem;
use crate::notify::Notification;

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS, which the server must offer (port 587).
    #[default]
    Starttls,
    /// TLS from the first byte (SMTPS, port 465).
    Implicit,
    /// No TLS at all: mail and password travel in clear text. Only for a relay on localhost or
    /// a trusted network; must be chosen explicitly.
    None,
}

/// One `email_configs[]` entry.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailConfig {
    /// Recipients: a list, or one string with comma-separated addresses (Alertmanager's form).
    #[serde(deserialize_with = "de_addresses")]
    pub to: Vec<String>,
    /// Copy recipients.
    #[serde(default, deserialize_with = "de_addresses")]
    pub cc: Vec<String>,
    /// Sender address (`Vigil <vigil@example.com>`).
    pub from: String,
    /// SMTP server as `host:port`.
    pub smarthost: String,
    /// `starttls` (default), `implicit` or `none`.
    #[serde(default)]
    pub tls: SmtpTls,
    /// Accept any server certificate. For tests only.
    #[serde(default)]
    pub insecure_skip_verify: bool,
    /// Name sent in EHLO; default: this host's name.
    #[serde(default)]
    pub hello: Option<String>,
    /// SMTP AUTH user name (with `password_env` or `password_file`).
    #[serde(default)]
    pub username: Option<String>,
    /// Environment variable holding the SMTP password.
    #[serde(default)]
    pub password_env: Option<String>,
    /// File holding the SMTP password.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// Subject template; default
    /// `[{{ STATUS }}:{{ firing_count }}] {{ alertname }} ({{ group_labels }})`.
    #[serde(default)]
    pub subject: Option<String>,
    /// Plain-text body template; default `{{ alerts }}` plus a footer.
    #[serde(default)]
    pub text: Option<String>,
    /// HTML body template; default: `{{ alerts }}` as HTML tables. Values are HTML-escaped.
    #[serde(default)]
    pub html: Option<String>,
    /// Whether resolved alerts are mailed. Default false (as in Alertmanager).
    #[serde(default)]
    pub send_resolved: bool,
    /// Longest one attempt may take; default: the receiver's `timeout`.
    #[serde(default, deserialize_with = "super::de_opt_duration")]
    pub timeout: Option<Duration>,
}

/// Default subject.
pub const DEFAULT_SUBJECT: &str =
    "[{{ STATUS }}:{{ firing_count }}] {{ alertname }} ({{ group_labels }})";
/// Default plain-text body.
pub const DEFAULT_TEXT: &str = "{{ count }} alert(s) for {{ group_labels }}\n\n{{ alerts }}-- \nSent by vigil {{ external_url }}\n";
/// Default HTML body.
pub const DEFAULT_HTML: &str = "<!DOCTYPE html>\n<html><body>\n<p>{{ count }} alert(s) for {{ group_labels }}</p>\n{{ alerts }}<p style=\"color:#888\">Sent by vigil {{ external_url }}</p>\n</body></html>\n";

fn de_addresses<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => s
            .split(',')
            .map(|a| a.trim().to_string())
            .filter(|a| !a.is_empty())
            .collect(),
        OneOrMany::Many(v) => v,
    })
}

/// `host:port` split; the port must be given.
fn split_host(smarthost: &str) -> Option<(&str, u16)> {
    let (h, p) = smarthost.rsplit_once(':')?;
    let h = h.trim_start_matches('[').trim_end_matches(']');
    if h.is_empty() {
        return None;
    }
    Some((h, p.parse().ok()?))
}

impl EmailConfig {
    /// Semantic checks.
    pub fn validate(&self, path: &str, base_dir: &Path, out: &mut Vec<Problem>) {
        let mut bad = |key: String, message: String| out.push(Problem::at(path, &key, message));
        if self.to.is_empty() {
            bad("to".into(), "needs at least one address".into());
        }
        for (key, list) in [("to", &self.to), ("cc", &self.cc)] {
            for (i, a) in list.iter().enumerate() {
                if a.parse::<Mailbox>().is_err() {
                    bad(
                        format!("{key}[{i}]"),
                        format!("{a:?} is not an email address; e.g. oncall@example.com"),
                    );
                }
            }
        }
        if self.from.parse::<Mailbox>().is_err() {
            bad(
                "from".into(),
                format!(
                    "{:?} is not an email address; e.g. Vigil <vigil@example.com>",
                    self.from
                ),
            );
        }
        if split_host(&self.smarthost).is_none() {
            bad(
                "smarthost".into(),
                format!(
                    "{:?} is not host:port; e.g. smtp.example.com:587",
                    self.smarthost
                ),
            );
        }
        if self.timeout.is_some_and(|t| t.is_zero()) {
            bad("timeout".into(), "must be more than 0s; e.g. 10s".into());
        }
        let has_password = self.password_env.is_some() || self.password_file.is_some();
        if self.username.is_some() && !has_password {
            bad(
                "password_env".into(),
                "username needs password_env or password_file".into(),
            );
        }
        if has_password && self.username.is_none() {
            bad(
                "username".into(),
                "a password is set but no username; set username".into(),
            );
        }
        check_secret(
            path,
            "password",
            self.password_env.as_deref(),
            self.password_file.as_deref(),
            base_dir,
            false,
            out,
        );
        check_opt_template(self.subject.as_deref(), format!("{path}.subject"), out);
        check_opt_template(self.text.as_deref(), format!("{path}.text"), out);
        check_opt_template(self.html.as_deref(), format!("{path}.html"), out);
    }

    /// The message for `n`; `delivery_key` makes the Message-ID.
    pub fn message(
        &self,
        n: &Notification,
        external_url: &str,
        delivery_key: &str,
    ) -> Result<Message, SendError> {
        let d = TemplateData::new(n, external_url);
        let subject = render(
            self.subject.as_deref().unwrap_or(DEFAULT_SUBJECT),
            &d,
            false,
        )
        .replace(['\r', '\n'], " ");
        let text = render(self.text.as_deref().unwrap_or(DEFAULT_TEXT), &d, false);
        let html = render(self.html.as_deref().unwrap_or(DEFAULT_HTML), &d, true);
        let parse = |a: &str| {
            a.parse::<Mailbox>()
                .map_err(|e| SendError::permanent(format!("bad address {a:?}: {e}")))
        };
        let hash: String = Sha256::digest(delivery_key.as_bytes())
            .iter()
            .take(16)
            .map(|b| format!("{b:02x}"))
            .collect();
        let mut b = Message::builder()
            .from(parse(&self.from)?)
            .subject(subject)
            .message_id(Some(format!("<{hash}.vigil@{}>", self.domain())));
        for a in &self.to {
            b = b.to(parse(a)?);
        }
        for a in &self.cc {
            b = b.cc(parse(a)?);
        }
        b.multipart(MultiPart::alternative_plain_html(text, html))
            .map_err(|e| SendError::permanent(format!("cannot build the email: {e}")))
    }

    /// Domain part of `from`, for the Message-ID.
    fn domain(&self) -> String {
        self.from
            .parse::<Mailbox>()
            .map(|m| m.email.domain().to_string())
            .unwrap_or_else(|_| "localhost".into())
    }

    /// One attempt: connect, (STARTTLS,) (AUTH,) send, quit.
    pub async fn send(&self, ctx: &SendContext<'_>, n: &Notification) -> Result<(), SendError> {
        let (host, port) = split_host(&self.smarthost).ok_or_else(|| {
            SendError::permanent(format!("smarthost {:?} is not host:port", self.smarthost))
        })?;
        let tls = |host: &str| {
            TlsParameters::builder(host.to_string())
                .dangerous_accept_invalid_certs(self.insecure_skip_verify)
                .build()
                .map_err(|e| SendError::permanent(format!("smtp {host}:{port}: tls setup: {e}")))
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
            .port(port)
            .timeout(Some(self.timeout.unwrap_or(ctx.timeout)));
        builder = match self.tls {
            SmtpTls::Starttls => builder.tls(Tls::Required(tls(host)?)),
            SmtpTls::Implicit => builder.tls(Tls::Wrapper(tls(host)?)),
            SmtpTls::None => builder.tls(Tls::None),
        };
        if let Some(h) = &self.hello {
            builder = builder.hello_name(ClientId::Domain(h.clone()));
        }
        if let Some(user) = &self.username {
            let pw = secret_at_send(
                "password",
                self.password_env.as_deref(),
                self.password_file.as_deref(),
            )?
            .ok_or_else(|| SendError::permanent("username set but no password"))?;
            builder = builder.credentials(Credentials::new(user.clone(), pw.expose().to_string()));
        }
        let transport = builder.build();
        let message = self.message(n, ctx.external_url, ctx.delivery_key)?;
        let sent = tokio::time::timeout(
            self.timeout.unwrap_or(ctx.timeout) + Duration::from_secs(1),
            transport.send(message),
        )
        .await;
        match sent {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => {
                let msg = format!("smtp {host}:{port}: {e}");
                if e.is_permanent() {
                    Err(SendError::permanent(msg))
                } else {
                    Err(SendError::retry(msg))
                }
            }
            Err(_) => Err(SendError::retry(format!("smtp {host}:{port}: timed out"))),
        }
    }
}
