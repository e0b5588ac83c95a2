//! Notifications: the routing tree, grouping, inhibition and silences (`dispatch`, `route`,
//! `inhibit`, `silence`), the alerts files (`config`), and durable delivery through an outbox
//! in the ledger to the receivers (`outbox`, `receivers/`).
//!
//! Flow: the alert engine hands alerts to the [`dispatch::Dispatcher`] every round; when a
//! group is due it emits a [`Notification`] on a channel; the [`outbox::Outbox`] persists it in
//! the ledger before sending it, retries with backoff, and records the delivery history.

pub mod config;
pub mod dispatch;
pub mod inhibit;
pub mod matcher;
pub mod outbox;
pub mod receivers;
pub mod route;
pub mod silence;

use std::collections::BTreeMap;

use crate::alert::Alert;

/// One message for one receiver about one alert group, as Alertmanager would send it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Notification {
    /// Receiver name (from the route).
    pub receiver: String,
    /// The group key (route path and group labels), as Alertmanager's `groupKey`.
    pub group_key: String,
    /// The labels the group is grouped by.
    pub group_labels: BTreeMap<String, String>,
    /// The alerts of the group at flush time: firing and resolved.
    pub alerts: Vec<Alert>,
    /// Identifies this (group, state change): a notification is delivered at most once per key.
    pub idempotency_key: String,
    /// When the dispatcher emitted it (ms since the epoch).
    pub created_ms: i64,
}

impl Notification {
    /// `firing` when any alert fires, else `resolved`.
    pub fn status(&self) -> &'static str {
        if self
            .alerts
            .iter()
            .any(|a| a.state == crate::alert::AlertState::Firing)
        {
            "firing"
        } else {
            "resolved"
        }
    }
}
