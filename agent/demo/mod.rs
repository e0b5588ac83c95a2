//! The built-in demo service: an in-process HTTP endpoint that simulates a web service's traffic
//! so that a newcomer sees SLOs move without running anything else. It exposes
//! `http_requests_total{handler,method,code}` and the histogram `http_request_duration_seconds`
//! on its own `/metrics`, with Poisson arrivals, log-normal latency and a configurable 5xx rate.
//!
//! Run-time control (also mounted on the agent's listener): `GET /demo` (settings as JSON),
//! `POST /demo/error-rate` (body or `?value=`: a fraction 0..1), `POST /demo/latency`
//! (`?median=100ms&p99=1s`), `POST /demo/requests-per-second` (`?value=`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Serialize;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::api::metrics::{MetricsWriter, TEXT_CONTENT_TYPE};
use crate::config::{DemoConfig, parse_duration};

/// Histogram bucket bounds in seconds (the Prometheus client default buckets).
pub const BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Simulated handlers and their share of traffic.
const HANDLERS: [(&str, f64); 2] = [("/api/cart", 0.7), ("/api/checkout", 0.3)];
const METHODS: [&str; 2] = ["GET", "POST"];
/// Codes that are always exported (zero-filled), so alert series never go absent.
const CODES: [&str; 4] = ["200", "404", "500", "503"];
/// Share of successful requests answered 404 (client errors, which SLOs do not count as errors).
const NOT_FOUND_SHARE: f64 = 0.02;
/// z-score of the 99th percentile of the standard normal distribution.
const Z99: f64 = 2.326_347_874;
const TICK: Duration = Duration::from_millis(100);

/// Current traffic settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Settings {
    /// Requests per second.
    pub requests_per_second: f64,
    /// Fraction of 5xx answers.
    pub error_rate: f64,
    /// Median latency in seconds.
    pub latency_median_seconds: f64,
    /// 99th percentile latency in seconds.
    pub latency_p99_seconds: f64,
}

impl From<&DemoConfig> for Settings {
    fn from(c: &DemoConfig) -> Self {
        Self {
            requests_per_second: c.requests_per_second,
            error_rate: c.error_rate,
            latency_median_seconds: c.latency_median.as_secs_f64(),
            latency_p99_seconds: c.latency_p99.as_secs_f64(),
        }
    }
}

#[derive(Debug, Default)]
struct Histogram {
    buckets: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

#[derive(Debug, Default)]
struct Counters {
    /// (handler, method, code) -> count.
    requests: HashMap<(usize, usize, usize), u64>,
    /// handler -> latency histogram.
    latency: [Histogram; HANDLERS.len()],
}

#[derive(Debug)]
struct Inner {
    settings: Mutex<Settings>,
    /// The config the settings last came from; a reload changes the settings only when the
    /// config itself changed, so run-time overrides survive unrelated reloads.
    applied: Mutex<DemoConfig>,
    counters: Mutex<Counters>,
    /// Notifications the demo receiver (`POST /demo/webhook`) got, newest last.
    received: Mutex<std::collections::VecDeque<serde_json::Value>>,
}

/// How many notifications the demo receiver keeps.
const RECEIVED_KEEP: usize = 50;

/// The demo service (cheap to clone: a handle).
#[derive(Debug, Clone)]
pub struct Demo {
    inner: Arc<Inner>,
}

impl Demo {
    /// A demo service with the configured traffic.
    pub fn new(cfg: &DemoConfig) -> Self {
        Self {
            inner: Arc::new(Inner {
                settings: Mutex::new(Settings::from(cfg)),
                applied: Mutex::new(cfg.clone()),
                counters: Mutex::new(Counters::default()),
                received: Mutex::new(std::collections::VecDeque::new()),
            }),
        }
    }

    /// Applies a reloaded config (the listen address needs a restart).
    pub fn apply_config(&self, cfg: &DemoConfig) {
        let Ok(mut applied) = self.inner.applied.lock() else {
            return;
        };
        if *applied != *cfg {
            if applied.listen != cfg.listen {
                tracing::warn!(listen = %cfg.listen, "demo.listen changed; restart vigil to apply it");
            }
            *applied = cfg.clone();
            self.set(Settings::from(cfg));
        }
    }

    /// The current settings.
    pub fn settings(&self) -> Settings {
        self.inner.settings.lock().map(|s| *s).unwrap_or(Settings {
            requests_per_second: 0.0,
            error_rate: 0.0,
            latency_median_seconds: 0.0,
            latency_p99_seconds: 0.0,
        })
    }

