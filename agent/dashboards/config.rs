//! `grafana:` in vigil.yaml: where and how to push the generated dashboards through Grafana's
//! HTTP API. Loaded and validated by the config loader (`crate::config`); used by
//! [`super::cli_push`] and [`super::GrafanaSync`].

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::config::Problem;
use crate::config::secret::{self, Secret};

/// `grafana:` section (absent: no API sync).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrafanaConfig {
    /// Grafana's base URL, e.g. `http://grafana:3000` (a sub-path such as
    /// `https://example.com/grafana` is kept).
    pub url: String,
    /// Environment variable holding a service-account token (`glsa_...`) with the Editor role
    /// (or `dashboards:write` + `folders:create`).
    #[serde(default)]
    pub token_env: Option<String>,
    /// File holding the service-account token (one trailing newline is ignored).
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// Uid of the folder the dashboards go to; created when missing.
    #[serde(default = "default_folder_uid")]
    pub folder_uid: String,
    /// Title of that folder when Vigil creates it.
    #[serde(default = "default_folder")]
    pub folder: String,
    /// Push automatically at start and after each successful reload (`vigil run`). `false`
    /// leaves pushing to `vigil dashboards push`.
    #[serde(default = "default_true")]
    pub sync: bool,
    /// Timeout of one HTTP request to Grafana.
    #[serde(
        default = "default_timeout",
        deserialize_with = "crate::config::duration"
    )]
    pub timeout: Duration,
    /// Longest wait between two attempts of a failed sync (the wait doubles from 1s).
    #[serde(
        default = "default_max_backoff",
        deserialize_with = "crate::config::duration"
    )]
    pub max_backoff: Duration,
}

fn default_folder_uid() -> String {
    "vigil".into()
}
fn default_folder() -> String {
    "Vigil".into()
}
fn default_true() -> bool {
    true
}
fn default_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_max_backoff() -> Duration {
    Duration::from_secs(300)
}

/// Grafana's rule for uids: at most 40 characters of `[A-Za-z0-9_-]`.
pub fn check_uid(uid: &str) -> Result<(), String> {
    if uid.is_empty() {
        return Err("is empty".into());
    }
    if uid.len() > 40 {
        return Err(format!(
            "{uid:?} is {} characters long; Grafana allows 40",
            uid.len()
        ));
    }
    if let Some(c) = uid
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
    {
        return Err(format!(
            "{uid:?} contains {c:?}; Grafana uids are letters, digits, '-' and '_'"
        ));
    }
    Ok(())
}

impl GrafanaConfig {
    /// Problems with this block, paths under `grafana`.
    pub fn validate(&self, base_dir: &Path, out: &mut Vec<Problem>) {
        let block = "grafana";
        match reqwest::Url::parse(&self.url) {
            Ok(u) if u.scheme() == "http" || u.scheme() == "https" => {
                if !u.username().is_empty() || u.password().is_some() {
                    out.push(Problem::at(
                        block,
                        "url",
                        "must not carry a user or password; use token_env or token_file",
                    ));
                }
            }
            Ok(u) => out.push(Problem::at(
                block,
                "url",
                format!(
                    "scheme {:?} is not supported; use http:// or https://",
                    u.scheme()
                ),
            )),
            Err(e) => out.push(Problem::at(
                block,
                "url",
                format!(
                    "{:?} is not a URL ({e}); write it like http://grafana:3000",
                    self.url
                ),
            )),
        }
        match secret::resolve(
            "token",
            self.token_env.as_deref(),
            self.token_file.as_deref(),
            base_dir,
        ) {
            Ok(Some(_)) => {}
            Ok(None) => out.push(Problem::at(
                block,
                "token_env",
                "a service-account token is required; set token_env or token_file",
            )),
            Err(e) => {
                let key = if self.token_file.is_some() && self.token_env.is_none() {
                    "token_file"
                } else {
                    "token_env"
                };
                out.push(Problem::at(block, key, e));
            }
        }
        if let Err(e) = check_uid(&self.folder_uid) {
            out.push(Problem::at(block, "folder_uid", e));
        }
        if self.folder.trim().is_empty() {
            out.push(Problem::at(block, "folder", "is empty; e.g. Vigil"));
        }
        if self.timeout.is_zero() {
            out.push(Problem::at(
                block,
                "timeout",
                "must be more than 0s; e.g. 10s",
            ));
        }
        if self.max_backoff < Duration::from_secs(1) {
            out.push(Problem::at(
                block,
                "max_backoff",
                "must be at least 1s; e.g. 5m",
            ));
        }
    }

    /// Makes relative file paths relative to the config file's directory.
    pub fn resolve_paths(&mut self, base_dir: &Path) {
        if let Some(f) = &mut self.token_file {
            if f.is_relative() {
                *f = base_dir.join(&*f);
            }
        }
    }

    /// Reads the token now (files are re-read at every push, so a rotated token is picked up).
    pub fn token(&self) -> Result<Secret, String> {
        match secret::resolve(
            "token",
            self.token_env.as_deref(),
            self.token_file.as_deref(),
            Path::new("."),
        ) {
            Ok(Some(s)) => Ok(s),
            Ok(None) => Err("grafana: set token_env or token_file".into()),
            Err(e) => Err(format!("grafana: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uid_rules() {
        assert!(check_uid("vigil-slo_overview-1").is_ok());
        assert!(check_uid("").is_err());
        assert!(check_uid(&"a".repeat(41)).is_err());
        assert!(check_uid(&"a".repeat(40)).is_ok());
        assert!(check_uid("a/b").expect_err("slash").contains("'/'"));
    }
}
