//! The alerting HTTP API against a real daemon: Debian's `amtool` (from
//! prometheus-alertmanager) adds, queries and expires silences and queries alerts through the
//! Alertmanager-compatible `/api/v2/` facade; `/api/v1/alerts` shows why an alert is muted;
//! silences created through `/api/v1/silences` survive a restart (SQLite ledger in the
//! daemon's data dir).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

/// A threshold rule on the `up` series of a target that never answers: it fires at once.
const ALERTS: &str = r#"
route:
  receiver: chat
  group_by: [alertname]
  routes:
    - matchers: [severity="page"]
      receiver: pager
receivers:
  - name: pager
  - name: chat
rules:
  - alert: TargetDown
    selector: up{job="nothing"}
    op: "=="
    value: 0
    labels:
      severity: page
    annotations:
      summary: the target does not answer
"#;

fn config(dir: &Path) -> PathBuf {
    config_with(dir, "")
}

/// `agent_extra` continues the `agent:` section (e.g. a ledger URL).
fn config_with(dir: &Path, agent_extra: &str) -> PathBuf {
    let alerts = dir.join("alerts.yaml");
    std::fs::write(&alerts, ALERTS).expect("write alerts file");
    common::write_config(
        dir,
        &format!(
            "{agent_extra}scrape:\n  interval: 1s\n  targets:\n    - job: nothing\n      urls: [http://127.0.0.1:1/metrics]\nalerts: [{}]\n",
            alerts.display()
        ),
    )
}

/// Runs amtool against the daemon; returns stdout (panics with stderr on failure).
fn amtool(url: &str, args: &[&str]) -> String {
    let bin = common::service(
        "VIGIL_TEST_AMTOOL",
        "amtool (Debian package prometheus-alertmanager)",
    );
    let out = Command::new(&bin)
        .arg(format!("--alertmanager.url={url}"))
        .args(args)
        .output()
        .expect("run amtool");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "amtool {args:?} failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn json_get(d: &common::Daemon, path: &str) -> Value {
    let (code, body) = d.get(path);
    assert_eq!(code, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"))
}

fn first_alert(d: &common::Daemon) -> Value {
    json_get(d, "/api/v1/alerts")["data"]["alerts"][0].clone()
}

#[test]
fn amtool_silences_and_queries_alerts_against_vigil() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = common::Daemon::start(&config(dir.path()));
    let url = d.url.clone();
    let table = common::eventually(Duration::from_secs(30), "TargetDown in amtool", || {
        let out = amtool(&url, &["alert", "query"]);
        out.contains("TargetDown").then_some(out)
    });
    assert!(table.contains("the target does not answer"), "{table}");
    assert!(table.contains("active"), "{table}");
    assert!(amtool(&url, &["alert", "query", "severity=page"]).contains("TargetDown"));
    assert!(!amtool(&url, &["alert", "query", "severity=ticket"]).contains("TargetDown"));
    assert!(amtool(&url, &["alert", "query", "--receiver=pager"]).contains("TargetDown"));
    assert!(!amtool(&url, &["alert", "query", "--receiver=chat"]).contains("TargetDown"));

    let id = amtool(
        &url,
        &[
            "silence",
            "add",
            "alertname=TargetDown",
            "severity=~page|ticket",
            "--comment=maintenance",
            "--author=ops",
            "--duration=2h",
        ],
    )
    .trim()
    .to_string();
    assert_eq!(id.len(), 36, "a UUID: {id:?}");
    assert_eq!(amtool(&url, &["silence", "query", "-q"]).trim(), id);
    assert_eq!(
        amtool(&url, &["silence", "query", "-q", "alertname=TargetDown"]).trim(),
        id
    );
    assert_eq!(
        amtool(&url, &["silence", "query", "-q", "alertname=Other"]).trim(),
        ""
    );
    let listed = amtool(&url, &["-o", "json", "silence", "query"]);
    let listed: Value = serde_json::from_str(&listed).expect("json");
    assert_eq!(listed[0]["status"]["state"], "active");
    assert_eq!(listed[0]["createdBy"], "ops");
    assert_eq!(listed[0]["comment"], "maintenance");
    assert_eq!(
        listed[0]["matchers"][1],
        json!({"name": "severity", "value": "page|ticket", "isRegex": true, "isEqual": true})
    );

    // Silenced: hidden from the default query, shown as suppressed with --silenced.
    assert!(!amtool(&url, &["alert", "query"]).contains("TargetDown"));
    let silenced = amtool(&url, &["alert", "query", "--silenced"]);
    assert!(silenced.contains("suppressed"), "{silenced}");
    let a = first_alert(&d);
    assert_eq!(a["silencedBy"], json!([id]));
    assert_eq!(a["notifies"], false);
    assert_eq!(a["receivers"], json!(["pager"]));

    amtool(&url, &["silence", "expire", &id]);
    assert_eq!(amtool(&url, &["silence", "query", "-q"]).trim(), "");
    assert_eq!(
        amtool(&url, &["silence", "query", "-q", "--expired"]).trim(),
        id
    );
    assert!(amtool(&url, &["alert", "query"]).contains("TargetDown"));
    assert_eq!(first_alert(&d)["notifies"], true);

    let status = json_get(&d, "/api/v2/status");
    assert_eq!(status["cluster"]["status"], "disabled");
    let receivers = json_get(&d, "/api/v2/receivers");
    assert_eq!(receivers, json!([{"name": "pager"}, {"name": "chat"}]));
}

