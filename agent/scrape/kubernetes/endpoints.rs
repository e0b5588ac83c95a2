//! Roles `endpoints` (core/v1 Endpoints) and `endpointslice` (discovery.k8s.io/v1
//! EndpointSlice), as Prometheus builds them: one target per address and port, with the
//! object's labels, the labels of the Service it belongs to and, when the address targets a
//! Pod, that pod's labels and the matching container port; container ports of those pods that
//! no endpoint port covers become targets of their own.
//!
//! [`Store`] holds what three watch streams per namespace report (the endpoints objects, the
//! Services, the Pods; filled by [`super::KubernetesSd`]'s watch tasks) and builds targets on
//! read, caching them per endpoints object. A change to an object drops its cached targets; a
//! change to a Service drops those of the objects belonging to it, a change to a Pod those of
//! the objects whose addresses refer to it; a relist of any stream drops them all.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use k8s_openapi::api::core::v1::{
    Container, ContainerPort, Endpoints, ObjectReference, Pod, Service,
};
use k8s_openapi::api::discovery::v1::EndpointSlice;

use super::{
    DiscoveredLabels, Update, bracket_ipv6, container_name_labels, container_port_labels,
    object_meta_labels, pod_labels, sanitize, service_labels,
};

/// The label EndpointSlices carry with the name of their Service.
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// Objects per watch stream (one stream per namespace, or one for all).
type Streams<K> = HashMap<usize, HashMap<String, K>>;

/// An object whose addresses become targets: [`Endpoints`] or [`EndpointSlice`].
pub(super) trait Group {
    /// Its namespace.
    fn namespace(&self) -> &str;
    /// The name of the Service it belongs to, if any.
    fn service(&self) -> Option<&str>;
    /// Whether one of its addresses targets the pod `name` of its namespace.
    fn refers_to(&self, pod: &str) -> bool;
    /// Its targets, with the Services and Pods known now.
    fn build(&self, ctx: &Context<'_>) -> Vec<DiscoveredLabels>;
}

/// The watched objects of one `endpoints` or `endpointslice` block, and their targets.
pub(super) struct Store<G> {
    node: Option<String>,
    objects: Streams<G>,
    services: Streams<Service>,
    pods: Streams<Pod>,
    built: HashMap<String, Vec<DiscoveredLabels>>,
}

impl<G> Default for Store<G> {
    fn default() -> Self {
        Self {
            node: None,
            objects: HashMap::new(),
            services: HashMap::new(),
            pods: HashMap::new(),
            built: HashMap::new(),
        }
    }
}

impl<G> fmt::Debug for Store<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn count<K>(s: &Streams<K>) -> usize {
            s.values().map(HashMap::len).sum()
        }
        f.debug_struct("Store")
            .field("node", &self.node)
            .field("objects", &count(&self.objects))
            .field("services", &count(&self.services))
            .field("pods", &count(&self.pods))
            .finish()
    }
}

/// What one update changed: one object (by key) or a whole stream.
enum Changed {
    One(String),
    All,
}

fn apply<K>(streams: &mut Streams<K>, stream: usize, update: Update<K>) -> Changed {
    let objects = streams.entry(stream).or_default();
    match update {
        Update::Listed(all) => {
            *objects = all;
            Changed::All
        }
        Update::Applied(key, obj) => {
            objects.insert(key.clone(), obj);
            Changed::One(key)
        }
        Update::Deleted(key) => {
            objects.remove(&key);
            Changed::One(key)
        }
    }
}

impl<G: Group> Store<G> {
    /// `node_local`: keep only addresses whose `nodeName` is `node`.
    pub(super) fn set_node(&mut self, node: Option<String>) {
        self.node = node;
        self.built.clear();
    }

    /// An update of the endpoints objects.
    pub(super) fn objects(&mut self, stream: usize, update: Update<G>) {
        match apply(&mut self.objects, stream, update) {
            Changed::One(key) => {
                self.built.remove(&key);
            }
            Changed::All => self.built.clear(),
        }
    }

    /// An update of the Services: objects belonging to a changed Service are rebuilt.
    pub(super) fn services(&mut self, stream: usize, update: Update<Service>) {
        let changed = apply(&mut self.services, stream, update);
        self.invalidate(changed, |g, name| g.service() == Some(name));
    }

    /// An update of the Pods: objects whose addresses target a changed Pod are rebuilt.
    pub(super) fn pods(&mut self, stream: usize, update: Update<Pod>) {
        let changed = apply(&mut self.pods, stream, update);
        self.invalidate(changed, |g, name| g.refers_to(name));
    }

