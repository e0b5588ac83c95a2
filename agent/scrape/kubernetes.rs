//! Kubernetes service discovery (`kubernetes_sd_configs`): watches pods, services, endpoints or
//! endpoint slices through the API server with `kube::runtime::watcher` (one list, then a watch stream; a `410 Gone` or a
//! broken stream relists, with the watcher's default backoff; no polling) and keeps, per object,
//! the targets it yields with Prometheus' `__meta_kubernetes_*` labels. The
//! [`ScrapeManager`](super::ScrapeManager) starts one [`KubernetesSd`] per block when it builds
//! a job, reads [`KubernetesSd::targets`] at each reconciliation and is woken on every change;
//! dropping the job stops the watch.
//!
//! Role `pod` follows Prometheus' pod role: one target per declared container port
//! (`<pod IP>:<port>`), one port-less target per container without ports, init containers
//! marked; pods without an IP yield nothing. Role `service`: one target per service port,
//! `<name>.<namespace>.svc:<port>`. `node_local` adds the field selector
//! `spec.nodeName=$NODE_NAME`. Roles `endpoints` and `endpointslice` live in [`endpoints`]: they
//! watch their objects plus the Services and Pods whose labels they attach.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Debug;
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Endpoints, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tokio_util::sync::{CancellationToken, DropGuard};

use super::discovery::DiscoveredLabels;
use crate::config::scrape::{KubernetesRole, KubernetesSdConfig};

mod endpoints;

use endpoints::Store;

/// One change seen on a watch stream; objects are keyed by `namespace/name`.
enum Update<K> {
    /// The (re)list finished: these are all the objects of the stream now.
    Listed(HashMap<String, K>),
    /// An object was added or modified.
    Applied(String, K),
    /// An object was deleted.
    Deleted(String),
}

/// Where a pod finds its namespace when `namespaces.own_namespace` is set.
const SERVICE_ACCOUNT_NAMESPACE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

/// How long to wait before trying again to build a client (bad kubeconfig, missing NODE_NAME).
const CLIENT_RETRY: Duration = Duration::from_secs(10);

/// Targets of every watched object, per watch stream (one per namespace, or one for all), for
/// roles `pod` and `service`; the objects behind roles `endpoints` and `endpointslice`.
#[derive(Debug, Default)]
struct Shared {
    streams: Mutex<HashMap<usize, HashMap<String, Vec<DiscoveredLabels>>>>,
    endpoints: Mutex<Store<Endpoints>>,
    slices: Mutex<Store<EndpointSlice>>,
}

impl Shared {
    fn update(&self, stream: usize, f: impl FnOnce(&mut HashMap<String, Vec<DiscoveredLabels>>)) {
        let mut s = self.streams.lock().unwrap_or_else(|e| e.into_inner());
        f(s.entry(stream).or_default());
    }

    fn endpoints(&self) -> std::sync::MutexGuard<'_, Store<Endpoints>> {
        self.endpoints.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn slices(&self) -> std::sync::MutexGuard<'_, Store<EndpointSlice>> {
        self.slices.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Keeps the targets of each object of a `pod` or `service` watch, built by `build`.
fn keep_targets<K: 'static>(
    build: fn(&K) -> Vec<DiscoveredLabels>,
) -> impl Fn(&Shared, usize, Update<K>) + Send + 'static {
    move |shared, stream, update| {
        shared.update(stream, |objects| match update {
            Update::Listed(all) => {
                *objects = all.iter().map(|(k, o)| (k.clone(), build(o))).collect();
            }
            Update::Applied(key, obj) => {
                objects.insert(key, build(&obj));
            }
            Update::Deleted(key) => {
                objects.remove(&key);
            }
        })
    }
}

/// A running discovery for one `kubernetes_sd_configs` block; stops when dropped.
#[derive(Debug)]
pub struct KubernetesSd {
    shared: Arc<Shared>,
    _stop: DropGuard,
}

