//! Generated Grafana dashboards (issue #9), through the real `vigil dashboards generate`:
//! - golden files: `dashboards/` must equal what the repository's vigil.yaml + rules generate,
//!   byte for byte (`UPDATE_GOLDEN=1` rewrites them);
//! - Grafana's conventions: uids, schemaVersion 41, the `datasource` variable, panel types;
//! - schema: every dashboard loads strictly through grafana-foundation-sdk's models
//!   (tests/fixtures/dashboards/validate.py, in the test-services venv), and eleven broken
//!   copies are refused;
//! - metric names: every name in every PromQL expression is exposed by a running agent (demo,
//!   SLOs, and the Postgres, Redis and Kafka collectors on the real test services) or by the
//!   demo target it scrapes.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

/// Runs `vigil dashboards generate --config <config> --out <out>`.
fn generate(config: &Path, out: &Path) {
    let o = Command::new(common::vigil_bin())
        .args(["dashboards", "generate", "--config"])
        .arg(config)
        .arg("--out")
        .arg(out)
        .output()
        .expect("run vigil dashboards generate");
    assert!(
        o.status.success(),
        "vigil dashboards generate failed:\n{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.starts_with("wrote "), "{stdout}");
}

/// Every `.json` under `dir`, by path relative to it.
fn json_files(dir: &Path) -> BTreeMap<String, String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries {
            let p = e.expect("dir entry").path();
            if p.is_dir() {
                walk(root, &p, out);
            } else if p.extension().is_some_and(|x| x == "json") {
                let rel = p
                    .strip_prefix(root)
                    .expect("under root")
                    .to_string_lossy()
                    .replace('\\', "/");
                out.insert(rel, std::fs::read_to_string(&p).expect("read dashboard"));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// A config for the fixture SLOs of every shape (plus the demo's), demo on `demo_port`.
fn shapes_config(dir: &Path, extra: &str) -> PathBuf {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    common::write_config(
        dir,
        &format!(
            "demo:\n  enabled: true\n  listen: 127.0.0.1:{port}\n  requests_per_second: 100\n\
             scrape:\n  targets:\n    - job: demo\n      urls: [http://127.0.0.1:{port}/metrics]\n      interval: 1s\n      timeout: 900ms\n\
             rules:\n  - {}\n  - {}\n{extra}",
            common::repo().join("rules/demo.yaml").display(),
            common::repo()
                .join("tests/fixtures/dashboards/rules/shapes.yaml")
                .display()
        ),
    )
}

fn parse(files: &BTreeMap<String, String>) -> BTreeMap<String, Value> {
    files
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                serde_json::from_str(v).unwrap_or_else(|e| panic!("{k}: invalid JSON: {e}")),
            )
        })
        .collect()
}

#[test]
fn golden_files_match_the_repository_rules() {
    let tmp = tempfile::tempdir().expect("tempdir");
    generate(&common::repo().join("vigil.yaml"), tmp.path());
    let got = json_files(tmp.path());
    let golden_dir = common::repo().join("dashboards");
    if std::env::var("UPDATE_GOLDEN").is_ok_and(|v| v == "1") {
        for old in json_files(&golden_dir).keys() {
            std::fs::remove_file(golden_dir.join(old)).expect("remove stale golden");
        }
        for (rel, text) in &got {
            let p = golden_dir.join(rel);
            std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            std::fs::write(&p, text).expect("write golden");
        }
    }
    let want = json_files(&golden_dir);
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>(),
        "the set of dashboards differs from dashboards/; run `UPDATE_GOLDEN=1 cargo test --test dashboards golden` and commit"
    );
    for (rel, text) in &got {
        assert!(
            text == &want[rel],
            "dashboards/{rel} differs from what the rules generate; run `UPDATE_GOLDEN=1 cargo test --test dashboards golden` and commit"
        );
    }
    assert!(got.contains_key("slo/overview.json"));
    assert!(got.contains_key("slo/demo-availability.json"));
    assert!(got.contains_key("collectors/kafka.json"));
    assert!(got.contains_key("agent/vigil.json"));
    // Deterministic: a second run writes the same bytes.
    let again = tempfile::tempdir().expect("tempdir");
    generate(&common::repo().join("vigil.yaml"), again.path());
    assert_eq!(json_files(again.path()), got);
}