    fn set(&self, s: Settings) {
        if let Ok(mut cur) = self.inner.settings.lock() {
            *cur = s;
        }
    }

    /// Generates traffic and serves `/metrics` and the control routes on `listener` until
    /// `cancel` fires.
    pub async fn run(self, listener: TcpListener, cancel: CancellationToken) {
        let app = Router::new()
            .route("/metrics", get(metrics_handler))
            .with_state(self.clone())
            .merge(self.control_router());
        let server = crate::api::serve(listener, app, cancel.clone());
        let traffic = async {
            let mut tick = tokio::time::interval(TICK);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = tick.tick() => self.simulate(TICK.as_secs_f64()),
                }
            }
        };
        tokio::join!(server, traffic);
    }

    /// Simulates `seconds` of traffic at the current settings.
    pub fn simulate(&self, seconds: f64) {
        let s = self.settings();
        let n = poisson(s.requests_per_second * seconds);
        if n == 0 {
            return;
        }
        let median = s.latency_median_seconds.max(1e-6);
        let sigma = (s.latency_p99_seconds.max(median) / median).ln() / Z99;
        let Ok(mut c) = self.inner.counters.lock() else {
            return;
        };
        for _ in 0..n {
            let handler = if fastrand::f64() < HANDLERS[0].1 {
                0
            } else {
                1
            };
            let method = usize::from(fastrand::f64() < 0.25);
            let code = if fastrand::f64() < s.error_rate {
                if fastrand::f64() < 0.8 { 2 } else { 3 }
            } else if fastrand::f64() < NOT_FOUND_SHARE {
                1
            } else {
                0
            };
            *c.requests.entry((handler, method, code)).or_insert(0) += 1;
            let latency = median * (sigma * standard_normal()).exp();
            let h = &mut c.latency[handler];
            for (i, le) in BUCKETS.iter().enumerate() {
                if latency <= *le {
                    h.buckets[i] += 1;
                }
            }
            h.sum += latency;
            h.count += 1;
        }
    }

    /// The demo's exposition (text format 0.0.4).
    pub fn metrics_text(&self) -> String {
        let mut w = MetricsWriter::new();
        let Ok(c) = self.inner.counters.lock() else {
            return String::new();
        };
        w.family(
            "http_requests_total",
            "Requests handled by the demo service, by handler, method and status code.",
            "counter",
        );
        for (hi, (handler, _)) in HANDLERS.iter().enumerate() {
            for (mi, method) in METHODS.iter().enumerate() {
                for (ci, code) in CODES.iter().enumerate() {
                    let v = c.requests.get(&(hi, mi, ci)).copied().unwrap_or(0);
                    w.sample(
                        "http_requests_total",
                        &[("handler", handler), ("method", method), ("code", code)],
                        v as f64,
                    );
                }
            }
        }
        w.family(
            "http_request_duration_seconds",
            "Latency of the demo service's requests.",
            "histogram",
        );
        let mut le_text = String::new();
        for (hi, (handler, _)) in HANDLERS.iter().enumerate() {
            let h = &c.latency[hi];
            for (i, le) in BUCKETS.iter().enumerate() {
                le_text.clear();
                crate::api::metrics::format_value(*le, &mut le_text);
                w.sample(
                    "http_request_duration_seconds_bucket",
                    &[("handler", handler), ("le", &le_text)],
                    h.buckets[i] as f64,
                );
            }
            w.sample(
                "http_request_duration_seconds_bucket",
                &[("handler", handler), ("le", "+Inf")],
                h.count as f64,
            );
            w.sample(
                "http_request_duration_seconds_sum",
                &[("handler", handler)],
                h.sum,
            );
            w.sample(
                "http_request_duration_seconds_count",
                &[("handler", handler)],
                h.count as f64,
            );
        }
        w.family(
            "demo_error_rate",
            "The demo service's configured 5xx fraction.",
            "gauge",
        );
        w.sample("demo_error_rate", &[], self.settings().error_rate);
        w.finish()
    }

    /// `/demo` control routes, mounted on the demo's and on the agent's listener.
    pub fn control_router(&self) -> Router {
        Router::new()
            .route("/demo", get(get_settings))
            .route("/demo/error-rate", post(set_error_rate))
            .route("/demo/latency", post(set_latency))
            .route("/demo/requests-per-second", post(set_rps))
            .route("/demo/webhook", post(receive_webhook).get(list_received))
            .with_state(self.clone())
    }
}