/// Called after every change of the discovered targets.
pub type Wake = Arc<dyn Fn() + Send + Sync>;

impl KubernetesSd {
    /// Starts watching for `job` under `parent` (shutdown); `wake` is called on every change.
    pub fn spawn(
        job: &str,
        cfg: &KubernetesSdConfig,
        parent: &CancellationToken,
        wake: Wake,
    ) -> Self {
        let shared = Arc::new(Shared::default());
        let cancel = parent.child_token();
        tokio::spawn(run(
            job.to_string(),
            cfg.clone(),
            Arc::downgrade(&shared),
            cancel.clone(),
            wake,
        ));
        Self {
            shared,
            _stop: cancel.drop_guard(),
        }
    }

    /// Every target discovered now, sorted by address and labels.
    pub fn targets(&self) -> Vec<DiscoveredLabels> {
        let mut out: Vec<DiscoveredLabels> = {
            let streams = self
                .shared
                .streams
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            streams
                .values()
                .flat_map(|objects| objects.values().flatten().cloned())
                .collect()
        };
        out.extend(self.shared.endpoints().targets());
        out.extend(self.shared.slices().targets());
        out.sort();
        out
    }
}

/// Builds the client (retrying until it works or `cancel` fires), then runs one watch per
/// namespace.
async fn run(
    job: String,
    cfg: KubernetesSdConfig,
    shared: Weak<Shared>,
    cancel: CancellationToken,
    wake: Wake,
) {
    let (client, default_ns) = loop {
        match client_for(&cfg).await {
            Ok(c) => break c,
            Err(e) => {
                tracing::error!(job = %job, error = %e, "kubernetes_sd: cannot reach the API server; retrying");
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tokio::time::sleep(CLIENT_RETRY) => {}
                }
            }
        }
    };
    let node = if cfg.node_local {
        match std::env::var("NODE_NAME") {
            Ok(n) if !n.is_empty() => Some(n),
            _ => {
                tracing::error!(job = %job, "kubernetes_sd: node_local is set but NODE_NAME is not; set it from the downward API (fieldRef spec.nodeName); discovering nothing");
                return;
            }
        }
    } else {
        None
    };
    let mut namespaces: Vec<Option<String>> =
        cfg.namespaces.names.iter().cloned().map(Some).collect();
    if cfg.namespaces.own_namespace {
        let own = std::fs::read_to_string(SERVICE_ACCOUNT_NAMESPACE)
            .map(|s| s.trim().to_string())
            .ok()
            .filter(|s| !s.is_empty())
            .unwrap_or(default_ns);
        if !namespaces.contains(&Some(own.clone())) {
            namespaces.push(Some(own));
        }
    }
    if namespaces.is_empty() {
        namespaces.push(None);
    }
    if let Some(s) = shared.upgrade() {
        s.endpoints().set_node(node.clone());
        s.slices().set_node(node.clone());
    }
    tracing::info!(job = %job, role = cfg.role.as_str(), namespaces = ?namespaces, node = ?node, "kubernetes_sd: watching");
    let pods = watch_config(&cfg, KubernetesRole::Pod, node.as_deref());
    let services = watch_config(&cfg, KubernetesRole::Service, None);
    let own = watch_config(&cfg, cfg.role, None);
    let mut tasks = tokio::task::JoinSet::new();
    for (i, ns) in namespaces.into_iter().enumerate() {
        let w = || Watch {
            job: job.clone(),
            stream: i,
            shared: shared.clone(),
            wake: wake.clone(),
            cancel: cancel.clone(),
        };
        let ns = ns.as_deref();
        match cfg.role {
            KubernetesRole::Pod => {
                tasks.spawn(w().run(
                    api::<Pod>(&client, ns),
                    pods.clone(),
                    keep_targets(pod_targets),
                ));
            }
            KubernetesRole::Service => {
                tasks.spawn(w().run(
                    api::<Service>(&client, ns),
                    services.clone(),
                    keep_targets(service_targets),
                ));
            }
            KubernetesRole::Endpoints => {
                tasks.spawn(
                    w().run(api::<Endpoints>(&client, ns), own.clone(), |s, i, u| {
                        s.endpoints().objects(i, u)
                    }),
                );
                tasks.spawn(
                    w().run(api::<Service>(&client, ns), services.clone(), |s, i, u| {
                        s.endpoints().services(i, u)
                    }),
                );
                tasks.spawn(w().run(api::<Pod>(&client, ns), pods.clone(), |s, i, u| {
                    s.endpoints().pods(i, u)
                }));
            }
            KubernetesRole::EndpointSlice => {
                tasks.spawn(
                    w().run(api::<EndpointSlice>(&client, ns), own.clone(), |s, i, u| {
                        s.slices().objects(i, u)
                    }),
                );
                tasks.spawn(
                    w().run(api::<Service>(&client, ns), services.clone(), |s, i, u| {
                        s.slices().services(i, u)
                    }),
                );
                tasks.spawn(w().run(api::<Pod>(&client, ns), pods.clone(), |s, i, u| {
                    s.slices().pods(i, u)
                }));
            }
        }
    }
    while tasks.join_next().await.is_some() {}
}

