//! Placeholder: routing, grouping, inhibition and silences (being written).

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::Notification;
use super::config::AlertingConfig;
use crate::alert::Alert;
use crate::store::ledger::Ledger;

/// Routes alerts into groups and emits notifications when groups are due. Cheap to clone.
#[derive(Clone)]
pub struct Dispatcher {}

impl Dispatcher {
    /// A dispatcher for `config`, emitting on `out`; silences live in `ledger`.
    pub async fn new(
        _config: Arc<AlertingConfig>,
        _ledger: Ledger,
        _out: mpsc::Sender<Notification>,
    ) -> Self {
        Self {}
    }

    /// The alerts of this round (all pending, firing and just-resolved ones).
    pub fn update(&self, _alerts: Vec<Alert>, _now_ms: i64) {}

    /// A new configuration (reload).
    pub fn apply_config(&self, _config: Arc<AlertingConfig>) {}

    /// Runs the group timers until `cancel`.
    pub async fn run(self, cancel: CancellationToken) {
        cancel.cancelled().await;
    }
}
