//! Vigil's SLO burn rates agree with Prometheus running Sloth-style recording rules over the
//! same target.
//!
//! # Setup
//!
//! A local axum server exposes two counters, `http_requests_total{code="200"}` and
//! `{code="500"}`. Prometheus (the test service) scrapes it through a target file with a unique
//! `suite` label and evaluates Sloth-style recording rules (`slo:sli_error:ratio_rate<w>` =
//! `sum(rate(errors[w])) / sum(rate(total[w]))`, the `slo:objective:ratio` and
//! `slo:error_budget:ratio` meta series, and, per window, `slo:burn_rate:ratio_rate<w>` = the
//! error ratio `/ on(sloth_id, sloth_slo, sloth_service) group_left` the error budget, which is
//! Sloth's `slo:current_burn_rate:ratio` expression for every window). In the same process,
//! Vigil's `ScrapeManager` scrapes the same server and `vigil::slo::engine::Engine` evaluates
//! the same SLO (objective 99%, errors = code 500, total = all codes), parsed with
//! `vigil::slo::spec::parse_file`. The 5m, 30m and 1h burn rates and error ratios are compared.
//!
//! # Why this shape: replayed history with explicit timestamps, then live traffic
//!
//! Waiting 30 minutes of real time is out of the question (this test takes about a minute),
//! and even a 5m window cannot slide over phases within 3 minutes. So the server replays 55
//! minutes of *history*: one sample per minute, at second 55 of each minute, with an explicit
//! timestamp in the exposition. Each scraper gets its own cursor (`/prometheus/metrics` and
//! `/vigil/metrics`), so both store exactly the same (timestamp, value) sequence; Prometheus
//! scrapes this target every 200 ms (`__scrape_interval__` in the target file) and stores every
//! point (the test checks it), while Vigil's cursor only advances once its engine has evaluated
//! the point (lockstep, so no point is merged with the next). Both honour exposed timestamps:
//! Prometheus by default, Vigil with `honor_timestamps` (its default) putting each delta in the
//! minute bucket of the sample's timestamp. After the history, a short *live* phase (6 s at
//! 500 requests/s, 20% errors, without timestamps) checks real-time scraping, where the two
//! scrapers read at different moments; after it the counters stay flat, so both end with the
//! same final values.
//!
//! The error ratio changes every minute of the history (alternately about 25% and 0.4%, with
//! 3,000 to 7,000 requests a minute), so a window that is one minute off gives a visibly
//! different answer: the test asserts that including one more or one fewer minute at the old
//! edge would change the 5m and 30m ratios by more than 2%, twice the 1% tolerance.
//!
//! # When the two windows hold the same events
//!
//! Vigil's 5m window at `now` is the current minute bucket plus the 4 before; Prometheus'
//! `rate(x[5m])` takes the samples in `[now - 5m, now]`, and the ratio of two `rate()`s over
//! series scraped together is exactly Δerrors / Δtotal between the first and last sample in the
//! range (the extrapolation factor is the same for every series and cancels; the counters start
//! high so that the extrapolation is never clamped at zero). With history points at second 55,
//! the first sample in Prometheus' range is the point of the minute before Vigil's oldest bucket
//! exactly when `now` is at second 0 to 55 of its minute, and then both count the same deltas,
//! for every window length. The test therefore compares every Prometheus rule evaluation made
//! after the live phase at seconds 0.5 to 54.5 of a minute with Vigil's evaluation in the same
//! minute (Vigil's windows only move at minute boundaries once the counters are flat), over two
//! consecutive minutes, so both windows slide by one minute of history during the test and the
//! 5m and 30m old edges fall in the middle of the varying history. The live events are in
//! every compared window of both systems.
//!
//! # Coverage of the windows, and what is not covered
//!
//! - 5m and 30m: their old edge is inside the replayed history, exercised as above.
//! - 1h: compared over all 55 minutes of history plus the live events (about 278,000 events in
//!   56 minute buckets), but its old edge cannot be: Prometheus refuses samples older than one
//!   hour before its newest sample (out of bounds for the head block), so no event can be older
//!   than the 1h window. The edge logic is the same minute-bucket sum as for 5m and 30m, and the
//!   bucket maths (edges, the hour buckets of longer windows, expiry) are covered by the unit
//!   tests of `agent/slo/window.rs` and `agent/slo/engine.rs`.
//! - Longer windows (2h to 30d) would hold the same events as the 1h one and are not compared;
//!   Sloth's period ratio (`slo:sli_error:ratio_rate30d`) is an average of 5m ratios, not the
//!   event-weighted ratio Vigil computes, so it is not comparable by design.
//!
//! Besides Vigil versus Prometheus, each compared value is checked against the exact expected
//! events computed from what the server served, so a failure says which side is off.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::routing::get;
use common::service;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use vigil::api::Readiness;
use vigil::config::scrape::ScrapeConfig;
use vigil::scrape::ScrapeManager;
use vigil::slo::engine::Engine;
use vigil::slo::spec::parse_file;
use vigil::store::series::SeriesStore;