fn uid_ok(uid: &str) -> bool {
    !uid.is_empty()
        && uid.len() <= 40
        && uid
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn panels(d: &Value) -> Vec<&Value> {
    d["panels"].as_array().expect("panels").iter().collect()
}

#[test]
fn dashboards_follow_grafana_conventions() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let config = shapes_config(tmp.path(), "");
    let out = tmp.path().join("out");
    generate(&config, &out);
    let files = json_files(&out);
    let dashboards = parse(&files);
    assert_eq!(dashboards.len(), 3 + 3 + 1 + 3 + 1, "{:?}", files.keys());
    let mut uids = BTreeSet::new();
    for (rel, d) in &dashboards {
        let uid = d["uid"].as_str().expect("uid");
        assert!(uid_ok(uid), "{rel}: uid {uid:?}");
        assert!(uids.insert(uid.to_string()), "{rel}: duplicate uid {uid}");
        assert_eq!(d["schemaVersion"], 41, "{rel}");
        assert!(d.get("__inputs").is_none(), "{rel}: __inputs");
        assert!(
            d.get("id").is_none(),
            "{rel}: a numeric id is instance-specific"
        );
        // Sorted keys, 2-space indentation, trailing newline: the rendering is canonical.
        let canonical = format!("{}\n", serde_json::to_string_pretty(d).expect("render"));
        if let Some((a, b)) = files[rel]
            .lines()
            .zip(canonical.lines())
            .find(|(a, b)| a != b)
        {
            panic!("{rel}: not canonical: {a:?} reads back as {b:?}");
        }
        assert_eq!(files[rel], canonical, "{rel}: not canonical");
        assert!(!files[rel].contains("\"timestamp\""), "{rel}");
        let vars = d["templating"]["list"].as_array().expect("variables");
        assert_eq!(vars[0]["name"], "datasource", "{rel}");
        assert_eq!(vars[0]["type"], "datasource", "{rel}");
        assert_eq!(vars[0]["query"], "prometheus", "{rel}");
        let mut ids = BTreeSet::new();
        for p in panels(d) {
            assert!(
                ids.insert(p["id"].as_u64().expect("id")),
                "{rel}: panel ids"
            );
            let kind = p["type"].as_str().expect("type");
            assert!(
                ["timeseries", "stat", "gauge", "table", "bargauge", "row"].contains(&kind),
                "{rel}: panel type {kind}"
            );
            if kind == "row" {
                continue;
            }
            assert_eq!(
                p["datasource"]["uid"], "${datasource}",
                "{rel}: {}",
                p["title"]
            );
            assert!(p["fieldConfig"]["defaults"]["unit"].is_string() || kind == "table");
            for t in p["targets"].as_array().expect("targets") {
                assert_eq!(t["datasource"]["uid"], "${datasource}", "{rel}");
                assert!(!t["expr"].as_str().expect("expr").is_empty(), "{rel}");
            }
        }
    }
    // The overview links every SLO row to its detail dashboard by uid.
    let overview = &dashboards["slo/overview.json"];
    let table = panels(overview)[0];
    let uids_in_queries = table["targets"][0]["expr"].as_str().expect("expr");
    for (rel, d) in &dashboards {
        if rel.starts_with("slo/") && rel != "slo/overview.json" {
            let uid = d["uid"].as_str().expect("uid");
            assert!(
                uids_in_queries.contains(&format!("\"dashboard\", \"{uid}\"")),
                "{uid}"
            );
        }
    }
    let link = serde_json::to_string(&table["fieldConfig"]["overrides"]).expect("json");
    assert!(link.contains("/d/${__data.fields.dashboard}"), "{link}");
    // A grouped SLO gets one variable per group label, used by every query.
    let long = dashboards
        .iter()
        .find(|(k, _)| k.contains("requests-served-successfully-per-route"))
        .map(|(_, v)| v)
        .expect("grouped SLO dashboard");
    assert_eq!(
        long["uid"].as_str().expect("uid").len(),
        40,
        "hashed long uid"
    );
    let names: Vec<&str> = long["templating"]["list"]
        .as_array()
        .expect("vars")
        .iter()
        .map(|v| v["name"].as_str().expect("name"))
        .collect();
    assert_eq!(names, ["datasource", "handler", "method"]);
    for p in panels(long) {
        for t in p["targets"].as_array().into_iter().flatten() {
            let e = t["expr"].as_str().expect("expr");
            assert!(
                e.contains("handler=~\"$handler\",method=~\"$method\""),
                "{}: {e}",
                p["title"]
            );
        }
    }
    // Burn-rate thresholds are the tiers' factors: 30d availability has 14.4, 6, 3 and 1; the
    // SLI's threshold is the objective.
    let avail = &dashboards["slo/demo-availability.json"];
    let burn = panels(avail)
        .into_iter()
        .find(|p| p["title"] == "Burn rate per window")
        .expect("burn panel");
    let steps: Vec<f64> = burn["fieldConfig"]["defaults"]["thresholds"]["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .filter_map(|s| s["value"].as_f64())
        .collect();
    assert_eq!(steps, [1.0, 3.0, 6.0, 14.4]);
    let sli = panels(avail)
        .into_iter()
        .find(|p| p["title"] == "SLI")
        .expect("SLI panel");
    assert_eq!(
        sli["fieldConfig"]["defaults"]["thresholds"]["steps"][1]["value"],
        0.995
    );
    // Custom tiers: page_fast at factor 10, ticket_slow off.
    let text = serde_json::to_string(long).expect("json");
    assert!(
        text.contains("page_fast (page): 10 over 1h and 5m"),
        "custom tier"
    );
    assert!(!text.contains("ticket_slow"), "disabled tier");
    // Calendar window: the SLI window label is "week".
    let lag = dashboards
        .iter()
        .find(|(k, _)| k.ends_with("orders-lag.json"))
        .map(|(_, v)| v)
        .expect("orders-lag");
    assert!(
        serde_json::to_string(lag)
            .expect("json")
            .contains("window=\\\"week\\\"")
    );
}

/// The venv python with grafana-foundation-sdk.
fn python() -> String {
    common::service(
        "VIGIL_TEST_PYTHON",
        "python with grafana-foundation-sdk (scripts/test-services.sh installs it)",
    )
}

/// Runs the strict validator over `files`; Ok(stdout) or Err(stdout).
fn validate(files: &[PathBuf]) -> Result<String, String> {
    let o = Command::new(python())
        .arg(common::repo().join("tests/fixtures/dashboards/validate.py"))
        .args(files)
        .output()
        .expect("run validate.py");
    let out = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    match o.status.code() {
        Some(0) => Ok(out),
        Some(3) => panic!(
            "grafana-foundation-sdk is not installed in {}: {out}\nInstall the test services with \
             `scripts/test-services.sh` (it pins grafana-foundation-sdk==1769699379!11.6.0), or \
             `{} -m pip install 'grafana-foundation-sdk==1769699379!11.6.0'`",
            python(),
            python()
        ),
        _ => Err(out),
    }
}

#[test]
fn every_dashboard_loads_strictly_through_grafanas_schema_models() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let config = shapes_config(tmp.path(), "");
    let out = tmp.path().join("out");
    generate(&config, &out);
    let mut files: Vec<PathBuf> = json_files(&out).keys().map(|k| out.join(k)).collect();
    let golden = common::repo().join("dashboards");
    files.extend(json_files(&golden).keys().map(|k| golden.join(k)));
    assert!(files.len() >= 19, "{files:?}");
    let ok = validate(&files).unwrap_or_else(|e| panic!("schema problems:\n{e}"));
    assert_eq!(ok.trim(), format!("ok {}", files.len()));

    // The validator is strict: each defect below is reported with its path.
    let base: Value = serde_json::from_str(
        &std::fs::read_to_string(golden.join("slo/demo-latency.json")).expect("read"),
    )
    .expect("json");
    let ts = panels(&base)
        .iter()
        .position(|p| p["type"] == "timeseries")
        .expect("a timeseries panel");
    let st = panels(&base)
        .iter()
        .position(|p| p["type"] == "stat")
        .expect("a stat panel");
    type Mutation = Box<dyn Fn(&mut Value)>;
    let cases: Vec<(&str, Mutation)> = vec![
        (
            "panels[0].bogus: unknown field",
            Box::new(|d: &mut Value| d["panels"][0]["bogus"] = 1.into()),
        ),
        (
            "grid_pos.h: expected an integer",
            Box::new(|d: &mut Value| d["panels"][0]["gridPos"]["h"] = "5".into()),
        ),
        (
            "'graph' is not a known panel type",
            Box::new(|d: &mut Value| d["panels"][0]["type"] = "graph".into()),
        ),
        (
            "graph_tooltip: 7 is not one of",
            Box::new(|d: &mut Value| d["graphTooltip"] = 7.into()),
        ),
        (
            "legend.display_mode: 'huge' is not one of",
            Box::new(move |d: &mut Value| {
                d["panels"][ts]["options"]["legend"]["displayMode"] = "huge".into()
            }),
        ),
        (
            "custom.line_width: expected a number",
            Box::new(move |d: &mut Value| {
                d["panels"][ts]["fieldConfig"]["defaults"]["custom"]["lineWidth"] = "1".into()
            }),
        ),
        (
            "transformations[0].bogus: unknown field",
            Box::new(|d: &mut Value| {
                let last = d["panels"].as_array().expect("panels").len() - 1;
                d["panels"][last]["transformations"][0]["bogus"] = true.into()
            }),
        ),
        // Found by the cross-check against Grafana's JSON schema (docs/dashboards.md): required
        // fields the models would silently default, numeric ranges, and override ids Grafana
        // ignores.
        (
            "required field 'wideLayout' is missing",
            Box::new(move |d: &mut Value| {
                let options = d["panels"][st]["options"].as_object_mut().expect("options");
                options.remove("wideLayout");
            }),
        ),
        (
            "required field 'text' is missing",
            Box::new(|d: &mut Value| d["templating"]["list"][0]["current"] = serde_json::json!({})),
        ),
        (
            "grid_pos.w: 30 must be at most 24",
            Box::new(|d: &mut Value| d["panels"][0]["gridPos"]["w"] = 30.into()),
        ),
        (
            "'custom.bogus' is not a field config option of a timeseries panel",
            Box::new(move |d: &mut Value| {
                d["panels"][ts]["fieldConfig"]["overrides"] = serde_json::json!([{
                    "matcher": {"id": "byName", "options": "x"},
                    "properties": [{"id": "custom.bogus", "value": 1}],
                }])
            }),
        ),
    ];
    for (want, mutate) in cases {
        let mut d = base.clone();
        mutate(&mut d);
        let p = tmp.path().join("mutated.json");
        std::fs::write(&p, serde_json::to_string_pretty(&d).expect("json")).expect("write");
        let err = validate(std::slice::from_ref(&p))
            .expect_err(&format!("the validator accepted a dashboard with {want}"));
        assert!(err.contains(want), "want {want:?} in:\n{err}");
    }
}

