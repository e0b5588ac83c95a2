//! The status page in a real browser: the real `vigil` binary runs the demo, its error rate is
//! raised until an SLO alert fires, and headless Chromium (Debian `chromium`, driven through
//! `chromedriver` with the W3C WebDriver protocol) loads the page. The test checks the DOM (the
//! demo SLOs, the firing alert, a burn-down path with points on the detail page), creates a
//! silence through the form and sees it in the list and in `GET /api/v1/silences` without a
//! reload, expires it with its button, and saves screenshots (light and dark) under
//! `target/test-output/status-page/` for review.

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine as _;
use common::{Daemon, eventually, http_post};
use serde_json::{Value, json};

const FAST_RULES: &str = r#"
service: checkout
slos:
  - name: errors
    description: A fast-burning SLO over the demo traffic, so that an alert fires within a minute.
    objective: 99
    window: 1h
    min_events: 10
    alerts:
      tiers:
        page_fast: {enabled: false}
        quick: {long_window: 2m, short_window: 1m, factor: 10, severity: page}
      budget_exhausted: {enabled: false}
    sli:
      ratio:
        errors: http_requests_total{job="demo",code=~"5.."}
        total: http_requests_total{job="demo"}
"#;

/// A chromedriver child process and one browser session; both ended on drop.
struct Browser {
    driver: Child,
    base: String,
    session: String,
    http: reqwest::blocking::Client,
}

