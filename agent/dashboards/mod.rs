//! Grafana dashboards generated from the SLOs and collectors (`vigil dashboards generate`), and
//! provisioned by files or through Grafana's HTTP API (`vigil dashboards push`, `grafana:` sync).
//! See docs/dashboards.md.
//!
//! SKELETON (issue #9): the lead wired [`cli_generate`], [`cli_push`] and [`GrafanaSync`] into
//! the CLI and the daemon; the implementation fills them in.

pub mod config;

use std::path::Path;

use tokio_util::sync::CancellationToken;

pub use config::GrafanaConfig;

use crate::config::Config;

/// One generated dashboard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dashboard {
    /// Path relative to the output directory (e.g. `slo/api-availability.json`).
    pub path: String,
    /// Stable uid.
    pub uid: String,
    /// The JSON text (deterministic, sorted keys, trailing newline).
    pub json: String,
}

/// Every dashboard for `config`, in a stable order.
pub fn generate(config: &Config) -> Vec<Dashboard> {
    let _ = config;
    Vec::new()
}

/// `vigil dashboards generate`: writes every dashboard under `out`; returns a summary line for
/// stdout, or an error message naming the file and what to do.
pub fn cli_generate(config: &Config, out: &Path) -> Result<String, String> {
    let _ = (config, out);
    Err("not implemented".into())
}

/// `vigil dashboards push`: pushes every dashboard to the Grafana of `grafana:`; returns a summary
/// for stdout or an error message.
pub async fn cli_push(config: &Config) -> Result<String, String> {
    let _ = config;
    Err("not implemented".into())
}

/// Background sync to Grafana when `grafana:` is configured: at start and after each reload;
/// retries with backoff; never blocks evaluation.
#[derive(Clone)]
pub struct GrafanaSync {}

impl GrafanaSync {
    /// Starts the sync task (None when `grafana:` is absent or sync is off).
    pub fn start(config: &Config, cancel: CancellationToken) -> Option<Self> {
        let _ = (config, cancel);
        None
    }

    /// Re-syncs after a reload.
    pub fn apply_config(&self, config: &Config) {
        let _ = config;
    }
}
