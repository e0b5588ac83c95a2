//! Placeholder: the alert engine (being written).

use super::Alert;
use crate::slo::engine::SloStatus;
use crate::store::series::SeriesStore;

/// Evaluates every alert rule once per SLO round.
#[derive(Debug, Default)]
pub struct AlertEngine {}

impl AlertEngine {
    /// One evaluation at `now_ms`: the pending, firing and just-resolved alerts.
    pub fn evaluate(
        &mut self,
        _now_ms: i64,
        _slos: &[SloStatus],
        _store: &SeriesStore,
    ) -> Vec<Alert> {
        Vec::new()
    }
}