const MINUTE_MS: i64 = 60_000;
/// Minutes of replayed history (one point per minute; 55 deltas). Prometheus accepts samples
/// down to one hour before its newest one; this leaves a margin of a few minutes.
const HISTORY_MINUTES: i64 = 55;
/// Second of the minute at which history points lie.
const POINT_SECOND_MS: i64 = 55_000;
/// Prometheus evaluations compared: this range of milliseconds within their minute (the exact
/// range is [0, 55 s]; a margin on each side).
const ZONE_MS: (i64, i64) = (500, 54_500);
/// Live phase: length and rates (requests/s).
const LIVE_MS: i64 = 6_000;
const LIVE_OK_PER_S: i64 = 400;
const LIVE_ERR_PER_S: i64 = 100;
/// The compared windows, in minutes.
const WINDOWS: [(&str, i64); 3] = [("5m", 5), ("30m", 30), ("1h", 60)];
/// Allowed relative difference between Vigil and Prometheus.
const TOLERANCE: f64 = 0.01;
/// SLO objective, percent.
const OBJECTIVE: f64 = 99.0;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as i64
}

async fn sleep_until_ms(t: i64) {
    let wait = t - now_ms();
    if wait > 0 {
        tokio::time::sleep(Duration::from_millis(wait as u64)).await;
    }
}

/// One history point: cumulative counter values at `ts`.
#[derive(Debug, Clone, Copy)]
struct Point {
    ts: i64,
    ok: i64,
    err: i64,
}

/// The counters the server exposes.
struct Feed {
    history: Vec<Point>,
    /// Next history point for Prometheus (advances on every request).
    prom_cursor: AtomicUsize,
    /// Next history point for Vigil (advanced by the engine loop once it evaluated the point).
    vigil_cursor: AtomicUsize,
    /// Start of the live phase (ms), 0 before it is scheduled.
    live_start_ms: AtomicI64,
}

impl Feed {
    /// History: the ratio alternates between about 25% and 0.4% every minute, with 3,000 to
    /// 7,000 requests a minute. `end_ms` is the timestamp of the last point.
    fn new(end_ms: i64) -> Feed {
        let (mut ok, mut err) = (1_000_000, 50_000);
        let mut history = vec![Point {
            ts: end_ms - HISTORY_MINUTES * MINUTE_MS,
            ok,
            err,
        }];
        for j in 1..=HISTORY_MINUTES {
            let total = 3_000 + 1_000 * ((j * 7) % 5);
            let bad = if j % 2 == 0 { total / 4 } else { total / 250 };
            ok += total - bad;
            err += bad;
            history.push(Point {
                ts: end_ms - (HISTORY_MINUTES - j) * MINUTE_MS,
                ok,
                err,
            });
        }
        Feed {
            history,
            prom_cursor: AtomicUsize::new(0),
            vigil_cursor: AtomicUsize::new(0),
            live_start_ms: AtomicI64::new(0),
        }
    }

    fn last(&self) -> Point {
        *self.history.last().expect("history is not empty")
    }

    /// Counter values after the history: flat, then rising during the live phase, then flat.
    fn live_values(&self, now: i64) -> (i64, i64) {
        let last = self.last();
        let start = self.live_start_ms.load(Ordering::SeqCst);
        let elapsed = if start == 0 {
            0
        } else {
            (now - start).clamp(0, LIVE_MS)
        };
        (
            last.ok + elapsed * LIVE_OK_PER_S / 1000,
            last.err + elapsed * LIVE_ERR_PER_S / 1000,
        )
    }

