//! Alerts: multi-window multi-burn-rate alerts generated from every SLO, budget-exhausted and
//! no-data alerts, and plain threshold rules from `alerts/*.yaml`; each with a Prometheus-style
//! state machine (inactive -> pending -> firing -> resolved, `for`, `keep_firing_for`).
//!
//! [`engine::AlertEngine`] runs after every SLO evaluation round and hands the active and
//! just-resolved [`Alert`]s to the notification dispatcher (`crate::notify`). Called by the daemon.

pub mod engine;
pub mod state;
pub mod template;
pub mod threshold;

use std::collections::BTreeMap;

/// State of an alert, as Prometheus names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertState {
    /// The condition holds, but not yet for `for`.
    Pending,
    /// The condition held for `for` (or still within `keep_firing_for`).
    Firing,
    /// It was firing and is not any more.
    Resolved,
}

/// One alert instance (one label set), as handed to the dispatcher every round.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Alert {
    /// Identifying labels, `alertname` included (and `severity`, `slo`, `service`, ... for SLO
    /// alerts).
    pub labels: BTreeMap<String, String>,
    /// Annotations (`summary`, `description`, `runbook_url`, ...), already templated.
    pub annotations: BTreeMap<String, String>,
    /// Current state.
    pub state: AlertState,
    /// When the condition started to hold (ms since the epoch).
    pub active_at_ms: i64,
    /// When it started firing (`startsAt`); None while pending.
    pub fired_at_ms: Option<i64>,
    /// When it resolved (`endsAt`); None while pending or firing.
    pub resolved_at_ms: Option<i64>,
    /// The value that made it fire (burn rate, gauge value, ...).
    pub value: f64,
    /// Why it does not notify although firing (e.g. "a more severe tier of the same SLO is
    /// firing"); None when it notifies normally.
    pub inhibited_by: Option<String>,
    /// Link back to the source (the SLO page or the API).
    pub generator_url: String,
}

impl Alert {
    /// Alertmanager's fingerprint of the label set (FNV-1a 64 over sorted name/value pairs
    /// separated by 0xff), as 16 hex digits.
    pub fn fingerprint(&self) -> String {
        format!("{:016x}", fingerprint(&self.labels))
    }
}

/// FNV-1a 64 of a label set in Alertmanager's way (`model.LabelSet.Fingerprint`).
pub fn fingerprint(labels: &BTreeMap<String, String>) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut h = OFFSET;
    let mut add = |bytes: &[u8]| {
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(PRIME);
        }
    };
    for (k, v) in labels {
        add(k.as_bytes());
        add(&[0xff]);
        add(v.as_bytes());
        add(&[0xff]);
    }
    h
}
