//! `hpa:` in vigil.yaml: the external metrics API's listener, TLS, authentication and metrics.
//!
//! SKELETON (issue #8).

use std::path::Path;

use serde::Deserialize;

use crate::config::Problem;

/// `hpa:` section (absent: the API is off).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HpaConfig {
    /// `host:port` of the HTTPS listener.
    pub listen: String,
}

impl HpaConfig {
    /// Problems with this block, paths under `hpa`.
    pub fn validate(&self, base_dir: &Path, out: &mut Vec<Problem>) {
        let _ = (base_dir, out);
    }

    /// Makes relative file paths relative to the config file's directory.
    pub fn resolve_paths(&mut self, base_dir: &Path) {
        let _ = base_dir;
    }
}