/// The list/watch parameters for objects of `role`: the block's selector of that role, and for
/// pods under `node_local` the field selector `spec.nodeName=<node>`.
fn watch_config(
    cfg: &KubernetesSdConfig,
    role: KubernetesRole,
    node: Option<&str>,
) -> watcher::Config {
    let selector = cfg.selectors.iter().find(|s| s.role == role);
    let mut fields: Vec<String> = selector.and_then(|s| s.field.clone()).into_iter().collect();
    if let (KubernetesRole::Pod, Some(n)) = (role, node) {
        fields.push(format!("spec.nodeName={n}"));
    }
    let mut wc = watcher::Config::default();
    if let Some(label) = selector.and_then(|s| s.label.as_deref()) {
        wc = wc.labels(label);
    }
    if !fields.is_empty() {
        wc = wc.fields(&fields.join(","));
    }
    wc
}

fn api<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// A client from `kubeconfig_file`, else inferred (in-cluster, `$KUBECONFIG`, `~/.kube/config`),
/// with the default namespace of that configuration.
/// The client configuration from `kubeconfig_file` when given, else the in-cluster service
/// account, else the default kubeconfig (`$KUBECONFIG`, `~/.kube/config`). `key` names the
/// config key to set in the error message. Shared by discovery and the external metrics API's
/// delegated authentication.
pub async fn kube_config(
    kubeconfig_file: Option<&std::path::Path>,
    key: &str,
) -> Result<kube::Config, String> {
    match kubeconfig_file {
        Some(path) => {
            let kc = kube::config::Kubeconfig::read_from(path)
                .map_err(|e| format!("kubeconfig_file {}: {e}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
                .await
                .map_err(|e| format!("kubeconfig_file {}: {e}", path.display()))
        }
        None => kube::Config::infer().await.map_err(|e| {
            format!("no in-cluster service account and no usable kubeconfig ({e}); set {key}")
        }),
    }
}

async fn client_for(cfg: &KubernetesSdConfig) -> Result<(Client, String), String> {
    let config = kube_config(cfg.kubeconfig_file.as_deref(), "kubeconfig_file").await?;
    let ns = config.default_namespace.clone();
    let client = Client::try_from(config).map_err(|e| format!("cannot build the client: {e}"))?;
    Ok((client, ns))
}

/// One watch stream and where its targets go.
struct Watch {
    job: String,
    stream: usize,
    shared: Weak<Shared>,
    wake: Wake,
    cancel: CancellationToken,
}

impl Watch {
    /// Follows `api` until cancelled: the initial list replaces this stream's objects at once
    /// (so a relist after `410 Gone` forgets objects deleted meanwhile), then every event
    /// updates one object; `handle` files each change.
    async fn run<K>(
        self,
        api: Api<K>,
        wc: watcher::Config,
        handle: impl Fn(&Shared, usize, Update<K>) + Send + 'static,
    ) where
        K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
    {
        let stream = watcher::watcher(api, wc).default_backoff();
        let mut stream = std::pin::pin!(stream);
        let mut initial: Option<HashMap<String, K>> = None;
        loop {
            let event = tokio::select! {
                _ = self.cancel.cancelled() => return,
                e = next(stream.as_mut()) => e,
            };
            let Some(shared) = self.shared.upgrade() else {
                return;
            };
            match event {
                None => return,
                Some(Err(watcher::Error::WatchError(e))) if e.code == 410 => {
                    tracing::info!(job = %self.job, "kubernetes_sd: resource version expired (410 Gone); listing again");
                }
                Some(Err(e)) => {
                    tracing::warn!(job = %self.job, error = %e, "kubernetes_sd: watch failed; retrying with backoff");
                }
                Some(Ok(Event::Init)) => initial = Some(HashMap::new()),
                Some(Ok(Event::InitApply(obj))) => {
                    initial
                        .get_or_insert_with(HashMap::new)
                        .insert(object_key(&obj), obj);
                }
                Some(Ok(Event::InitDone)) => {
                    let fresh = initial.take().unwrap_or_default();
                    tracing::debug!(job = %self.job, kind = short_type_name::<K>(), objects = fresh.len(), "kubernetes_sd: listed");
                    handle(&shared, self.stream, Update::Listed(fresh));
                    (self.wake)();
                }
                Some(Ok(Event::Apply(obj))) => {
                    handle(&shared, self.stream, Update::Applied(object_key(&obj), obj));
                    (self.wake)();
                }
                Some(Ok(Event::Delete(obj))) => {
                    handle(&shared, self.stream, Update::Deleted(object_key(&obj)));
                    (self.wake)();
                }
            }
        }
    }
}

/// The next item of a stream (the `Stream` trait reached through kube's extension trait).
async fn next<S: WatchStreamExt + ?Sized>(mut s: Pin<&mut S>) -> Option<S::Item> {
    std::future::poll_fn(|cx| s.as_mut().poll_next(cx)).await
}

/// `Pod` for `k8s_openapi::api::core::v1::Pod`, for logs.
fn short_type_name<K>() -> &'static str {
    let full = std::any::type_name::<K>();
    full.rsplit("::").next().unwrap_or(full)
}

fn object_key<K: Resource>(obj: &K) -> String {
    format!("{}/{}", obj.namespace().unwrap_or_default(), obj.name_any())
}

/// Prometheus' label-name sanitising: every character outside `[a-zA-Z0-9_]` becomes `_`.
pub fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

/// `<prefix>_label_<name>`, `_labelpresent_`, `_annotation_`, `_annotationpresent_`.
fn object_meta_labels(
    out: &mut DiscoveredLabels,
    prefix: &str,
    labels: &BTreeMap<String, String>,
    annotations: &BTreeMap<String, String>,
) {
    for (kind, map) in [("label", labels), ("annotation", annotations)] {
        for (k, v) in map {
            let name = sanitize(k);
            out.insert(format!("{prefix}_{kind}_{name}"), v.clone());
            out.insert(format!("{prefix}_{kind}present_{name}"), "true".into());
        }
    }
}

/// Targets of one pod (Prometheus' `pod` role).
pub fn pod_targets(pod: &Pod) -> Vec<DiscoveredLabels> {
    let status = pod.status.as_ref();
    let Some(ip) = status
        .and_then(|s| s.pod_ip.clone())
        .filter(|ip| !ip.is_empty())
    else {
        return Vec::new();
    };
    let base = pod_labels(pod);
    let container_ids: HashMap<&str, &str> = status
        .into_iter()
        .flat_map(|s| {
            s.container_statuses
                .iter()
                .flatten()
                .chain(s.init_container_statuses.iter().flatten())
        })
        .filter_map(|c| Some((c.name.as_str(), c.container_id.as_deref()?)))
        .collect();
    let containers: Vec<(&Container, bool)> = pod
        .spec
        .iter()
        .flat_map(|s| {
            s.containers
                .iter()
                .map(|c| (c, false))
                .chain(s.init_containers.iter().flatten().map(|c| (c, true)))
        })
        .collect();
    let host = bracket_ipv6(&ip);
    let mut out = Vec::new();
    for (c, init) in containers {
        let mut t = base.clone();
        container_name_labels(&mut t, c);
        t.insert(
            "__meta_kubernetes_pod_container_init".into(),
            init.to_string(),
        );
        if let Some(id) = container_ids.get(c.name.as_str()) {
            t.insert("__meta_kubernetes_pod_container_id".into(), (*id).into());
        }
        let ports = c.ports.as_deref().unwrap_or_default();
        if ports.is_empty() {
            t.insert("__address__".into(), host.clone());
            out.push(t);
            continue;
        }
        for port in ports {
            let mut p = t.clone();
            p.insert(
                "__address__".into(),
                format!("{host}:{}", port.container_port),
            );
            container_port_labels(&mut p, port);
            out.push(p);
        }
    }
    out
}

/// `[addr]` for an IPv6 address, else `addr` (the host part of `host:port`).
fn bracket_ipv6(ip: &str) -> String {
    if ip.contains(':') {
        format!("[{ip}]")
    } else {
        ip.to_string()
    }
}

/// `_pod_container_name` and `_pod_container_image` of one container.
fn container_name_labels(t: &mut DiscoveredLabels, c: &k8s_openapi::api::core::v1::Container) {
    t.insert(
        "__meta_kubernetes_pod_container_name".into(),
        c.name.clone(),
    );
    t.insert(
        "__meta_kubernetes_pod_container_image".into(),
        c.image.clone().unwrap_or_default(),
    );
}

/// `_pod_container_port_name`, `_number`, `_protocol` of one declared container port.
fn container_port_labels(
    t: &mut DiscoveredLabels,
    port: &k8s_openapi::api::core::v1::ContainerPort,
) {
    t.insert(
        "__meta_kubernetes_pod_container_port_name".into(),
        port.name.clone().unwrap_or_default(),
    );
    t.insert(
        "__meta_kubernetes_pod_container_port_number".into(),
        port.container_port.to_string(),
    );
    t.insert(
        "__meta_kubernetes_pod_container_port_protocol".into(),
        port.protocol.clone().unwrap_or_else(|| "TCP".into()),
    );
}

/// The labels every target of a pod carries (Prometheus' `podLabels`, plus the namespace):
/// name, IP, UID, node, host IP, phase, readiness, controller, labels and annotations.
fn pod_labels(pod: &Pod) -> DiscoveredLabels {
    let status = pod.status.as_ref();
    let meta = &pod.metadata;
    let mut base = DiscoveredLabels::new();
    base.insert(
        "__meta_kubernetes_namespace".into(),
        meta.namespace.clone().unwrap_or_default(),
    );
    base.insert(
        "__meta_kubernetes_pod_name".into(),
        meta.name.clone().unwrap_or_default(),
    );
    base.insert(
        "__meta_kubernetes_pod_ip".into(),
        status.and_then(|s| s.pod_ip.clone()).unwrap_or_default(),
    );
    base.insert(
        "__meta_kubernetes_pod_uid".into(),
        meta.uid.clone().unwrap_or_default(),
    );
    let spec = pod.spec.as_ref();
    let text = |v: Option<&String>| v.cloned().unwrap_or_default();
    base.insert(
        "__meta_kubernetes_pod_node_name".into(),
        text(spec.and_then(|s| s.node_name.as_ref())),
    );
    base.insert(
        "__meta_kubernetes_pod_host_ip".into(),
        text(status.and_then(|s| s.host_ip.as_ref())),
    );
    base.insert(
        "__meta_kubernetes_pod_phase".into(),
        text(status.and_then(|s| s.phase.as_ref())),
    );
    let ready = status
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
        .map(|c| c.status.to_lowercase())
        .unwrap_or_else(|| "unknown".into());
    base.insert("__meta_kubernetes_pod_ready".into(), ready);
    if let Some(owner) = meta
        .owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true))
    {
        base.insert(
            "__meta_kubernetes_pod_controller_kind".into(),
            owner.kind.clone(),
        );
        base.insert(
            "__meta_kubernetes_pod_controller_name".into(),
            owner.name.clone(),
        );
    }
    object_meta_labels(
        &mut base,
        "__meta_kubernetes_pod",
        meta.labels.as_ref().unwrap_or(&BTreeMap::new()),
        meta.annotations.as_ref().unwrap_or(&BTreeMap::new()),
    );
    base
}

