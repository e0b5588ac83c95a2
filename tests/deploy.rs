//! The deployment artefacts under docker/: the Dockerfile's rules (a hadolint-like check, as
//! hadolint cannot be installed here), the compose stacks (every service's image, ports,
//! volumes and healthcheck; the vigil configs they mount pass `vigil check config`), and the
//! Kubernetes base (`kubectl kustomize` renders it; every object validates offline against the
//! Kubernetes OpenAPI schemas with kubernetes-validate; the configs in its ConfigMaps pass
//! `vigil check config`).

mod common;

use vigil::healthcheck;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;
use serde_yaml::Value;

/// Kubernetes version whose schemas the manifests are validated against.
const KUBERNETES_VERSION: &str = "1.34.0";

fn read(rel: &str) -> String {
    std::fs::read_to_string(common::repo().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn yaml(rel: &str) -> Value {
    serde_yaml::from_str(&read(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// Dockerfile instructions with continuation lines joined: (INSTRUCTION, arguments).
fn instructions(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let t = line.trim();
        if current.is_empty() && (t.is_empty() || t.starts_with('#')) {
            continue;
        }
        if let Some(head) = t.strip_suffix('\\') {
            current.push_str(head);
            current.push(' ');
            continue;
        }
        current.push_str(t);
        let (op, args) = current.split_once(' ').unwrap_or((&current, ""));
        out.push((op.to_uppercase(), args.trim().to_string()));
        current.clear();
    }
    out
}

/// The `cargo build` command of the Dockerfile's build stage (env assignments included).
fn dockerfile_build_command() -> String {
    let text = read("docker/Dockerfile");
    let run = instructions(&text)
        .into_iter()
        .find(|(op, args)| op == "RUN" && args.contains("cargo build"))
        .expect("a RUN with cargo build")
        .1;
    let words: Vec<&str> = run
        .split_whitespace()
        .filter(|w| !w.starts_with("--mount="))
        .collect();
    let joined = words.join(" ");
    joined
        .split(" && ")
        .next()
        .expect("command")
        .trim()
        .to_string()
}

#[test]
fn dockerfile_follows_the_rules() {
    let text = read("docker/Dockerfile");
    let ins = instructions(&text);
    let froms: Vec<&String> = ins
        .iter()
        .filter(|(op, _)| op == "FROM")
        .map(|(_, a)| a)
        .collect();
    assert!(froms.len() >= 2, "multi-stage build: {froms:?}");
    let args: Vec<String> = ins
        .iter()
        .filter(|(op, _)| op == "ARG")
        .map(|(_, a)| a.clone())
        .collect();
    for f in &froms {
        let image = f.split_whitespace().next().expect("image");
        // DL3006/DL3007: every base image tagged, never :latest.
        assert!(
            image.rsplit('/').next().is_some_and(|n| n.contains(':')),
            "untagged base image {image}"
        );
        assert!(!image.ends_with(":latest"), "{image} uses :latest");
        if image.contains("${") {
            for var in image.split("${").skip(1) {
                let name = var.split('}').next().expect("var");
                assert!(
                    args.iter().any(|a| a.starts_with(&format!("{name}="))),
                    "ARG {name} has no default"
                );
            }
        }
    }
    let runtime = froms.last().expect("runtime stage");
    // A static binary on the smallest distroless image (no libc there to link against).
    assert!(
        runtime.starts_with("gcr.io/distroless/static-debian12:nonroot"),
        "runtime: {runtime}"
    );
    // DL3002: the last USER is not root, numeric so runAsNonRoot can check it.
    let user = ins
        .iter()
        .rev()
        .find(|(op, _)| op == "USER")
        .map(|(_, a)| a.clone())
        .expect("USER");
    let uid: u32 = user
        .split(':')
        .next()
        .and_then(|u| u.parse().ok())
        .expect("numeric USER");
    assert_ne!(uid, 0, "runs as root");
    // DL3020: COPY, not ADD. DL3000: absolute WORKDIR.
    assert!(!ins.iter().any(|(op, _)| op == "ADD"), "use COPY, not ADD");
    for (op, a) in &ins {
        if op == "WORKDIR" {
            assert!(a.starts_with('/'), "WORKDIR {a} is not absolute");
        }
    }
    // Exec form for ENTRYPOINT, CMD and HEALTHCHECK (signals reach vigil; no shell in distroless).
    for op in ["ENTRYPOINT", "CMD"] {
        let a = &ins
            .iter()
            .find(|(o, _)| o == op)
            .unwrap_or_else(|| panic!("{op}"))
            .1;
        assert!(a.starts_with('['), "{op} in shell form: {a}");
    }
    let health = &ins
        .iter()
        .find(|(o, _)| o == "HEALTHCHECK")
        .expect("HEALTHCHECK")
        .1;
    assert!(
        health.contains("CMD [\"/usr/local/bin/vigil\", \"healthcheck\"]"),
        "{health}"
    );
    let exposed: Vec<&str> = ins
        .iter()
        .filter(|(o, _)| o == "EXPOSE")
        .flat_map(|(_, a)| a.split_whitespace())
        .collect();
    assert!(exposed.contains(&"9799") && exposed.contains(&"6443"));
    assert!(
        ins.iter()
            .any(|(o, a)| o == "VOLUME" && a.contains("/var/lib/vigil"))
    );
    let labels: String = ins
        .iter()
        .filter(|(o, _)| o == "LABEL")
        .map(|(_, a)| a.as_str())
        .collect();
    for key in [
        "title",
        "description",
        "licenses",
        "source",
        "version",
        "revision",
        "documentation",
    ] {
        assert!(
            labels.contains(&format!("org.opencontainers.image.{key}=")),
            "OCI label {key} missing"
        );
    }
    // Every COPY source from the context exists and is let through by .dockerignore.
    let ignore = read(".dockerignore");
    let allowed: Vec<&str> = ignore
        .lines()
        .filter_map(|l| l.trim().strip_prefix('!'))
        .collect();
    assert_eq!(
        ignore
            .lines()
            .find(|l| !l.starts_with('#') && !l.trim().is_empty()),
        Some("*"),
        ".dockerignore starts by excluding everything"
    );
    for (op, a) in &ins {
        if op != "COPY" || a.contains("--from=") {
            continue;
        }
        let words: Vec<&str> = a.split_whitespace().collect();
        for src in &words[..words.len() - 1] {
            assert!(
                common::repo().join(src).exists(),
                "COPY source {src} does not exist"
            );
            assert!(
                allowed
                    .iter()
                    .any(|p| src.starts_with(p.trim_end_matches('/'))),
                "COPY source {src} is excluded by .dockerignore"
            );
        }
    }
    let build = dockerfile_build_command();
    assert!(
        build.contains(
            "cargo build --profile image --locked --target x86_64-unknown-linux-musl --bin vigil"
        ),
        "{build}"
    );
    // The build stage installs what that target needs before the build runs.
    let build_at = ins
        .iter()
        .position(|(op, a)| op == "RUN" && a.contains("cargo build"))
        .expect("build RUN");
    assert!(
        ins[..build_at].iter().any(|(op, a)| op == "RUN"
            && a.contains("musl-tools")
            && a.contains("rustup target add x86_64-unknown-linux-musl")),
        "the build stage must install musl-tools and the musl Rust target before building"
    );
}

#[test]
fn ci_builds_the_binary_as_the_dockerfile_does() {
    // No Docker daemon runs here: CI builds the image's binary with the Dockerfile's own
    // command (same profile, target and flags, run by scripts/image.sh), so a Dockerfile that
    // stops compiling fails CI; then it smoke-tests that binary as the image runs it.
    let build = dockerfile_build_command();
    let script = read("scripts/image.sh");
    assert!(
        script.lines().any(|l| l.trim() == build),
        "scripts/image.sh must run the Dockerfile's build command verbatim:\n  {build}"
    );
    let ci = read(".ci/run");
    for step in ["scripts/image.sh build", "scripts/image.sh smoke"] {
        assert!(
            ci.lines().any(|l| l.trim() == step),
            ".ci/run must run `{step}`"
        );
    }
}

fn env_for_configs() -> Vec<(&'static str, &'static str)> {
    vec![
        (
            "VIGIL_POSTGRES_URL",
            "postgres://vigil:vigil@postgres:5432/vigil",
        ),
        ("VIGIL_REDIS_URL", "redis://redis:6379/0"),
        (
            "VIGIL_LEDGER_URL",
            "postgres://vigil:secret@ledger:5432/vigil",
        ),
        ("GRAFANA_TOKEN", "glsa_test"),
    ]
}

fn check_config(files: &[PathBuf]) {
    let out = Command::new(common::vigil_bin())
        .args(["check", "config"])
        .args(files)
        .envs(env_for_configs())
        .output()
        .expect("run vigil check config");
    assert!(
        out.status.success(),
        "vigil check config failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn service<'a>(compose: &'a Value, name: &str) -> &'a Value {
    compose["services"]
        .get(name)
        .unwrap_or_else(|| panic!("service {name} missing"))
}

/// Checks one compose service: a pinned image, a healthcheck, bind-mount sources that exist.
fn check_service(compose: &Value, name: &str, ports: bool) {
    let s = service(compose, name);
    let image = s["image"]
        .as_str()
        .unwrap_or_else(|| panic!("{name}: no image"));
    assert!(
        image.contains(':') && !image.ends_with(":latest"),
        "{name}: image {image} not pinned"
    );
    let test = &s["healthcheck"]["test"];
    assert!(
        test.as_sequence().is_some_and(|t| t.len() >= 2),
        "{name}: no healthcheck"
    );
    if ports {
        assert!(
            s["ports"].as_sequence().is_some_and(|p| !p.is_empty()),
            "{name}: no ports"
        );
    }
    let declared: BTreeSet<String> = compose["volumes"]
        .as_mapping()
        .map(|m| {
            m.keys()
                .filter_map(|k| k.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    for v in s["volumes"].as_sequence().into_iter().flatten() {
        let v = v.as_str().expect("short volume syntax");
        let source = v.split(':').next().expect("source");
        if source.starts_with('.') {
            let path = common::repo().join("docker").join(source);
            assert!(path.exists(), "{name}: bind source {source} does not exist");
        } else {
            assert!(
                declared.contains(source),
                "{name}: volume {source} not declared"
            );
        }
    }
}

#[test]
fn compose_stack_is_complete_and_its_configs_are_valid() {
    let compose = yaml("docker/compose.yaml");
    for name in [
        "vigil",
        "postgres",
        "redis",
        "kafka",
        "prometheus",
        "alertmanager",
        "grafana",
        "mailpit",
    ] {
        check_service(&compose, name, true);
    }
    let vigil = service(&compose, "vigil");
    assert_eq!(vigil["build"]["dockerfile"], "docker/Dockerfile");
    assert_eq!(vigil["read_only"], true);
    assert_eq!(vigil["healthcheck"]["test"][1], "/usr/local/bin/vigil");
    // Kafka runs in KRaft mode, one node being broker and controller.
    assert_eq!(
        service(&compose, "kafka")["environment"]["KAFKA_PROCESS_ROLES"],
        "broker,controller"
    );
    // Grafana gets a Prometheus datasource and the generated dashboards.
    let grafana_configs = compose["configs"]["grafana-datasources"]["content"]
        .as_str()
        .expect("datasources");
    assert!(grafana_configs.contains("url: http://prometheus:9090"));
    // Prometheus scrapes vigil; Alertmanager mails Mailpit; Vigil mails Mailpit and pushes to
    // Alertmanager.
    let prom = yaml("docker/prometheus/prometheus.yml");
    let targets = serde_yaml::to_string(&prom["scrape_configs"]).expect("yaml");
    assert!(targets.contains("vigil:9799"), "{targets}");
    let am = yaml("docker/alertmanager/alertmanager.yml");
    assert_eq!(
        am["receivers"][0]["email_configs"][0]["smarthost"],
        "mailpit:1025"
    );
    let alerts = yaml("docker/vigil/alerts/compose.yaml");
    assert_eq!(
        alerts["receivers"][0]["email_configs"][0]["smarthost"],
        "mailpit:1025"
    );
    // The image ships the demo SLOs: the copy must not drift from rules/.
    assert_eq!(
        read("docker/vigil/rules/demo.yaml"),
        read("rules/demo.yaml"),
        "docker/vigil/rules/demo.yaml differs from rules/demo.yaml; copy it again"
    );
    // Every environment variable the config reads is set on the service.
    let config = read("docker/vigil/vigil.yaml");
    for var in ["VIGIL_POSTGRES_URL", "VIGIL_REDIS_URL"] {
        assert!(config.contains(var));
        assert!(vigil["environment"].get(var).is_some(), "{var} not set");
    }
    check_config(&[common::repo().join("docker/vigil/vigil.yaml")]);

    let sidecar = yaml("docker/compose.sidecar.yaml");
    check_service(&sidecar, "vigil", true);
    assert_eq!(sidecar["networks"]["app"]["external"], true);
    check_config(&[common::repo().join("docker/vigil/sidecar/vigil.yaml")]);
}

#[test]
fn healthcheck_probe_reads_healthz() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = common::write_config(dir.path(), "");
    let d = common::Daemon::start(&config);
    let url = format!("{}/healthz", d.url);
    assert_eq!(
        healthcheck::probe(&url, std::time::Duration::from_secs(5)),
        Ok(())
    );
    let err = healthcheck::probe(
        &format!("{}/no-such-path", d.url),
        std::time::Duration::from_secs(5),
    );
    assert!(err.is_err_and(|e| e.contains("404")));
}

/// Renders docker/k8s/base with kubectl; returns the documents.
fn render_kustomize() -> (String, Vec<Value>) {
    let kubectl = common::service("VIGIL_TEST_KUBECTL", "kubectl (for kustomize)");
    let out = Command::new(kubectl)
        .args(["kustomize"])
        .arg(common::repo().join("docker/k8s/base"))
        .output()
        .expect("run kubectl kustomize");
    assert!(
        out.status.success(),
        "kubectl kustomize failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("utf-8");
    let docs = serde_yaml::Deserializer::from_str(&text)
        .map(|d| Value::deserialize(d).expect("rendered yaml"))
        .collect();
    (text, docs)
}

fn find<'a>(docs: &'a [Value], kind: &str, name_prefix: &str) -> &'a Value {
    docs.iter()
        .find(|d| {
            d["kind"] == kind
                && d["metadata"]["name"]
                    .as_str()
                    .is_some_and(|n| n.starts_with(name_prefix))
        })
        .unwrap_or_else(|| panic!("{kind} {name_prefix} not rendered"))
}

#[test]
fn kubernetes_base_renders_and_validates() {
    let (text, docs) = render_kustomize();
    let dir = tempfile::tempdir().expect("tempdir");
    let rendered = dir.path().join("rendered.yaml");
    std::fs::write(&rendered, &text).expect("write");
    let python = common::service("VIGIL_TEST_PYTHON", "Python with kubernetes-validate");
    let out = Command::new(python)
        .args([
            "-m",
            "kubernetes_validate",
            "--strict",
            "-k",
            KUBERNETES_VERSION,
        ])
        .arg(&rendered)
        .output()
        .expect("run kubernetes-validate");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "kubernetes-validate:\n{report}");
    let passed = report.matches(" passed for resource ").count();
    assert_eq!(passed, docs.len(), "every object validated:\n{report}");

    let kinds: BTreeSet<&str> = docs.iter().filter_map(|d| d["kind"].as_str()).collect();
    for kind in [
        "Namespace",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "ConfigMap",
        "DaemonSet",
        "Deployment",
        "PodDisruptionBudget",
        "Service",
        "APIService",
    ] {
        assert!(kinds.contains(kind), "{kind} missing: {kinds:?}");
    }
    // The DaemonSet: NODE_NAME from the downward API, probes, non-root read-only, every node.
    let ds = find(&docs, "DaemonSet", "vigil-node");
    let pod = &ds["spec"]["template"]["spec"];
    let c = &pod["containers"][0];
    let node_env = c["env"]
        .as_sequence()
        .expect("env")
        .iter()
        .find(|e| e["name"] == "NODE_NAME")
        .expect("NODE_NAME");
    assert_eq!(
        node_env["valueFrom"]["fieldRef"]["fieldPath"],
        "spec.nodeName"
    );
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(pod["tolerations"][0]["operator"], "Exists");
    assert!(c["resources"]["requests"]["cpu"].is_string());
    assert!(c["resources"]["limits"]["memory"].is_string());
    // The aggregator, as the external metrics API expects it.
    let dep = find(&docs, "Deployment", "vigil-aggregator");
    assert_eq!(dep["spec"]["replicas"], 2);
    let pod = &dep["spec"]["template"];
    assert_eq!(
        pod["metadata"]["labels"]["app.kubernetes.io/component"],
        "aggregator"
    );
    assert_eq!(pod["spec"]["serviceAccountName"], "vigil-aggregator");
    let c = &pod["spec"]["containers"][0];
    assert!(
        c["ports"]
            .as_sequence()
            .expect("ports")
            .iter()
            .any(|p| p["name"] == "https" && p["containerPort"] == 6443)
    );
    assert!(
        c["volumeMounts"]
            .as_sequence()
            .expect("mounts")
            .iter()
            .any(|m| m["mountPath"] == "/etc/vigil/tls")
    );
    assert_eq!(
        find(&docs, "RoleBinding", "vigil-aggregator-auth-reader")["metadata"]["namespace"],
        "kube-system"
    );
    // The ConfigMaps carry the files under docker/k8s/base/config verbatim.
    let node_cm = find(&docs, "ConfigMap", "vigil-node-");
    assert_eq!(
        node_cm["data"]["vigil.yaml"].as_str(),
        Some(read("docker/k8s/base/config/node.yaml").as_str())
    );
    let agg_cm = find(&docs, "ConfigMap", "vigil-aggregator-");
    assert!(
        agg_cm["data"]["vigil.yaml"]
            .as_str()
            .is_some_and(|t| t.contains("\nhpa:"))
    );
}

#[test]
fn kubernetes_configs_pass_check_config() {
    // The configs refer to the pod's mount points (/etc/vigil/...): lay the same tree out in a
    // temporary directory and point the configs at it.
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    for sub in ["config", "rules", "tls", "requestheader"] {
        std::fs::create_dir_all(root.join(sub)).expect("mkdir");
    }
    let base = Path::new("docker/k8s/base/config");
    std::fs::write(
        root.join("rules/slos.yaml"),
        read(&base.join("rules.yaml").display().to_string()),
    )
    .expect("write");
    std::fs::write(
        root.join("config/alerts.yaml"),
        read(&base.join("alerts.yaml").display().to_string()),
    )
    .expect("write");
    for f in [
        "tls/tls.crt",
        "tls/tls.key",
        "requestheader/requestheader-client-ca-file",
    ] {
        std::fs::write(root.join(f), "").expect("write");
    }
    let mut files = Vec::new();
    for name in ["node.yaml", "aggregator.yaml"] {
        let text = read(&base.join(name).display().to_string())
            .replace("/etc/vigil/", &format!("{}/", root.display()));
        let path = root.join("config").join(name);
        std::fs::write(&path, text).expect("write");
        files.push(path);
    }
    check_config(&files);
}