    /// The exposition for the point at `cursor`, or the live values without timestamps.
    fn body(&self, cursor: Option<usize>) -> String {
        let (ok, err, ts) = match cursor.and_then(|i| self.history.get(i)) {
            Some(p) => (p.ok, p.err, format!(" {}", p.ts)),
            None => {
                let (ok, err) = self.live_values(now_ms());
                (ok, err, String::new())
            }
        };
        format!(
            "# HELP http_requests_total Requests.\n# TYPE http_requests_total counter\n\
             http_requests_total{{code=\"200\"}} {ok}{ts}\n\
             http_requests_total{{code=\"500\"}} {err}{ts}\n"
        )
    }
}

const TEXT_FORMAT: [(header::HeaderName, &str); 1] =
    [(header::CONTENT_TYPE, "text/plain; version=0.0.4")];

async fn prometheus_metrics(
    State(feed): State<Arc<Feed>>,
) -> ([(header::HeaderName, &'static str); 1], String) {
    let n = feed.history.len();
    let cursor = feed
        .prom_cursor
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |c| {
            (c < n).then_some(c + 1)
        })
        .ok();
    (TEXT_FORMAT, feed.body(cursor))
}

async fn vigil_metrics(
    State(feed): State<Arc<Feed>>,
) -> ([(header::HeaderName, &'static str); 1], String) {
    let c = feed.vigil_cursor.load(Ordering::SeqCst);
    (TEXT_FORMAT, feed.body(Some(c)))
}

async fn serve(feed: Arc<Feed>) -> (String, CancellationToken) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let router = Router::new()
        .route("/prometheus/metrics", get(prometheus_metrics))
        .route("/vigil/metrics", get(vigil_metrics))
        .with_state(feed);
    let cancel = CancellationToken::new();
    let c = cancel.clone();
    tokio::spawn(async move {
        let _ = axum::serve(listener, router)
            .with_graceful_shutdown(async move { c.cancelled().await })
            .await;
    });
    (addr, cancel)
}

/// Removes the target and rules files and reloads Prometheus, also when the test fails.
struct PromFiles {
    prom: String,
    target: PathBuf,
    rules: PathBuf,
}

impl Drop for PromFiles {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.target);
        if std::fs::remove_file(&self.rules).is_ok() {
            // A blocking client may not run on an async runtime's thread: use a plain one.
            let url = format!("{}/-/reload", self.prom);
            let _ = std::thread::spawn(move || {
                reqwest::blocking::Client::new()
                    .post(url)
                    .timeout(Duration::from_secs(10))
                    .send()
            })
            .join();
        }
    }
}

async fn prom_get(prom: &str, path: &str, params: &[(&str, String)]) -> serde_json::Value {
    let resp = reqwest::Client::new()
        .get(format!("{prom}{path}"))
        .query(params)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .unwrap_or_else(|e| {
            panic!(
                "Prometheus at {prom} does not answer ({e}); start the test services with \
                 `scripts/test-services.sh`"
            )
        });
    let v: serde_json::Value = resp.json().await.expect("Prometheus JSON");
    assert_eq!(v["status"], "success", "{path} {params:?}: {v}");
    v
}

/// Raw samples of a range-vector query at `time_ms`: (labels, [(ts ms, value)]).
async fn prom_raw(
    prom: &str,
    query: &str,
    time_ms: i64,
) -> Vec<(BTreeMap<String, String>, Vec<(i64, f64)>)> {
    let v = prom_get(
        prom,
        "/api/v1/query",
        &[
            ("query", query.to_string()),
            ("time", format!("{:.3}", time_ms as f64 / 1000.0)),
        ],
    )
    .await;
    v["data"]["result"]
        .as_array()
        .expect("matrix")
        .iter()
        .map(|r| {
            let labels = r["metric"]
                .as_object()
                .expect("labels")
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect();
            let points = r["values"]
                .as_array()
                .expect("values")
                .iter()
                .map(|p| {
                    let ts = (p[0].as_f64().expect("timestamp") * 1000.0).round() as i64;
                    let v = match p[1].as_str().expect("value") {
                        "NaN" => f64::NAN,
                        "+Inf" => f64::INFINITY,
                        "-Inf" => f64::NEG_INFINITY,
                        s => s.parse().expect("float"),
                    };
                    (ts, v)
                })
                .collect();
            (labels, points)
        })
        .collect()
}

