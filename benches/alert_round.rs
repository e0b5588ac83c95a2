//! Alert engine round cost (issue #5): one alert evaluation round for 1,000 SLO instances
//! (1,000 ratio SLOs, 30d window, the four default burn-rate tiers, budget-exhausted and no-data
//! alerts) of which 800 burn at 2x, so the `ticket_slow` tier (3d/6h at 1x) fires for each of
//! them: 800 active alerts, as in `ALERTS=1 scripts/bench/slo.sh`. Burn rates move a little
//! every round (as they do with live counters), so annotations that show them change.
//!
//! Three measurements:
//! - `engine`: `AlertEngine::evaluate` (state machine, templating, tier inhibition), returning
//!   owned alerts;
//! - `engine_shared`: `AlertEngine::evaluate_shared`, the daemon's path (alerts shared by `Arc`);
//! - `engine+dispatch`: the daemon's alert task per round: `evaluate_shared`, then
//!   `Dispatcher::update` (routing into groups; no flush is due in steady state).
//!
//! Run: `cargo bench --bench alert_round`. Numbers go to docs/benchmarks.md.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;

use criterion::{Criterion, criterion_main};
use vigil::alert::engine::AlertEngine;
use vigil::notify::dispatch::Dispatcher;
use vigil::slo::engine::{Condition, InstanceStatus, SloStatus, WindowStatus};
use vigil::slo::spec::parse_file;
use vigil::store::series::SeriesStore;

const SLOS: usize = 1_000;
const BURNING: usize = 800;
/// Distinct rounds of statuses cycled through (burn rates differ in each).
const VARIANTS: usize = 16;

const ROUTING: &str = r#"
route:
  receiver: chat
  group_by: [alertname, service, slo]
  group_wait: 30s
  group_interval: 5m
  repeat_interval: 4h
  routes:
    - matchers: [severity="page"]
      receiver: pager
      continue: true
    - matchers: [severity=~"page|ticket"]
      receiver: chat
receivers: [{name: chat}, {name: pager}]
inhibit_rules:
  - source_matchers: [severity=page]
    target_matchers: [severity=ticket]
    equal: [slo]
"#;

fn statuses() -> Vec<Vec<SloStatus>> {
    let mut yaml = String::from("service: bench\nlabels: {team: payments}\nslos:\n");
    for i in 0..SLOS {
        yaml.push_str(&format!(
            "  - name: s{i}\n    objective: 99.9\n    window: 30d\n    sli: {{ratio: {{errors: 'req_total{{slo=\"{i}\",code=\"500\"}}', total: 'req_total{{slo=\"{i}\"}}'}}}}\n"
        ));
    }
    let slos: Vec<Arc<_>> = parse_file(&yaml, Path::new("bench.yaml"))
        .unwrap_or_else(|e| panic!("bench spec: {e:?}"))
        .into_iter()
        .map(Arc::new)
        .collect();
    let windows = ["5m", "30m", "1h", "2h", "6h", "1d", "3d", "30d"];
    (0..VARIANTS)
        .map(|v| {
            slos.iter()
                .enumerate()
                .map(|(i, slo)| {
                    // 2x (plus a drift per round) for the burning ones: only the 1x tier fires.
                    let burn = if i < BURNING {
                        2.0 + v as f64 * 0.001
                    } else {
                        0.1
                    };
                    let windows = windows
                        .iter()
                        .map(|w| WindowStatus {
                            window: (*w).to_string(),
                            good: 1000.0 - burn,
                            total: 1000.0,
                            error_ratio: Some(burn * 0.001),
                            sli: Some(1.0 - burn * 0.001),
                            burn_rate: burn,
                        })
                        .collect();
                    SloStatus {
                        id: slo.id.clone(),
                        service: slo.service.clone(),
                        name: slo.spec.name.clone(),
                        objective: slo.objective,
                        window: "30d".into(),
                        condition: Condition::Ok,
                        problem: None,
                        instances: vec![InstanceStatus {
                            group: BTreeMap::new(),
                            windows,
                            error_budget_remaining: 1.0 - burn * 0.1,
                            time_to_exhaustion_seconds: f64::INFINITY,
                            events_good: 1e6,
                            events_total: 1e6,
                        }],
                        min_events: slo.spec.min_events,
                        slo: slo.clone(),
                    }
                })
                .collect()
        })
        .collect()
}

fn alert_round(c: &mut Criterion) {
    let rounds = statuses();
    let store = SeriesStore::new();
    let start = 1_800_000_000_000i64;
    let mut g = c.benchmark_group("alert_round");
    g.sample_size(30);

    let mut engine = AlertEngine::default();
    let mut r = 0usize;
    let firing = engine.evaluate(start, &rounds[0], &store).len();
    assert_eq!(firing, BURNING, "expected one active alert per burning SLO");
    g.bench_function("engine", |b| {
        b.iter(|| {
            r += 1;
            let now = start + r as i64 * 10_000;
            black_box(engine.evaluate(now, &rounds[r % VARIANTS], &store))
        })
    });

    let mut engine = AlertEngine::default();
    let mut r = 0usize;
    g.bench_function("engine_shared", |b| {
        b.iter(|| {
            r += 1;
            let now = start + r as i64 * 10_000;
            black_box(engine.evaluate_shared(now, &rounds[r % VARIANTS], &store))
        })
    });

    let config = vigil::notify::config::parse_files(
        &[("alerts.yaml".to_string(), ROUTING.to_string())],
        Path::new("."),
    )
    .unwrap_or_else(|e| panic!("routing: {e:?}"));
    let (tx, _rx) = tokio::sync::mpsc::channel(16);
    let dispatcher = Dispatcher::in_memory(Arc::new(config), tx);
    let mut engine = AlertEngine::default();
    let mut r = 0usize;
    g.bench_function("engine+dispatch", |b| {
        b.iter(|| {
            r += 1;
            let now = start + r as i64 * 10_000;
            let alerts = engine.evaluate_shared(now, &rounds[r % VARIANTS], &store);
            dispatcher.update(alerts, now);
        })
    });
    g.finish();
}

/// `criterion_group!` makes an undocumented public function; a private module keeps it inside.
mod group {
    use criterion::criterion_group;
    criterion_group!(benches, super::alert_round);
}
criterion_main!(group::benches);
