//! Kubernetes service discovery, roles `endpoints` and `endpointslice`, end to end: a real
//! `vigil run` whose `kubernetes_sd_configs` points (through `kubeconfig_file`) at an API server
//! written here, as in tests/kubernetes_sd.rs. The server holds recorded objects
//! (tests/fixtures/kubernetes/: Endpoints, EndpointSlices, Services and Pods in the API's list
//! shape) and serves, per resource, list responses with a `resourceVersion` and `?watch=true`
//! streams of `ADDED` / `MODIFIED` / `DELETED` events, ended on demand by an `ERROR` event with
//! a `410 Gone` Status that forces a relist. It honours the `spec.nodeName` field selector on
//! pods and checks the bearer token.
//!
//! `/api/v1/targets` must follow the objects: the Service's `prometheus.io/*` annotations and a
//! keep on the endpoint port name select and address the targets, the Service's and the Pods'
//! labels are attached, and the selected targets are really scraped from a local HTTP server.

mod common;
#[path = "common/fake_k8s.rs"]
mod fake_k8s;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

use fake_k8s::{WatchBody, status};

const TOKEN: &str = "kube-endpoints-test-token";
const WAIT: Duration = Duration::from_secs(30);
const WEB_0: &str = "web-7d9c8b6f5-x2k8p";
const WEB_1: &str = "web-7d9c8b6f5-q9m4s";

/// One watch stream: its resource and the node its field selector asked for.
struct Watcher {
    resource: String,
    node: Option<String>,
    tx: tokio::sync::mpsc::UnboundedSender<Bytes>,
}

/// The fake API server: objects per resource (`pods`, `services`, `endpoints`,
/// `endpointslices`) by `namespace/name`, one resource version, the open watches, and what was
/// asked.
#[derive(Default)]
struct FakeApi {
    objects: BTreeMap<String, BTreeMap<String, Value>>,
    resource_version: u64,
    watchers: Vec<Watcher>,
    lists: BTreeMap<String, usize>,
    queries: Vec<(String, String)>,
    unauthorized: usize,
}

type Shared = Arc<Mutex<FakeApi>>;

/// `kind` and `apiVersion` of a resource, as watch events carry them.
fn kind_of(resource: &str) -> (&'static str, &'static str) {
    match resource {
        "pods" => ("Pod", "v1"),
        "services" => ("Service", "v1"),
        "endpoints" => ("Endpoints", "v1"),
        "endpointslices" => ("EndpointSlice", "discovery.k8s.io/v1"),
        other => panic!("unknown resource {other}"),
    }
}

fn key_of(obj: &Value) -> String {
    format!(
        "{}/{}",
        obj["metadata"]["namespace"].as_str().expect("namespace"),
        obj["metadata"]["name"].as_str().expect("name")
    )
}

impl FakeApi {
    /// Sends one event to every watch of `resource` whose field selector matches.
    fn emit(&mut self, resource: &str, kind: &str, obj: &Value) {
        let (k, api_version) = kind_of(resource);
        let mut obj = obj.clone();
        obj["kind"] = json!(k);
        obj["apiVersion"] = json!(api_version);
        let node = obj["spec"]["nodeName"].as_str().map(str::to_string);
        let line = format!("{}\n", json!({"type": kind, "object": obj}));
        self.watchers.retain(|w| {
            if w.resource != resource || (w.node.is_some() && w.node != node) {
                return !w.tx.is_closed();
            }
            w.tx.send(Bytes::from(line.clone())).is_ok()
        });
    }

    /// Stores an object with a new resource version; announces it when `announce`.
    fn apply(&mut self, resource: &str, kind: &str, mut obj: Value, announce: bool) {
        self.resource_version += 1;
        obj["metadata"]["resourceVersion"] = json!(self.resource_version.to_string());
        self.objects
            .entry(resource.to_string())
            .or_default()
            .insert(key_of(&obj), obj.clone());
        if announce {
            self.emit(resource, kind, &obj);
        }
    }

    fn get(&self, resource: &str, key: &str) -> Value {
        self.objects[resource][key].clone()
    }

