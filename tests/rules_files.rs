//! Every SLO file in `rules/` loads, has a test file beside it (`<name>.test.yaml`), and its
//! tests pass under `vigil test rules` (run through the real binary, as a user would).

mod common;

use std::process::Command;

#[test]
fn every_rules_file_loads_and_its_tests_pass() {
    let dir = common::repo().join("rules");
    let mut specs = 0;
    for entry in std::fs::read_dir(&dir).expect("rules/") {
        let path = entry.expect("entry").path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        if !name.ends_with(".yaml") || name.ends_with(".test.yaml") {
            continue;
        }
        specs += 1;
        let slos = vigil::slo::spec::load_file(&path).unwrap_or_else(|e| panic!("{e}"));
        assert!(!slos.is_empty(), "{name} defines no SLO");
        let test = path.with_file_name(name.replace(".yaml", ".test.yaml"));
        assert!(test.exists(), "{name} has no tests: add {}", test.display());
        let out = Command::new(common::vigil_bin())
            .args(["test", "rules"])
            .arg(&test)
            .output()
            .expect("run vigil test rules");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "vigil test rules {}:\n{stdout}",
            test.display()
        );
        assert!(stdout.contains("SUCCESS"), "{stdout}");
    }
    assert!(specs > 0, "no SLO files in rules/");
}

#[test]
fn a_failing_expectation_is_reported_and_exits_1() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::copy(
        common::repo().join("rules/demo.yaml"),
        dir.path().join("demo.yaml"),
    )
    .expect("copy");
    let test = dir.path().join("t.test.yaml");
    std::fs::write(
        &test,
        "rule_files: [demo.yaml]\ntests:\n  - name: wrong\n    input_series:\n      - series: 'http_requests_total{job=\"demo\",code=\"200\"}'\n        values: '0+10x10'\n    expect:\n      - {at: 10m, slo: availability, window: 5m, total: 51}\n",
    )
    .expect("write");
    let out = Command::new(common::vigil_bin())
        .args(["test", "rules"])
        .arg(&test)
        .output()
        .expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("wrong: at 10m, slo availability, window 5m: total expected 51, got 50"),
        "{stdout}"
    );
}
