//! Alert engine round cost (issue #5). SKELETON: the alerting work fills this in.

use criterion::{Criterion, criterion_group, criterion_main};

fn alert_round(c: &mut Criterion) {
    c.bench_function("noop", |b| b.iter(|| 1 + 1));
}

criterion_group!(benches, alert_round);
criterion_main!(benches);
