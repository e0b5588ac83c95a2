//! Placeholder: threshold rules from `alerts/*.yaml` (being written).

use serde::Deserialize;

/// One `rules[]` entry of an alerts file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThresholdRuleConfig {
    /// `alertname`.
    pub alert: String,
}