    fn invalidate(&mut self, changed: Changed, affected: impl Fn(&G, &str) -> bool) {
        let key = match changed {
            Changed::All => {
                self.built.clear();
                return;
            }
            Changed::One(key) => key,
        };
        let (ns, name) = key.split_once('/').unwrap_or(("", key.as_str()));
        for (k, g) in self.objects.values().flatten() {
            if g.namespace() == ns && affected(g, name) {
                self.built.remove(k);
            }
        }
    }

    /// Every target now (unsorted); builds those of objects changed since the last call.
    pub(super) fn targets(&mut self) -> Vec<DiscoveredLabels> {
        let Store {
            node,
            objects,
            services,
            pods,
            built,
        } = self;
        let ctx = Context {
            services,
            pods,
            node: node.as_deref(),
        };
        let mut out = Vec::new();
        for (key, g) in objects.values().flatten() {
            let targets = built.entry(key.clone()).or_insert_with(|| g.build(&ctx));
            out.extend(targets.iter().cloned());
        }
        out
    }
}

/// What building an object's targets may look up.
pub(super) struct Context<'a> {
    services: &'a Streams<Service>,
    pods: &'a Streams<Pod>,
    node: Option<&'a str>,
}

impl<'a> Context<'a> {
    fn service(&self, ns: &str, name: &str) -> Option<&'a Service> {
        let key = format!("{ns}/{name}");
        self.services.values().find_map(|m| m.get(&key))
    }

    /// The pod an address targets (`targetRef` of kind `Pod`), if it is known.
    fn pod(&self, ns: &str, target: Option<&ObjectReference>) -> Option<&'a Pod> {
        let target = target.filter(|t| t.kind.as_deref() == Some("Pod"))?;
        let key = format!(
            "{}/{}",
            target.namespace.as_deref().unwrap_or(ns),
            target.name.as_deref()?
        );
        self.pods.values().find_map(|m| m.get(&key))
    }

    /// Whether an address on `node_name` is kept (always, unless `node_local`).
    fn on_node(&self, node_name: Option<&str>) -> bool {
        self.node.is_none_or(|n| node_name == Some(n))
    }

    /// The labels common to all targets of an object: the object's own, then its Service's.
    fn group(&self, ns: &str, service: Option<&str>) -> DiscoveredLabels {
        let mut group = DiscoveredLabels::new();
        group.insert("__meta_kubernetes_namespace".into(), ns.to_string());
        if let Some(svc) = service.and_then(|name| self.service(ns, name)) {
            group.extend(service_labels(svc));
        }
        group
    }
}

/// The pods seen behind an object's addresses, with their labels and the ports targeted.
#[derive(Default)]
struct Seen<'a> {
    pods: BTreeMap<String, (&'a Pod, DiscoveredLabels, Vec<i32>)>,
}

impl<'a> Seen<'a> {
    /// Adds the labels of `pod` (and of the container port equal to `port`) to a target.
    fn attach(&mut self, t: &mut DiscoveredLabels, pod: Option<&'a Pod>, port: Option<i32>) {
        let Some(pod) = pod else {
            return;
        };
        let key = format!(
            "{}/{}",
            pod.metadata.namespace.as_deref().unwrap_or_default(),
            pod.metadata.name.as_deref().unwrap_or_default()
        );
        let (_, labels, ports) = self
            .pods
            .entry(key)
            .or_insert_with(|| (pod, pod_labels(pod), Vec::new()));
        t.extend(labels.iter().map(|(k, v)| (k.clone(), v.clone())));
        if let Some(port) = port {
            if let Some((c, cp)) = container_ports(pod).find(|(_, cp)| cp.container_port == port) {
                container_labels(t, c, cp);
            }
            ports.push(port);
        }
    }

    /// Targets for the declared container ports of the seen pods that no endpoint port
    /// covered, at `<pod IP>:<port>`.
    fn uncovered(self, group: &DiscoveredLabels) -> Vec<DiscoveredLabels> {
        let mut out = Vec::new();
        for (pod, labels, ports) in self.pods.into_values() {
            let Some(ip) = pod
                .status
                .as_ref()
                .and_then(|s| s.pod_ip.as_deref())
                .filter(|ip| !ip.is_empty())
            else {
                continue;
            };
            for (c, cp) in container_ports(pod) {
                if ports.contains(&cp.container_port) {
                    continue;
                }
                let mut t = group.clone();
                t.extend(labels.iter().map(|(k, v)| (k.clone(), v.clone())));
                t.insert(
                    "__address__".into(),
                    format!("{}:{}", bracket_ipv6(ip), cp.container_port),
                );
                container_labels(&mut t, c, cp);
                out.push(t);
            }
        }
        out
    }
}

