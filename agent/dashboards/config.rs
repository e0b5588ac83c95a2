//! `grafana:` in vigil.yaml: where and how to push the generated dashboards.
//!
//! SKELETON (issue #9).

use std::path::Path;

use serde::Deserialize;

use crate::config::Problem;

/// `grafana:` section (absent: no API sync).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrafanaConfig {
    /// Grafana's base URL, e.g. `http://grafana:3000`.
    pub url: String,
}

impl GrafanaConfig {
    /// Problems with this block, paths under `grafana`.
    pub fn validate(&self, base_dir: &Path, out: &mut Vec<Problem>) {
        let _ = (base_dir, out);
    }

    /// Makes relative file paths relative to the config file's directory.
    pub fn resolve_paths(&mut self, base_dir: &Path) {
        let _ = base_dir;
    }
}
