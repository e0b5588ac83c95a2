//! Parser throughput on the real-world corpus (`VIGIL_EXPOSITION_CORPUS`, else `shared/corpus`
//! beside the repository), with criterion. Results and their reading are in docs/parser.md.
//!
//! For each corpus file, on the same input in the same run:
//! - `vigil`: our parser in scrape mode, iterating every sample and every label (name and
//!   unescaped value), as the scrape loop does for a new series;
//! - `prometheus-parse`: `prometheus_parse::Scrape::parse` 0.2, fed the lines as its API
//!   requires (an iterator of `io::Result<String>`, here `BufRead::lines` over the body);
//! - `prom_text_format_parser`: `Scrape::parse` 0.1, only on files it accepts (the files it
//!   rejects are printed before the run: that is a correctness result, not a speed one).
//!
//! `scrape_ingest/*` measures the scrape path through the public API: a [`Scraper`] scraping a
//! loopback HTTP server (axum) that serves the corpus file from memory. `http_get` is the bare
//! fetch (reqwest GET + body) as a baseline, `scrape_warm` a repeated scrape of the same body
//! (series cache hit for every sample: the steady state), `scrape_cold` a first scrape by a new
//! `Scraper` (every series built). `scrape_warm - http_get` is the cost of parse + ingest.
//!
//! Run: `cargo bench --bench parser` (a few minutes; criterion's output names each number).
//! `cargo bench --bench parser -- vigil` runs only the matching benchmarks.

use std::hint::black_box;
use std::io::BufRead;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use vigil::scrape::discovery::Target;
use vigil::scrape::exposition::{Entry, Format, Mode, Parser, detect_format};
use vigil::scrape::relabel::Relabeler;
use vigil::scrape::target::{Health, JobRuntime, Scraper, TargetState};
use vigil::store::series::LabelSet;

fn corpus_dir() -> PathBuf {
    std::env::var_os("VIGIL_EXPOSITION_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/corpus")))
}

fn corpus() -> Vec<(String, Vec<u8>, Format)> {
    let dir = corpus_dir();
    let mut files: Vec<(String, Vec<u8>, Format)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus {}: {e}", dir.display()))
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "txt"))
        .map(|p| {
            let body = std::fs::read(&p).expect("read corpus file");
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let format = if name.ends_with(".om.txt") {
                Format::OpenMetrics
            } else if name.ends_with(".prom.txt") {
                Format::Text
            } else {
                detect_format(&body)
            };
            (name, body, format)
        })
        .collect();
    files.sort_by(|a, b| a.0.cmp(&b.0));
    files
}

/// Our parser, scrape mode, every sample and label touched; returns the sample count.
fn vigil_parse(body: &[u8], format: Format) -> usize {
    let mut n = 0;
    for e in Parser::new(body, format, Mode::Scrape) {
        if let Entry::Sample(s) = e.expect("corpus parses") {
            n += 1;
            black_box(s.series);
            black_box(s.name);
            black_box(s.value);
            black_box(s.timestamp_ms);
            for (name, value) in s.labels.iter() {
                black_box(name);
                black_box(value);
            }
        }
    }
    n
}

/// prometheus-parse; returns its sample count after flattening histograms and summaries.
fn prometheus_parse(body: &[u8]) -> usize {
    let scrape = prometheus_parse::Scrape::parse(body.lines()).expect("in-memory read");
    scrape
        .samples
        .iter()
        .map(|s| match &s.value {
            prometheus_parse::Value::Histogram(b) => b.len(),
            prometheus_parse::Value::Summary(q) => q.len(),
            _ => 1,
        })
        .sum()
}

/// prom_text_format_parser; its sample count, or its error.
fn prom_text(body: &str) -> Result<usize, String> {
    let scrape = prom_text_format_parser::Scrape::parse(body).map_err(|e| match e {
        prom_text_format_parser::ScrapeParseError::Parse(m) => {
            m.lines().next().unwrap_or_default().to_string()
        }
        prom_text_format_parser::ScrapeParseError::Collect(v) => v
            .first()
            .map(|m| format!("line {}: {}", m.line_no.start, m.error))
            .unwrap_or_default(),
    })?;
    Ok(scrape.metrics.iter().map(|m| m.samples.len()).sum())
}

