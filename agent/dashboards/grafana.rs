//! Client of Grafana's HTTP API for provisioning: create the folder (`POST /api/folders`, 409 =
//! it exists) and create or overwrite each dashboard (`POST /api/dashboards/db` with
//! `overwrite`, `folderUid` and a message naming the Vigil version). Grafana's 400, 401, 403 and
//! 412 answers are explained in plain words. Authentication is a service-account token sent as
//! `Authorization: Bearer`; the token never appears in errors or logs. Used by
//! [`super::cli_push`] and the background sync.

use std::time::Duration;

use serde_json::{Value, json};

use super::Dashboard;
use super::config::GrafanaConfig;
use crate::config::secret::Secret;

/// A failed request to Grafana.
#[derive(Debug, thiserror::Error)]
pub enum GrafanaError {
    /// Grafana could not be reached or did not answer in time (retried).
    #[error("grafana {url}: {what}: {source}")]
    Transport {
        /// The request URL (no credentials).
        url: String,
        /// What was being done.
        what: String,
        /// The cause.
        #[source]
        source: reqwest::Error,
    },
    /// Grafana answered with an error status.
    #[error("grafana {url}: {what}: HTTP {status}: {explanation}")]
    Status {
        /// The request URL.
        url: String,
        /// What was being done.
        what: String,
        /// The HTTP status.
        status: u16,
        /// Grafana's `message` (and `status`) in plain words, with what to do.
        explanation: String,
    },
    /// The configuration cannot be used (token missing, bad URL).
    #[error("{0}")]
    Config(String),
}

impl GrafanaError {
    /// Whether retrying later may succeed (network errors, 429 and 5xx); 4xx answers need the
    /// operator.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Transport { .. } => true,
            Self::Status { status, .. } => *status == 429 || *status >= 500,
            Self::Config(_) => false,
        }
    }
}

/// What happened to the folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FolderOutcome {
    /// Created now.
    Created,
    /// It existed (409).
    Exists,
}

/// A dashboard Grafana accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pushed {
    /// Its uid.
    pub uid: String,
    /// The version Grafana stored.
    pub version: i64,
    /// Its URL path in Grafana (`/d/uid/slug`).
    pub url: String,
}

/// The API client.
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: Secret,
}

/// Explains a Grafana error answer (`{"message": "...", "status": "..."}`) in plain words.
pub fn explain(status: u16, body: &str) -> String {
    let parsed: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let message = parsed
        .get("message")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| body.chars().take(200).collect());
    let kind = parsed.get("status").and_then(Value::as_str).unwrap_or("");
    let lower = message.to_lowercase();
    match status {
        400 if lower.contains("provision") => format!(
            "{message:?}: this dashboard is provisioned from files in Grafana, and Grafana does not let the API overwrite a file-provisioned dashboard; either remove it from the file provider (docker/grafana/provisioning) or stop pushing (grafana.sync: false) and rely on the files"
        ),
        400 if lower.contains("uid") => format!(
            "{message:?}: Grafana refused the uid (at most 40 characters of letters, digits, '-' and '_'); check grafana.folder_uid"
        ),
        400 => format!("{message:?}: Grafana found the request invalid"),
        401 => format!(
            "{message:?}: the token was not accepted; check that grafana.token_env / token_file holds a valid, unexpired service-account token"
        ),
        403 => format!(
            "{message:?}: the service account may not do this; give it the Editor role (or dashboards:write and folders:create on the folder)"
        ),
        404 => format!(
            "{message:?}: not found; check grafana.url (including any sub-path) and that the folder exists"
        ),
        412 => match kind {
            "version-mismatch" => format!(
                "{message:?}: the dashboard was changed in Grafana since the version Vigil sent; Vigil pushes with overwrite, so a proxy or an old Grafana dropped the overwrite flag"
            ),
            "name-exists" => format!(
                "{message:?}: another dashboard in the folder has the same title under a different uid; delete or rename it in Grafana"
            ),
            "plugin-dashboard" => format!(
                "{message:?}: a plugin's dashboard has this uid or title; remove the plugin dashboard or change the folder"
            ),
            _ => format!("{message:?}: Grafana refused the update (precondition failed: {kind})"),
        },
        s if s >= 500 => format!("{message:?}: Grafana failed; retrying"),
        _ => format!("{message:?}"),
    }
}