    fn delete(&mut self, resource: &str, key: &str) {
        let mut obj = self
            .objects
            .get_mut(resource)
            .and_then(|m| m.remove(key))
            .expect("object to delete");
        self.resource_version += 1;
        obj["metadata"]["resourceVersion"] = json!(self.resource_version.to_string());
        self.emit(resource, "DELETED", &obj);
    }

    /// Ends every watch with `410 Gone` (the client's resource version was compacted away).
    fn gone(&mut self, status: &Value) {
        let line = format!("{}\n", json!(status));
        for w in self.watchers.drain(..) {
            let _ = w.tx.send(Bytes::from(line.clone()));
        }
    }
}

/// `GET /api/v1/{resource}` and `/apis/discovery.k8s.io/v1/{resource}`: list or watch.
async fn resource(
    State(api): State<Shared>,
    Path(resource): Path<String>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let mut api = api.lock().expect("fake api lock");
    let query = query.unwrap_or_default();
    api.queries.push((resource.clone(), query.clone()));
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
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        api.watchers.push(Watcher { resource, node, tx });
        return (
            [(header::CONTENT_TYPE, "application/json")],
            Body::new(WatchBody(rx)),
        )
            .into_response();
    }
    *api.lists.entry(resource.clone()).or_default() += 1;
    let (kind, api_version) = kind_of(&resource);
    let items: Vec<&Value> = api
        .objects
        .get(&resource)
        .into_iter()
        .flat_map(|m| m.values())
        .filter(|o| node.is_none() || o["spec"]["nodeName"].as_str() == node.as_deref())
        .collect();
    let list = json!({"kind": format!("{kind}List"), "apiVersion": api_version,
        "metadata": {"resourceVersion": api.resource_version.to_string()}, "items": items});
    (
        [(header::CONTENT_TYPE, "application/json")],
        list.to_string(),
    )
        .into_response()
}

fn fixture(name: &str) -> Value {
    let path = common::repo().join("tests/fixtures/kubernetes").join(name);
    serde_json::from_str(&std::fs::read_to_string(&path).expect("read fixture")).expect("json")
}

/// Points recorded objects at the local metrics server: every pod and endpoint IP becomes
/// 127.0.0.1 and the Service's `prometheus.io/port` the server's port.
fn localize(mut obj: Value, port: u16) -> Value {
    if obj["status"]["podIP"].is_string() {
        obj["status"]["podIP"] = json!("127.0.0.1");
        obj["status"]["podIPs"] = json!([{"ip": "127.0.0.1"}]);
    }
    if obj["metadata"]["annotations"]["prometheus.io/port"].is_string() {
        obj["metadata"]["annotations"]["prometheus.io/port"] = json!(port.to_string());
    }
    for subset in obj["subsets"].as_array_mut().into_iter().flatten() {
        for list in ["addresses", "notReadyAddresses"] {
            for a in subset[list].as_array_mut().into_iter().flatten() {
                a["ip"] = json!("127.0.0.1");
            }
        }
    }
    for e in obj["endpoints"].as_array_mut().into_iter().flatten() {
        e["addresses"] = json!(["127.0.0.1"]);
    }
    obj
}

/// Which role a test runs, and what differs between them.
#[derive(Clone, Copy, PartialEq)]
enum Role {
    Endpoints,
    EndpointSlice,
}

