//! The external metrics API end to end: a real `vigil run` daemon serving
//! `external.metrics.k8s.io/v1beta1` over TLS with its generated certificate and token, read by
//! real clients: kubectl (`get --raw` through a kubeconfig, `api-resources`), the Python
//! `kubernetes` client's CustomObjectsApi, and reqwest for the authentication cases. Kafka lag
//! comes from the real test broker through the kafka collector.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{Daemon, eventually};
use serde_json::Value;
use vigil::hpa::quantity::Quantity;

const WAIT: Duration = Duration::from_secs(60);
const BASE: &str = "/apis/external.metrics.k8s.io/v1beta1";

/// A daemon with `hpa:` on an ephemeral port, and what a client needs to reach it.
struct Api {
    d: Daemon,
    url: String,
    ca: PathBuf,
    token_file: PathBuf,
    kubeconfig: PathBuf,
    dir: PathBuf,
}

/// Starts vigil with `extra` top-level YAML and the `hpa:` block body `hpa` (indented 2).
fn start(dir: &Path, extra: &str, hpa: &str) -> Api {
    let cfg = common::write_config(dir, &format!("{extra}hpa:\n  listen: 127.0.0.1:0\n{hpa}"));
    let mut d = Daemon::start(&cfg);
    let (url, token_file) = d.hpa_endpoint(WAIT);
    let ca = dir.join("data/hpa-ca.crt");
    let token = std::fs::read_to_string(&token_file).expect("token file");
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: vigil\n  cluster:\n    server: {url}\n    certificate-authority: {}\n\
             users:\n- name: vigil\n  user:\n    token: {}\ncontexts:\n- name: vigil\n  context:\n    cluster: vigil\n    user: vigil\n\
             current-context: vigil\n",
            ca.display(),
            token.trim()
        ),
    )
    .expect("kubeconfig");
    Api {
        d,
        url,
        ca,
        token_file,
        kubeconfig,
        dir: dir.to_path_buf(),
    }
}

impl Api {
    /// Runs kubectl with this kubeconfig; returns (success, stdout, stderr).
    fn kubectl(&self, args: &[&str]) -> (bool, String, String) {
        let kubectl = common::service("VIGIL_TEST_KUBECTL", "kubectl");
        let out = Command::new(kubectl)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(self.dir.join("kube-cache"))
            .args(args)
            .env("HOME", &self.dir)
            .output()
            .expect("run kubectl");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// `kubectl get --raw PATH` as JSON; panics on failure.
    fn raw(&self, path: &str) -> Value {
        let (ok, out, err) = self.kubectl(&["get", "--raw", path]);
        assert!(ok, "kubectl get --raw {path} failed: {err}");
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{path}: {e}: {out}"))
    }

    /// `kubectl get --raw PATH` that must fail; returns stderr.
    fn raw_err(&self, path: &str) -> String {
        let (ok, out, err) = self.kubectl(&["get", "--raw", path]);
        assert!(!ok, "kubectl get --raw {path} should fail: {out}");
        err
    }

    fn token(&self) -> String {
        std::fs::read_to_string(&self.token_file)
            .expect("token")
            .trim()
            .to_string()
    }
}

/// The single item of a value list, checked for the ExternalMetricValueList shape.
fn single_item(list: &Value, metric: &str) -> Value {
    assert_eq!(list["kind"], "ExternalMetricValueList", "{list}");
    assert_eq!(list["apiVersion"], "external.metrics.k8s.io/v1beta1");
    assert_eq!(list["metadata"], serde_json::json!({}));
    let items = list["items"].as_array().expect("items");
    assert_eq!(items.len(), 1, "{list}");
    let item = items[0].clone();
    assert_eq!(item["metricName"], metric);
    let ts = item["timestamp"].as_str().expect("timestamp");
    assert!(
        chrono::DateTime::parse_from_rfc3339(ts).is_ok() && ts.ends_with('Z'),
        "RFC 3339 UTC timestamp: {ts}"
    );
    let v = item["value"].as_str().expect("value is a string");
    let q = Quantity::parse(v).unwrap_or_else(|e| panic!("{v} is not a quantity: {e}"));
    assert_eq!(q.canonical(), v, "value in canonical form");
    item
}

fn value(item: &Value) -> f64 {
    Quantity::parse(item["value"].as_str().expect("value"))
        .expect("quantity")
        .to_f64()
}

fn demo_extra() -> String {
    let port = common::free_port();
    format!(
        "demo:\n  enabled: true\n  listen: 127.0.0.1:{port}\n  requests_per_second: 200\n  error_rate: 0\n\
         scrape:\n  targets:\n    - job: demo\n      urls: [http://127.0.0.1:{port}/metrics]\n      interval: 1s\n      timeout: 900ms\n\
         rules: [{}]\n",
        common::repo().join("rules/demo.yaml").display()
    )
}

#[test]
fn kubectl_and_python_read_discovery_and_values() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let api = start(
        tmp.path(),
        &demo_extra(),
        "  metrics:\n\
         \x20   - name: demo-availability-burn-rate-1h\n      slo: demo/availability\n      value: burn_rate\n      window: 1h\n\
         \x20   - name: demo-up\n      selector: up{job=\"demo\"}\n      aggregate: sum\n      by: [job]\n\
         \x20   - name: prod-only\n      selector: up\n      namespaces: [prod]\n",
    );

