//! Kubernetes service discovery end to end: a real `vigil run` whose `kubernetes_sd_configs`
//! points (through `kubeconfig_file`) at an API server written here. No kube-apiserver can run
//! on these machines, so the server speaks the API's wire format itself: list responses
//! (`PodList` with a `resourceVersion`) built from recorded Pod objects (tests/fixtures/k8s/),
//! and a watch stream of `ADDED` / `MODIFIED` / `DELETED` events followed by an `ERROR` event
//! with a `410 Gone` Status that forces the client to list again. It honours the
//! `spec.nodeName` field selector and checks the bearer token, as the real one does.
//!
//! The daemon's `/api/v1/targets` must follow the pods: the `prometheus.io/scrape|port|path`
//! annotation convention (relabelling of `__meta_kubernetes_*` labels) selects and addresses
//! them, and the selected pods are really scraped.

mod common;
#[path = "common/fake_k8s.rs"]
mod fake_k8s;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

use fake_k8s::{WatchBody, status};

const TOKEN: &str = "kube-test-token";
const WAIT: Duration = Duration::from_secs(30);

/// The fake API server's state: the pods, the resource version, and the open watch streams
/// (each with the node its field selector asked for).
#[derive(Default)]
struct FakeApi {
    pods: BTreeMap<String, Value>,
    resource_version: u64,
    watchers: Vec<(Option<String>, tokio::sync::mpsc::UnboundedSender<Bytes>)>,
    lists: usize,
    watches: usize,
    queries: Vec<String>,
    unauthorized: usize,
}

type Shared = Arc<Mutex<FakeApi>>;

impl FakeApi {
    fn next_version(&mut self, pod: &mut Value) -> u64 {
        self.resource_version += 1;
        pod["metadata"]["resourceVersion"] = json!(self.resource_version.to_string());
        self.resource_version
    }

    /// Sends one watch event to every stream whose field selector matches the pod's node.
    fn emit(&mut self, kind: &str, pod: &Value) {
        let node = pod["spec"]["nodeName"].as_str().map(str::to_string);
        let line = format!("{}\n", json!({"type": kind, "object": pod}));
        self.watchers.retain(|(want, tx)| {
            if want.is_some() && *want != node {
                return !tx.is_closed();
            }
            tx.send(Bytes::from(line.clone())).is_ok()
        });
    }

    fn apply(&mut self, kind: &str, mut pod: Value, announce: bool) {
        self.next_version(&mut pod);
        let name = pod["metadata"]["name"].as_str().expect("name").to_string();
        self.pods.insert(name, pod.clone());
        if announce {
            self.emit(kind, &pod);
        }
    }

    fn delete(&mut self, name: &str) {
        let mut pod = self.pods.remove(name).expect("pod to delete");
        self.next_version(&mut pod);
        self.emit("DELETED", &pod);
    }

    /// Ends every watch with `410 Gone`, as the API server does when the client's resource
    /// version has been compacted away.
    fn gone(&mut self, status: &Value) {
        let line = format!("{}\n", json!(status));
        for (_, tx) in self.watchers.drain(..) {
            let _ = tx.send(Bytes::from(line.clone()));
        }
    }
}

async fn pods(
    State(api): State<Shared>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let mut api = api.lock().expect("fake api lock");
    let query = query.unwrap_or_default();
    api.queries.push(query.clone());
    if headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        != Some(&format!("Bearer {TOKEN}"))
    {
        api.unauthorized += 1;
        return status(401, "Unauthorized", "Unauthorized");
    }
    let params: BTreeMap<String, String> = reqwest::Url::parse(&format!("http://x/?{query}"))
        .expect("query")
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let node = params.get("fieldSelector").and_then(|f| {
        f.split(',')
            .find_map(|s| s.strip_prefix("spec.nodeName="))
            .map(str::to_string)
    });
    if params.get("watch").is_some_and(|w| w == "true" || w == "1") {
        api.watches += 1;
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        api.watchers.push((node, tx));
        return (
            [(header::CONTENT_TYPE, "application/json")],
            Body::new(WatchBody(rx)),
        )
            .into_response();
    }
    api.lists += 1;
    let items: Vec<&Value> = api
        .pods
        .values()
        .filter(|p| node.is_none() || p["spec"]["nodeName"].as_str() == node.as_deref())
        .collect();
    let list = json!({"kind": "PodList", "apiVersion": "v1",
        "metadata": {"resourceVersion": api.resource_version.to_string()}, "items": items});
    (
        [(header::CONTENT_TYPE, "application/json")],
        list.to_string(),
    )
        .into_response()
}

