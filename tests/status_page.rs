//! The status page's HTML routes through `Router::oneshot`, on state built from the real
//! managers (SLO manager over a series store, dispatcher and outbox on a SQLite ledger in a temp
//! dir): golden SLO table, escaping of user text, the detail page's charts against the JSON API,
//! and the section fragments the page's script refreshes from.
//!
//! `UPDATE_GOLDEN=1 cargo nextest run --test status_page` rewrites the golden file.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use tower::ServiceExt;

use vigil::api::{AppState, Readiness, router};
use vigil::config::{ConfigSource, Role};
use vigil::notify::dispatch::Dispatcher;
use vigil::notify::outbox::Outbox;
use vigil::slo::SloManager;
use vigil::store::ledger::Ledger;
use vigil::store::series::{LabelSet, Sample, Series, SeriesStore, Snapshot};

const FIXTURES: &str = "tests/fixtures/status_page";

async fn get(app: &Router, path: &str) -> (StatusCode, String) {
    let resp = app
        .clone()
        .oneshot(Request::get(path).body(Body::empty()).expect("request"))
        .await
        .expect("infallible");
    let code = resp.status();
    let body = axum::body::to_bytes(resp.into_body(), 16 << 20)
        .await
        .expect("body");
    (code, String::from_utf8_lossy(&body).into_owned())
}

async fn post(app: &Router, path: &str, body: &str) -> (StatusCode, String) {
    let resp = app
        .clone()
        .oneshot(
            Request::post(path)
                .header("content-type", "application/json")
                .body(Body::from(body.to_string()))
                .expect("request"),
        )
        .await
        .expect("infallible");
    let code = resp.status();
    let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .expect("body");
    (code, String::from_utf8_lossy(&body).into_owned())
}

/// Counter samples: (labels, value).
fn snapshot(at_ms: i64, series: &[(Arc<Series>, f64)]) -> Arc<Snapshot> {
    Arc::new(Snapshot::from_samples(
        at_ms,
        series
            .iter()
            .map(|(s, v)| Sample {
                series: s.clone(),
                value: *v,
                timestamp_ms: at_ms,
            })
            .collect(),
    ))
}

/// The fixture state: four SLOs with two evaluation rounds of counters between them, and a
/// silence whose comment is an XSS attempt.
async fn fixture(dir: &Path) -> Router {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = format!(
        "agent:\n  listen: 127.0.0.1:0\n  data_dir: {}\nrules: [{}/{FIXTURES}/rules.yaml]\n",
        dir.join("data").display(),
        repo.display()
    );
    let path = dir.join("vigil.yaml");
    std::fs::write(&path, text).expect("write config");
    let config = ConfigSource::File(path).load().expect("config");
    let ledger = Ledger::open_sqlite(dir).await.expect("ledger");
    let now = vigil::slo::manager::now_ms();
    ledger.start_run("test", "test", now).await.expect("run");
    let store = Arc::new(SeriesStore::new());
    let readiness = Arc::new(Readiness::default());
    let slo = SloManager::new(
        config.slos.clone(),
        Duration::from_secs(1),
        store.clone(),
        ledger.clone(),
        "test".into(),
        now,
        readiness.clone(),
        Role::Standalone,
    )
    .await
    .expect("slo manager");
    let s = |name: &str, pairs: &[(&str, &str)]| {
        let mut all = vec![("__name__", name), ("job", "shop")];
        all.extend_from_slice(pairs);
        Series::new(LabelSet::from_pairs(all.iter().copied()))
    };
    let http = |handler: &'static str, code: &'static str| {
        s(
            "http_requests_total",
            &[("handler", handler), ("code", code)],
        )
    };
    let evil = "<img src=x onerror=alert(1)>";
    let series = [
        http("/checkout", "200"),
        http("/checkout", "500"),
        http("/cart", "200"),
        http("/cart", "500"),
        s(
            "search_requests_total",
            &[("region", "eu"), ("code", "200")],
        ),
        s(
            "search_requests_total",
            &[("region", "eu"), ("code", "500")],
        ),
        s(
            "search_requests_total",
            &[("region", evil), ("code", "200")],
        ),
        s(
            "search_requests_total",
            &[("region", evil), ("code", "500")],
        ),
    ];
    // Round 1 sets the counters' baselines; round 2 counts the deltas: checkout 1% errors
    // (burn 2 against 99.5%), cart none, search/eu 0.1% (burn 1 against 99.9%).
    let first = [1000.0, 0.0, 500.0, 0.0, 100.0, 0.0, 100.0, 0.0];
    let deltas = [990.0, 10.0, 1000.0, 0.0, 999.0, 1.0, 1000.0, 0.0];
    let pairs = |vals: &[f64]| -> Vec<(Arc<Series>, f64)> {
        series.iter().cloned().zip(vals.iter().copied()).collect()
    };
    store.publish("shop", snapshot(now - 2000, &pairs(&first)));
    slo.round_once(now - 2000).await;
    let second: Vec<f64> = first.iter().zip(deltas).map(|(a, d)| a + d).collect();
    store.publish("shop", snapshot(now - 1000, &pairs(&second)));
    slo.round_once(now - 1000).await;

    let (tx, _rx) = tokio::sync::mpsc::channel(16);
    let dispatcher = Dispatcher::new(config.alerting.clone(), ledger.clone(), tx).await;
    let outbox = Outbox::new(config.alerting.clone(), ledger.clone()).await;
    let app = router(AppState {
        readiness,
        sources: vec![],
        scrape: None,
        slo: Some(slo),
        collectors: None,
        dispatcher: Some(dispatcher),
        outbox: Some(outbox),
        ledger: Some(ledger),
    });
    let starts = chrono::Utc::now();
    let ends = starts + chrono::Duration::hours(2);
    let silence = serde_json::json!({
        "matchers": [{"name": "slo", "value": "checkout", "isRegex": false, "isEqual": true}],
        "startsAt": starts.to_rfc3339(),
        "endsAt": ends.to_rfc3339(),
        "createdBy": "ops@example.com",
        "comment": "<script>alert('pwned')</script> deploy & rollback",
    });
    let (code, body) = post(&app, "/api/v1/silences", &silence.to_string()).await;
    assert_eq!(code, StatusCode::OK, "{body}");
    app
}