/// The declared ports of a pod's (non-init) containers.
fn container_ports(pod: &Pod) -> impl Iterator<Item = (&Container, &ContainerPort)> {
    pod.spec
        .iter()
        .flat_map(|s| s.containers.iter())
        .flat_map(|c| c.ports.iter().flatten().map(move |p| (c, p)))
}

fn container_labels(t: &mut DiscoveredLabels, c: &Container, port: &ContainerPort) {
    container_name_labels(t, c);
    container_port_labels(t, port);
}

fn labels_of(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) -> [&BTreeMap<String, String>; 2] {
    static EMPTY: BTreeMap<String, String> = BTreeMap::new();
    [
        meta.labels.as_ref().unwrap_or(&EMPTY),
        meta.annotations.as_ref().unwrap_or(&EMPTY),
    ]
}

impl Group for Endpoints {
    fn namespace(&self) -> &str {
        self.metadata.namespace.as_deref().unwrap_or_default()
    }

    /// An Endpoints object has the name of its Service.
    fn service(&self) -> Option<&str> {
        self.metadata.name.as_deref()
    }

    fn refers_to(&self, pod: &str) -> bool {
        self.subsets.iter().flatten().any(|s| {
            s.addresses
                .iter()
                .flatten()
                .chain(s.not_ready_addresses.iter().flatten())
                .any(|a| is_pod(a.target_ref.as_ref(), pod))
        })
    }

    fn build(&self, ctx: &Context<'_>) -> Vec<DiscoveredLabels> {
        let ns = self.namespace();
        let mut group = ctx.group(ns, self.service());
        group.insert(
            "__meta_kubernetes_endpoints_name".into(),
            self.metadata.name.clone().unwrap_or_default(),
        );
        let [labels, annotations] = labels_of(&self.metadata);
        object_meta_labels(
            &mut group,
            "__meta_kubernetes_endpoints",
            labels,
            annotations,
        );
        let mut seen = Seen::default();
        let mut out = Vec::new();
        for subset in self.subsets.iter().flatten() {
            for port in subset.ports.iter().flatten() {
                let ready = subset.addresses.iter().flatten().map(|a| (a, true));
                let not_ready = subset
                    .not_ready_addresses
                    .iter()
                    .flatten()
                    .map(|a| (a, false));
                for (addr, ready) in ready.chain(not_ready) {
                    if !ctx.on_node(addr.node_name.as_deref()) {
                        continue;
                    }
                    let mut t = group.clone();
                    t.insert(
                        "__address__".into(),
                        format!("{}:{}", bracket_ipv6(&addr.ip), port.port),
                    );
                    t.insert(
                        "__meta_kubernetes_endpoint_port_name".into(),
                        port.name.clone().unwrap_or_default(),
                    );
                    t.insert(
                        "__meta_kubernetes_endpoint_port_protocol".into(),
                        port.protocol.clone().unwrap_or_else(|| "TCP".into()),
                    );
                    t.insert("__meta_kubernetes_endpoint_ready".into(), ready.to_string());
                    if let Some(r) = &addr.target_ref {
                        target_ref_labels(&mut t, "__meta_kubernetes_endpoint", r);
                    }
                    if let Some(n) = &addr.node_name {
                        t.insert("__meta_kubernetes_endpoint_node_name".into(), n.clone());
                    }
                    if let Some(h) = addr.hostname.as_ref().filter(|h| !h.is_empty()) {
                        t.insert("__meta_kubernetes_endpoint_hostname".into(), h.clone());
                    }
                    seen.attach(
                        &mut t,
                        ctx.pod(ns, addr.target_ref.as_ref()),
                        Some(port.port),
                    );
                    out.push(t);
                }
            }
        }
        out.extend(seen.uncovered(&group));
        out
    }
}

impl Group for EndpointSlice {
    fn namespace(&self) -> &str {
        self.metadata.namespace.as_deref().unwrap_or_default()
    }

