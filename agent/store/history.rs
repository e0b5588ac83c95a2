//! Reads of the ledger's SLO history for charts (error-budget burn-down, burn rates over time,
//! completed calendar periods). The queries sum the bucket rows of every group and every agent
//! of one SLO (a shared ledger holds partial buckets per agent); the series maths is pure and
//! unit-tested here. Called by the status page's history endpoint
//! (`GET /api/v1/slos/{service}/{name}/history`).

use sqlx::Row;

use super::ledger::{Ledger, LedgerError};

/// One bucket summed over groups and agents: (start index, bad, total).
pub type Bucket = (i64, f64, f64);

/// A point of a chart series: (time in ms since the epoch, value).
pub type Point = (i64, f64);

/// Minute resolution of the bucket rows, seconds.
pub const MINUTE_S: i64 = 60;
/// Hour resolution of the bucket rows, seconds.
pub const HOUR_S: i64 = 3600;

/// Buckets of `slo` at `resolution_s` (60 or 3600) with start index in `[from_idx, to_idx]`,
/// summed over groups and agents, oldest first.
pub async fn buckets(
    ledger: &Ledger,
    slo: &str,
    resolution_s: i64,
    from_idx: i64,
    to_idx: i64,
) -> Result<Vec<Bucket>, LedgerError> {
    let rows = sqlx::query(
        "SELECT start_idx, SUM(bad), SUM(total) FROM slo_buckets \
         WHERE slo = $1 AND resolution_s = $2 AND start_idx >= $3 AND start_idx <= $4 \
         GROUP BY start_idx ORDER BY start_idx",
    )
    .bind(slo)
    .bind(resolution_s)
    .bind(from_idx)
    .bind(to_idx)
    .fetch_all(ledger.pool())
    .await
    .map_err(|source| LedgerError::Query {
        what: "read SLO history",
        source,
    })?;
    rows.iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
        .collect::<Result<_, sqlx::Error>>()
        .map_err(|source| LedgerError::Query {
            what: "decode SLO history",
            source,
        })
}

/// The error-budget burn-down over the buckets of the current window: at the end of each
/// bucket, the share of the window's budget still unspent, where the budget is
/// `(1 - objective) x all events of the window so far`. The last point therefore equals the
/// budget remaining the engine reports, and the line never rises (budget spent stays spent).
/// A leading point at the start of the first bucket shows the untouched budget (1).
pub fn burn_down(buckets: &[Bucket], unit_ms: i64, objective: f64) -> Vec<Point> {
    let total: f64 = buckets.iter().map(|b| b.2).sum();
    let allowed = (1.0 - objective) * total;
    let Some(first) = buckets.first() else {
        return Vec::new();
    };
    let mut out = Vec::with_capacity(buckets.len() + 1);
    out.push((first.0 * unit_ms, 1.0));
    let mut bad = 0.0;
    for &(idx, b, _) in buckets {
        bad += b;
        let remaining = if allowed > 0.0 {
            1.0 - bad / allowed
        } else if bad > 0.0 {
            f64::NEG_INFINITY
        } else {
            1.0
        };
        out.push(((idx + 1) * unit_ms, remaining));
    }
    out
}

