//! The alerts files (`alerts:` globs in vigil.yaml): good and bad fixtures with the exact
//! problems `vigil check config` reports (file, line, column, yaml path, message), the files
//! that ship in alerts/, and a real daemon routing a real alert (`/api/v1/alerts` shows its
//! receivers, `vigil_alerts_groups` counts its group).
//!
//! Routing, grouping timers, inhibition and silences are unit-tested next to the dispatcher
//! (agent/notify/dispatch.rs) on a simulated clock.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use vigil::notify::config::{AlertingConfig, load};

fn fixtures() -> PathBuf {
    common::repo().join("tests/fixtures/alerts")
}

/// Loads fixtures by glob; the problems as `vigil check config` prints them, with the fixture
/// directory removed from file names.
fn load_files(names: &[&str]) -> Result<AlertingConfig, String> {
    let globs: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    load(&globs, &fixtures(), "vigil.yaml").map_err(|ps| {
        ps.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")
            .replace(&format!("{}/", fixtures().display()), "")
    })
}

#[test]
fn good_fixtures_load_and_merge() {
    let cfg = load_files(&["routing.good.yaml", "receivers-only.good.yaml"])
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cfg.receiver_names(), vec!["default", "pager", "extra"]);
    let route = cfg.route.as_ref().expect("route");
    assert_eq!(route.receiver.as_deref(), Some("default"));
    assert_eq!(route.group_by, Some(vec!["...".to_string()]));
    assert_eq!(route.routes.len(), 2);
    let page = &route.routes[0];
    assert_eq!(
        page.matchers
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        vec![r#"severity="page""#, r#"team=~"db|web""#]
    );
    assert!(page.continue_matching);
    assert_eq!(page.group_wait, Some(Duration::from_secs(5)));
    assert_eq!(page.repeat_interval, Some(Duration::from_secs(1800)));
    assert_eq!(cfg.inhibit_rules.len(), 1);
    assert_eq!(cfg.inhibit_rules[0].equal, vec!["slo", "service"]);
    assert_eq!(cfg.time_intervals.len(), 2);
}

/// Every shipped alerts file (each is a complete alternative: `demo.yaml` for the embedded
/// demo, `example.yaml` as a starting point) loads on its own.
#[test]
fn every_file_in_alerts_dir_loads() {
    let mut files: Vec<_> = std::fs::read_dir(common::repo().join("alerts"))
        .expect("alerts dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 2, "{files:?}");
    for file in files {
        let cfg = load(&[file.display().to_string()], &common::repo(), "vigil.yaml")
            .unwrap_or_else(|ps| {
                panic!(
                    "{}",
                    ps.iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("\n")
                )
            });
        assert!(cfg.route.is_some(), "{}", file.display());
        assert!(!cfg.receivers.is_empty(), "{}", file.display());
        assert!(!cfg.rules.is_empty(), "{}", file.display());
    }
}

/// (globs, every line reported, in order).
const BAD: &[(&[&str], &str)] = &[
    (
        &["routing.bad.yaml"],
        r#"routing.bad.yaml:2:3: route.receiver: unknown receiver "nobody"; define it under receivers or use one of: default
routing.bad.yaml:3:3: route.matchers: the root route matches every alert and cannot have matchers; move them to a child route under routes
routing.bad.yaml:4:25: route.group_by[1]: '...' (group by every label) must be the only entry of group_by
routing.bad.yaml:4:32: route.group_by[2]: "9bad" is not a valid label name; use letters, digits and _ (not starting with a digit)
routing.bad.yaml:5:3: route.group_interval: must be greater than 0; write e.g. 5m
routing.bad.yaml:6:3: route.repeat_interval: invalid duration "soon"; write a number and a unit, like 30s, 5m, 1h or 30d
routing.bad.yaml:8:18: route.routes[0].matchers[0]: "severity" is not a matcher; write name=value, name!=value, name=~regex or name!~regex
routing.bad.yaml:8:28: route.routes[0].matchers[1]: "team=~(db": "(db" is not a valid regex: unclosed group
routing.bad.yaml:9:7: route.routes[0].receiver: unknown receiver "pagr"; define it under receivers or use one of: default
routing.bad.yaml:10:29: route.routes[0].mute_time_intervals[0]: unknown time interval "nights"; define it under time_intervals
routing.bad.yaml:13:11: route.routes[1].routes[0].bogus: unknown key; remove it or use one of: receiver, group_by, group_wait, group_interval, repeat_interval, matchers, continue, routes, mute_time_intervals, active_time_intervals
routing.bad.yaml:16:5: receivers[1].name: receiver "default" is already defined (receivers[0]); receiver names must be unique over all alerts files
routing.bad.yaml:17:5: receivers[2].name: must not be empty; routes refer to receivers by name
routing.bad.yaml:20:23: inhibit_rules[0].target_matchers[0]: "x=~*": "*" is not a valid regex: repetition operator missing expression
routing.bad.yaml:21:17: inhibit_rules[0].equal[1]: "not a label" is not a valid label name; use letters, digits and _ (not starting with a digit)
routing.bad.yaml:25:20: time_intervals[0].time_intervals[0].weekdays[0]: "caturday" is not a weekday; write monday, tuesday, ... or monday:friday
routing.bad.yaml:26:39: time_intervals[0].time_intervals[0].times[0].end_time: must be after start_time (ranges do not cross midnight; split them)
routing.bad.yaml:27:9: time_intervals[0].time_intervals[0].location: "Nowhere/City" is not a known time zone; use an IANA name like Europe/Berlin or UTC"#,
    ),
    (
        &["no-route.bad.yaml"],
        "no-route.bad.yaml: route: no alerts file has a route; add `route: {receiver: <name>}` to one of them",
    ),
    (
        &["two-routes-*.bad.yaml"],
        r#"two-routes-b.bad.yaml:1:1: route: a route is already defined in two-routes-a.bad.yaml; keep exactly one route over all alerts files
two-routes-b.bad.yaml:2:14: receivers[0].name: receiver "a" is already defined (two-routes-a.bad.yaml receivers[0]); receiver names must be unique over all alerts files"#,
    ),
    (
        &["syntax.bad.yaml", "nothing-*.yaml"],
        r#"vigil.yaml: alerts[1]: "nothing-*.yaml" matches no file; fix the path or remove the entry
syntax.bad.yaml:2:10: invalid YAML: did not find expected ',' or '}' at line 2 column 10, while parsing a flow mapping at line 1 column 8"#,
    ),
];

#[test]
fn bad_fixtures_report_every_problem_with_its_place() {
    for (globs, want) in BAD {
        let got = load_files(globs).err().unwrap_or_default();
        assert_eq!(got, *want, "\n--- {globs:?} got:\n{got}\n--- want:\n{want}");
    }
}

#[test]
fn check_config_reports_alerts_problems_and_exits_64() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = fixtures().join("routing.bad.yaml");
    let cfg = common::write_config(dir.path(), &format!("alerts: [{}]\n", bad.display()));
    let out = Command::new(common::vigil_bin())
        .args(["check", "config"])
        .arg(&cfg)
        .output()
        .expect("run vigil check config");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{err}");
    assert!(
        err.contains(&format!(
            "{}:9:7: route.routes[0].receiver: unknown receiver \"pagr\"",
            bad.display()
        )),
        "{err}"
    );
    assert!(err.contains("FAILED: 18 problems"), "{err}");
}

