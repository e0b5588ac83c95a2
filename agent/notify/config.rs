//! Placeholder: the alerts files (`alerts/*.yaml`): route, receivers, inhibit rules, threshold
//! rules (being written).

use serde::Deserialize;

/// Everything loaded from the alerts files, merged.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AlertingConfig {
    /// Threshold rules.
    pub rules: Vec<crate::alert::threshold::ThresholdRuleConfig>,
    /// Receivers.
    pub receivers: Vec<super::receivers::ReceiverConfig>,
}

/// One alerts file.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertingFile {
    /// Threshold rules.
    #[serde(default)]
    pub rules: Vec<crate::alert::threshold::ThresholdRuleConfig>,
    /// Receivers.
    #[serde(default)]
    pub receivers: Vec<super::receivers::ReceiverConfig>,
}

/// Loads the alerts files matched by `globs` (relative to `base_dir`); every problem of every
/// file at once.
pub fn load(
    _globs: &[String],
    _base_dir: &std::path::Path,
    _config_name: &str,
) -> Result<AlertingConfig, Vec<crate::config::Problems>> {
    Ok(AlertingConfig::default())
}
