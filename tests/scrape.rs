//! The scrape engine against real HTTP servers on loopback: gzip, content negotiation, a target
//! that never answers (and does not delay the others), a body over the limit, sample and label
//! limits, authentication from env and file, a target that goes away and comes back, file_sd
//! changes, metric relabelling and label clashes.

mod common;

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use vigil::api::Readiness;
use vigil::config::scrape::ScrapeConfig;
use vigil::scrape::ScrapeManager;
use vigil::store::selector::Selector;
use vigil::store::series::SeriesStore;

async fn serve(router: Router) -> (SocketAddr, CancellationToken) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let cancel = CancellationToken::new();
    let c = cancel.clone();
    tokio::spawn(async move {
        let _ = axum::serve(listener, router)
            .with_graceful_shutdown(async move { c.cancelled().await })
            .await;
    });
    (addr, cancel)
}

fn gzip(text: &str) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(text.as_bytes()).expect("gzip");
    e.finish().expect("gzip")
}

struct Harness {
    store: Arc<SeriesStore>,
    manager: ScrapeManager,
    cancel: CancellationToken,
}

impl Harness {
    fn start(yaml: &str) -> Harness {
        let cfg: ScrapeConfig = serde_yaml::from_str(yaml).expect("scrape yaml");
        let mut problems = Vec::new();
        cfg.validate(std::path::Path::new("."), &mut problems);
        assert!(problems.is_empty(), "{problems:?}");
        let store = Arc::new(SeriesStore::new());
        let manager = ScrapeManager::new(&cfg, store.clone(), Arc::new(Readiness::default()));
        let cancel = CancellationToken::new();
        tokio::spawn(manager.clone().run(cancel.clone()));
        Harness {
            store,
            manager,
            cancel,
        }
    }

    fn value(&self, selector: &str) -> Option<f64> {
        let sel: Selector = selector.parse().expect("selector");
        self.store.select(&sel).first().map(|s| s.value)
    }

    async fn wait_value(&self, selector: &str, want: f64, timeout: Duration) {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if self.value(selector) == Some(want) {
                return;
            }
            if tokio::time::Instant::now() > deadline {
                let targets: Vec<String> = self
                    .manager
                    .targets()
                    .iter()
                    .map(|t| format!("{} {:?}", t.target.url, t.health()))
                    .collect();
                panic!(
                    "{selector} != {want} after {timeout:?} (is {:?}); targets: {targets:#?}",
                    self.value(selector)
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn last_error(&self, url_part: &str) -> String {
        self.manager
            .targets()
            .iter()
            .find(|t| t.target.url.contains(url_part))
            .map(|t| t.health().last_error)
            .unwrap_or_default()
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

const BODY: &str = "# TYPE requests_total counter\nrequests_total{code=\"200\",path=\"/a,b=c}\"} 10\nrequests_total{code=\"500\",path=\"q\\\"x\"} 2\n# TYPE temp gauge\ntemp 21.5\n";

#[tokio::test]
async fn gzip_negotiation_and_synthetic_series() {
    let (addr, _srv) = serve(Router::new()
        .route("/plain", get(|| async { ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], BODY) }))
        .route("/gz", get(|headers: HeaderMap| async move {
            let accepts_gzip = headers.get(header::ACCEPT_ENCODING).and_then(|v| v.to_str().ok()).is_some_and(|v| v.contains("gzip"));
            assert!(accepts_gzip, "the scraper must ask for gzip");
            ([(header::CONTENT_ENCODING, "gzip"), (header::CONTENT_TYPE, "text/plain; version=0.0.4")], gzip(BODY))
        }))
        .route("/om", get(|headers: HeaderMap| async move {
            let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
            if accept.starts_with("application/openmetrics-text") {
                ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")],
                 "# TYPE jobs counter\njobs_total 5 1700000000.5\njobs_created 1600000000\n# EOF\n".to_string()).into_response()
            } else {
                (StatusCode::NOT_ACCEPTABLE, "want openmetrics").into_response()
            }
        })))
    .await;
    let h = Harness::start(&format!(
        "{{interval: 200ms, timeout: 150ms, targets: [{{job: plain, urls: ['http://{addr}/plain']}},
           {{job: gz, urls: ['http://{addr}/gz']}}, {{job: om, urls: ['http://{addr}/om']}}]}}"
    ));
    for job in ["plain", "gz", "om"] {
        h.wait_value(&format!("up{{job=\"{job}\"}}"), 1.0, Duration::from_secs(5))
            .await;
    }
    // The gzip-encoded body gave the same samples as the plain one.
    h.wait_value(
        "requests_total{job=\"gz\",code=\"200\"}",
        10.0,
        Duration::from_secs(5),
    )
    .await;
    h.wait_value(
        "requests_total{job=\"plain\",code=\"200\"}",
        10.0,
        Duration::from_secs(5),
    )
    .await;
    // Label values with , = } and escaped quotes survive.
    assert_eq!(h.value("requests_total{path=\"/a,b=c}\"}"), Some(10.0));
    assert_eq!(h.value("requests_total{path=\"q\\\"x\"}"), Some(2.0));
    assert_eq!(h.value("temp"), Some(21.5));
    // OpenMetrics was negotiated; its float-second timestamp is honoured.
    h.wait_value("jobs_total", 5.0, Duration::from_secs(5))
        .await;
    let sel: Selector = "jobs_total".parse().expect("sel");
    assert_eq!(h.store.select(&sel)[0].timestamp_ms, 1_700_000_000_500);
    // Synthetic series with Prometheus' names and the target's labels.
    let t = format!("{{job=\"plain\",instance=\"{addr}\"}}");
    h.wait_value(
        &format!("scrape_samples_scraped{t}"),
        3.0,
        Duration::from_secs(5),
    )
    .await;
    assert!(
        h.value(&format!("scrape_duration_seconds{t}"))
            .is_some_and(|d| d > 0.0 && d < 1.0)
    );
    assert_eq!(
        h.value(&format!("scrape_samples_post_metric_relabeling{t}")),
        Some(3.0)
    );
    assert_eq!(h.value("scrape_samples_scraped{job=\"om\"}"), Some(2.0));
}

