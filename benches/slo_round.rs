//! One evaluation round for 1,000 and 10,000 SLOs with 30-day windows, every SLO with full
//! buckets (30 days of hour buckets and 7 hours of minute buckets) and two counters that move
//! every round. Prints p50/p99/max round time over many rounds (time advancing 10 s per round,
//! so every sixth round crosses a minute and some cross an hour) and the bucket memory per SLO.
//!
//! Run: `cargo bench --bench slo_round` (target from the issue: p99 under 10 ms for 1,000 SLOs
//! on one core). Numbers go to docs/benchmarks.md.

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use vigil::slo::budget::Counts;
use vigil::slo::engine::Engine;
use vigil::slo::spec::parse_file;
use vigil::store::series::{LabelSet, Series, Snapshot};

const HOUR_MS: i64 = 3_600_000;
const MINUTE_MS: i64 = 60_000;

fn setup(n: usize, now: i64) -> (Engine, Vec<Arc<Series>>) {
    let mut yaml = String::from("service: bench\nslos:\n");
    for i in 0..n {
        yaml.push_str(&format!(
            "  - name: s{i}\n    objective: 99.9\n    window: 30d\n    sli: {{ratio: {{errors: 'req_total{{slo=\"{i}\",code=\"500\"}}', total: 'req_total{{slo=\"{i}\"}}'}}}}\n"
        ));
    }
    let slos = parse_file(&yaml, Path::new("bench.yaml")).expect("bench spec");
    let mut engine = Engine::new(slos.into_iter().map(Arc::new).collect());
    for i in 0..n {
        let id = format!("bench/s{i}");
        for h in 0..720 {
            engine.load_bucket(
                &id,
                "[]",
                3600,
                now / HOUR_MS - 720 + h,
                Counts {
                    bad: 1.0,
                    total: 1000.0,
                },
            );
        }
        for m in 0..420 {
            engine.load_bucket(
                &id,
                "[]",
                60,
                now / MINUTE_MS - 420 + m,
                Counts {
                    bad: 0.0,
                    total: 17.0,
                },
            );
        }
    }
    let mut series = Vec::with_capacity(2 * n);
    for i in 0..n {
        let s = i.to_string();
        for code in ["200", "500"] {
            series.push(Series::new(LabelSet::from_pairs([
                ("__name__", "req_total"),
                ("slo", s.as_str()),
                ("code", code),
            ])));
        }
    }
    (engine, series)
}

/// One scrape's snapshot: the same series list every round (shared, as a scrape of an
/// unchanged target publishes it), new counter values.
fn snapshot(series: &Arc<[Arc<Series>]>, round: u64, ts: i64) -> Vec<(String, Arc<Snapshot>)> {
    let values = (0..series.len())
        .map(|k| (round * if k % 2 == 0 { 100 } else { 1 }) as f64)
        .collect();
    vec![(
        "bench".into(),
        Arc::new(Snapshot {
            collected_at_ms: ts,
            series: series.clone(),
            values,
            timestamps_ms: Vec::new(),
        }),
    )]
}

fn main() {
    // Runs only under `cargo bench` (which passes --bench). Under `cargo test --benches` or a
    // test runner listing tests (`--list`), there is no test to run: print nothing.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    for &(n, rounds) in &[(1_000usize, 600u64), (10_000, 120)] {
        let start = 1_800_000_000_000i64 + 50 * MINUTE_MS;
        let (mut engine, series) = setup(n, start);
        let series: Arc<[Arc<Series>]> = series.into();
        let mut times = Vec::with_capacity(rounds as usize);
        for r in 0..rounds {
            let now = start + r as i64 * 10_000;
            let snap = snapshot(&series, r, now);
            let t = Instant::now();
            let out = engine.round(now, &snap);
            times.push(t.elapsed().as_secs_f64() * 1000.0);
            black_box(out);
            black_box(engine.take_dirty());
        }
        times.sort_by(f64::total_cmp);
        let pct = |p: f64| times[((times.len() - 1) as f64 * p) as usize];
        println!(
            "slo_round/{n:>5} SLOs x 30d: {rounds} rounds  p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms  buckets {:.1} KiB/SLO",
            pct(0.5),
            pct(0.99),
            times[times.len() - 1],
            engine.memory_bytes() as f64 / n as f64 / 1024.0
        );
    }
}
