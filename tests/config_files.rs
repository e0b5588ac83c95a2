//! Config fixtures: every `tests/fixtures/config/*.good.yaml` loads; every `*.bad.yaml` fails
//! with exactly the problems listed in its `# expect:` lines (`{file}` stands for its path).
//! Also `vigil check config` exit codes, and the repository's own `vigil.yaml`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use vigil::config::{ConfigError, ConfigSource};

fn fixtures(suffix: &str) -> Vec<PathBuf> {
    let dir = common::repo().join("tests/fixtures/config");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("fixtures dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .collect();
    files.sort();
    assert!(
        !files.is_empty(),
        "no *{suffix} fixtures in {}",
        dir.display()
    );
    files
}

#[test]
fn good_fixtures_load() {
    for file in fixtures(".good.yaml") {
        let source = ConfigSource::File(file.clone());
        if let Err(e) = source.load() {
            panic!("{} should load:\n{e}", file.display());
        }
    }
}

#[test]
fn bad_fixtures_fail_with_the_expected_problems() {
    for file in fixtures(".bad.yaml") {
        let text = std::fs::read_to_string(&file).expect("read fixture");
        let name = file.display().to_string();
        let dir = file
            .parent()
            .map(|d| d.display().to_string())
            .unwrap_or_default();
        let expected: Vec<String> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# expect: "))
            .map(|l| l.replace("{file}", &name).replace("{dir}", &dir))
            .collect();
        assert!(!expected.is_empty(), "{name} has no '# expect:' lines");
        let err = match ConfigSource::File(file.clone()).load() {
            Ok(_) => panic!("{name} should fail"),
            Err(e) => e,
        };
        let got: Vec<String> = err.to_string().lines().map(str::to_string).collect();
        assert_eq!(got, expected, "problems of {name}");
    }
}

#[test]
fn repository_config_is_valid() {
    let source = ConfigSource::File(common::repo().join("vigil.yaml"));
    let cfg = source.load().unwrap_or_else(|e| panic!("vigil.yaml: {e}"));
    assert!(cfg.demo.enabled, "the default config runs the demo");
    // The embedded copy is the same file.
    assert_eq!(
        std::fs::read_to_string(common::repo().join("vigil.yaml"))
            .ok()
            .as_deref(),
        Some(vigil::config::EMBEDDED_DEFAULT)
    );
}

#[test]
fn missing_file_names_it() {
    let err = ConfigSource::File(PathBuf::from("/nonexistent/vigil.yaml"))
        .load()
        .err();
    match err {
        Some(ConfigError::Read { file, .. }) => assert_eq!(file, "/nonexistent/vigil.yaml"),
        other => panic!("expected a read error, got {other:?}"),
    }
}

fn check(args: &[&Path]) -> (i32, String, String) {
    let out = Command::new(common::vigil_bin())
        .args(["check", "config"])
        .args(args)
        .output()
        .expect("run vigil check config");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_config_exit_codes() {
    let repo_cfg = common::repo().join("vigil.yaml");
    let (code, out, _) = check(&[&repo_cfg]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("SUCCESS"), "{out}");

    let bad = common::repo().join("tests/fixtures/config/ranges.bad.yaml");
    let (code, _, err) = check(&[&repo_cfg, &bad]);
    assert_eq!(code, 64);
    assert!(
        err.contains("ranges.bad.yaml:17:3: demo.error_rate: 1.5 is not a fraction"),
        "{err}"
    );
    assert!(err.contains("FAILED: 7 problems"), "{err}");

    let (code, _, err) = check(&[Path::new("/nonexistent/vigil.yaml")]);
    assert_eq!(code, 64);
    assert!(
        err.contains("/nonexistent/vigil.yaml: cannot read the config file"),
        "{err}"
    );
}

#[test]
fn run_refuses_a_bad_config_with_exit_64() {
    let bad = common::repo().join("tests/fixtures/config/listen.bad.yaml");
    let out = Command::new(common::vigil_bin())
        .arg("run")
        .arg("--config")
        .arg(&bad)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("agent.listen: \":9799\" is not an address"),
        "{err}"
    );
}

/// docs/configuration.md documents every key: each key path of the fixture that sets every key
/// appears in it, so the reference cannot drift from the code.
#[test]
fn reference_documents_every_key() {
    fn paths(v: &serde_yaml::Value, prefix: &str, out: &mut Vec<String>) {
        match v {
            serde_yaml::Value::Mapping(m) => {
                // These maps hold user label/parameter names, not keys.
                if ["external_labels", "labels", "params"]
                    .iter()
                    .any(|k| prefix.ends_with(k))
                {
                    return;
                }
                for (k, child) in m {
                    let key = k.as_str().unwrap_or_default();
                    let path = if prefix.is_empty() {
                        key.to_string()
                    } else {
                        format!("{prefix}.{key}")
                    };
                    out.push(path.clone());
                    paths(child, &path, out);
                }
            }
            serde_yaml::Value::Sequence(items) => {
                for item in items {
                    paths(item, &format!("{prefix}[]"), out);
                }
            }
            _ => {}
        }
    }
    let full = std::fs::read_to_string(common::repo().join("tests/fixtures/config/full.good.yaml"))
        .expect("fixture");
    let value: serde_yaml::Value = serde_yaml::from_str(&full).expect("yaml");
    let mut keys = Vec::new();
    paths(&value, "", &mut keys);
    let doc = std::fs::read_to_string(common::repo().join("docs/configuration.md")).expect("docs");
    for key in keys.iter().filter(|k| k.contains('.')) {
        assert!(
            doc.contains(&format!("`{key}`")),
            "docs/configuration.md does not document `{key}`"
        );
    }
    // And the fixture really sets every key: it must equal the full struct with no defaults.
    let cfg = vigil::config::ConfigSource::File(
        common::repo().join("tests/fixtures/config/full.good.yaml"),
    )
    .load()
    .expect("load");
    assert!(cfg.agent.id.is_some() && !cfg.agent.external_labels.is_empty());
}