    /// EndpointSlices name their Service in the `kubernetes.io/service-name` label.
    fn service(&self) -> Option<&str> {
        self.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(SERVICE_NAME_LABEL))
            .map(String::as_str)
    }

    fn refers_to(&self, pod: &str) -> bool {
        self.endpoints
            .iter()
            .any(|e| is_pod(e.target_ref.as_ref(), pod))
    }

    fn build(&self, ctx: &Context<'_>) -> Vec<DiscoveredLabels> {
        let ns = self.namespace();
        let mut group = ctx.group(ns, self.service());
        group.insert(
            "__meta_kubernetes_endpointslice_name".into(),
            self.metadata.name.clone().unwrap_or_default(),
        );
        group.insert(
            "__meta_kubernetes_endpointslice_address_type".into(),
            self.address_type.clone(),
        );
        let [labels, annotations] = labels_of(&self.metadata);
        object_meta_labels(
            &mut group,
            "__meta_kubernetes_endpointslice",
            labels,
            annotations,
        );
        const P: &str = "__meta_kubernetes_endpointslice";
        let mut seen = Seen::default();
        let mut out = Vec::new();
        for ep in &self.endpoints {
            if !ctx.on_node(ep.node_name.as_deref()) {
                continue;
            }
            for port in self.ports.iter().flatten() {
                for addr in &ep.addresses {
                    let mut t = group.clone();
                    let address = match port.port {
                        Some(p) => format!("{}:{p}", bracket_ipv6(addr)),
                        None => addr.clone(),
                    };
                    t.insert("__address__".into(), address);
                    let mut set = |k: &str, v: Option<String>| {
                        if let Some(v) = v {
                            t.insert(format!("{P}_{k}"), v);
                        }
                    };
                    set("port_name", port.name.clone());
                    set("port_protocol", port.protocol.clone());
                    set("port", port.port.map(|p| p.to_string()));
                    set("port_app_protocol", port.app_protocol.clone());
                    let c = ep.conditions.as_ref();
                    set(
                        "endpoint_conditions_ready",
                        c.and_then(|c| c.ready).map(|b| b.to_string()),
                    );
                    set(
                        "endpoint_conditions_serving",
                        c.and_then(|c| c.serving).map(|b| b.to_string()),
                    );
                    set(
                        "endpoint_conditions_terminating",
                        c.and_then(|c| c.terminating).map(|b| b.to_string()),
                    );
                    set("endpoint_hostname", ep.hostname.clone());
                    set("endpoint_node_name", ep.node_name.clone());
                    set("endpoint_zone", ep.zone.clone());
                    if let Some(r) = &ep.target_ref {
                        target_ref_labels(&mut t, P, r);
                    }
                    for (k, v) in ep.deprecated_topology.iter().flatten() {
                        let name = sanitize(k);
                        t.insert(format!("{P}_endpoint_topology_{name}"), v.clone());
                        t.insert(
                            format!("{P}_endpoint_topology_present_{name}"),
                            "true".into(),
                        );
                    }
                    seen.attach(&mut t, ctx.pod(ns, ep.target_ref.as_ref()), port.port);
                    out.push(t);
                }
            }
        }
        out.extend(seen.uncovered(&group));
        out
    }
}

fn is_pod(target: Option<&ObjectReference>, name: &str) -> bool {
    target.is_some_and(|t| t.kind.as_deref() == Some("Pod") && t.name.as_deref() == Some(name))
}