/// Metric names in a PromQL expression: identifiers outside strings, label matchers and range
/// brackets that are not functions, aggregations or keywords (and not the label lists of
/// `by (...)`, `without`, `on`, `ignoring`, `group_left`, `group_right`).
fn promql_metric_names(expr: &str) -> BTreeSet<String> {
    // Blank out strings, {…} and […].
    let mut cleaned = String::with_capacity(expr.len());
    let (mut quote, mut escaped, mut depth) = (None::<char>, false, 0i32);
    for c in expr.chars() {
        if let Some(q) = quote {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == q {
                quote = None;
            }
            cleaned.push(' ');
            continue;
        }
        match c {
            '"' | '\'' | '`' => {
                quote = Some(c);
                cleaned.push(' ');
            }
            '{' | '[' => {
                depth += 1;
                cleaned.push(if c == '{' { '{' } else { ' ' });
            }
            '}' | ']' => {
                depth -= 1;
                cleaned.push(' ');
            }
            c if depth > 0 => {
                let _ = c;
                cleaned.push(' ');
            }
            c => cleaned.push(c),
        }
    }
    const KEYWORDS: &[&str] = &[
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "bool",
        "and",
        "or",
        "unless",
        "offset",
        "inf",
        "nan",
        "atan2",
    ];
    const LABEL_LISTS: &[&str] = &[
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
    ];
    let b = cleaned.as_bytes();
    let mut names = BTreeSet::new();
    let mut i = 0;
    let mut skip_list = false;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_alphabetic() || c == b'_' || c == b':' {
            let start = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b':') {
                i += 1;
            }
            let word = &cleaned[start..i];
            let prev = cleaned[..start].chars().last();
            let next = cleaned[i..].chars().find(|c| !c.is_whitespace());
            if LABEL_LISTS.contains(&word) {
                skip_list = next == Some('(');
                continue;
            }
            let numeric = prev.is_some_and(|p| p.is_ascii_digit() || p == '.');
            // `sum by (…) (…)`: an aggregation whose grouping comes first.
            let rest = cleaned[i..].trim_start();
            let aggregation = ["by", "without"].iter().any(|k| {
                rest.strip_prefix(k)
                    .is_some_and(|r| r.trim_start().starts_with('('))
            });
            if !KEYWORDS.contains(&word)
                && next != Some('(')
                && prev != Some('$')
                && !numeric
                && !aggregation
            {
                names.insert(word.to_string());
            }
        } else if c == b'(' && skip_list {
            // Skip the label list.
            while i < b.len() && b[i] != b')' {
                i += 1;
            }
            skip_list = false;
            i += 1;
        } else {
            i += 1;
        }
    }
    names
}