fn fixture(name: &str) -> Value {
    let path = common::repo().join("tests/fixtures/k8s").join(name);
    serde_json::from_str(&std::fs::read_to_string(&path).expect("read fixture")).expect("json")
}

/// Points a recorded pod at the local metrics endpoint: pod IP 127.0.0.1 (when it has one) and
/// `prometheus.io/port` the fake server's port.
fn localize(mut pod: Value, port: u16) -> Value {
    if pod["status"]["podIP"]
        .as_str()
        .is_some_and(|ip| !ip.is_empty())
    {
        pod["status"]["podIP"] = json!("127.0.0.1");
        pod["status"]["podIPs"] = json!([{"ip": "127.0.0.1"}]);
    }
    if pod["metadata"]["annotations"]["prometheus.io/port"].is_string() {
        pod["metadata"]["annotations"]["prometheus.io/port"] = json!(port.to_string());
    }
    pod
}

/// Active targets by `pod` label: (health, scrape URL, labels).
fn active(d: &common::Daemon) -> BTreeMap<String, (String, String, Value)> {
    let (code, body) = d.get("/api/v1/targets");
    assert_eq!(code, 200, "{body}");
    let v: Value = serde_json::from_str(&body).expect("targets json");
    v["data"]["activeTargets"]
        .as_array()
        .expect("activeTargets")
        .iter()
        .filter(|t| t["scrapePool"] == "kubernetes-pods")
        .map(|t| {
            (
                t["labels"]["pod"].as_str().unwrap_or_default().to_string(),
                (
                    t["health"].as_str().unwrap_or_default().to_string(),
                    t["scrapeUrl"].as_str().unwrap_or_default().to_string(),
                    t["labels"].clone(),
                ),
            )
        })
        .collect()
}

fn dropped_pods(d: &common::Daemon) -> BTreeSet<String> {
    let (_, body) = d.get("/api/v1/targets?state=dropped");
    let v: Value = serde_json::from_str(&body).expect("targets json");
    v["data"]["droppedTargets"]
        .as_array()
        .expect("droppedTargets")
        .iter()
        .filter_map(|t| t["discoveredLabels"]["__meta_kubernetes_pod_name"].as_str())
        .map(str::to_string)
        .collect()
}