    // Discovery, as the aggregator and kubectl read it.
    let apis = api.raw("/apis");
    assert_eq!(apis["kind"], "APIGroupList");
    assert_eq!(apis["groups"][0]["name"], "external.metrics.k8s.io");
    assert_eq!(
        apis["groups"][0]["preferredVersion"]["groupVersion"],
        "external.metrics.k8s.io/v1beta1"
    );
    let group = api.raw("/apis/external.metrics.k8s.io");
    assert_eq!(group["kind"], "APIGroup");
    assert_eq!(group["versions"][0]["version"], "v1beta1");
    let list = api.raw(BASE);
    assert_eq!(list["kind"], "APIResourceList");
    assert_eq!(list["groupVersion"], "external.metrics.k8s.io/v1beta1");
    let resources = list["resources"].as_array().expect("resources");
    let names: Vec<&str> = resources
        .iter()
        .map(|r| r["name"].as_str().expect("name"))
        .collect();
    assert_eq!(
        names,
        ["demo-availability-burn-rate-1h", "demo-up", "prod-only"]
    );
    for r in resources {
        assert_eq!(r["namespaced"], true);
        assert_eq!(r["kind"], "ExternalMetricValueList");
        assert_eq!(r["verbs"], serde_json::json!(["get"]));
    }
    let (ok, out, err) = api.kubectl(&["api-resources", "--api-group=external.metrics.k8s.io"]);
    assert!(ok, "kubectl api-resources: {err}");
    for n in &names {
        assert!(out.contains(n), "{n} in api-resources:\n{out}");
    }
    assert!(out.contains("ExternalMetricValueList"), "{out}");
    let swagger = api.raw("/openapi/v2");
    assert_eq!(swagger["swagger"], "2.0");
    assert!(
        swagger["paths"]
            .as_object()
            .expect("paths")
            .contains_key(&format!("{BASE}/namespaces/{{namespace}}/demo-up")),
        "{swagger}"
    );
    let v3 = api.raw("/openapi/v3");
    let rel = v3["paths"]["apis/external.metrics.k8s.io/v1beta1"]["serverRelativeURL"]
        .as_str()
        .expect("v3 discovery")
        .to_string();
    assert_eq!(api.raw(&rel)["openapi"], "3.0.0");

    // A value from the store: the demo target is up.
    let item = eventually(WAIT, "demo-up = 1", || {
        let item = single_item(
            &api.raw(&format!("{BASE}/namespaces/default/demo-up")),
            "demo-up",
        );
        (item["value"] == "1").then_some(item)
    });
    assert_eq!(item["metricLabels"], serde_json::json!({"job": "demo"}));