/// The burn rate over a trailing window of `window` minute buckets, at the end of each minute
/// from `from_idx` to `to_idx`: (bad / total) / (1 - objective) over the minutes
/// `(t - window, t]`, 0 without traffic (as the engine reports it).
pub fn burn_rate(
    minutes: &[Bucket],
    window: i64,
    from_idx: i64,
    to_idx: i64,
    objective: f64,
) -> Vec<Point> {
    let budget = 1.0 - objective;
    let mut out = Vec::new();
    if to_idx < from_idx || budget <= 0.0 {
        return out;
    }
    let mut bad = 0.0;
    let mut total = 0.0;
    // Two cursors over the sorted rows: `head` adds minutes entering the window, `tail` removes
    // the ones leaving it.
    let (mut head, mut tail) = (0usize, 0usize);
    for t in from_idx..=to_idx {
        while head < minutes.len() && minutes[head].0 <= t {
            bad += minutes[head].1;
            total += minutes[head].2;
            head += 1;
        }
        while tail < head && minutes[tail].0 <= t - window {
            bad -= minutes[tail].1;
            total -= minutes[tail].2;
            tail += 1;
        }
        let rate = if total > 0.0 {
            (bad / total).max(0.0) / budget
        } else {
            0.0
        };
        out.push(((t + 1) * MINUTE_S * 1000, rate));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burn_down_ends_at_the_budget_remaining_and_never_rises() {
        // 99% objective; 1,000 events, 5 bad: half the budget spent.
        let rows = [(10, 0.0, 400.0), (11, 5.0, 300.0), (12, 0.0, 300.0)];
        let pts = burn_down(&rows, 60_000, 0.99);
        assert_eq!(pts.len(), 4);
        assert_eq!(pts[0], (600_000, 1.0));
        assert_eq!(pts[1], (660_000, 1.0));
        assert!((pts[2].1 - 0.5).abs() < 1e-9, "{pts:?}");
        assert!((pts[3].1 - 0.5).abs() < 1e-9, "{pts:?}");
        assert_eq!(pts[3].0, 13 * 60_000);
        assert!(pts.windows(2).all(|w| w[1].1 <= w[0].1));
    }

    #[test]
    fn burn_down_without_traffic_is_untouched_and_empty_without_rows() {
        assert!(burn_down(&[], 60_000, 0.99).is_empty());
        let pts = burn_down(&[(1, 0.0, 0.0)], 3_600_000, 0.99);
        assert_eq!(pts, vec![(3_600_000, 1.0), (7_200_000, 1.0)]);
        // Errors without any allowance: spent beyond measure.
        let pts = burn_down(&[(1, 1.0, 0.0)], 60_000, 0.99);
        assert_eq!(pts[1].1, f64::NEG_INFINITY);
    }

    #[test]
    fn burn_rate_is_a_trailing_window_sum() {
        // 99.5% objective; minute 0 has 1% errors, minutes 1..=2 have 2%, none after; a 2-minute
        // window at minute t covers minutes t-1 and t.
        let rows = [(0, 1.0, 100.0), (1, 2.0, 100.0), (2, 2.0, 100.0)];
        let pts = burn_rate(&rows, 2, 0, 4, 0.995);
        let rates: Vec<f64> = pts.iter().map(|p| p.1).collect();
        let want = [2.0, 3.0, 4.0, 4.0, 0.0];
        for (got, want) in rates.iter().zip(want) {
            assert!((got - want).abs() < 1e-9, "{rates:?}");
        }
        assert_eq!(pts[0].0, 60_000);
        assert_eq!(pts[4].0, 5 * 60_000);
        assert!(burn_rate(&rows, 2, 5, 4, 0.995).is_empty());
    }

    #[tokio::test]
    async fn buckets_sum_groups_and_agents() {
        let dir = tempfile::tempdir().expect("tempdir");
        let l = Ledger::open_sqlite(dir.path()).await.expect("open");
        l.start_run("a", "test", 0).await.expect("run");
        l.start_run("b", "test", 0).await.expect("run");
        let rows_a = vec![
            ("s/x".to_string(), "[\"g1\"]".to_string(), 60, 5, 1.0, 10.0),
            ("s/x".to_string(), "[\"g2\"]".to_string(), 60, 5, 2.0, 20.0),
            ("s/x".to_string(), "[\"g1\"]".to_string(), 60, 6, 0.0, 5.0),
            (
                "s/x".to_string(),
                "[\"g1\"]".to_string(),
                3600,
                0,
                3.0,
                35.0,
            ),
            ("s/y".to_string(), "[]".to_string(), 60, 5, 9.0, 9.0),
        ];
        l.write_round("a", &rows_a, &[], (0, 1))
            .await
            .expect("write");
        let rows_b = vec![("s/x".to_string(), "[\"g1\"]".to_string(), 60, 5, 1.0, 1.0)];
        l.write_round("b", &rows_b, &[], (0, 1))
            .await
            .expect("write");
        let got = buckets(&l, "s/x", MINUTE_S, 0, 100).await.expect("read");
        assert_eq!(got, vec![(5, 4.0, 31.0), (6, 0.0, 5.0)]);
        let got = buckets(&l, "s/x", MINUTE_S, 6, 6).await.expect("read");
        assert_eq!(got, vec![(6, 0.0, 5.0)]);
        let got = buckets(&l, "s/x", HOUR_S, 0, 100).await.expect("read");
        assert_eq!(got, vec![(0, 3.0, 35.0)]);
    }
}