fn wait_pods(d: &common::Daemon, want: &[&str], what: &str) {
    let want: BTreeSet<String> = want.iter().map(|s| s.to_string()).collect();
    let mut last = BTreeSet::new();
    let deadline = std::time::Instant::now() + WAIT;
    let mut found = false;
    while std::time::Instant::now() < deadline {
        last = active(d).into_keys().collect();
        if last == want {
            found = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        found,
        "{what}: active pods {last:?}, want {want:?}\n{}",
        d.log_text()
    );
}

#[test]
fn daemon_targets_follow_pods_on_the_watch_stream() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let api: Shared = Arc::default();
    let router = Router::new()
        .route("/api/v1/pods", get(pods))
        .route(
            "/metrics",
            get(|| async { "# TYPE app_up gauge\napp_up 1\n" }),
        )
        .with_state(api.clone());
    let addr: SocketAddr = rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        addr
    });
    let port = addr.port();
    {
        let mut a = api.lock().expect("lock");
        let list = fixture("pods.json");
        a.resource_version = list["metadata"]["resourceVersion"]
            .as_str()
            .and_then(|v| v.parse().ok())
            .expect("list resourceVersion");
        for pod in list["items"].as_array().expect("items") {
            let name = pod["metadata"]["name"].as_str().expect("name").to_string();
            a.pods.insert(name, localize(pod.clone(), port));
        }
    }
    let later: Vec<Value> = fixture("pods-later.json")
        .as_array()
        .expect("pods")
        .iter()
        .map(|p| localize(p.clone(), port))
        .collect();

    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: http://{addr}\n\
             users:\n- name: vigil\n  user:\n    token: {TOKEN}\n\
             contexts:\n- name: fake\n  context:\n    cluster: fake\n    user: vigil\n    namespace: shop\n\
             current-context: fake\n"
        ),
    )
    .expect("write kubeconfig");
    let config = common::write_config(
        dir.path(),
        &format!(
            r#"scrape:
  targets:
    - job: kubernetes-pods
      interval: 1s
      kubernetes_sd_configs:
        - role: pod
          kubeconfig_file: {}
          node_local: true
      relabel_configs:
        - source_labels: [__meta_kubernetes_pod_annotation_prometheus_io_scrape]
          action: keep
          regex: "true"
        - source_labels: [__meta_kubernetes_pod_annotation_prometheus_io_path]
          regex: (.+)
          target_label: __metrics_path__
        - source_labels: [__address__, __meta_kubernetes_pod_annotation_prometheus_io_port]
          regex: '([^:]+)(?::\d+)?;(\d+)'
          replacement: $1:$2
          target_label: __address__
        - action: labelmap
          regex: __meta_kubernetes_pod_label_(.+)
        - source_labels: [__meta_kubernetes_namespace]
          target_label: namespace
        - source_labels: [__meta_kubernetes_pod_name]
          target_label: pod
"#,
            kubeconfig.display()
        ),
    );
    let d = common::Daemon::start_with_env(&config, &[("NODE_NAME", "node-1")]);

    // The initial list: web-1 is on another node (the field selector), worker-0 carries no
    // prometheus.io/scrape annotation (dropped by relabelling, listed as dropped).
    wait_pods(&d, &["web-0"], "after the initial list");
    assert!(dropped_pods(&d).contains("worker-0"));
    let (health, url, labels) = common::eventually(WAIT, "web-0 scraped", || {
        active(&d).remove("web-0").filter(|(h, _, _)| h == "up")
    });
    assert_eq!(health, "up");
    assert_eq!(url, format!("http://127.0.0.1:{port}/metrics"));
    assert_eq!(labels["namespace"], "shop");
    assert_eq!(labels["app_kubernetes_io_name"], "web");
    assert_eq!(labels["instance"], format!("127.0.0.1:{port}"));

    // ADDED.
    api.lock()
        .expect("lock")
        .apply("ADDED", later[0].clone(), true);
    wait_pods(&d, &["web-0", "web-2"], "after ADDED web-2");

    // MODIFIED: web-0 opts out of scraping; a label change on web-2 reaches its target labels.
    {
        let mut a = api.lock().expect("lock");
        let mut web0 = a.pods["web-0"].clone();
        web0["metadata"]["annotations"]["prometheus.io/scrape"] = json!("false");
        a.apply("MODIFIED", web0, true);
        let mut web2 = a.pods["web-2"].clone();
        web2["metadata"]["labels"]["app.kubernetes.io/version"] = json!("1.5.0");
        a.apply("MODIFIED", web2, true);
    }
    wait_pods(&d, &["web-2"], "after MODIFIED web-0 (scrape=false)");
    common::eventually(WAIT, "web-2's new version label", || {
        active(&d)
            .get("web-2")
            .filter(|(_, _, l)| l["app_kubernetes_io_version"] == "1.5.0")
            .map(|_| ())
    });

    // DELETED; and a pod without an IP (Pending) yields no target.
    {
        let mut a = api.lock().expect("lock");
        a.delete("web-2");
        a.apply("ADDED", later[2].clone(), true);
    }
    wait_pods(&d, &[], "after DELETED web-2");

    // A change the client never hears about (web-3 created without an event), then 410 Gone:
    // only a fresh list can show web-3.
    let lists_before = {
        let mut a = api.lock().expect("lock");
        a.apply("ADDED", later[1].clone(), false);
        let lists = a.lists;
        a.gone(&fixture("watch-410.json"));
        lists
    };
    wait_pods(&d, &["web-3"], "after 410 Gone and the relist");
    let a = api.lock().expect("lock");
    assert!(
        a.lists > lists_before,
        "no list after 410 Gone ({} lists)",
        a.lists
    );
    assert!(a.watches >= 2, "{} watches", a.watches);
    assert_eq!(a.unauthorized, 0, "requests without the kubeconfig token");
    for q in &a.queries {
        assert!(
            q.contains("fieldSelector=spec.nodeName%3Dnode-1"),
            "request without the node field selector: {q}"
        );
    }
    drop(a);
    assert!(
        d.log_text().contains("410 Gone"),
        "the relist is logged:\n{}",
        d.log_text()
    );
}