/// Sloth-style rules (as `sloth generate` writes them for a ratio SLI), restricted to `suite`.
fn rules_yaml(suite: &str) -> String {
    let id = format!("slocmp-availability-{suite}");
    let labels = |window: Option<&str>| {
        let w = window
            .map(|w| format!(", sloth_window: {w}"))
            .unwrap_or_default();
        format!(
            "{{sloth_id: {id}, sloth_service: slocmp, sloth_slo: availability, suite: {suite}{w}}}"
        )
    };
    let mut sli = String::new();
    for (w, _) in WINDOWS {
        sli.push_str(&format!(
            "      - record: slo:sli_error:ratio_rate{w}\n        expr: |\n          \
             (sum(rate(http_requests_total{{suite=\"{suite}\",code=\"500\"}}[{w}])))\n          \
             /\n          (sum(rate(http_requests_total{{suite=\"{suite}\"}}[{w}])))\n        \
             labels: {}\n",
            labels(Some(w))
        ));
    }
    // In the same group, after the ratios: evaluated at the same timestamp, from them.
    for (w, _) in WINDOWS {
        sli.push_str(&format!(
            "      - record: slo:burn_rate:ratio_rate{w}\n        expr: |\n          \
             slo:sli_error:ratio_rate{w}{{sloth_id=\"{id}\"}}\n          \
             / on(sloth_id, sloth_slo, sloth_service) group_left\n          \
             slo:error_budget:ratio{{sloth_id=\"{id}\"}}\n"
        ));
    }
    let objective = OBJECTIVE / 100.0;
    format!(
        "groups:\n  - name: sloth-slo-sli-recordings-{id}\n    rules:\n{sli}  \
         - name: sloth-slo-meta-recordings-{id}\n    rules:\n      \
         - record: slo:objective:ratio\n        expr: vector({objective})\n        \
         labels: {l}\n      \
         - record: slo:error_budget:ratio\n        expr: vector(1-{objective})\n        \
         labels: {l}\n      \
         - record: slo:time_period:days\n        expr: vector(30)\n        labels: {l}\n",
        l = labels(None)
    )
}