/// Targets of one service (Prometheus' `service` role).
pub fn service_targets(svc: &Service) -> Vec<DiscoveredLabels> {
    let name = svc.metadata.name.clone().unwrap_or_default();
    let ns = svc.metadata.namespace.clone().unwrap_or_default();
    let base = service_labels(svc);
    svc.spec
        .as_ref()
        .and_then(|s| s.ports.as_ref())
        .into_iter()
        .flatten()
        .map(|port| {
            let mut t = base.clone();
            t.insert(
                "__address__".into(),
                format!("{name}.{ns}.svc:{}", port.port),
            );
            t.insert(
                "__meta_kubernetes_service_port_name".into(),
                port.name.clone().unwrap_or_default(),
            );
            t.insert(
                "__meta_kubernetes_service_port_number".into(),
                port.port.to_string(),
            );
            t.insert(
                "__meta_kubernetes_service_port_protocol".into(),
                port.protocol.clone().unwrap_or_else(|| "TCP".into()),
            );
            t
        })
        .collect()
}

/// The labels every target of a service carries (Prometheus' `serviceLabels`): namespace,
/// name, labels, annotations, type, cluster IP or external name.
fn service_labels(svc: &Service) -> DiscoveredLabels {
    let meta = &svc.metadata;
    let name = meta.name.clone().unwrap_or_default();
    let ns = meta.namespace.clone().unwrap_or_default();
    let mut base = DiscoveredLabels::new();
    base.insert("__meta_kubernetes_namespace".into(), ns.clone());
    base.insert("__meta_kubernetes_service_name".into(), name.clone());
    object_meta_labels(
        &mut base,
        "__meta_kubernetes_service",
        meta.labels.as_ref().unwrap_or(&BTreeMap::new()),
        meta.annotations.as_ref().unwrap_or(&BTreeMap::new()),
    );
    let spec = svc.spec.as_ref();
    let kind = spec
        .and_then(|s| s.type_.clone())
        .unwrap_or_else(|| "ClusterIP".into());
    if kind == "ExternalName" {
        base.insert(
            "__meta_kubernetes_service_external_name".into(),
            spec.and_then(|s| s.external_name.clone())
                .unwrap_or_default(),
        );
    } else if let Some(ip) = spec.and_then(|s| s.cluster_ip.clone()) {
        base.insert("__meta_kubernetes_service_cluster_ip".into(), ip);
    }
    base.insert("__meta_kubernetes_service_type".into(), kind);
    base
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(json: serde_json::Value) -> Pod {
        serde_json::from_value(json).expect("pod json")
    }

    #[test]
    fn pod_role_yields_one_target_per_port_and_per_portless_container() {
        let p = pod(serde_json::json!({
            "metadata": {"name": "web-0", "namespace": "shop", "uid": "u1",
                "labels": {"app.kubernetes.io/name": "web"},
                "annotations": {"prometheus.io/scrape": "true"},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "web", "uid": "x", "controller": true}]},
            "spec": {"nodeName": "n1", "containers": [
                {"name": "app", "image": "web:1", "ports": [{"name": "http", "containerPort": 8080}, {"containerPort": 9090, "protocol": "UDP"}]},
                {"name": "sidecar", "image": "envoy"}],
              "initContainers": [{"name": "migrate", "image": "web:1"}]},
            "status": {"podIP": "10.1.2.3", "hostIP": "192.168.0.1", "phase": "Running",
              "conditions": [{"type": "Ready", "status": "True"}],
              "containerStatuses": [{"name": "app", "containerID": "containerd://abc", "image": "web:1", "imageID": "", "ready": true, "restartCount": 0}]}
        }));
        let t = pod_targets(&p);
        let addrs: Vec<&str> = t.iter().map(|l| l["__address__"].as_str()).collect();
        assert_eq!(
            addrs,
            ["10.1.2.3:8080", "10.1.2.3:9090", "10.1.2.3", "10.1.2.3"]
        );
        let l = &t[0];
        assert_eq!(l["__meta_kubernetes_namespace"], "shop");
        assert_eq!(
            l["__meta_kubernetes_pod_label_app_kubernetes_io_name"],
            "web"
        );
        assert_eq!(
            l["__meta_kubernetes_pod_labelpresent_app_kubernetes_io_name"],
            "true"
        );
        assert_eq!(
            l["__meta_kubernetes_pod_annotation_prometheus_io_scrape"],
            "true"
        );
        assert_eq!(l["__meta_kubernetes_pod_container_port_name"], "http");
        assert_eq!(l["__meta_kubernetes_pod_container_port_protocol"], "TCP");
        assert_eq!(l["__meta_kubernetes_pod_container_id"], "containerd://abc");
        assert_eq!(l["__meta_kubernetes_pod_controller_kind"], "StatefulSet");
        assert_eq!(l["__meta_kubernetes_pod_ready"], "true");
        assert_eq!(l["__meta_kubernetes_pod_node_name"], "n1");
        assert_eq!(t[1]["__meta_kubernetes_pod_container_port_protocol"], "UDP");
        assert_eq!(t[3]["__meta_kubernetes_pod_container_init"], "true");
        assert!(!t[2].contains_key("__meta_kubernetes_pod_container_port_number"));
    }

    #[test]
    fn pod_without_ip_yields_nothing() {
        let p = pod(serde_json::json!({
            "metadata": {"name": "pending", "namespace": "a"},
            "spec": {"containers": [{"name": "c", "ports": [{"containerPort": 1}]}]},
            "status": {"phase": "Pending"}
        }));
        assert!(pod_targets(&p).is_empty());
    }

    #[test]
    fn service_role() {
        let s: Service = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "api", "namespace": "shop", "labels": {"team": "x"}},
            "spec": {"clusterIP": "10.96.0.7", "ports": [{"name": "metrics", "port": 9100}]}
        }))
        .expect("service json");
        let t = service_targets(&s);
        assert_eq!(t.len(), 1);
        assert_eq!(t[0]["__address__"], "api.shop.svc:9100");
        assert_eq!(t[0]["__meta_kubernetes_service_cluster_ip"], "10.96.0.7");
        assert_eq!(t[0]["__meta_kubernetes_service_type"], "ClusterIP");
        assert_eq!(t[0]["__meta_kubernetes_service_label_team"], "x");
    }

    #[test]
    fn label_names_are_sanitized_as_prometheus_does() {
        assert_eq!(sanitize("prometheus.io/scrape"), "prometheus_io_scrape");
        assert_eq!(sanitize("a-b_c9"), "a_b_c9");
    }
}
