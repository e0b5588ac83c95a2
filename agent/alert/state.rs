//! The per-rule alert state machine, with Prometheus' semantics (`rules/alerting.go`):
//!
//! - a label set whose condition holds and that is not active becomes **pending** with
//!   `active_at` = now; it becomes **firing** at the first evaluation where
//!   `now - active_at >= for` (with `for: 0` in the same evaluation);
//! - while the condition holds, the value and annotations follow the latest evaluation;
//! - when the condition stops: a pending alert is dropped; a firing alert with
//!   `keep_firing_for` stays firing until `now - keep_firing_since >= keep_firing_for`
//!   (`keep_firing_since` = the first evaluation without the condition; the condition coming back
//!   clears it); then it becomes **resolved** with `resolved_at` = now;
//! - a resolved alert is still reported for [`RESOLVED_RETENTION_MS`] (15 minutes, as
//!   Prometheus keeps sending it) so that receivers get the resolved notice, then dropped; if the
//!   condition comes back meanwhile it starts again as a new pending alert.
//!
//! Owned by [`super::AlertEngine`], one [`AlertSet`] per rule (or SLO tier).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use crate::alert::{Alert, AlertState, fingerprint};

/// How long resolved alerts are still reported (Prometheus' `resolvedRetention`).
pub const RESOLVED_RETENTION_MS: i64 = 15 * 60 * 1000;

/// An alert instance whose condition holds in this evaluation. Labels and annotations are
/// shared: the engine hands the same maps round after round while they do not change, and the
/// state machine copies them only into new alerts or when they changed.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// Labels (alertname included).
    pub labels: Arc<BTreeMap<String, String>>,
    /// Fingerprint of `labels`.
    pub fingerprint: u64,
    /// Annotations, rendered.
    pub annotations: Arc<BTreeMap<String, String>>,
    /// The value that made it active.
    pub value: f64,
    /// Link back to the source.
    pub generator_url: Arc<str>,
}

impl Candidate {
    /// A candidate from owned parts (computes the fingerprint).
    pub fn new(
        labels: BTreeMap<String, String>,
        annotations: BTreeMap<String, String>,
        value: f64,
        generator_url: &str,
    ) -> Self {
        Self {
            fingerprint: fingerprint(&labels),
            labels: Arc::new(labels),
            annotations: Arc::new(annotations),
            value,
            generator_url: generator_url.into(),
        }
    }
}

#[derive(Debug, Clone)]
struct Tracked {
    /// Shared with the engine's output of the last rounds; copied on write.
    alert: Arc<Alert>,
    /// The annotations map the alert's annotations were copied from (unchanged while the
    /// candidate hands the same one).
    annotations_from: Arc<BTreeMap<String, String>>,
    keep_firing_since: Option<i64>,
}

/// The active and recently resolved alerts of one rule.
#[derive(Debug, Clone, Default)]
pub struct AlertSet {
    active: HashMap<u64, Tracked>,
}

impl AlertSet {
    /// One evaluation at `now_ms` with the label sets whose condition holds.
    pub fn step(&mut self, now_ms: i64, present: Vec<Candidate>, for_ms: i64, keep_ms: i64) {
        let mut seen = HashSet::with_capacity(present.len());
        for c in present {
            let fp = c.fingerprint;
            seen.insert(fp);
            match self.active.get_mut(&fp) {
                Some(t) if t.alert.state != AlertState::Resolved => {
                    let same_annotations = Arc::ptr_eq(&t.annotations_from, &c.annotations)
                        || t.alert.annotations == *c.annotations;
                    let same = t.alert.value.to_bits() == c.value.to_bits()
                        && same_annotations
                        && *t.alert.generator_url == *c.generator_url;
                    if !same {
                        let a = Arc::make_mut(&mut t.alert);
                        a.value = c.value;
                        if !same_annotations {
                            a.annotations = (*c.annotations).clone();
                        }
                        if *a.generator_url != *c.generator_url {
                            a.generator_url = c.generator_url.to_string();
                        }
                    }
                    t.annotations_from = c.annotations;
                    t.keep_firing_since = None;
                }
                _ => {
                    self.active.insert(
                        fp,
                        Tracked {
                            alert: Arc::new(Alert {
                                labels: (*c.labels).clone(),
                                annotations: (*c.annotations).clone(),
                                state: AlertState::Pending,
                                active_at_ms: now_ms,
                                fired_at_ms: None,
                                resolved_at_ms: None,
                                value: c.value,
                                inhibited_by: None,
                                generator_url: c.generator_url.to_string(),
                            }),
                            annotations_from: c.annotations,
                            keep_firing_since: None,
                        },
                    );
                }
            }
        }
        self.active.retain(|fp, t| {
            if seen.contains(fp) {
                return true;
            }
            if keep_ms > 0 && t.alert.state == AlertState::Firing {
                let since = *t.keep_firing_since.get_or_insert(now_ms);
                if now_ms - since < keep_ms {
                    return true;
                }
            }
            match t.alert.state {
                AlertState::Pending => false,
                AlertState::Resolved => t
                    .alert
                    .resolved_at_ms
                    .is_some_and(|r| now_ms - r <= RESOLVED_RETENTION_MS),
                AlertState::Firing => {
                    let a = Arc::make_mut(&mut t.alert);
                    a.state = AlertState::Resolved;
                    a.resolved_at_ms = Some(now_ms);
                    t.keep_firing_since = None;
                    true
                }
            }
        });
        for t in self.active.values_mut() {
            if t.alert.state == AlertState::Pending && now_ms - t.alert.active_at_ms >= for_ms {
                let a = Arc::make_mut(&mut t.alert);
                a.state = AlertState::Firing;
                a.fired_at_ms = Some(now_ms);
            }
        }
    }