/// The HTML inside `<div ... data-section="name">`…`</div>` (sections hold no nested divs
/// except the table's `scroll` wrapper, which ends right before the section's own end).
fn section<'a>(html: &'a str, name: &str) -> &'a str {
    let marker = format!("data-section=\"{name}\">");
    let start = html.find(&marker).expect("section") + marker.len();
    let rest = &html[start..];
    let end = if rest.starts_with("<div class=\"scroll\">") {
        rest.find("</table></div>").expect("table end") + "</table></div>".len()
    } else {
        rest.find("</div>").expect("div end")
    };
    &rest[..end]
}

#[tokio::test]
async fn slo_table_matches_the_golden_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = fixture(dir.path()).await;
    let (code, html) = get(&app, "/").await;
    assert_eq!(code, StatusCode::OK);
    assert!(html.starts_with("<!doctype html>"), "{html}");
    let table = section(&html, "slos").replace("</tr>", "</tr>\n");
    let golden = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(FIXTURES)
        .join("slo_table.golden.html");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&golden, &table).expect("write golden");
    }
    let want = std::fs::read_to_string(&golden).expect("golden file (UPDATE_GOLDEN=1 writes it)");
    assert_eq!(table, want, "SLO table drifted from {}", golden.display());
    // Worst first: overspent checkout, then search/eu at zero, then the healthy ones, then no
    // data.
    let order: Vec<usize> = [
        "data-slo=\"shop/checkout\"",
        "region=<b>eu</b>",
        "data-slo=\"shop/cart\"",
        "region=<b>&lt;img src=x onerror=alert(1)&gt;</b>",
        "data-slo=\"shop/payments\"",
    ]
    .iter()
    .map(|m| table.find(m).unwrap_or_else(|| panic!("{m} in {table}")))
    .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{order:?}\n{table}");
    assert!(!html.contains("<img src=x"), "unescaped label value");
}