    // Label selectors filter on metricLabels; no data answers one "0" item.
    let sel = single_item(
        &api.raw(&format!(
            "{BASE}/namespaces/default/demo-up?labelSelector=job%20in%20(demo,other)"
        )),
        "demo-up",
    );
    assert_eq!(sel["value"], "1");
    let none = single_item(
        &api.raw(&format!(
            "{BASE}/namespaces/default/demo-up?labelSelector=job%3Dnope"
        )),
        "demo-up",
    );
    assert_eq!(none["value"], "0");
    assert_eq!(none["metricLabels"], serde_json::json!({"job": "nope"}));
    let err = api.raw_err(&format!(
        "{BASE}/namespaces/default/demo-up?labelSelector=job%20in%20()"
    ));
    assert!(
        err.contains("BadRequest") && err.contains("unable to parse requirements"),
        "{err}"
    );

    // Errors are Status objects kubectl understands.
    let err = api.raw_err(&format!("{BASE}/namespaces/default/nope"));
    assert!(
        err.contains("NotFound") && err.contains("the server could not find the metric nope"),
        "{err}"
    );
    let err = api.raw_err(&format!("{BASE}/namespaces/default/prod-only"));
    assert!(err.contains("NotFound"), "{err}");
    single_item(
        &api.raw(&format!("{BASE}/namespaces/prod/prod-only")),
        "prod-only",
    );

    // An SLO's burn rate: raise the demo's error rate and watch it climb (objective 99.5%, so
    // 50% errors burn at about 100).
    let (code, body) = common::http_post(&format!("{}/demo/error-rate", api.d.url), "0.5");
    assert_eq!(code, 200, "{body}");
    let burn = eventually(WAIT, "1h burn rate above 10", || {
        let item = single_item(
            &api.raw(&format!(
                "{BASE}/namespaces/default/demo-availability-burn-rate-1h"
            )),
            "demo-availability-burn-rate-1h",
        );
        (value(&item) > 10.0).then_some(item)
    });
    assert!(value(&burn) < 201.0, "{burn}");

    // The Python kubernetes client reads the same value list through CustomObjectsApi.
    let python = common::service("VIGIL_TEST_PYTHON", "python with the kubernetes client");
    let out = Command::new(python)
        .arg("-c")
        .arg(
            "import json, sys\n\
             from kubernetes import client, config\n\
             config.load_kube_config(config_file=sys.argv[1])\n\
             api = client.CustomObjectsApi()\n\
             r = api.list_namespaced_custom_object('external.metrics.k8s.io', 'v1beta1', 'default', 'demo-up', label_selector='job=demo')\n\
             print(json.dumps(r))\n",
        )
        .arg(&api.kubeconfig)
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "python: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let py: Value = serde_json::from_slice(&out.stdout).expect("python json");
    let item = single_item(&py, "demo-up");
    assert_eq!(item["value"], "1");
    assert_eq!(item["metricLabels"], serde_json::json!({"job": "demo"}));

    // The agent's /metrics counts the requests; the token never reaches the log.
    let (_, metrics) = api.d.get("/metrics");
    assert!(
        common::metric_value(
            &metrics,
            "vigil_hpa_requests_total{handler=\"values\",code=\"200\"}"
        )
        .is_some_and(|v| v >= 5.0),
        "{metrics}"
    );
    assert!(!api.d.log_text().contains(&api.token()));
}

fn unique(prefix: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!("{prefix}-{}-{nanos}", std::process::id())
}