#[test]
fn promql_name_extraction() {
    let got = promql_metric_names(
        "histogram_quantile(0.99, sum by (le, handler) (rate(http_request_duration_seconds_bucket{job=\"demo\",handler=~\"$handler\"}[$__rate_interval])))\n/ on (instance) group_left (x) up or vector(0) and ALERTS{a=\"b{c}\"} * 1e3",
    );
    assert_eq!(
        got.into_iter().collect::<Vec<_>>(),
        ["ALERTS", "http_request_duration_seconds_bucket", "up"]
    );
    let got = promql_metric_names(
        "label_replace(max by (service, slo) (vigil_slo_objective_ratio{service=\"x\"}), \"dashboard\", \"vigil-slo-x\", \"\", \"\")",
    );
    assert_eq!(
        got.into_iter().collect::<Vec<_>>(),
        ["vigil_slo_objective_ratio"]
    );
}

/// Metric names in every expression of a dashboard, with where they are used.
fn dashboard_metric_names(rel: &str, d: &Value, out: &mut BTreeMap<String, Vec<String>>) {
    let mut add = |expr: &str, place: String| {
        for n in promql_metric_names(expr) {
            out.entry(n).or_default().push(place.clone());
        }
    };
    for p in panels(d) {
        for t in p["targets"].as_array().into_iter().flatten() {
            add(
                t["expr"].as_str().expect("expr"),
                format!("{rel}: {}", p["title"]),
            );
        }
    }
    for v in d["templating"]["list"].as_array().expect("vars") {
        if v["type"] != "query" {
            continue;
        }
        let q = v["query"]["query"].as_str().expect("variable query");
        let inner = q
            .strip_prefix("label_values(")
            .and_then(|r| r.rsplit_once(','))
            .map(|(sel, _)| sel)
            .unwrap_or_else(|| panic!("{rel}: unexpected variable query {q}"));
        add(inner, format!("{rel}: variable {}", v["name"]));
    }
}