/// `<prefix>_address_target_kind` and `_name`.
fn target_ref_labels(t: &mut DiscoveredLabels, prefix: &str, r: &ObjectReference) {
    t.insert(
        format!("{prefix}_address_target_kind"),
        r.kind.clone().unwrap_or_default(),
    );
    t.insert(
        format!("{prefix}_address_target_name"),
        r.name.clone().unwrap_or_default(),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key<K: kube::Resource>(o: &K) -> String {
        super::super::object_key(o)
    }

    fn store<G: Group + kube::Resource>(
        objects: Vec<G>,
        services: Vec<Service>,
        pods: Vec<Pod>,
    ) -> Store<G> {
        let mut s = Store::default();
        s.objects(
            0,
            Update::Listed(objects.into_iter().map(|o| (key(&o), o)).collect()),
        );
        s.services(
            0,
            Update::Listed(services.into_iter().map(|o| (key(&o), o)).collect()),
        );
        s.pods(
            0,
            Update::Listed(pods.into_iter().map(|o| (key(&o), o)).collect()),
        );
        s
    }

    fn by_address(mut t: Vec<DiscoveredLabels>) -> Vec<DiscoveredLabels> {
        t.sort_by(|a, b| a["__address__"].cmp(&b["__address__"]));
        t
    }

    fn web_pod() -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "web-0", "namespace": "shop", "labels": {"app": "web"}},
            "spec": {"nodeName": "n1", "containers": [{"name": "app", "image": "web:1",
                "ports": [{"name": "http", "containerPort": 8080}, {"name": "admin", "containerPort": 9901}]}]},
            "status": {"podIP": "10.0.0.1", "phase": "Running"}
        }))
        .expect("pod")
    }

    fn web_service() -> Service {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "shop", "labels": {"team": "a"}},
            "spec": {"clusterIP": "10.96.0.10", "ports": [{"name": "http", "port": 80}]}
        }))
        .expect("service")
    }

    #[test]
    fn endpoints_role_attaches_service_and_pod_labels_and_uncovered_ports() {
        let eps: Endpoints = serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "shop", "labels": {"app.kubernetes.io/name": "web"}},
            "subsets": [{
                "addresses": [{"ip": "10.0.0.1", "nodeName": "n1", "targetRef": {"kind": "Pod", "name": "web-0", "namespace": "shop"}}],
                "notReadyAddresses": [{"ip": "10.0.0.2", "nodeName": "n2", "hostname": "web-1"}],
                "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]
            }]
        }))
        .expect("endpoints");
        let mut s = store(vec![eps], vec![web_service()], vec![web_pod()]);
        let t = by_address(s.targets());
        let addrs: Vec<&str> = t.iter().map(|l| l["__address__"].as_str()).collect();
        assert_eq!(addrs, ["10.0.0.1:8080", "10.0.0.1:9901", "10.0.0.2:8080"]);
        let a = &t[0];
        assert_eq!(a["__meta_kubernetes_namespace"], "shop");
        assert_eq!(a["__meta_kubernetes_endpoints_name"], "web");
        assert_eq!(
            a["__meta_kubernetes_endpoints_label_app_kubernetes_io_name"],
            "web"
        );
        assert_eq!(
            a["__meta_kubernetes_endpoints_labelpresent_app_kubernetes_io_name"],
            "true"
        );
        assert_eq!(a["__meta_kubernetes_endpoint_ready"], "true");
        assert_eq!(a["__meta_kubernetes_endpoint_port_name"], "http");
        assert_eq!(a["__meta_kubernetes_endpoint_port_protocol"], "TCP");
        assert_eq!(a["__meta_kubernetes_endpoint_node_name"], "n1");
        assert_eq!(a["__meta_kubernetes_endpoint_address_target_kind"], "Pod");
        assert_eq!(a["__meta_kubernetes_endpoint_address_target_name"], "web-0");
        assert_eq!(a["__meta_kubernetes_service_name"], "web");
        assert_eq!(a["__meta_kubernetes_service_label_team"], "a");
        assert_eq!(a["__meta_kubernetes_pod_name"], "web-0");
        assert_eq!(a["__meta_kubernetes_pod_label_app"], "web");
        assert_eq!(a["__meta_kubernetes_pod_container_port_name"], "http");
        assert_eq!(a["__meta_kubernetes_pod_container_name"], "app");
        // The admin port is no endpoint port: a target of its own, without endpoint labels.
        let admin = &t[1];
        assert_eq!(admin["__meta_kubernetes_pod_container_port_name"], "admin");
        assert_eq!(admin["__meta_kubernetes_endpoints_name"], "web");
        assert!(!admin.contains_key("__meta_kubernetes_endpoint_ready"));
        let nr = &t[2];
        assert_eq!(nr["__meta_kubernetes_endpoint_ready"], "false");
        assert_eq!(nr["__meta_kubernetes_endpoint_hostname"], "web-1");
        assert!(!nr.contains_key("__meta_kubernetes_pod_name"));

        // node_local on n2 keeps only the address on n2.
        s.set_node(Some("n2".into()));
        let t = s.targets();
        assert_eq!(t.len(), 1);
        assert_eq!(t[0]["__address__"], "10.0.0.2:8080");
    }

    #[test]
    fn endpointslice_role_labels() {
        let slice: EndpointSlice = serde_json::from_value(json!({
            "metadata": {"name": "web-abcde", "namespace": "shop",
                "labels": {"kubernetes.io/service-name": "web", "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"}},
            "addressType": "IPv4",
            "endpoints": [
                {"addresses": ["10.0.0.1"], "conditions": {"ready": true, "serving": true, "terminating": false},
                 "nodeName": "n1", "zone": "z1", "targetRef": {"kind": "Pod", "name": "web-0", "namespace": "shop"}},
                {"addresses": ["fd00::2"], "conditions": {"ready": false}, "hostname": "h2"}
            ],
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP", "appProtocol": "http"}]
        }))
        .expect("slice");
        let mut s = store(vec![slice], vec![web_service()], vec![web_pod()]);
        let t = by_address(s.targets());
        let addrs: Vec<&str> = t.iter().map(|l| l["__address__"].as_str()).collect();
        assert_eq!(addrs, ["10.0.0.1:8080", "10.0.0.1:9901", "[fd00::2]:8080"]);
        let a = &t[0];
        assert_eq!(a["__meta_kubernetes_endpointslice_name"], "web-abcde");
        assert_eq!(a["__meta_kubernetes_endpointslice_address_type"], "IPv4");
        assert_eq!(a["__meta_kubernetes_endpointslice_port"], "8080");
        assert_eq!(a["__meta_kubernetes_endpointslice_port_name"], "http");
        assert_eq!(a["__meta_kubernetes_endpointslice_port_protocol"], "TCP");
        assert_eq!(
            a["__meta_kubernetes_endpointslice_port_app_protocol"],
            "http"
        );
        assert_eq!(
            a["__meta_kubernetes_endpointslice_endpoint_conditions_ready"],
            "true"
        );
        assert_eq!(
            a["__meta_kubernetes_endpointslice_endpoint_conditions_serving"],
            "true"
        );
        assert_eq!(
            a["__meta_kubernetes_endpointslice_endpoint_conditions_terminating"],
            "false"
        );
        assert_eq!(
            a["__meta_kubernetes_endpointslice_endpoint_node_name"],
            "n1"
        );
        assert_eq!(a["__meta_kubernetes_endpointslice_endpoint_zone"], "z1");
        assert_eq!(
            a["__meta_kubernetes_endpointslice_address_target_kind"],
            "Pod"
        );
        assert_eq!(
            a["__meta_kubernetes_endpointslice_address_target_name"],
            "web-0"
        );
        assert_eq!(
            a["__meta_kubernetes_endpointslice_label_kubernetes_io_service_name"],
            "web"
        );
        assert_eq!(a["__meta_kubernetes_service_name"], "web");
        assert_eq!(a["__meta_kubernetes_pod_name"], "web-0");
        assert_eq!(a["__meta_kubernetes_pod_container_port_number"], "8080");
        let b = &t[2];
        assert_eq!(
            b["__meta_kubernetes_endpointslice_endpoint_conditions_ready"],
            "false"
        );
        assert_eq!(b["__meta_kubernetes_endpointslice_endpoint_hostname"], "h2");
        assert!(!b.contains_key("__meta_kubernetes_endpointslice_endpoint_conditions_serving"));
    }

    #[test]
    fn service_and_pod_changes_rebuild_the_objects_that_use_them() {
        let slice: EndpointSlice = serde_json::from_value(json!({
            "metadata": {"name": "web-abcde", "namespace": "shop", "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": ["10.0.0.1"], "targetRef": {"kind": "Pod", "name": "web-0"}}],
            "ports": [{"port": 8080}]
        }))
        .expect("slice");
        let mut s = store(vec![slice], vec![], vec![]);
        let t = s.targets();
        assert_eq!(t.len(), 1);
        assert!(!t[0].contains_key("__meta_kubernetes_service_name"));
        assert!(!t[0].contains_key("__meta_kubernetes_pod_name"));
        s.services(0, Update::Applied("shop/web".into(), web_service()));
        s.pods(0, Update::Applied("shop/web-0".into(), web_pod()));
        let t = by_address(s.targets());
        assert_eq!(t[0]["__meta_kubernetes_service_label_team"], "a");
        assert_eq!(t[0]["__meta_kubernetes_pod_label_app"], "web");
        assert_eq!(t.len(), 2, "the pod's uncovered admin port");
        let mut svc = web_service();
        svc.metadata.labels = Some([("team".to_string(), "b".to_string())].into());
        s.services(0, Update::Applied("shop/web".into(), svc));
        assert_eq!(s.targets()[0]["__meta_kubernetes_service_label_team"], "b");
        s.pods(0, Update::Deleted("shop/web-0".into()));
        let t = s.targets();
        assert_eq!(t.len(), 1);
        assert!(!t[0].contains_key("__meta_kubernetes_pod_name"));
        s.objects(0, Update::Deleted("shop/web-abcde".into()));
        assert!(s.targets().is_empty());
    }
}