/// Reloads Prometheus and waits until `group` is loaded.
async fn reload_and_wait(prom: &str, group: &str) {
    let resp = reqwest::Client::new()
        .post(format!("{prom}/-/reload"))
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .unwrap_or_else(|e| {
            panic!(
                "POST {prom}/-/reload failed ({e}); start the test services with \
                 `scripts/test-services.sh`"
            )
        });
    let status = resp.status();
    let body = resp.text().await.unwrap_or_default();
    assert!(
        status.is_success(),
        "Prometheus refused to reload ({status}): {body} (is another rules file in its rules \
         directory invalid?)"
    );
    let deadline = now_ms() + 15_000;
    loop {
        let v = prom_get(prom, "/api/v1/rules", &[]).await;
        let loaded = v["data"]["groups"]
            .as_array()
            .is_some_and(|g| g.iter().any(|g| g["name"] == group));
        if loaded {
            return;
        }
        assert!(
            now_ms() < deadline,
            "Prometheus did not load rule group {group} within 15 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// One window of one Vigil evaluation.
#[derive(Debug, Clone, Copy, PartialEq)]
struct VigilWindow {
    bad: f64,
    total: f64,
    error_ratio: Option<f64>,
    burn_rate: f64,
}

/// What the engine loop shares with the test.
#[derive(Default)]
struct VigilLog {
    /// Record rounds from this time on (0: not yet).
    record_from: i64,
    /// (now, per window in `WINDOWS` order).
    rounds: Vec<(i64, [VigilWindow; 3])>,
}

/// Runs an engine round on every new scrape; advances Vigil's history cursor once the engine
/// has evaluated the point it was served.
async fn engine_loop(
    mut engine: Engine,
    store: Arc<SeriesStore>,
    feed: Arc<Feed>,
    log: Arc<Mutex<VigilLog>>,
    cancel: CancellationToken,
) {
    let mut seen = u64::MAX;
    while !cancel.is_cancelled() {
        let version = store.version();
        if version != seen {
            seen = version;
            let snapshots = store.snapshots();
            let now = now_ms();
            let (statuses, _) = engine.round(now, &snapshots);
            let served_ts = snapshots
                .iter()
                .flat_map(|(_, s)| s.samples())
                .find(|s| {
                    s.series.labels.name() == "http_requests_total"
                        && s.series.labels.get("code") == Some("200")
                })
                .map(|s| s.timestamp_ms);
            let c = feed.vigil_cursor.load(Ordering::SeqCst);
            if served_ts.is_some() && feed.history.get(c).map(|p| p.ts) == served_ts {
                feed.vigil_cursor.store(c + 1, Ordering::SeqCst);
            }
            let mut log = log.lock().expect("log lock");
            if log.record_from > 0 && now >= log.record_from {
                let windows = statuses
                    .first()
                    .and_then(|s| s.instances.first())
                    .map(|inst| {
                        WINDOWS.map(|(name, _)| {
                            let w = inst
                                .windows
                                .iter()
                                .find(|w| w.window == name)
                                .expect("Vigil reports the window");
                            VigilWindow {
                                bad: w.total - w.good,
                                total: w.total,
                                error_ratio: w.error_ratio,
                                burn_rate: w.burn_rate,
                            }
                        })
                    })
                    .expect("the SLO has an instance once its series were scraped");
                log.rounds.push((now, windows));
            }
        }
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
}

/// Exact (bad, total) of a window of `minutes` ending in `minute`: the history deltas whose
/// point lies in the window's minutes, plus every live event.
fn expected(feed: &Feed, live: (i64, i64), minute: i64, minutes: i64) -> (f64, f64) {
    let (mut bad, mut total) = (live.1, live.0 + live.1);
    for pair in feed.history.windows(2) {
        let m = pair[1].ts.div_euclid(MINUTE_MS);
        if m > minute - minutes && m <= minute {
            let d_err = pair[1].err - pair[0].err;
            bad += d_err;
            total += pair[1].ok - pair[0].ok + d_err;
        }
    }
    (bad as f64, total as f64)
}

fn rel(a: f64, b: f64) -> f64 {
    if a == b {
        0.0
    } else {
        (a - b).abs() / b.abs().max(f64::MIN_POSITIVE)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vigil_burn_rates_match_sloth_rules_in_prometheus() {
    let prom = service("VIGIL_TEST_PROMETHEUS_URL", "Prometheus");
    let prom = prom.trim_end_matches('/').to_string();
    let prom_dir = PathBuf::from(service(
        "VIGIL_TEST_PROMETHEUS_DIR",
        "Prometheus' config directory",
    ));
    let started = now_ms();
    let suite = format!("slo-cmp-{}-{}", std::process::id(), fastrand::u32(..));

    // The last history point: the latest second 55 of a minute at least 1 s in the past.
    let base = started - 1_000;
    let end_ms = (base - POINT_SECOND_MS).div_euclid(MINUTE_MS) * MINUTE_MS + POINT_SECOND_MS;
    let feed = Arc::new(Feed::new(end_ms));
    let (addr, server) = serve(feed.clone()).await;

    // Prometheus: rules first (so they evaluate from the first sample on), then the target.
    let files = PromFiles {
        prom: prom.clone(),
        target: prom_dir.join("targets").join(format!("{suite}.json")),
        rules: prom_dir.join("rules").join(format!("{suite}.yml")),
    };
    std::fs::write(&files.rules, rules_yaml(&suite)).expect("write the rules file");
    reload_and_wait(
        &prom,
        &format!("sloth-slo-sli-recordings-slocmp-availability-{suite}"),
    )
    .await;
    std::fs::write(
        &files.target,
        format!(
            "[{{\"targets\": [\"{addr}\"], \"labels\": {{\"suite\": \"{suite}\", \
             \"__metrics_path__\": \"/prometheus/metrics\", \"__scrape_interval__\": \"200ms\", \
             \"__scrape_timeout__\": \"200ms\"}}}}]"
        ),
    )
    .expect("write the target file");

    // Vigil: scrape manager and engine in-process.
    let job = "slo-cmp";
    let cfg: ScrapeConfig = serde_yaml::from_str(&format!(
        "{{interval: 100ms, timeout: 90ms, \
         targets: [{{job: {job}, urls: ['http://{addr}/vigil/metrics']}}]}}"
    ))
    .expect("scrape config");
    let mut problems = Vec::new();
    cfg.validate(Path::new("."), &mut problems);
    assert!(problems.is_empty(), "{problems:?}");
    let spec = format!(
        "service: slocmp\nslos:\n  - name: availability\n    objective: {OBJECTIVE}\n    \
         window: 30d\n    sli:\n      ratio:\n        \
         errors: 'http_requests_total{{job=\"{job}\",code=\"500\"}}'\n        \
         total: 'http_requests_total{{job=\"{job}\"}}'\n"
    );
    let slos = parse_file(&spec, Path::new("slocmp.yaml")).expect("valid SLO spec");
    let engine = Engine::new(slos.into_iter().map(Arc::new).collect());
    let store = Arc::new(SeriesStore::new());
    let manager = ScrapeManager::new(&cfg, store.clone(), Arc::new(Readiness::default()));
    let cancel = CancellationToken::new();
    tokio::spawn(manager.clone().run(cancel.clone()));
    let log = Arc::new(Mutex::new(VigilLog::default()));
    tokio::spawn(engine_loop(
        engine,
        store.clone(),
        feed.clone(),
        log.clone(),
        cancel.clone(),
    ));

    // Both replay the history (about 11 s: Prometheus reads a point every 200 ms).
    let n = feed.history.len();
    let deadline = now_ms() + 60_000;
    loop {
        let (p, v) = (
            feed.prom_cursor.load(Ordering::SeqCst),
            feed.vigil_cursor.load(Ordering::SeqCst),
        );
        if p >= n && v >= n {
            break;
        }
        assert!(
            now_ms() < deadline,
            "history not replayed within 60 s: Prometheus read {p} of {n} points, Vigil's \
             engine evaluated {v} (Vigil target: {:?})",
            manager.targets().first().map(|t| t.health())
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let replayed = now_ms();

    // Live phase, then flat counters; both scrapers see the final values.
    let live_start = replayed + 500;
    feed.live_start_ms.store(live_start, Ordering::SeqCst);
    let quiet = live_start + LIVE_MS + 2_000;
    log.lock().expect("log lock").record_from = quiet;
    sleep_until_ms(quiet).await;
    let last = feed.last();
    let (final_ok, final_err) = feed.live_values(quiet);
    let live = (final_ok - last.ok, final_err - last.err);

    // Prometheus stored every history point with its timestamp, and the final values.
    let raw = prom_raw(
        &prom,
        &format!("http_requests_total{{suite=\"{suite}\"}}[59m]"),
        now_ms(),
    )
    .await;
    assert_eq!(raw.len(), 2, "Prometheus series of the suite: {raw:?}");
    for (labels, points) in &raw {
        let err = labels.get("code").map(String::as_str) == Some("500");
        for p in &feed.history {
            let want = if err { p.err } else { p.ok } as f64;
            assert!(
                points.iter().any(|(t, v)| *t == p.ts && *v == want),
                "Prometheus did not store the history point {want} at {} of {labels:?} \
                 (a failed scrape?)",
                p.ts
            );
        }
        let want = if err { final_err } else { final_ok } as f64;
        assert_eq!(
            points.last().map(|(_, v)| *v),
            Some(want),
            "Prometheus' last value of {labels:?}"
        );
    }

    // Compare over the zones of two consecutive minutes: wait until the second one has had
    // 8 s of evaluations.
    let quiet_in_minute = quiet.rem_euclid(MINUTE_MS);
    let first_minute = quiet.div_euclid(MINUTE_MS) + i64::from(quiet_in_minute > 48_000);
    let until = (first_minute + 1) * MINUTE_MS + 8_000;
    sleep_until_ms(until + 1_500).await;
    cancel.cancel();
    server.cancel();

    let range_s = (until - quiet) / 1000 + 1;
    let recorded = prom_raw(
        &prom,
        &format!(
            "{{__name__=~\"slo:(sli_error|burn_rate):ratio_rate(5m|30m|1h)\",\
             suite=\"{suite}\"}}[{range_s}s]"
        ),
        until,
    )
    .await;
    let rounds = std::mem::take(&mut log.lock().expect("log lock").rounds);

    // Vigil's windows per minute; they must not change within a minute once counters are flat.
    let mut vigil: BTreeMap<i64, [VigilWindow; 3]> = BTreeMap::new();
    for (now, w) in &rounds {
        let first = vigil.entry(now.div_euclid(MINUTE_MS)).or_insert(*w);
        assert_eq!(
            first, w,
            "Vigil's windows changed within a minute with flat counters (round at {now})"
        );
    }

    let mut failures = Vec::new();
    let mut compared: BTreeMap<(&str, &str), (usize, f64, Vec<i64>)> = BTreeMap::new();
    for (labels, points) in &recorded {
        let name = labels.get("__name__").map(String::as_str).unwrap_or("");
        let kind = if name.starts_with("slo:burn_rate") {
            "burn rate"
        } else {
            "error ratio"
        };
        let window = labels.get("sloth_window").map(String::as_str).unwrap_or("");
        let Some(wi) = WINDOWS.iter().position(|(w, _)| *w == window) else {
            continue;
        };
        let minutes = WINDOWS[wi].1;
        for &(ts, prom_value) in points {
            let in_minute = ts.rem_euclid(MINUTE_MS);
            if ts < quiet || in_minute < ZONE_MS.0 || in_minute > ZONE_MS.1 {
                continue;
            }
            let minute = ts.div_euclid(MINUTE_MS);
            let Some(v) = vigil.get(&minute).map(|v| v[wi]) else {
                failures.push(format!("no Vigil round in the minute of {ts}"));
                continue;
            };
            let vigil_value = if kind == "burn rate" {
                v.burn_rate
            } else {
                v.error_ratio.unwrap_or(f64::NAN)
            };
            let scale = if kind == "burn rate" {
                1.0 / (1.0 - OBJECTIVE / 100.0)
            } else {
                1.0
            };
            let (bad, total) = expected(&feed, live, minute, minutes);
            let exact = bad / total * scale;
            let diff = rel(vigil_value, prom_value);
            let entry = compared.entry((window, kind)).or_default();
            entry.0 += 1;
            entry.1 = entry.1.max(diff);
            if !entry.2.contains(&minute) {
                entry.2.push(minute);
            }
            if diff.is_nan()
                || diff > TOLERANCE
                || rel(prom_value, exact) > TOLERANCE
                || (v.bad, v.total) != (bad, total)
            {
                failures.push(format!(
                    "{window} {kind} at {ts} (second {:.1} of minute {minute}): \
                     Vigil {vigil_value} ({} bad of {}), Prometheus {prom_value}, \
                     exact {exact} ({bad} bad of {total}); \
                     relative difference {diff:.2e}",
                    in_minute as f64 / 1000.0,
                    v.bad,
                    v.total
                ));
            }
            // The comparison can tell a window one minute off apart.
            if minutes < 60 {
                for other in [minutes + 1, minutes - 1] {
                    let (b, t) = expected(&feed, live, minute, other);
                    let off = rel(b / t * scale, exact);
                    assert!(
                        off > 2.0 * TOLERANCE,
                        "test data too smooth: a {other}-minute window at minute {minute} differs \
                         from the {minutes}-minute one by only {off:.4}"
                    );
                }
            }
        }
    }
    eprintln!(
        "slo_vs_prometheus: {} history points, live {} events ({} bad); {} Vigil rounds; \
         took {:.1} s",
        n,
        live.0 + live.1,
        live.1,
        rounds.len(),
        (now_ms() - started) as f64 / 1000.0
    );
    for ((window, kind), (count, max_diff, minutes)) in &compared {
        eprintln!(
            "  {window:>3} {kind:<11}: {count} Prometheus evaluations in {} minutes, max relative \
             difference {max_diff:.2e}",
            minutes.len()
        );
    }
    assert!(
        failures.is_empty(),
        "{} disagreements:\n{}",
        failures.len(),
        failures.join("\n")
    );
    for (w, _) in WINDOWS {
        for kind in ["burn rate", "error ratio"] {
            let (count, _, minutes) = compared.get(&(w, kind)).cloned().unwrap_or_default();
            assert!(
                count >= 5 && minutes.len() >= 2,
                "too few comparisons of the {w} {kind}: {count} evaluations in minutes \
                 {minutes:?} (Prometheus recorded: {recorded:?})"
            );
        }
    }
    drop(files);
}
