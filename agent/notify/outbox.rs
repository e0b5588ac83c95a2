//! Placeholder: durable delivery of notifications (being written).

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::Notification;
use super::config::AlertingConfig;
use crate::store::ledger::Ledger;

/// Persists notifications in the ledger and delivers them. Cheap to clone.
#[derive(Clone)]
pub struct Outbox {}

impl Outbox {
    /// An outbox over `ledger` for the receivers of `config`.
    pub async fn new(_config: Arc<AlertingConfig>, _ledger: Ledger) -> Self {
        Self {}
    }

    /// A new configuration (reload).
    pub fn apply_config(&self, _config: Arc<AlertingConfig>) {}

    /// Persists and delivers what arrives on `rx` (and what was pending at start) until
    /// `cancel`.
    pub async fn run(self, mut rx: mpsc::Receiver<Notification>, cancel: CancellationToken) {
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                n = rx.recv() => if n.is_none() { break },
            }
        }
    }
}
