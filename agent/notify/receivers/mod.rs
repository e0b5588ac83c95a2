//! Placeholder: receivers (email, webhook, slack, pagerduty, alertmanager) (being written).

use serde::Deserialize;

/// One `receivers[]` entry.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiverConfig {
    /// Name, referenced by routes.
    pub name: String,
}
