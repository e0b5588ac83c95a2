//! Pure error-budget maths (no I/O, no clocks), after the Google SRE workbook and Pyrra:
//! error ratio = bad / total; SLI = 1 - error ratio; burn rate = error ratio / (1 - objective);
//! budget remaining = 1 - bad / ((1 - objective) * total), which goes negative once the budget
//! is spent; time to exhaustion = remaining * window / burn rate.

/// Events in a window, in the budgeting's unit (requests, slices, ...).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Counts {
    /// Bad events (for ratio time slices: the sum of 1 - slice ratio).
    pub bad: f64,
    /// All events.
    pub total: f64,
}

impl Counts {
    /// Adds `other`.
    pub fn add(&mut self, other: Counts) {
        self.bad += other.bad;
        self.total += other.total;
    }

    /// Good events.
    pub fn good(&self) -> f64 {
        (self.total - self.bad).max(0.0)
    }

    /// bad / total; None when there were no events ("no traffic", not "all good").
    pub fn error_ratio(&self) -> Option<f64> {
        (self.total > 0.0).then(|| (self.bad / self.total).clamp(0.0, 1.0))
    }
}

/// Burn rate of a window: how many times faster than "exactly on budget" the budget is being
/// spent. 0 when there was no traffic.
pub fn burn_rate(c: Counts, objective: f64) -> f64 {
    let allowed = 1.0 - objective;
    match c.error_ratio() {
        Some(r) if allowed > 0.0 => r / allowed,
        _ => 0.0,
    }
}

/// Share of the error budget left over the SLO window: 1 = untouched, 0 = spent, negative =
/// overspent. No traffic leaves the budget untouched.
pub fn budget_remaining(c: Counts, objective: f64) -> f64 {
    let allowed = (1.0 - objective) * c.total;
    if c.total <= 0.0 || allowed <= 0.0 {
        return 1.0;
    }
    1.0 - c.bad / allowed
}

/// Seconds until the budget is spent if the current burn rate holds; 0 when already spent,
/// +Inf when nothing burns.
pub fn time_to_exhaustion(remaining: f64, burn: f64, window_seconds: f64) -> f64 {
    if remaining <= 0.0 {
        0.0
    } else if burn <= 0.0 {
        f64::INFINITY
    } else {
        remaining * window_seconds / burn
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed_cases() {
        // 99.9% objective, 1,000,000 requests, 500 errors: half the budget used.
        let c = Counts {
            bad: 500.0,
            total: 1_000_000.0,
        };
        assert!((c.error_ratio().expect("traffic") - 0.0005).abs() < 1e-15);
        assert!((burn_rate(c, 0.999) - 0.5).abs() < 1e-9);
        assert!((budget_remaining(c, 0.999) - 0.5).abs() < 1e-9);
        // At burn 0.5 over a 30d window, the remaining half lasts 30 days.
        let t = time_to_exhaustion(0.5, 0.5, 30.0 * 86400.0);
        assert!((t - 30.0 * 86400.0).abs() < 1e-6);
        // 2,000 errors: overspent by a factor 2 -> remaining -1, exhausted now.
        let c = Counts {
            bad: 2000.0,
            total: 1_000_000.0,
        };
        assert!((budget_remaining(c, 0.999) + 1.0).abs() < 1e-9);
        assert_eq!(time_to_exhaustion(-1.0, 2.0, 1.0), 0.0);
        // 14.4x burn: 1.44% errors against a 0.1% budget.
        assert!(
            (burn_rate(
                Counts {
                    bad: 144.0,
                    total: 10_000.0
                },
                0.999
            ) - 14.4)
                .abs()
                < 1e-9
        );
    }

    #[test]
    fn zero_over_zero_is_no_traffic() {
        let c = Counts::default();
        assert_eq!(c.error_ratio(), None);
        assert_eq!(burn_rate(c, 0.99), 0.0);
        assert_eq!(budget_remaining(c, 0.99), 1.0);
        assert_eq!(time_to_exhaustion(1.0, 0.0, 60.0), f64::INFINITY);
    }

    #[test]
    fn event_weighted_not_average_of_ratios() {
        // Two windows: 1 error in 10 requests, 0 in 990. The ratio is 1/1000, not (0.1 + 0)/2.
        let mut c = Counts {
            bad: 1.0,
            total: 10.0,
        };
        c.add(Counts {
            bad: 0.0,
            total: 990.0,
        });
        assert_eq!(c.error_ratio(), Some(0.001));
    }
}