impl Role {
    fn name(self) -> &'static str {
        match self {
            Role::Endpoints => "endpoints",
            Role::EndpointSlice => "endpointslice",
        }
    }

    fn resource(self) -> &'static str {
        match self {
            Role::Endpoints => "endpoints",
            Role::EndpointSlice => "endpointslices",
        }
    }

    /// The key of the `web` Service's object.
    fn web(self) -> &'static str {
        match self {
            Role::Endpoints => "shop/web",
            Role::EndpointSlice => "shop/web-7xk2p",
        }
    }

    /// `__meta_kubernetes_endpoint_` or `__meta_kubernetes_endpointslice_`.
    fn meta(self) -> &'static str {
        match self {
            Role::Endpoints => "__meta_kubernetes_endpoint_",
            Role::EndpointSlice => "__meta_kubernetes_endpointslice_",
        }
    }

    /// The label saying whether an address is ready.
    fn ready_label(self) -> String {
        match self {
            Role::Endpoints => "__meta_kubernetes_endpoint_ready".into(),
            Role::EndpointSlice => {
                "__meta_kubernetes_endpointslice_endpoint_conditions_ready".into()
            }
        }
    }

    /// The `web` object without the address of `pod`.
    fn without(self, mut obj: Value, pod: &str) -> Value {
        let refers = |a: &Value| a["targetRef"]["name"] == pod;
        match self {
            Role::Endpoints => {
                for subset in obj["subsets"].as_array_mut().expect("subsets") {
                    for list in ["addresses", "notReadyAddresses"] {
                        if let Some(a) = subset[list].as_array_mut() {
                            a.retain(|a| !refers(a));
                        }
                    }
                }
            }
            Role::EndpointSlice => {
                obj["endpoints"]
                    .as_array_mut()
                    .expect("endpoints")
                    .retain(|e| !refers(e));
            }
        }
        obj
    }

    /// The `web` object with `pod`'s address back, not ready (a failing readiness probe).
    fn not_ready(self, current: Value, original: &Value, pod: &str) -> Value {
        let mut obj = current;
        match self {
            Role::Endpoints => {
                let addr = original["subsets"][0]["addresses"]
                    .as_array()
                    .expect("addresses")
                    .iter()
                    .find(|a| a["targetRef"]["name"] == pod)
                    .expect("address")
                    .clone();
                obj["subsets"][0]["notReadyAddresses"] = json!([addr]);
            }
            Role::EndpointSlice => {
                let mut e = original["endpoints"]
                    .as_array()
                    .expect("endpoints")
                    .iter()
                    .find(|e| e["targetRef"]["name"] == pod)
                    .expect("endpoint")
                    .clone();
                e["conditions"] = json!({"ready": false, "serving": false, "terminating": false});
                obj["endpoints"].as_array_mut().expect("endpoints").push(e);
            }
        }
        obj
    }
}

/// Active targets of the job by `pod` label: (health, scrape URL, labels, discovered labels).
fn active(d: &common::Daemon) -> BTreeMap<String, (String, String, Value, Value)> {
    let (code, body) = d.get("/api/v1/targets");
    assert_eq!(code, 200, "{body}");
    let v: Value = serde_json::from_str(&body).expect("targets json");
    v["data"]["activeTargets"]
        .as_array()
        .expect("activeTargets")
        .iter()
        .filter(|t| t["scrapePool"] == "kubernetes-service-endpoints")
        .map(|t| {
            (
                t["labels"]["pod"].as_str().unwrap_or_default().to_string(),
                (
                    t["health"].as_str().unwrap_or_default().to_string(),
                    t["scrapeUrl"].as_str().unwrap_or_default().to_string(),
                    t["labels"].clone(),
                    t["discoveredLabels"].clone(),
                ),
            )
        })
        .collect()
}

/// Dropped targets' discovered labels.
fn dropped(d: &common::Daemon) -> Vec<Value> {
    let (_, body) = d.get("/api/v1/targets?state=dropped");
    let v: Value = serde_json::from_str(&body).expect("targets json");
    v["data"]["droppedTargets"]
        .as_array()
        .expect("droppedTargets")
        .iter()
        .map(|t| t["discoveredLabels"].clone())
        .collect()
}

