//! Allocation counts on the scrape hot path, measured with `dhat` as the global allocator (so
//! this file is its own test binary). `total_blocks` counts every allocation of the process,
//! on every thread, between two `HeapStats::get()` calls.
//!
//! - `parser_allocates_nothing_per_sample`: parsing the 237-family corpus file in scrape mode
//!   and reading every label (no label value there has an escape, so none needs an owned copy)
//!   allocates a constant number of blocks for the whole file, not one per sample.
//! - `repeated_scrapes_allocate_o1_blocks`: a real [`Scraper`] (public API) scrapes a loopback
//!   HTTP server serving the same corpus body several times. The first scrape builds every
//!   series (several blocks per sample); later scrapes hit the per-target series cache and
//!   allocate O(1) blocks: HTTP request/response handling (the body arrives in a handful of
//!   chunks) and the snapshot's sample vector, independent of the number of samples.
//!
//! The numbers are printed (`--nocapture`) and recorded in docs/parser.md.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use vigil::scrape::discovery::Target;
use vigil::scrape::exposition::{Entry, Format, Mode, Parser};
use vigil::scrape::relabel::Relabeler;
use vigil::scrape::target::{Health, JobRuntime, Scraper, TargetState};
use vigil::store::series::LabelSet;

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

/// One dhat profiler may run at a time, and the counters are process-wide: tests take turns.
static PROFILER: Mutex<()> = Mutex::new(());

const FILE: &str = "prometheus-alltypes.237mfs.prom.txt";

fn corpus_file(name: &str) -> Vec<u8> {
    let dir = std::env::var_os("VIGIL_EXPOSITION_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/corpus")));
    let path = dir.join(name);
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read {}: {e}; set VIGIL_EXPOSITION_CORPUS to the corpus directory",
            path.display()
        )
    })
}

fn blocks() -> u64 {
    dhat::HeapStats::get().total_blocks
}

#[test]
fn parser_allocates_nothing_per_sample() {
    let _turn = PROFILER.lock().unwrap_or_else(|e| e.into_inner());
    let body = corpus_file(FILE);
    let _profiler = dhat::Profiler::builder().testing().build();

    // Three passes: a stray allocation of the test harness itself (it spawns the other test's
    // thread while this one runs) can land in the first; a second pass shows the steady state.
    let mut per_pass = Vec::new();
    let mut samples = 0usize;
    let mut labels = 0usize;
    for _ in 0..3 {
        let before = dhat::HeapStats::get();
        samples = 0;
        labels = 0;
        let mut bytes = 0usize;
        for e in Parser::new(&body, Format::Text, Mode::Scrape) {
            if let Entry::Sample(s) = e.expect("corpus file parses") {
                samples += 1;
                for (name, value) in s.labels.iter() {
                    labels += 1;
                    bytes += name.len() + value.len();
                }
                bytes += s.name.len() + usize::from(s.value.is_nan());
            }
        }
        let after = dhat::HeapStats::get();
        std::hint::black_box(bytes);
        per_pass.push((
            after.total_blocks - before.total_blocks,
            after.total_bytes - before.total_bytes,
        ));
    }
    println!(
        "{FILE}: {samples} samples, {labels} labels; (blocks, bytes) allocated per full parse: {per_pass:?}"
    );
    assert!(samples > 1000, "{samples} samples");
    for (blocks, bytes) in per_pass {
        assert!(
            blocks < 10,
            "parsing {samples} samples allocated {blocks} blocks ({bytes} bytes); expected a constant < 10"
        );
    }
}

/// A loopback HTTP server answering every GET with `body`.
async fn serve(body: Vec<u8>) -> String {
    use axum::routing::get;
    let body = axum::body::Bytes::from(body);
    let app = axum::Router::new().route(
        "/metrics",
        get(move || {
            let body = body.clone();
            async move {
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        "text/plain; version=0.0.4",
                    )],
                    body,
                )
            }
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

fn target_state(url: &str) -> Arc<TargetState> {
    let labels = LabelSet::from_pairs([("job", "alloc"), ("instance", "127.0.0.1")]);
    Arc::new(TargetState {
        target: Target {
            job: "alloc".into(),
            url: url.into(),
            labels: labels.clone(),
            discovered: labels,
        },
        job: Arc::new(JobRuntime {
            name: "alloc".into(),
            interval: Duration::from_secs(15),
            timeout: Duration::from_secs(10),
            client: reqwest::Client::new(),
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

#[test]
fn repeated_scrapes_allocate_o1_blocks() {
    let _turn = PROFILER.lock().unwrap_or_else(|e| e.into_inner());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    // Two bodies of different sizes: the repeated-scrape cost must not grow with the samples.
    for file in [FILE, "node_exporter-e2e-output.prom.txt"] {
        let url = rt.block_on(serve(corpus_file(file)));
        let state = target_state(&url);
        let mut scraper = Scraper::new(state.clone(), "alloc".into());
        let profiler = dhat::Profiler::builder().testing().build();
        let mut per_scrape = Vec::new();
        let mut stored = 0;
        for _ in 0..6 {
            let before = blocks();
            let snap = rt.block_on(scraper.scrape_once());
            let b = blocks() - before;
            assert_eq!(state.health().last_error, "", "{file}: scrape failed");
            stored = snap.len();
            drop(snap);
            per_scrape.push(b);
        }
        drop(profiler);
        println!(
            "{file}: {stored} samples stored per scrape; blocks allocated per scrape: {per_scrape:?}"
        );
        let first = per_scrape[0];
        let later = &per_scrape[1..];
        let worst = later.iter().copied().max().unwrap_or_default();
        // The first scrape builds every series: at least one block per sample.
        assert!(
            first >= stored as u64,
            "{file}: first scrape: {first} blocks for {stored} samples"
        );
        // Later scrapes: a constant, far below one block per sample.
        assert!(
            worst < 200 && worst * 10 < stored as u64,
            "{file}: repeated scrapes allocated {later:?} blocks for {stored} samples; expected O(1)"
        );
    }
}