#[tokio::test]
async fn a_hanging_target_times_out_without_delaying_others() {
    let (addr, _srv) = serve(
        Router::new()
            .route(
                "/hang",
                get(|| async {
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                    "never"
                }),
            )
            .route("/ok", get(|| async { "ok_metric 1\n" })),
    )
    .await;
    let h = Harness::start(&format!(
        "{{interval: 300ms, timeout: 200ms, targets: [{{job: hang, urls: ['http://{addr}/hang']}}, {{job: ok, urls: ['http://{addr}/ok']}}]}}"
    ));
    h.wait_value("up{job=\"ok\"}", 1.0, Duration::from_secs(5))
        .await;
    h.wait_value("up{job=\"hang\"}", 0.0, Duration::from_secs(5))
        .await;
    assert!(
        h.last_error("/hang").contains("timed out after 200ms"),
        "{}",
        h.last_error("/hang")
    );
    // The healthy target keeps its rhythm: several scrapes while the other one hangs.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let ok = h
        .manager
        .targets()
        .into_iter()
        .find(|t| t.target.job == "ok")
        .expect("ok target");
    assert!(ok.health().scrapes >= 4, "{:?}", ok.health());
    assert_eq!(h.value("ok_metric"), Some(1.0));
}

#[tokio::test]
async fn limits_fail_the_scrape_as_prometheus_does() {
    let big = "x{a=\"1\"} 1\n".repeat(2000);
    let (addr, _srv) = serve(
        Router::new()
            .route(
                "/big",
                get(move || {
                    let b = big.clone();
                    async move { b }
                }),
            )
            .route("/many", get(|| async { "a 1\nb 2\nc 3\nd 4\n" }))
            .route("/wide", get(|| async { "w{a=\"1\",b=\"2\",c=\"3\"} 1\n" })),
    )
    .await;
    let h = Harness::start(&format!(
        "{{interval: 200ms, timeout: 150ms, targets: [
            {{job: big, urls: ['http://{addr}/big'], body_size_limit: 1KB}},
            {{job: many, urls: ['http://{addr}/many'], sample_limit: 3}},
            {{job: wide, urls: ['http://{addr}/wide'], label_limit: 4}},
            {{job: wide_ok, urls: ['http://{addr}/wide?x=1'], label_limit: 5}}]}}"
    ));
    h.wait_value("up{job=\"big\"}", 0.0, Duration::from_secs(5))
        .await;
    h.wait_value("up{job=\"many\"}", 0.0, Duration::from_secs(5))
        .await;
    h.wait_value("up{job=\"wide\"}", 0.0, Duration::from_secs(5))
        .await;
    h.wait_value("up{job=\"wide_ok\"}", 1.0, Duration::from_secs(5))
        .await;
    assert!(
        h.last_error("/big").contains("body size limit exceeded"),
        "{}",
        h.last_error("/big")
    );
    assert!(
        h.last_error("/many")
            .contains("sample limit exceeded: more than 3"),
        "{}",
        h.last_error("/many")
    );
    // a, b, c + job + instance = 5 labels (without __name__), over the limit of 4.
    assert!(
        h.last_error("/wide").contains("has 5 labels, more than 4"),
        "{}",
        h.last_error("/wide")
    );
    // A failed scrape leaves no scraped series behind (they are stale), only the synthetic ones.
    assert!(h.value("a").is_none());
    assert_eq!(
        h.value("scrape_samples_post_metric_relabeling{job=\"many\"}"),
        Some(0.0)
    );
}