impl Browser {
    fn start(profile: &std::path::Path) -> Browser {
        let chromedriver = common::service("VIGIL_TEST_CHROMEDRIVER", "chromedriver");
        let chromium = common::service("VIGIL_TEST_CHROMIUM", "Debian chromium");
        let port = common::free_port();
        let driver = Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {chromedriver}: {e}"));
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .expect("client");
        let base = format!("http://127.0.0.1:{port}");
        let mut b = Browser {
            driver,
            base,
            session: String::new(),
            http,
        };
        eventually(Duration::from_secs(30), "chromedriver ready", || {
            b.http
                .get(format!("{}/status", b.base))
                .send()
                .ok()
                .and_then(|r| r.json::<Value>().ok())
                .filter(|v| v["value"]["ready"] == true)
        });
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu",
                    "--disable-background-networking", "--disable-quic", "--no-first-run",
                    "--disable-component-update", "--disable-sync", "--hide-scrollbars",
                    "--window-size=1280,1800",
                    format!("--user-data-dir={}", profile.display()),
                ],
            },
        }}});
        let v = b.call("POST", "/session", caps);
        b.session = v["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {v}"))
            .to_string();
        b
    }

    /// One WebDriver command; panics with the driver's answer on an error.
    fn call(&self, method: &str, path: &str, body: Value) -> Value {
        let url = format!("{}{}", self.base, path);
        let req = match method {
            "GET" => self.http.get(&url),
            "DELETE" => self.http.delete(&url),
            _ => self.http.post(&url).json(&body),
        };
        let resp = req
            .send()
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let code = resp.status();
        let v: Value = resp.json().unwrap_or(Value::Null);
        assert!(code.is_success(), "{method} {path}: {code} {v}");
        v["value"].clone()
    }

    fn session_call(&self, method: &str, path: &str, body: Value) -> Value {
        self.call(method, &format!("/session/{}{path}", self.session), body)
    }

    fn goto(&self, url: &str) {
        self.session_call("POST", "/url", json!({"url": url}));
    }

    fn js(&self, script: &str) -> Value {
        self.session_call(
            "POST",
            "/execute/sync",
            json!({"script": script, "args": []}),
        )
    }

    fn find(&self, css: &str) -> String {
        let v = self.session_call(
            "POST",
            "/element",
            json!({"using": "css selector", "value": css}),
        );
        v.as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("no element {css}: {v}"))
            .to_string()
    }

    fn click(&self, css: &str) {
        let id = self.find(css);
        self.session_call("POST", &format!("/element/{id}/click"), json!({}));
    }

    fn type_into(&self, css: &str, text: &str) {
        let id = self.find(css);
        self.session_call(
            "POST",
            &format!("/element/{id}/value"),
            json!({"text": text}),
        );
    }

    fn screenshot(&self, name: &str) -> PathBuf {
        let b64 = self.session_call("GET", "/screenshot", Value::Null);
        let png = base64::engine::general_purpose::STANDARD
            .decode(b64.as_str().unwrap_or(""))
            .expect("screenshot base64");
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        let dir = common::repo().join("target/test-output/status-page");
        std::fs::create_dir_all(&dir).expect("mkdir test output");
        let path = dir.join(name);
        std::fs::write(&path, png).expect("write screenshot");
        path
    }

    fn color_scheme(&self, scheme: &str) {
        self.session_call(
            "POST",
            "/goog/cdp/execute",
            json!({"cmd": "Emulation.setEmulatedMedia",
                   "params": {"features": [{"name": "prefers-color-scheme", "value": scheme}]}}),
        );
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = self
                .http
                .delete(format!("{}/session/{}", self.base, self.session))
                .send();
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

#[test]
fn the_status_page_works_in_a_real_browser() {
    let dir = tempfile::tempdir().expect("tempdir");
    let demo = common::free_port();
    let repo = common::repo();
    std::fs::write(dir.path().join("fast.yaml"), FAST_RULES).expect("rules");
    std::fs::write(
        dir.path().join("alerts.yaml"),
        "route:\n  receiver: demo\n  group_by: [alertname, service, slo]\n  group_wait: 1s\n  group_interval: 5s\n  repeat_interval: 4h\n\
         receivers:\n  - name: demo\n",
    )
    .expect("alerts");
    let cfg = common::write_config(
        dir.path(),
        &format!(
            "demo:\n  enabled: true\n  listen: 127.0.0.1:{demo}\n  requests_per_second: 200\n  error_rate: 0\n\
             scrape:\n  targets:\n    - job: demo\n      urls: [http://127.0.0.1:{demo}/metrics]\n      interval: 1s\n      timeout: 900ms\n\
             rules: [{}/rules/demo.yaml, {}/fast.yaml]\nalerts: [{}/alerts.yaml]\n",
            repo.display(),
            dir.path().display(),
            dir.path().display()
        ),
    );
    let d = Daemon::start(&cfg);
    eventually(Duration::from_secs(30), "/readyz", || {
        (d.get("/readyz").0 == 200).then_some(())
    });
    assert_eq!(
        http_post(&format!("{}/demo/error-rate", d.url), "0.3").0,
        200
    );
    eventually(Duration::from_secs(120), "a firing alert", || {
        let (_, body) = d.get("/api/v1/alerts");
        body.contains("\"state\":\"firing\"").then_some(())
    });

    let profile = tempfile::tempdir().expect("profile dir");
    let b = Browser::start(profile.path());
    b.goto(&format!("{}/", d.url));
    let ids =
        b.js("return Array.from(document.querySelectorAll('tr.slo-row')).map(r => r.dataset.slo);");
    let ids: Vec<&str> = ids
        .as_array()
        .expect("rows")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for want in [
        "demo/availability",
        "demo/latency",
        "demo/uptime",
        "checkout/errors",
    ] {
        assert!(ids.contains(&want), "{want} listed: {ids:?}");
    }
    let first_alert = b.js(
        "const b = document.querySelector('tr.slo-row td:nth-child(7) .badge'); return b ? b.textContent : null;",
    );
    assert_eq!(
        first_alert,
        json!("firing"),
        "worst (firing) first: {ids:?}"
    );
    let firing = b.js(
        "return Array.from(document.querySelectorAll('#alerts .badge.crit')).map(e => e.textContent);",
    );
    assert!(
        firing
            .as_array()
            .is_some_and(|a| a.iter().any(|s| s == "firing")),
        "firing alert shown: {firing}"
    );
    let shot = b.screenshot("index-light.png");
    b.color_scheme("dark");
    let bg = b.js("return getComputedStyle(document.body).backgroundColor;");
    assert_eq!(
        bg, "rgb(13, 17, 23)",
        "dark theme follows prefers-color-scheme"
    );
    b.screenshot("index-dark.png");
    b.color_scheme("light");

    // Create a silence through the form; the list refreshes without a reload.
    b.js("window.__noReload = 42;");
    b.click("#new-silence summary");
    b.type_into(
        "#silence-form input[name=matchers]",
        "alertname=\"SLOBurnRateHigh\", service=\"checkout\"",
    );
    b.type_into("#silence-form input[name=createdBy]", "browser-test");
    b.type_into(
        "#silence-form input[name=comment]",
        "silenced from the status page <b>test</b>",
    );
    b.click("#silence-form button[type=submit]");
    let row_id = eventually(Duration::from_secs(20), "the silence in the list", || {
        let v = b.js(
            "const r = Array.from(document.querySelectorAll('[data-section=silences] tr.silence')).find(r => r.textContent.includes('silenced from the status page <b>test</b>')); return r ? r.dataset.id : null;",
        );
        v.as_str().map(str::to_string)
    });
    assert_eq!(b.js("return window.__noReload;"), json!(42), "no reload");
    let (code, body) = d.get("/api/v1/silences");
    assert_eq!(code, 200);
    let list: Value = serde_json::from_str(&body).expect("json");
    let s = list
        .as_array()
        .and_then(|l| l.iter().find(|s| s["id"] == row_id.as_str()))
        .unwrap_or_else(|| panic!("silence {row_id} in {body}"));
    assert_eq!(s["createdBy"], "browser-test");
    assert_eq!(s["status"]["state"], "active");
    assert_eq!(s["matchers"][1]["name"], "service");
    assert_eq!(s["matchers"][1]["value"], "checkout");
    eventually(
        Duration::from_secs(30),
        "the alert shown as silenced",
        || {
            let v = b.js("return document.querySelector('#alerts').textContent;");
            v.as_str()
                .is_some_and(|t| t.contains(&format!("silenced by {row_id}")))
                .then_some(())
        },
    );
    b.screenshot("index-silenced.png");

    // Expire it with its button (after the confirm dialog).
    b.click(&format!("button[data-expire=\"{row_id}\"]"));
    b.session_call("POST", "/alert/accept", json!({}));
    eventually(Duration::from_secs(20), "the silence expired", || {
        let (_, body) = d.get(&format!("/api/v1/silences/{row_id}"));
        body.contains("\"state\":\"expired\"").then_some(())
    });

    // The detail page: a burn-down path with points, thresholds, text alternatives.
    b.goto(&format!("{}/slo/checkout/errors", d.url));
    let points = b.js(
        "const p = document.querySelector('svg#burn-down path.burn-down-line'); return p ? p.getAttribute('d').split(' L').length : 0;",
    );
    assert!(
        points.as_u64().unwrap_or(0) >= 2,
        "burn-down path has points: {points}"
    );
    let desc = b.js("return document.querySelector('svg#burn-down desc').textContent;");
    assert!(
        desc.as_str()
            .is_some_and(|t| t.starts_with("Error budget remaining from 100.0%")),
        "{desc}"
    );
    let thresholds =
        b.js("return document.querySelectorAll('svg#burn-rate line.threshold').length;");
    assert_eq!(thresholds, json!(1), "the quick tier's threshold");
    let detail = b.screenshot("slo-detail-light.png");
    b.color_scheme("dark");
    b.screenshot("slo-detail-dark.png");
    eprintln!("screenshots: {} {}", shot.display(), detail.display());
}