#[tokio::test]
async fn sections_escape_user_text_and_refresh_from_the_api() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = fixture(dir.path()).await;
    let (code, html) = get(&app, "/ui/section/silences").await;
    assert_eq!(code, StatusCode::OK);
    assert!(
        html.contains("&lt;script&gt;alert(&#39;pwned&#39;)&lt;/script&gt; deploy &amp; rollback"),
        "{html}"
    );
    assert!(!html.contains("<script>"), "{html}");
    assert!(html.contains("slo=<b>checkout</b>"), "{html}");
    assert!(html.contains("data-expire=\""), "{html}");
    let (_, page) = get(&app, "/").await;
    assert!(page.contains("id=\"silence-form\""));
    assert!(
        !page.contains("<script>alert"),
        "the page escapes the comment"
    );
    // The summary counts what the API says.
    let (_, summary) = get(&app, "/ui/section/summary").await;
    assert!(
        summary
            .contains("<span class=\"value\">1</span><span class=\"label\">silences active</span>"),
        "{summary}"
    );
    assert!(
        summary.contains(
            "<span class=\"value\">5</span><span class=\"label\">SLOs · 2 low on budget</span>"
        ),
        "{summary}"
    );
    let (code, _) = get(&app, "/ui/section/nope").await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    let (_, alerts) = get(&app, "/ui/section/alerts").await;
    assert!(
        alerts.contains("No alerts are firing or pending."),
        "{alerts}"
    );
}

#[tokio::test]
async fn detail_page_charts_agree_with_the_json_api() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = fixture(dir.path()).await;
    let (code, body) = get(&app, "/api/v1/slos/shop/checkout/history").await;
    assert_eq!(code, StatusCode::OK, "{body}");
    let h: serde_json::Value = serde_json::from_str(&body).expect("json");
    let (_, body) = get(&app, "/api/v1/slos/shop/checkout").await;
    let d: serde_json::Value = serde_json::from_str(&body).expect("json");
    // The burn-down ends at the budget remaining the engine reports (from the ledger's rows).
    let points = h["data"]["burnDown"].as_array().expect("burnDown");
    assert!(points.len() >= 2, "{h}");
    let last = points
        .last()
        .and_then(|p| p[1].as_f64())
        .expect("last point");
    let remaining = d["data"]["status"]["instances"][0]["error_budget_remaining"]
        .as_f64()
        .expect("remaining");
    assert!((last - remaining).abs() < 1e-9, "{last} vs {remaining}");
    assert!(
        (remaining + 1.0).abs() < 1e-9,
        "1% errors against 0.5% allowed: {remaining}"
    );
    assert_eq!(h["data"]["resolution"], "1m");
    let tiers: Vec<&str> = h["data"]["thresholds"]
        .as_array()
        .expect("thresholds")
        .iter()
        .filter_map(|t| t["tier"].as_str())
        .collect();
    assert!(tiers.contains(&"page_fast"), "{tiers:?}");
    let rate_1h = h["data"]["burnRate"]
        .as_array()
        .expect("burnRate")
        .iter()
        .find(|s| s["window"] == "1h")
        .expect("1h series");
    let now_rate = rate_1h["points"]
        .as_array()
        .and_then(|p| p.last())
        .and_then(|p| p[1].as_f64())
        .expect("rate");
    assert!((now_rate - 2.0).abs() < 1e-9, "{now_rate}");

    let (code, html) = get(&app, "/slo/shop/checkout").await;
    assert_eq!(code, StatusCode::OK, "{html}");
    assert!(html.contains("<title id=\"burn-down-title\">Error budget burn-down</title>"));
    assert!(
        html.contains("to -100.0% at"),
        "the text alternative says the numbers: {html}"
    );
    assert!(
        html.contains("class=\"line crit burn-down-line\""),
        "{html}"
    );
    assert!(
        html.contains("Alert thresholds: page_fast ×14.4 (1h/5m)"),
        "{html}"
    );
    assert!(html.contains("class=\"threshold\""), "{html}");
    assert!(html.contains("1h window: now 2.00"), "{html}");
    assert!(html.contains("objective: 99.5"), "the spec as YAML: {html}");
    assert!(html.contains("No completed calendar periods yet"), "{html}");
    assert!(html.contains("data-slo=\"shop/checkout\""), "{html}");
    assert!(
        !html.contains("data-slo=\"shop/cart\""),
        "only this SLO's rows: {html}"
    );
    // By unique name too; unknown names are a 404 page.
    assert_eq!(get(&app, "/slo/checkout").await.0, StatusCode::OK);
    let (code, html) = get(&app, "/slo/%3Cnope%3E").await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    assert!(
        html.contains("No SLO named &quot;&lt;nope&gt;&quot;."),
        "{html}"
    );
}