    /// The pending, firing and recently resolved alerts, ordered by labels (shared, not
    /// copied).
    pub fn shared_alerts(&self) -> Vec<Arc<Alert>> {
        let mut v: Vec<Arc<Alert>> = self.active.values().map(|t| t.alert.clone()).collect();
        if v.len() > 1 {
            v.sort_by(|a, b| a.labels.cmp(&b.labels));
        }
        v
    }

    /// The pending, firing and recently resolved alerts, ordered by labels.
    pub fn alerts(&self) -> Vec<Alert> {
        self.shared_alerts()
            .into_iter()
            .map(Arc::unwrap_or_clone)
            .collect()
    }

    /// Number of tracked alerts.
    pub fn len(&self) -> usize {
        self.active.len()
    }

    /// Whether nothing is tracked.
    pub fn is_empty(&self) -> bool {
        self.active.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: i64 = 60_000;

    fn cand(v: f64) -> Vec<Candidate> {
        vec![Candidate::new(
            [("alertname".to_string(), "X".to_string())].into(),
            [("summary".to_string(), format!("v={v}"))].into(),
            v,
            "/x",
        )]
    }

    fn state(s: &AlertSet) -> Option<(AlertState, i64, Option<i64>, Option<i64>)> {
        s.alerts()
            .first()
            .map(|a| (a.state, a.active_at_ms, a.fired_at_ms, a.resolved_at_ms))
    }

    #[test]
    fn for_holds_pending_then_fires() {
        let mut s = AlertSet::default();
        s.step(0, cand(1.0), 2 * M, 0);
        assert_eq!(state(&s), Some((AlertState::Pending, 0, None, None)));
        s.step(M, cand(2.0), 2 * M, 0);
        assert_eq!(state(&s), Some((AlertState::Pending, 0, None, None)));
        assert_eq!(
            s.alerts()[0].value,
            2.0,
            "value follows the latest evaluation"
        );
        assert_eq!(s.alerts()[0].annotations["summary"], "v=2");
        s.step(2 * M, cand(3.0), 2 * M, 0);
        assert_eq!(state(&s), Some((AlertState::Firing, 0, Some(2 * M), None)));
    }

    #[test]
    fn pending_that_stops_is_dropped_and_restarts_its_for() {
        let mut s = AlertSet::default();
        s.step(0, cand(1.0), 2 * M, 0);
        s.step(M, vec![], 2 * M, 0);
        assert!(s.is_empty(), "a pending alert is forgotten, never resolved");
        s.step(2 * M, cand(1.0), 2 * M, 0);
        s.step(3 * M, cand(1.0), 2 * M, 0);
        assert_eq!(state(&s), Some((AlertState::Pending, 2 * M, None, None)));
        s.step(4 * M, cand(1.0), 2 * M, 0);
        assert_eq!(state(&s).map(|x| x.0), Some(AlertState::Firing));
    }

    #[test]
    fn for_zero_fires_in_the_first_evaluation() {
        let mut s = AlertSet::default();
        s.step(5, cand(1.0), 0, 0);
        assert_eq!(state(&s), Some((AlertState::Firing, 5, Some(5), None)));
    }

    #[test]
    fn resolves_is_reported_for_15_minutes_then_dropped() {
        let mut s = AlertSet::default();
        s.step(0, cand(1.0), 0, 0);
        s.step(M, vec![], 0, 0);
        assert_eq!(state(&s), Some((AlertState::Resolved, 0, Some(0), Some(M))));
        s.step(M + RESOLVED_RETENTION_MS, vec![], 0, 0);
        assert_eq!(state(&s).map(|x| x.0), Some(AlertState::Resolved));
        s.step(2 * M + RESOLVED_RETENTION_MS, vec![], 0, 0);
        assert!(s.is_empty());
    }

    #[test]
    fn keep_firing_for_holds_then_resolves_and_refires_fresh() {
        let mut s = AlertSet::default();
        let keep = 3 * M;
        s.step(0, cand(1.0), M, keep);
        s.step(M, cand(1.0), M, keep);
        assert_eq!(state(&s), Some((AlertState::Firing, 0, Some(M), None)));
        // The condition stops at 2m: still firing at 2m, 3m, 4m (now - 2m < 3m).
        for t in [2, 3, 4] {
            s.step(t * M, vec![], M, keep);
            assert_eq!(state(&s).map(|x| x.0), Some(AlertState::Firing), "at {t}m");
        }
        // Back at 5m within keep_firing_for: the timer is cleared.
        s.step(5 * M, cand(1.0), M, keep);
        for t in [6, 7, 8] {
            s.step(t * M, vec![], M, keep);
            assert_eq!(state(&s).map(|x| x.0), Some(AlertState::Firing), "at {t}m");
        }
        s.step(9 * M, vec![], M, keep);
        assert_eq!(
            state(&s),
            Some((AlertState::Resolved, 0, Some(M), Some(9 * M)))
        );
        // The condition comes back: a new alert, pending again with a new active_at.
        s.step(10 * M, cand(1.0), M, keep);
        assert_eq!(state(&s), Some((AlertState::Pending, 10 * M, None, None)));
        s.step(11 * M, cand(1.0), M, keep);
        assert_eq!(
            state(&s),
            Some((AlertState::Firing, 10 * M, Some(11 * M), None))
        );
    }

    #[test]
    fn keep_firing_for_does_not_apply_to_pending() {
        let mut s = AlertSet::default();
        s.step(0, cand(1.0), 5 * M, 10 * M);
        s.step(M, vec![], 5 * M, 10 * M);
        assert!(s.is_empty());
    }
}