impl Client {
    /// A client for `cfg`; reads the token now.
    pub fn new(cfg: &GrafanaConfig) -> Result<Self, GrafanaError> {
        let token = cfg.token().map_err(GrafanaError::Config)?;
        let http = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .connect_timeout(cfg.timeout.min(Duration::from_secs(5)))
            .user_agent(concat!("vigil/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| {
                GrafanaError::Config(format!("grafana: cannot build the HTTP client: {e}"))
            })?;
        Ok(Self {
            http,
            base: cfg.url.trim_end_matches('/').to_string(),
            token,
        })
    }

    async fn post(
        &self,
        path: &str,
        what: &str,
        body: &Value,
    ) -> Result<(u16, String), GrafanaError> {
        let url = format!("{}{path}", self.base);
        let resp = self
            .http
            .post(&url)
            .bearer_auth(self.token.expose())
            .header("Accept", "application/json")
            .json(body)
            .send()
            .await
            .map_err(|e| GrafanaError::Transport {
                url: url.clone(),
                what: what.to_string(),
                source: e.without_url(),
            })?;
        let status = resp.status().as_u16();
        let text = resp.text().await.map_err(|e| GrafanaError::Transport {
            url: url.clone(),
            what: what.to_string(),
            source: e.without_url(),
        })?;
        Ok((status, text))
    }

    /// Creates the folder; an existing one (409) is fine.
    pub async fn ensure_folder(
        &self,
        uid: &str,
        title: &str,
    ) -> Result<FolderOutcome, GrafanaError> {
        let what = format!("create folder {uid}");
        let (status, body) = self
            .post("/api/folders", &what, &json!({"uid": uid, "title": title}))
            .await?;
        match status {
            200..=299 => Ok(FolderOutcome::Created),
            409 => Ok(FolderOutcome::Exists),
            _ => Err(GrafanaError::Status {
                url: format!("{}/api/folders", self.base),
                what,
                status,
                explanation: explain(status, &body),
            }),
        }
    }

    /// Creates or overwrites one dashboard in `folder_uid`.
    pub async fn push(
        &self,
        dashboard: &Dashboard,
        folder_uid: &str,
        message: &str,
    ) -> Result<Pushed, GrafanaError> {
        let what = format!("push dashboard {} ({})", dashboard.uid, dashboard.path);
        let mut model: Value = serde_json::from_str(&dashboard.json)
            .map_err(|e| GrafanaError::Config(format!("{what}: generated JSON is invalid: {e}")))?;
        // Grafana matches by uid; a numeric id from another instance must not be sent.
        model["id"] = Value::Null;
        let body = json!({
            "dashboard": model,
            "folderUid": folder_uid,
            "message": message,
            "overwrite": true,
        });
        let (status, text) = self.post("/api/dashboards/db", &what, &body).await?;
        if !(200..=299).contains(&status) {
            return Err(GrafanaError::Status {
                url: format!("{}/api/dashboards/db", self.base),
                what,
                status,
                explanation: explain(status, &text),
            });
        }
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        Ok(Pushed {
            uid: v
                .get("uid")
                .and_then(Value::as_str)
                .unwrap_or(&dashboard.uid)
                .to_string(),
            version: v.get("version").and_then(Value::as_i64).unwrap_or(0),
            url: v
                .get("url")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
        })
    }

    /// The folder, then every dashboard; stops at the first error.
    pub async fn push_all(
        &self,
        cfg: &GrafanaConfig,
        dashboards: &[Dashboard],
        message: &str,
    ) -> Result<Vec<Pushed>, GrafanaError> {
        self.ensure_folder(&cfg.folder_uid, &cfg.folder).await?;
        let mut out = Vec::with_capacity(dashboards.len());
        for d in dashboards {
            out.push(self.push(d, &cfg.folder_uid, message).await?);
        }
        Ok(out)
    }
}

/// The commit message Grafana stores with each version.
pub fn message() -> String {
    format!(
        "Provisioned by Vigil {} (vigil dashboards)",
        env!("CARGO_PKG_VERSION")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explanations_say_what_to_do() {
        assert!(
            explain(400, r#"{"message":"Cannot save provisioned dashboard"}"#)
                .contains("file-provisioned")
        );
        assert!(explain(401, r#"{"message":"invalid API key"}"#).contains("token_env"));
        assert!(explain(403, r#"{"message":"Access denied"}"#).contains("Editor"));
        assert!(explain(412, r#"{"message":"x","status":"name-exists"}"#).contains("same title"));
        assert!(
            explain(412, r#"{"message":"x","status":"version-mismatch"}"#)
                .contains("changed in Grafana")
        );
        assert!(explain(502, "bad gateway").contains("retrying"));
    }
}