/// A threshold rule on the daemon's own `up` series fires at once (`for: 0s`), is routed by
/// the real daemon, and `/api/v1/alerts` shows where it goes.
#[test]
fn daemon_routes_a_firing_alert() {
    let dir = tempfile::tempdir().expect("tempdir");
    let alerts = write_alerts(dir.path(), ROUTED);
    let cfg = common::write_config(
        dir.path(),
        &format!(
            "scrape:\n  interval: 1s\n  targets:\n    - job: nothing\n      urls: [http://127.0.0.1:1/metrics]\nalerts: [{}]\n",
            alerts.display()
        ),
    );
    let d = common::Daemon::start(&cfg);
    let body = common::eventually(
        Duration::from_secs(30),
        "the alert in /api/v1/alerts",
        || {
            let (code, body) = d.get("/api/v1/alerts");
            (code == 200 && body.contains("\"firing\"")).then_some(body)
        },
    );
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    let alert = &v["data"]["alerts"][0];
    assert_eq!(alert["labels"]["alertname"], "TargetDown", "{body}");
    assert_eq!(
        alert["receivers"],
        serde_json::json!(["pager", "chat"]),
        "{body}"
    );
    assert_eq!(alert["notifies"], true, "{body}");
    // One group per receiver: the page route (continue) and the chat route.
    let groups = common::eventually(Duration::from_secs(10), "two groups", || {
        let (_, body) = d.get("/api/v2/alerts/groups");
        let v: serde_json::Value = serde_json::from_str(&body).ok()?;
        (v.as_array()?.len() == 2).then_some(v)
    });
    let mut receivers: Vec<String> = groups
        .as_array()
        .into_iter()
        .flatten()
        .map(|g| {
            g["receiver"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    receivers.sort();
    assert_eq!(receivers, vec!["chat", "pager"]);
    assert_eq!(
        groups[0]["labels"],
        serde_json::json!({"alertname": "TargetDown"})
    );
}

const ROUTED: &str = r#"
route:
  receiver: chat
  group_by: [alertname]
  routes:
    - matchers: [severity="page"]
      receiver: pager
      continue: true
    - matchers: [alertname=~"Target.*"]
      receiver: chat
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
"#;

fn write_alerts(dir: &Path, text: &str) -> PathBuf {
    let p = dir.join("alerts.yaml");
    std::fs::write(&p, text).expect("write alerts file");
    p
}