#[tokio::test]
async fn authentication_from_env_and_file() {
    let check = |want: &'static str| {
        move |headers: HeaderMap| async move {
            if headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                == Some(want)
            {
                "secret_metric 1\n".into_response()
            } else {
                StatusCode::UNAUTHORIZED.into_response()
            }
        }
    };
    let (addr, _srv) = serve(
        Router::new()
            .route("/bearer", get(check("Bearer t0k3n")))
            .route("/basic", get(check("Basic dXNlcjp2aWdpbA=="))),
    )
    .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let token = dir.path().join("token");
    std::fs::write(&token, "t0k3n\n").expect("write");
    let wrong = dir.path().join("wrong");
    std::fs::write(&wrong, "nope").expect("write");
    // The password comes from an environment variable; cargo and nextest set CARGO_PKG_NAME
    // for test processes (setting one here would need `unsafe`, which the crate forbids).
    assert_eq!(
        std::env::var("CARGO_PKG_NAME").as_deref(),
        Ok("vigil"),
        "run under cargo test or nextest"
    );
    let var = "CARGO_PKG_NAME";
    let h = Harness::start(&format!(
        "{{interval: 200ms, timeout: 150ms, targets: [
            {{job: bearer, urls: ['http://{addr}/bearer'], authorization: {{credentials_file: '{}'}}}},
            {{job: basic, urls: ['http://{addr}/basic'], basic_auth: {{username: user, password_env: {var}}}}},
            {{job: wrong, urls: ['http://{addr}/bearer?w=1'], authorization: {{credentials_file: '{}'}}}}]}}",
        token.display(), wrong.display()
    ));
    h.wait_value("up{job=\"bearer\"}", 1.0, Duration::from_secs(5))
        .await;
    h.wait_value("up{job=\"basic\"}", 1.0, Duration::from_secs(5))
        .await;
    h.wait_value("up{job=\"wrong\"}", 0.0, Duration::from_secs(5))
        .await;
    assert!(
        h.last_error("w=1").contains("401"),
        "{}",
        h.last_error("w=1")
    );
}

#[tokio::test]
async fn a_target_that_goes_away_and_comes_back() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let app = || Router::new().route("/metrics", get(|| async { "alive 1\n" }));
    let l = TcpListener::bind(addr).await.expect("rebind");
    let stop = CancellationToken::new();
    let s = stop.clone();
    let server = tokio::spawn(async move {
        let _ = axum::serve(l, app())
            .with_graceful_shutdown(async move { s.cancelled().await })
            .await;
    });
    let h = Harness::start(&format!(
        "{{interval: 200ms, timeout: 150ms, targets: [{{job: flap, urls: ['http://{addr}/metrics']}}]}}"
    ));
    h.wait_value("up{job=\"flap\"}", 1.0, Duration::from_secs(5))
        .await;
    assert_eq!(h.value("alive"), Some(1.0));
    stop.cancel();
    let _ = server.await;
    h.wait_value("up{job=\"flap\"}", 0.0, Duration::from_secs(5))
        .await;
    assert_eq!(
        h.value("alive"),
        None,
        "series go stale when the target is down"
    );
    let l = TcpListener::bind(addr).await.expect("bind again");
    tokio::spawn(async move {
        let _ = axum::serve(l, app()).await;
    });
    h.wait_value("up{job=\"flap\"}", 1.0, Duration::from_secs(5))
        .await;
    assert_eq!(h.value("alive"), Some(1.0));
}

#[tokio::test]
async fn file_sd_relabelling_and_label_clashes() {
    let (addr, _srv) = serve(Router::new().route("/metrics", get(|| async {
        "# TYPE go_gc_duration_seconds summary\ngo_gc_duration_seconds{quantile=\"0.5\"} 0.1\nkeep_me{job=\"exporter-job\",instance=\"x\"} 3\n"
    })))
    .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let sd = dir.path().join("targets.json");
    std::fs::write(
        &sd,
        format!(r#"[{{"targets": ["{addr}"], "labels": {{"env": "prod", "drop": "no"}}}}]"#),
    )
    .expect("write");
    let h = Harness::start(&format!(
        "{{interval: 200ms, timeout: 150ms, targets: [{{job: sd, file_sd_configs: [{{files: ['{}/*.json'], refresh_interval: 200ms}}],
           relabel_configs: [{{source_labels: [drop], regex: 'yes', action: drop}}, {{regex: drop, action: labeldrop}}],
           metric_relabel_configs: [{{source_labels: [__name__], regex: 'go_.*', action: drop}}]}}]}}",
        dir.path().display()
    ));
    h.wait_value("up{job=\"sd\",env=\"prod\"}", 1.0, Duration::from_secs(5))
        .await;
    assert!(
        h.value("go_gc_duration_seconds").is_none(),
        "dropped by metric_relabel_configs"
    );
    // The scraped job/instance clash with the target's: renamed exported_*.
    assert_eq!(h.value(&format!("keep_me{{job=\"sd\",exported_job=\"exporter-job\",exported_instance=\"x\",instance=\"{addr}\"}}")), Some(3.0));
    assert!(
        h.manager.targets()[0].target.labels.get("drop").is_none(),
        "labeldrop on targets"
    );
    // Relabelling drops the target once the file says so; its series go stale.
    std::fs::write(
        &sd,
        format!(r#"[{{"targets": ["{addr}"], "labels": {{"env": "prod", "drop": "yes"}}}}]"#),
    )
    .expect("write");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while h.value("up{job=\"sd\"}").is_some() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "target still scraped after the file dropped it"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(h.manager.dropped().len(), 1);
}