async fn metrics_handler(State(demo): State<Demo>) -> Response {
    (
        [(header::CONTENT_TYPE, TEXT_CONTENT_TYPE)],
        demo.metrics_text(),
    )
        .into_response()
}

/// The demo receiver: takes Alertmanager webhook payloads (version 4), as the shipped
/// `alerts/demo.yaml` routes every alert here, so the embedded default shows alerts reaching a
/// receiver without any external service.
async fn receive_webhook(State(demo): State<Demo>, body: axum::body::Bytes) -> Response {
    let Ok(payload) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return bad_request("expected an Alertmanager webhook payload (JSON)".into());
    };
    let alerts: Vec<serde_json::Value> = payload["alerts"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|x| {
                    serde_json::json!({
                        "status": x["status"],
                        "alertname": x["labels"]["alertname"],
                        "severity": x["labels"]["severity"],
                        "slo": x["labels"]["slo"],
                        "summary": x["annotations"]["summary"],
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    let names: Vec<String> = alerts
        .iter()
        .map(|a| {
            format!(
                "{}({})",
                a["alertname"].as_str().unwrap_or("?"),
                a["status"].as_str().unwrap_or("?")
            )
        })
        .collect();
    tracing::info!(
        receiver = payload["receiver"].as_str().unwrap_or(""),
        status = payload["status"].as_str().unwrap_or(""),
        alerts = %names.join(", "),
        "demo receiver got a notification (GET /demo/webhook lists them)"
    );
    let entry = serde_json::json!({
        "receivedAt": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "receiver": payload["receiver"],
        "status": payload["status"],
        "groupKey": payload["groupKey"],
        "alerts": alerts,
    });
    if let Ok(mut r) = demo.inner.received.lock() {
        r.push_back(entry);
        while r.len() > RECEIVED_KEEP {
            r.pop_front();
        }
    }
    StatusCode::OK.into_response()
}

async fn list_received(State(demo): State<Demo>) -> Response {
    let list: Vec<serde_json::Value> = demo
        .inner
        .received
        .lock()
        .map(|r| r.iter().cloned().collect())
        .unwrap_or_default();
    axum::Json(serde_json::json!({ "notifications": list })).into_response()
}

async fn get_settings(State(demo): State<Demo>) -> Response {
    axum::Json(demo.settings()).into_response()
}

fn bad_request(msg: String) -> Response {
    (StatusCode::BAD_REQUEST, format!("{msg}\n")).into_response()
}

/// A number from `?value=` or, failing that, the request body.
fn number_param(q: &HashMap<String, String>, body: &str, what: &str) -> Result<f64, String> {
    let raw = q.get("value").map(String::as_str).unwrap_or(body).trim();
    raw.parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
        .ok_or_else(|| {
            format!("{what}: {raw:?} is not a number; send e.g. `0.2` as the body or ?value=0.2")
        })
}

async fn set_error_rate(
    State(demo): State<Demo>,
    Query(q): Query<HashMap<String, String>>,
    body: String,
) -> Response {
    match number_param(&q, &body, "error rate") {
        Ok(v) if (0.0..=1.0).contains(&v) => {
            let mut s = demo.settings();
            s.error_rate = v;
            demo.set(s);
            tracing::info!(error_rate = v, "demo error rate changed");
            axum::Json(s).into_response()
        }
        Ok(v) => bad_request(format!("error rate {v} is not a fraction; use 0 to 1")),
        Err(msg) => bad_request(msg),
    }
}

async fn set_rps(
    State(demo): State<Demo>,
    Query(q): Query<HashMap<String, String>>,
    body: String,
) -> Response {
    match number_param(&q, &body, "requests per second") {
        Ok(v) if (0.0..=100_000.0).contains(&v) => {
            let mut s = demo.settings();
            s.requests_per_second = v;
            demo.set(s);
            axum::Json(s).into_response()
        }
        Ok(v) => bad_request(format!(
            "requests per second {v} is out of range; use 0 to 100000"
        )),
        Err(msg) => bad_request(msg),
    }
}

async fn set_latency(
    State(demo): State<Demo>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let mut s = demo.settings();
    for (key, slot) in [
        ("median", &mut s.latency_median_seconds),
        ("p99", &mut s.latency_p99_seconds),
    ] {
        if let Some(raw) = q.get(key) {
            match parse_duration(raw) {
                Ok(d) if !d.is_zero() => *slot = d.as_secs_f64(),
                Ok(_) => return bad_request(format!("{key}: must be more than 0s")),
                Err(e) => return bad_request(format!("{key}: {e}")),
            }
        }
    }
    if s.latency_p99_seconds < s.latency_median_seconds {
        return bad_request("p99 must be at least the median".to_string());
    }
    demo.set(s);
    axum::Json(s).into_response()
}

/// A Poisson-distributed count with mean `lambda` (Knuth for small means, normal approximation
/// for large ones).
fn poisson(lambda: f64) -> u64 {
    if lambda.is_nan() || lambda <= 0.0 {
        return 0;
    }
    if lambda > 30.0 {
        return (lambda + lambda.sqrt() * standard_normal())
            .round()
            .max(0.0) as u64;
    }
    let limit = (-lambda).exp();
    let mut k = 0;
    let mut p = 1.0;
    loop {
        p *= fastrand::f64();
        if p <= limit {
            return k;
        }
        k += 1;
    }
}

/// A standard normal variate (Box-Muller).
fn standard_normal() -> f64 {
    let u1 = fastrand::f64().max(f64::MIN_POSITIVE);
    let u2 = fastrand::f64();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(error_rate: f64, rps: f64) -> DemoConfig {
        DemoConfig {
            enabled: true,
            error_rate,
            requests_per_second: rps,
            ..DemoConfig::default()
        }
    }

    fn sum_of(text: &str, name_and_filter: &str) -> f64 {
        text.lines()
            .filter(|l| l.starts_with(name_and_filter.split('{').next().unwrap_or_default()))
            .filter(|l| {
                name_and_filter
                    .split(['{', ',', '}'])
                    .skip(1)
                    .all(|f| f.is_empty() || l.contains(f))
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    #[test]
    fn error_rate_and_volume_follow_settings() {
        fastrand::seed(7);
        let demo = Demo::new(&cfg(0.1, 1000.0));
        demo.simulate(100.0);
        let text = demo.metrics_text();
        let total = sum_of(&text, "http_requests_total{");
        let errors = sum_of(&text, "http_requests_total{code=\"500\"}")
            + sum_of(&text, "http_requests_total{code=\"503\"}");
        assert!((total - 100_000.0).abs() < 2_000.0, "total {total}");
        let ratio = errors / total;
        assert!((ratio - 0.1).abs() < 0.01, "error ratio {ratio}");
        // Every (handler, method, code) series exists even when it has seen nothing.
        assert_eq!(
            text.lines()
                .filter(|l| l.starts_with("http_requests_total{"))
                .count(),
            16
        );
    }

    #[test]
    fn latency_histogram_matches_median_and_p99() {
        fastrand::seed(11);
        let demo = Demo::new(&cfg(0.0, 10_000.0));
        demo.simulate(10.0);
        let text = demo.metrics_text();
        let bucket = |le: &str| {
            sum_of(
                &text,
                &format!("http_request_duration_seconds_bucket{{le=\"{le}\"}}"),
            )
        };
        let count = bucket("+Inf");
        // Median 40ms: about half the requests are at or under 0.05s but not all under 0.025s.
        let under_50ms = bucket("0.05") / count;
        assert!((0.5..0.75).contains(&under_50ms), "{under_50ms}");
        // p99 250ms: about 99% at or under 0.25s.
        let under_250ms = bucket("0.25") / count;
        assert!((0.985..0.995).contains(&under_250ms), "{under_250ms}");
        assert!(text.contains("# TYPE http_request_duration_seconds histogram\n"));
    }

    #[test]
    fn reload_keeps_runtime_override_unless_demo_config_changes() {
        let demo = Demo::new(&cfg(0.01, 10.0));
        let mut s = demo.settings();
        s.error_rate = 0.5;
        demo.set(s);
        demo.apply_config(&cfg(0.01, 10.0));
        assert_eq!(demo.settings().error_rate, 0.5);
        demo.apply_config(&cfg(0.02, 10.0));
        assert_eq!(demo.settings().error_rate, 0.02);
    }

    #[test]
    fn poisson_mean() {
        fastrand::seed(3);
        for lambda in [0.5, 5.0, 200.0] {
            let n = 20_000;
            let mean = (0..n).map(|_| poisson(lambda) as f64).sum::<f64>() / n as f64;
            assert!(
                (mean - lambda).abs() < lambda * 0.05 + 0.05,
                "lambda {lambda} mean {mean}"
            );
        }
        assert_eq!(poisson(0.0), 0);
        assert_eq!(poisson(f64::NAN), 0);
    }
}