fn kafka_fixture(bootstrap: &str, args: &[&str]) {
    let python = common::service("VIGIL_TEST_PYTHON", "python with kafka-python");
    let out = Command::new(python)
        .arg(common::repo().join("scripts/kafka_lag_fixture.py"))
        .arg(bootstrap)
        .args(args)
        .output()
        .expect("run scripts/kafka_lag_fixture.py");
    assert!(
        out.status.success(),
        "kafka_lag_fixture.py {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Consumer lag produced on the real broker is the value kubectl prints, per group and topic.
#[test]
fn kafka_lag_reaches_kubectl() {
    let b = common::service("VIGIL_TEST_KAFKA_BROKERS", "the Kafka broker");
    let topic = unique("vigil-hpa");
    let group = format!("{topic}-g");
    kafka_fixture(&b, &["create", &topic, "2"]);
    kafka_fixture(&b, &["produce", &topic, "9"]);
    kafka_fixture(&b, &["consume", &topic, &group, "4"]);

    let tmp = tempfile::tempdir().expect("tempdir");
    let api = start(
        tmp.path(),
        &format!(
            "collectors:\n  - name: lag\n    type: kafka\n    interval: 1s\n    timeout: 1s\n    \
             brokers: [\"{b}\"]\n    topics: {{include: [\"{topic}\"]}}\n    groups: {{include: [\"{group}.*\"]}}\n"
        ),
        &format!(
            "  metrics:\n    - name: kafka-lag\n      selector: kafka_consumergroup_lag_sum{{topic=\"{topic}\"}}\n      aggregate: sum\n      by: [consumergroup, topic]\n"
        ),
    );
    let path = format!("{BASE}/namespaces/default/kafka-lag?labelSelector=consumergroup%3D{group}");
    let item = eventually(WAIT, "lag 5 through kubectl", || {
        let item = single_item(&api.raw(&path), "kafka-lag");
        (item["value"] == "5").then_some(item)
    });
    assert_eq!(
        item["metricLabels"],
        serde_json::json!({"consumergroup": group, "topic": topic})
    );
    // Consume the rest: the lag drops to a real 0 (with the topic label, not the no-data item).
    kafka_fixture(&b, &["consume", &topic, &group, "5"]);
    let item = eventually(WAIT, "lag 0 through kubectl", || {
        let item = single_item(&api.raw(&path), "kafka-lag");
        (item["value"] == "0").then_some(item)
    });
    assert_eq!(item["metricLabels"]["topic"], topic);
}

/// A CA and certificates for the front-proxy cases.
struct Pki {
    ca_pem: String,
    good: String,
    wrong_cn: String,
    rogue: String,
}

fn pki() -> Pki {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let ca = |cn: &str| {
        let key = KeyPair::generate().expect("key");
        let mut p = CertificateParams::new(Vec::<String>::new()).expect("params");
        p.distinguished_name.push(DnType::CommonName, cn);
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let cert = p.self_signed(&key).expect("ca");
        (cert.pem(), Issuer::new(p, key))
    };
    let client = |cn: &str, issuer: &Issuer<'_, KeyPair>| {
        let key = KeyPair::generate().expect("key");
        let mut p = CertificateParams::new(Vec::<String>::new()).expect("params");
        p.distinguished_name.push(DnType::CommonName, cn);
        p.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let cert = p.signed_by(&key, issuer).expect("client");
        format!("{}{}", key.serialize_pem(), cert.pem())
    };
    let (ca_pem, issuer) = ca("front-proxy-ca");
    let (_, rogue_issuer) = ca("front-proxy-ca");
    Pki {
        good: client("front-proxy-client", &issuer),
        wrong_cn: client("someone-else", &issuer),
        rogue: client("front-proxy-client", &rogue_issuer),
        ca_pem,
    }
}

fn client(ca: &Path, identity: Option<&str>) -> reqwest::blocking::Client {
    let ca = reqwest::Certificate::from_pem(&std::fs::read(ca).expect("ca")).expect("ca pem");
    let mut b = reqwest::blocking::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(ca)
        .timeout(Duration::from_secs(10));
    if let Some(pem) = identity {
        b = b.identity(reqwest::Identity::from_pem(pem.as_bytes()).expect("identity"));
    }
    b.build().expect("client")
}

fn get(c: &reqwest::blocking::Client, url: &str, headers: &[(&str, &str)]) -> (u16, Value) {
    let mut r = c.get(url);
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    let resp = r.send().unwrap_or_else(|e| panic!("GET {url}: {e:?}"));
    let code = resp.status().as_u16();
    let text = resp.text().unwrap_or_default();
    (
        code,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn assert_status(got: (u16, Value), code: u16, reason: &str) {
    assert_eq!(got.0, code, "{}", got.1);
    assert_eq!(got.1["kind"], "Status", "{}", got.1);
    assert_eq!(got.1["apiVersion"], "v1");
    assert_eq!(got.1["status"], "Failure");
    assert_eq!(got.1["code"], code);
    assert_eq!(got.1["reason"], reason);
}

#[test]
fn authentication_tokens_and_front_proxy_certificates() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let pki = pki();
    let ca_file = tmp.path().join("front-proxy-ca.crt");
    std::fs::write(&ca_file, &pki.ca_pem).expect("ca");
    let hpa = format!(
        "  auth:\n    requestheader:\n      client_ca_file: {}\n      allowed_names: [front-proxy-client]\n\
         \x20 metrics:\n    - name: up\n      selector: up\n",
        ca_file.display()
    );
    let api = start(tmp.path(), "", &hpa);
    let token = api.token();
    let mode = std::fs::metadata(&api.token_file)
        .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o777)
        .expect("token file metadata");
    assert_eq!(mode, 0o600, "token file mode");
    let values = format!("{}{BASE}/namespaces/default/up", api.url);
    let apis = format!("{}/apis", api.url);
    let plain = client(&api.ca, None);

    // Health endpoints are open; everything else needs credentials.
    for p in ["/healthz", "/readyz", "/livez"] {
        let r = plain.get(format!("{}{p}", api.url)).send().expect("health");
        assert_eq!(r.status().as_u16(), 200, "{p}");
    }
    assert_status(get(&plain, &apis, &[]), 401, "Unauthorized");
    assert_status(get(&plain, &values, &[]), 401, "Unauthorized");
    assert_status(
        get(
            &plain,
            &values,
            &[("Authorization", "Bearer not-the-token")],
        ),
        401,
        "Unauthorized",
    );
    let bearer = format!("Bearer {token}");
    let (code, body) = get(&plain, &values, &[("Authorization", &bearer)]);
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["kind"], "ExternalMetricValueList");

    // Headers alone never authenticate.
    assert_status(
        get(&plain, &values, &[("X-Remote-User", "system:admin")]),
        401,
        "Unauthorized",
    );
    // A client certificate from another CA cannot set X-Remote-User.
    let rogue = client(&api.ca, Some(&pki.rogue));
    assert_status(
        get(&rogue, &values, &[("X-Remote-User", "system:admin")]),
        401,
        "Unauthorized",
    );
    // The right CA but a common name that is not allowed.
    let wrong_cn = client(&api.ca, Some(&pki.wrong_cn));
    assert_status(
        get(&wrong_cn, &values, &[("X-Remote-User", "system:admin")]),
        401,
        "Unauthorized",
    );
    // The front proxy: right CA, allowed name, the user in X-Remote-User.
    let front = client(&api.ca, Some(&pki.good));
    let (code, body) = get(
        &front,
        &values,
        &[
            ("X-Remote-User", "system:kube-controller-manager"),
            ("X-Remote-Group", "system:authenticated"),
        ],
    );
    assert_eq!(code, 200, "{body}");
    // The front proxy without a user header is not a user.
    assert_status(get(&front, &values, &[]), 401, "Unauthorized");
    // Aggregated discovery only: 406 with a Status.
    assert_status(
        get(
            &plain,
            &apis,
            &[
                ("Authorization", &bearer),
                (
                    "Accept",
                    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList",
                ),
            ],
        ),
        406,
        "NotAcceptable",
    );
    assert!(
        !api.d.log_text().contains(&token),
        "the token is never logged"
    );

    // A restart reuses the certificate and the token.
    let ca_before = std::fs::read(&api.ca).expect("ca");
    drop(api);
    let again = start(tmp.path(), "", &hpa);
    assert_eq!(again.token(), token);
    assert_eq!(std::fs::read(&again.ca).expect("ca"), ca_before);
    let plain = client(&again.ca, None);
    let (code, _) = get(
        &plain,
        &format!("{}{BASE}/namespaces/default/up", again.url),
        &[("Authorization", &bearer)],
    );
    assert_eq!(code, 200);
}