/// Names a /metrics text exposes: every sample's name and every `# TYPE` family (with the
/// `_bucket`, `_sum`, `_count` series of histograms and summaries).
fn exposed_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut it = rest.split_whitespace();
            let (Some(name), Some(kind)) = (it.next(), it.next()) else {
                continue;
            };
            names.insert(name.to_string());
            if kind == "histogram" || kind == "summary" {
                for s in ["_bucket", "_sum", "_count"] {
                    names.insert(format!("{name}{s}"));
                }
            }
        } else if !line.starts_with('#') && !line.is_empty() {
            let end = line.find(['{', ' ']).unwrap_or(line.len());
            names.insert(line[..end].to_string());
        }
    }
    names
}

#[test]
fn every_metric_name_in_the_dashboards_is_exposed_by_a_running_agent() {
    let pg = common::service("VIGIL_TEST_PG_URL", "PostgreSQL");
    let redis = common::service("VIGIL_TEST_REDIS_URL", "Redis");
    let kafka = common::service("VIGIL_TEST_KAFKA_BROKERS", "Kafka");
    let tmp = tempfile::tempdir().expect("tempdir");
    std::fs::write(tmp.path().join("pg-url"), &pg).expect("write pg-url");
    std::fs::write(tmp.path().join("redis-url"), &redis).expect("write redis-url");
    let config = shapes_config(
        tmp.path(),
        &format!(
            "collectors:\n\
             \x20 - {{name: pg, type: postgres, interval: 1s, timeout: 1s, url_file: pg-url}}\n\
             \x20 - {{name: cache, type: redis, interval: 1s, timeout: 1s, url_file: redis-url, bullmq: [emails]}}\n\
             \x20 - {{name: kafka, type: kafka, interval: 1s, timeout: 1s, brokers: [\"{kafka}\"]}}\n"
        ),
    );
    let out = tmp.path().join("out");
    generate(&config, &out);
    let mut used: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (rel, d) in parse(&json_files(&out)) {
        dashboard_metric_names(&rel, &d, &mut used);
    }
    for (rel, d) in parse(&json_files(&common::repo().join("dashboards"))) {
        dashboard_metric_names(&format!("dashboards/{rel}"), &d, &mut used);
    }
    for must in [
        "vigil_slo_burn_rate",
        "vigil_slo_error_budget_remaining_ratio",
        "ALERTS",
        "http_request_duration_seconds_bucket",
        "pg_stat_database_xact_commit",
        "redis_keyspace_hits_total",
        "kafka_consumergroup_lag_seconds",
        "vigil_scrape_samples_total",
        "vigil_notifications_sent_total",
        "vigil_ledger_writes_total",
    ] {
        assert!(
            used.contains_key(must),
            "{must} not found in any dashboard: {used:?}"
        );
    }

    let d = common::Daemon::start(&config);
    let demo_url = d.demo_url.clone().expect("demo url");
    let ready = [
        "pg_up{instance=\"pg\",job=\"postgres\"}",
        "redis_up{instance=\"cache\",job=\"redis\"}",
        "kafka_up{instance=\"kafka\",job=\"kafka\"}",
        "vigil_scrape_targets{job=\"demo\",health=\"up\"}",
        "vigil_slo_no_data{slo=\"orders-lag\",service=\"checkout-platform-service\"}",
        "vigil_slo_objective_ratio{slo=\"database-up\",service=\"checkout-platform-service\"}",
        "vigil_slo_objective_ratio{slo=\"availability\",service=\"demo\"}",
    ];
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let text = loop {
        let (_, t) = d.get("/metrics");
        let missing: Vec<&str> = ready
            .iter()
            .copied()
            .filter(|s| common::metric_value(&t, s).is_none_or(|v| v <= 0.0))
            .collect();
        if missing.is_empty() {
            break t;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "after 60s the agent still lacks {missing:?}; its log:\n{}",
            d.log_text()
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    let (code, demo) = common::http_get(&format!("{demo_url}/metrics"));
    assert_eq!(code, 200);
    let mut exposed = exposed_names(&text);
    exposed.extend(exposed_names(&demo));
    let missing: Vec<String> = used
        .iter()
        .filter(|(n, _)| !exposed.contains(*n))
        .map(|(n, places)| format!("{n} (used by {})", places.join("; ")))
        .collect();
    assert!(
        missing.is_empty(),
        "metric names in the dashboards that neither the agent nor the demo expose:\n{}",
        missing.join("\n")
    );
}