fn parsers(c: &mut Criterion) {
    eprintln!("corpus: {}", corpus_dir().display());
    for (name, body, format) in corpus() {
        let text = std::str::from_utf8(&body).expect("corpus is UTF-8");
        let ours = vigil_parse(&body, format);
        let pp = prometheus_parse(&body);
        let ptf = prom_text(text);
        eprintln!(
            "{name}: {} bytes, {format:?}; samples: vigil {ours}, prometheus-parse {pp}, prom_text_format_parser {}",
            body.len(),
            match &ptf {
                Ok(n) => n.to_string(),
                Err(e) => format!("REJECTS ({e})"),
            }
        );
        let mut g = c.benchmark_group(format!("parse/{name}"));
        g.throughput(Throughput::Bytes(body.len() as u64));
        g.bench_function("vigil", |b| {
            b.iter(|| vigil_parse(black_box(&body), format))
        });
        g.bench_function("prometheus-parse", |b| {
            b.iter(|| prometheus_parse(black_box(&body)))
        });
        if ptf.is_ok() {
            g.bench_function("prom_text_format_parser", |b| {
                b.iter(|| prom_text(black_box(text)))
            });
        }
        g.finish();
    }
}

/// A loopback HTTP server answering every GET with `body` and `content_type`.
async fn serve(body: Vec<u8>, content_type: &'static str) -> String {
    use axum::routing::get;
    let body = axum::body::Bytes::from(body);
    let app = axum::Router::new().route(
        "/metrics",
        get(move || {
            let body = body.clone();
            async move { ([(axum::http::header::CONTENT_TYPE, content_type)], body) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}/metrics")
}

fn target_state(url: &str, client: reqwest::Client) -> Arc<TargetState> {
    let labels = LabelSet::from_pairs([("job", "bench"), ("instance", "127.0.0.1")]);
    Arc::new(TargetState {
        target: Target {
            job: "bench".into(),
            url: url.into(),
            labels: labels.clone(),
            discovered: labels,
        },
        job: Arc::new(JobRuntime {
            name: "bench".into(),
            interval: Duration::from_secs(15),
            timeout: Duration::from_secs(10),
            client,
            authorization: None,
            metric_relabel: Relabeler::default(),
            body_size_limit: 0,
            sample_limit: 0,
            label_limit: 0,
            honor_labels: false,
            honor_timestamps: true,
            counters: Arc::default(),
        }),
        health: Mutex::new(Health::default()),
    })
}

fn scrape_ingest(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let client = reqwest::Client::new();
    for (name, body, format) in corpus() {
        let content_type = match format {
            Format::Text => "text/plain; version=0.0.4",
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0",
        };
        let len = body.len() as u64;
        let url = rt.block_on(serve(body, content_type));
        let state = target_state(&url, client.clone());
        let mut g = c.benchmark_group(format!("scrape_ingest/{name}"));
        g.throughput(Throughput::Bytes(len));
        g.bench_function("http_get", |b| {
            b.iter(|| {
                rt.block_on(async {
                    let r = client.get(&url).send().await.expect("GET");
                    black_box(r.bytes().await.expect("body").len())
                })
            })
        });
        let mut warm = Scraper::new(state.clone(), "bench".into());
        let first = rt.block_on(warm.scrape_once());
        assert_eq!(
            state.health().last_error,
            "",
            "{name}: the first scrape failed"
        );
        eprintln!(
            "{name}: scrape stores {} samples (synthetic series included)",
            first.len()
        );
        g.bench_function("scrape_warm", |b| {
            b.iter(|| black_box(rt.block_on(warm.scrape_once()).len()))
        });
        g.bench_function("scrape_cold", |b| {
            b.iter(|| {
                let mut s = Scraper::new(state.clone(), "bench".into());
                black_box(rt.block_on(s.scrape_once()).len())
            })
        });
        g.finish();
    }
}

/// The criterion group (its macro-generated function has no doc comment of its own).
#[allow(missing_docs)]
mod group {
    use super::*;

    criterion_group! {
        name = benches;
        config = Criterion::default()
            .warm_up_time(Duration::from_millis(700))
            .measurement_time(Duration::from_secs(2))
            .sample_size(20);
        targets = parsers, scrape_ingest
    }
}
criterion_main!(group::benches);