fn post_silence(url: &str, body: &Value) -> (u16, Value) {
    let r = reqwest::blocking::Client::new()
        .post(format!("{url}/api/v1/silences"))
        .json(body)
        .timeout(Duration::from_secs(10))
        .send()
        .expect("POST silence");
    let code = r.status().as_u16();
    (code, r.json().unwrap_or(Value::Null))
}

fn delete(url: &str) -> u16 {
    reqwest::blocking::Client::new()
        .delete(url)
        .timeout(Duration::from_secs(10))
        .send()
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

fn restart(d: common::Daemon, cfg: &Path) -> common::Daemon {
    d.signal("TERM");
    let mut d = d;
    assert!(d.wait_exit(Duration::from_secs(30)).success());
    common::Daemon::start(cfg)
}

#[test]
fn silences_survive_a_restart_and_are_validated() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(dir.path());
    let d = common::Daemon::start(&cfg);
    let now = chrono::Utc::now();
    let ends = (now + chrono::Duration::hours(3)).to_rfc3339();
    let later = (now + chrono::Duration::hours(1)).to_rfc3339();
    let (code, active) = post_silence(
        &d.url,
        &json!({
            "matchers": [{"name": "alertname", "value": "TargetDown", "isRegex": false}],
            "startsAt": now.to_rfc3339(), "endsAt": ends,
            "createdBy": "ops", "comment": "disk swap"
        }),
    );
    assert_eq!(code, 200, "{active}");
    assert_eq!(active["status"]["state"], "active");
    let (code, pending) = post_silence(
        &d.url,
        &json!({
            "matchers": [
                {"name": "job", "value": "nothing", "isRegex": false},
                {"name": "instance", "value": "x", "isRegex": false, "isEqual": false}
            ],
            "startsAt": later, "endsAt": ends, "createdBy": "ops", "comment": "later"
        }),
    );
    assert_eq!(code, 200, "{pending}");
    assert_eq!(pending["status"]["state"], "pending");
    assert_eq!(pending["matchers"][0]["isEqual"], true);
    assert_eq!(pending["matchers"][1]["isEqual"], false);

    // Problems are answered with 400 and say what is wrong.
    let (code, err) = post_silence(
        &d.url,
        &json!({
            "matchers": [{"name": "alertname", "value": ".*", "isRegex": true}],
            "startsAt": now.to_rfc3339(), "endsAt": ends, "createdBy": "ops", "comment": "all"
        }),
    );
    assert_eq!(code, 400);
    assert!(
        err["error"]
            .as_str()
            .unwrap_or_default()
            .contains("must not match the empty string"),
        "{err}"
    );
    let (code, _) = d.get("/api/v1/silences/no-such-id");
    assert_eq!(code, 404);

    let active_id = active["id"].as_str().unwrap_or_default().to_string();
    let pending_id = pending["id"].as_str().unwrap_or_default().to_string();
    let d = restart(d, &cfg);
    let list = json_get(&d, "/api/v1/silences");
    let states: Vec<(String, String)> = list
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            (
                s["id"].as_str().unwrap_or_default().to_string(),
                s["status"]["state"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect();
    assert_eq!(
        states,
        vec![
            (active_id.clone(), "active".to_string()),
            (pending_id.clone(), "pending".to_string())
        ]
    );
    let one = json_get(&d, &format!("/api/v1/silences/{active_id}"));
    assert_eq!(one["comment"], "disk swap");
    // The reloaded silence still mutes the alert.
    common::eventually(Duration::from_secs(30), "the alert silenced", || {
        let (_, body) = d.get("/api/v1/alerts");
        body.contains(&active_id).then_some(())
    });

    assert_eq!(
        delete(&format!("{}/api/v1/silences/{active_id}", d.url)),
        200
    );
    assert_eq!(
        delete(&format!("{}/api/v1/silences/{active_id}", d.url)),
        400
    );
    assert_eq!(delete(&format!("{}/api/v1/silences/nope", d.url)), 404);
    let d = restart(d, &cfg);
    let one = json_get(&d, &format!("/api/v1/silences/{active_id}"));
    assert_eq!(one["status"]["state"], "expired");
}

/// The same on a Postgres ledger (portable SQL): a silence survives a restart.
#[test]
fn silences_survive_a_restart_on_postgres() {
    let pg = common::service("VIGIL_TEST_PG_URL", "Postgres");
    let dir = tempfile::tempdir().expect("tempdir");
    let id = format!("alert-api-{}", std::process::id());
    let cfg = config_with(
        dir.path(),
        &format!("  id: {id}\n  ledger_url_env: VIGIL_TEST_LEDGER_URL\n"),
    );
    let env = [("VIGIL_TEST_LEDGER_URL", pg.as_str())];
    let d = common::Daemon::start_with_env(&cfg, &env);
    let now = chrono::Utc::now();
    let (code, s) = post_silence(
        &d.url,
        &json!({
            "matchers": [{"name": "agent", "value": id, "isRegex": false}],
            "startsAt": now.to_rfc3339(),
            "endsAt": (now + chrono::Duration::hours(1)).to_rfc3339(),
            "createdBy": "test", "comment": "postgres"
        }),
    );
    assert_eq!(code, 200, "{s}");
    let sid = s["id"].as_str().unwrap_or_default().to_string();
    d.signal("TERM");
    let mut d = d;
    assert!(d.wait_exit(Duration::from_secs(30)).success());
    let d = common::Daemon::start_with_env(&cfg, &env);
    let one = json_get(&d, &format!("/api/v1/silences/{sid}"));
    assert_eq!(one["status"]["state"], "active");
    assert_eq!(one["matchers"][0]["value"], id.as_str());
    assert_eq!(delete(&format!("{}/api/v1/silences/{sid}", d.url)), 200);
}