fn wait_pods(d: &common::Daemon, want: &[&str], what: &str) {
    let want: BTreeSet<String> = want.iter().map(|s| s.to_string()).collect();
    let mut last = BTreeSet::new();
    let deadline = std::time::Instant::now() + WAIT;
    while std::time::Instant::now() < deadline {
        last = active(d).into_keys().collect();
        if last == want {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!(
        "{what}: active pods {last:?}, want {want:?}\n{}",
        d.log_text()
    );
}

/// Starts the fake API server (with the recorded objects) and a metrics endpoint on one port.
fn start_api(rt: &tokio::runtime::Runtime) -> (Shared, SocketAddr) {
    let api: Shared = Arc::default();
    let router = Router::new()
        .route("/api/v1/{resource}", get(resource))
        .route("/apis/discovery.k8s.io/v1/{resource}", get(resource))
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
    {
        let mut a = api.lock().expect("lock");
        for (resource, file) in [
            ("pods", "pods.json"),
            ("services", "services.json"),
            ("endpoints", "endpoints.json"),
            ("endpointslices", "endpointslices.json"),
        ] {
            let list = fixture(file);
            let rv: u64 = list["metadata"]["resourceVersion"]
                .as_str()
                .and_then(|v| v.parse().ok())
                .expect("list resourceVersion");
            a.resource_version = a.resource_version.max(rv);
            for obj in list["items"].as_array().expect("items") {
                let obj = localize(obj.clone(), addr.port());
                a.objects
                    .entry(resource.to_string())
                    .or_default()
                    .insert(key_of(&obj), obj);
            }
        }
    }
    (api, addr)
}

fn write_kubeconfig(dir: &std::path::Path, addr: SocketAddr) -> std::path::PathBuf {
    let kubeconfig = dir.join("kubeconfig");
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
    kubeconfig
}

/// The whole scenario for one role; `node` runs it with `node_local` on that node.
fn targets_follow_the_watch_streams(role: Role, node: Option<&str>) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let (api, addr) = start_api(&rt);
    let port = addr.port();
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = write_kubeconfig(dir.path(), addr);
    let meta = role.meta();
    let config = common::write_config(
        dir.path(),
        &format!(
            r#"scrape:
  targets:
    - job: kubernetes-service-endpoints
      interval: 1s
      kubernetes_sd_configs:
        - role: {role}
          kubeconfig_file: {kubeconfig}
          node_local: {node_local}
      relabel_configs:
        - source_labels: [__meta_kubernetes_service_annotation_prometheus_io_scrape]
          action: keep
          regex: "true"
        - source_labels: [{meta}port_name]
          action: keep
          regex: metrics
        - source_labels: [__meta_kubernetes_service_annotation_prometheus_io_path]
          regex: (.+)
          target_label: __metrics_path__
        - source_labels: [__address__, __meta_kubernetes_service_annotation_prometheus_io_port]
          regex: '([^:]+)(?::\d+)?;(\d+)'
          replacement: $1:$2
          target_label: __address__
        - action: labelmap
          regex: __meta_kubernetes_service_label_(.+)
        - source_labels: [__meta_kubernetes_namespace]
          target_label: namespace
        - source_labels: [__meta_kubernetes_service_name]
          target_label: service
        - source_labels: [__meta_kubernetes_pod_name]
          target_label: pod
        - source_labels: [{ready}]
          target_label: ready
        - source_labels: [__meta_kubernetes_pod_label_app_kubernetes_io_version]
          target_label: version
"#,
            role = role.name(),
            kubeconfig = kubeconfig.display(),
            node_local = node.is_some(),
            ready = role.ready_label(),
        ),
    );
    let env: Vec<(&str, &str)> = node.map(|n| ("NODE_NAME", n)).into_iter().collect();
    let d = common::Daemon::start_with_env(&config, &env);
    let res = role.resource();
    let web = role.web();
    let original = api.lock().expect("lock").get(res, web);
    // Under node_local on node-1, WEB_1 (on node-2) never shows.
    let both: &[&str] = if node.is_some() {
        &[WEB_0]
    } else {
        &[WEB_0, WEB_1]
    };

    // The initial lists: the web Service's metrics port, per pod; db (no scrape annotation)
    // and the http port are dropped by relabelling.
    wait_pods(&d, both, "after the initial lists");
    let (health, url, labels, discovered) = common::eventually(WAIT, "web-0 scraped", || {
        active(&d).remove(WEB_0).filter(|(h, ..)| h == "up")
    });
    assert_eq!(health, "up");
    assert_eq!(url, format!("http://127.0.0.1:{port}/metrics"));
    assert_eq!(labels["namespace"], "shop");
    assert_eq!(labels["service"], "web");
    assert_eq!(labels["tier"], "frontend", "service labels by labelmap");
    assert_eq!(labels["ready"], "true");
    assert_eq!(labels["version"], "1.4.2", "pod labels");
    assert_eq!(labels["instance"], format!("127.0.0.1:{port}"));
    let d0 = &discovered;
    assert_eq!(d0["__address__"], "127.0.0.1:9102");
    assert_eq!(d0["__meta_kubernetes_pod_container_port_name"], "metrics");
    assert_eq!(d0["__meta_kubernetes_pod_container_name"], "app");
    assert_eq!(d0["__meta_kubernetes_pod_node_name"], "node-1");
    assert_eq!(
        d0["__meta_kubernetes_pod_label_app_kubernetes_io_name"],
        "web"
    );
    assert_eq!(d0["__meta_kubernetes_service_cluster_ip"], "10.96.14.20");
    assert_eq!(d0[format!("{meta}port_protocol")], "TCP");
    assert_eq!(d0[format!("{meta}address_target_kind")], "Pod");
    assert_eq!(d0[format!("{meta}address_target_name")], WEB_0);
    match role {
        Role::Endpoints => {
            assert_eq!(d0["__meta_kubernetes_endpoints_name"], "web");
            assert_eq!(d0["__meta_kubernetes_endpoint_node_name"], "node-1");
            assert_eq!(d0["__meta_kubernetes_endpoints_label_tier"], "frontend");
        }
        Role::EndpointSlice => {
            assert_eq!(d0["__meta_kubernetes_endpointslice_name"], "web-7xk2p");
            assert_eq!(d0["__meta_kubernetes_endpointslice_address_type"], "IPv4");
            assert_eq!(d0["__meta_kubernetes_endpointslice_port"], "9102");
            assert_eq!(
                d0["__meta_kubernetes_endpointslice_endpoint_node_name"],
                "node-1"
            );
            assert_eq!(
                d0["__meta_kubernetes_endpointslice_endpoint_zone"],
                "zone-a"
            );
            assert_eq!(
                d0["__meta_kubernetes_endpointslice_endpoint_conditions_serving"],
                "true"
            );
            assert_eq!(
                d0["__meta_kubernetes_endpointslice_label_kubernetes_io_service_name"],
                "web"
            );
        }
    }
    let dropped_now = dropped(&d);
    assert!(
        dropped_now
            .iter()
            .any(|t| t["__meta_kubernetes_service_name"] == "db"
                && t["__address__"] == "127.0.0.1:5432"),
        "db's endpoint is discovered and dropped: {dropped_now:#?}"
    );
    assert!(
        dropped_now
            .iter()
            .any(|t| t[format!("{meta}port_name")] == "http"),
        "the http port is dropped by the port-name keep"
    );

    // MODIFIED: WEB_1's address leaves the object (and WEB_0's stays).
    {
        let mut a = api.lock().expect("lock");
        let obj = role.without(a.get(res, web), WEB_1);
        a.apply(res, "MODIFIED", obj, true);
    }
    if node.is_none() {
        wait_pods(&d, &[WEB_0], "after MODIFIED removed web-1's address");
    }
    // MODIFIED: WEB_0's address goes and comes back not ready.
    {
        let mut a = api.lock().expect("lock");
        let obj = role.without(a.get(res, web), WEB_0);
        a.apply(res, "MODIFIED", obj, true);
    }
    wait_pods(&d, &[], "after MODIFIED removed web-0's address");
    {
        let mut a = api.lock().expect("lock");
        let obj = role.not_ready(a.get(res, web), &original, WEB_0);
        a.apply(res, "MODIFIED", obj, true);
    }
    common::eventually(WAIT, "web-0 back, not ready", || {
        active(&d)
            .get(WEB_0)
            .filter(|(_, _, l, _)| l["ready"] == "false")
            .map(|_| ())
    });

    // A Service change reaches the targets of its endpoints: the label, then the opt-out.
    {
        let mut a = api.lock().expect("lock");
        let mut svc = a.get("services", "shop/web");
        svc["metadata"]["labels"]["tier"] = json!("edge");
        a.apply("services", "MODIFIED", svc, true);
    }
    common::eventually(WAIT, "the service's new label", || {
        active(&d)
            .get(WEB_0)
            .filter(|(_, _, l, _)| l["tier"] == "edge")
            .map(|_| ())
    });
    // A Pod change too: a new pod label on WEB_0.
    {
        let mut a = api.lock().expect("lock");
        let key = format!("shop/{WEB_0}");
        let mut pod = a.get("pods", &key);
        pod["metadata"]["labels"]["app.kubernetes.io/version"] = json!("1.5.0");
        a.apply("pods", "MODIFIED", pod, true);
    }
    common::eventually(WAIT, "the pod's new label", || {
        active(&d)
            .get(WEB_0)
            .filter(|(_, _, l, _)| l["version"] == "1.5.0")
            .map(|_| ())
    });

    // DELETED drops every target of the object.
    api.lock().expect("lock").delete(res, web);
    wait_pods(&d, &[], "after DELETED");

    // The object comes back without any event, then 410 Gone: only a relist can show it.
    let lists_before = {
        let mut a = api.lock().expect("lock");
        a.apply(res, "ADDED", original.clone(), false);
        let lists = a.lists.get(res).copied().unwrap_or(0);
        a.gone(&fixture("watch-410.json"));
        lists
    };
    wait_pods(&d, both, "after 410 Gone and the relist");
    let a = api.lock().expect("lock");
    let lists_after = a.lists.get(res).copied().unwrap_or(0);
    assert!(
        lists_after > lists_before,
        "no new list of {res} after 410 Gone ({lists_after})"
    );
    assert_eq!(a.unauthorized, 0, "requests without the kubeconfig token");
    for r in [res, "services", "pods"] {
        assert!(
            a.queries.iter().any(|(q, _)| q == r),
            "{r} never listed or watched"
        );
    }
    if let Some(n) = node {
        for (r, q) in &a.queries {
            let filtered = q.contains(&format!("fieldSelector=spec.nodeName%3D{n}"));
            assert_eq!(
                filtered,
                r == "pods",
                "{r}?{q}: only pods are filtered by node"
            );
        }
    }
    drop(a);
    assert!(
        d.log_text().contains("410 Gone"),
        "the relist is logged:\n{}",
        d.log_text()
    );
}

#[test]
fn endpoints_role_targets_follow_the_watch_streams() {
    targets_follow_the_watch_streams(Role::Endpoints, None);
}

#[test]
fn endpointslice_role_targets_follow_the_watch_streams() {
    targets_follow_the_watch_streams(Role::EndpointSlice, None);
}

#[test]
fn endpointslice_role_node_local_keeps_this_nodes_endpoints() {
    targets_follow_the_watch_streams(Role::EndpointSlice, Some("node-1"));
}

#[test]
fn endpoints_role_node_local_keeps_this_nodes_endpoints() {
    targets_follow_the_watch_streams(Role::Endpoints, Some("node-1"));
}

/// The recorded objects are valid Kubernetes objects (strict schema of Kubernetes 1.34, via
/// kubernetes-validate in the test services' Python), so the fake server serves the real shape.
#[test]
fn fixtures_are_valid_kubernetes_objects() {
    let python = common::service("VIGIL_TEST_PYTHON", "Python with kubernetes-validate");
    let dir = common::repo().join("tests/fixtures/kubernetes");
    let script = r#"
import json, sys, kubernetes_validate
kinds = {"PodList": "Pod", "ServiceList": "Service", "EndpointsList": "Endpoints",
         "EndpointSliceList": "EndpointSlice"}
n = 0
for f in sys.argv[1:]:
    lst = json.load(open(f))
    for item in lst["items"]:
        obj = dict(item, kind=kinds[lst["kind"]], apiVersion=lst["apiVersion"])
        kubernetes_validate.validate(obj, "1.34", strict=True)
        n += 1
print(n)
"#;
    let out = std::process::Command::new(python)
        .arg("-c")
        .arg(script)
        .args(
            [
                "pods.json",
                "services.json",
                "endpoints.json",
                "endpointslices.json",
            ]
            .map(|f| dir.join(f)),
        )
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "9");
}
