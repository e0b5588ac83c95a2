//! The HTTP surface of `external.metrics.k8s.io/v1beta1`, as the kube-aggregator and the HPA
//! controller expect it: discovery (`/apis`, the group, the resource list), values
//! (`/apis/external.metrics.k8s.io/v1beta1/namespaces/{ns}/{metric}?labelSelector=`), OpenAPI
//! documents, health endpoints, and `metav1.Status` errors. Values come from the series store
//! and the SLO manager's last round; nothing is queried per request.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::auth::{Attributes, Auth, Denied, PeerCerts};
use super::config::{Aggregate, HpaMetric, NoData, SloValue};
use super::quantity::Quantity;
use super::selector::{LabelSelector, Requirement};
use crate::slo::SloManager;
use crate::slo::engine::SloStatus;
use crate::store::selector::Selector;
use crate::store::series::SeriesStore;

/// API group.
pub const GROUP: &str = "external.metrics.k8s.io";
/// API version.
pub const VERSION: &str = "v1beta1";
const GROUP_VERSION: &str = "external.metrics.k8s.io/v1beta1";

/// A configured metric, its selector parsed once.
pub struct Compiled {
    cfg: HpaMetric,
    selector: Option<Selector>,
    window: Option<std::time::Duration>,
}

impl Compiled {
    /// Compiles validated entries (an entry whose selector no longer parses serves no data).
    pub fn all(metrics: &[HpaMetric]) -> Vec<Compiled> {
        metrics
            .iter()
            .map(|m| Compiled {
                cfg: m.clone(),
                selector: m.selector.as_ref().and_then(|s| s.parse().ok()),
                window: m
                    .window
                    .as_ref()
                    .and_then(|w| crate::config::parse_duration(w).ok()),
            })
            .collect()
    }
}

/// What a reload can change.
pub struct Live {
    /// The metrics.
    pub metrics: Vec<Compiled>,
    /// The no-data answer.
    pub no_data: NoData,
    /// Authentication and authorization.
    pub auth: Arc<Auth>,
}

/// Request counts for `/metrics`.
#[derive(Default)]
pub struct Counters {
    /// (handler, code) -> count.
    pub requests: Mutex<BTreeMap<(&'static str, u16), u64>>,
    /// (handler) -> (count, sum of seconds).
    pub durations: Mutex<BTreeMap<&'static str, (u64, f64)>>,
}

/// Shared by every request.
pub struct ApiState {
    /// Reloadable part.
    pub live: RwLock<Arc<Live>>,
    /// The series store.
    pub store: Arc<SeriesStore>,
    /// The SLO rounds (time ms, statuses).
    pub rounds: tokio::sync::watch::Receiver<(i64, Arc<Vec<SloStatus>>)>,
    /// Counters.
    pub counters: Counters,
    /// The SLO manager (kept for its lifetime).
    pub _slo: SloManager,
}

/// The router: one handler that routes by path (the API's paths are few and fixed).
pub fn router(state: Arc<ApiState>) -> axum::Router {
    axum::Router::new().fallback(handle).with_state(state)
}

fn json_response(code: StatusCode, body: &Value) -> Response {
    let mut r = Response::new(Body::from(body.to_string()));
    *r.status_mut() = code;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// A `metav1.Status` failure.
pub fn status(code: StatusCode, reason: &str, message: &str, details: Option<Value>) -> Response {
    let mut body = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code.as_u16(),
    });
    if let Some(d) = details {
        body["details"] = d;
    }
    json_response(code, &body)
}

fn unauthorized() -> Response {
    status(
        StatusCode::UNAUTHORIZED,
        "Unauthorized",
        "Unauthorized",
        None,
    )
}

async fn handle(State(state): State<Arc<ApiState>>, req: Request) -> Response {
    let started = Instant::now();
    let path = req.uri().path().to_string();
    let kind = handler_kind(&path);
    let resp = route(&state, req).await;
    let code = resp.status().as_u16();
    if let Ok(mut m) = state.counters.requests.lock() {
        *m.entry((kind, code)).or_default() += 1;
    }
    if let Ok(mut m) = state.counters.durations.lock() {
        let e = m.entry(kind).or_default();
        e.0 += 1;
        e.1 += started.elapsed().as_secs_f64();
    }
    resp
}

fn handler_kind(path: &str) -> &'static str {
    match path {
        "/healthz" | "/readyz" | "/livez" => "health",
        p if p.starts_with("/openapi") => "openapi",
        p if p.starts_with("/apis/external.metrics.k8s.io/v1beta1/namespaces/") => "values",
        _ => "discovery",
    }
}

async fn route(state: &ApiState, req: Request) -> Response {
    let path = req.uri().path().trim_end_matches('/').to_string();
    let path = if path.is_empty() { "/".into() } else { path };
    if matches!(path.as_str(), "/healthz" | "/readyz" | "/livez") {
        return (StatusCode::OK, "ok").into_response();
    }
    let live = match state.live.read() {
        Ok(l) => l.clone(),
        Err(_) => return internal("configuration lock poisoned"),
    };
    let user = match live
        .auth
        .authenticate(req.headers(), req.extensions().get::<PeerCerts>())
        .await
    {
        Ok(u) => u,
        Err(Denied::Unauthenticated) => return unauthorized(),
        Err(Denied::Forbidden(r)) => return forbidden("", &r),
        Err(Denied::Unavailable) => return internal("authentication unavailable"),
    };
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return status(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            &format!(
                "the server does not allow this method on the requested resource ({})",
                req.method()
            ),
            None,
        );
    }
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let attrs = match segs.as_slice() {
        [
            "apis",
            "external.metrics.k8s.io",
            "v1beta1",
            "namespaces",
            ns,
            metric,
        ] => Attributes::Metric {
            namespace: (*ns).to_string(),
            name: (*metric).to_string(),
        },
        _ => Attributes::Path(path.clone()),
    };
    match live.auth.authorize(&user, &attrs).await {
        Ok(()) => {}
        Err(Denied::Forbidden(reason)) => {
            let what = match &attrs {
                Attributes::Metric { namespace, name } => format!(
                    "{name}.{GROUP} is forbidden: User \"{}\" cannot list resource \"{name}\" in API group \"{GROUP}\" in the namespace \"{namespace}\"",
                    user.name
                ),
                Attributes::Path(p) => {
                    format!("forbidden: User \"{}\" cannot get path \"{p}\"", user.name)
                }
            };
            return forbidden(&what, &reason);
        }
        Err(Denied::Unauthenticated) => return unauthorized(),
        Err(Denied::Unavailable) => return internal("authorization unavailable"),
    }
    let accept = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    match segs.as_slice() {
        ["apis"] => {
            if only_aggregated_discovery(accept) {
                return status(
                    StatusCode::NOT_ACCEPTABLE,
                    "NotAcceptable",
                    "only the following media types are accepted: application/json, application/yaml, application/vnd.kubernetes.protobuf",
                    None,
                );
            }
            json_response(StatusCode::OK, &group_list())
        }
        ["apis", GROUP] => json_response(StatusCode::OK, &api_group()),
        ["apis", GROUP, VERSION] => json_response(StatusCode::OK, &resource_list(&live)),
        ["apis", GROUP, VERSION, "namespaces", ns, metric] => {
            values(state, &live, ns, metric, req.uri().query())
        }
        ["openapi", "v2"] => json_response(StatusCode::OK, &openapi_v2(&live)),
        ["openapi", "v3"] => json_response(
            StatusCode::OK,
            &json!({"paths": {"apis/external.metrics.k8s.io/v1beta1": {
                "serverRelativeURL": "/openapi/v3/apis/external.metrics.k8s.io/v1beta1"}}}),
        ),
        ["openapi", "v3", "apis", GROUP, VERSION] => {
            json_response(StatusCode::OK, &openapi_v3(&live))
        }
        ["version"] => json_response(
            StatusCode::OK,
            &json!({"major": "1", "minor": "0", "gitVersion": concat!("v", env!("CARGO_PKG_VERSION")),
                    "platform": "linux", "goVersion": "n/a (vigil)", "compiler": "rustc"}),
        ),
        _ => status(
            StatusCode::NOT_FOUND,
            "NotFound",
            "the server could not find the requested resource",
            Some(json!({})),
        ),
    }
}

fn forbidden(what: &str, reason: &str) -> Response {
    let message = match (what.is_empty(), reason.is_empty()) {
        (true, _) => "forbidden".to_string(),
        (false, true) => what.to_string(),
        (false, false) => format!("{what}: {reason}"),
    };
    status(StatusCode::FORBIDDEN, "Forbidden", &message, None)
}

fn internal(detail: &str) -> Response {
    tracing::error!(error = detail, "external metrics API: internal error");
    status(
        StatusCode::INTERNAL_SERVER_ERROR,
        "InternalError",
        "Internal error occurred: the external metrics API could not answer; see the vigil log",
        None,
    )
}

/// True when every media range of `accept` asks for aggregated discovery
/// (`as=APIGroupDiscoveryList`): this server only has the legacy discovery documents.
fn only_aggregated_discovery(accept: &str) -> bool {
    let ranges: Vec<&str> = accept
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    !ranges.is_empty()
        && ranges.iter().all(|r| {
            r.split(';')
                .skip(1)
                .any(|p| p.trim() == "as=APIGroupDiscoveryList")
        })
}

fn group_version() -> Value {
    json!({"groupVersion": GROUP_VERSION, "version": VERSION})
}

fn api_group() -> Value {
    json!({
        "kind": "APIGroup",
        "apiVersion": "v1",
        "name": GROUP,
        "versions": [group_version()],
        "preferredVersion": group_version(),
    })
}

fn group_list() -> Value {
    let mut g = api_group();
    if let Some(o) = g.as_object_mut() {
        o.remove("kind");
        o.remove("apiVersion");
    }
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": [g]})
}

fn resource_names(live: &Live) -> Vec<String> {
    if live.metrics.is_empty() {
        // Never an empty list: clients treat an empty group version as stale discovery.
        vec!["externalmetrics".to_string()]
    } else {
        live.metrics.iter().map(|m| m.cfg.name.clone()).collect()
    }
}

fn resource_list(live: &Live) -> Value {
    let resources: Vec<Value> = resource_names(live)
        .into_iter()
        .map(|name| {
            json!({
                "name": name,
                "singularName": "",
                "namespaced": true,
                "kind": "ExternalMetricValueList",
                "verbs": ["get"],
            })
        })
        .collect();
    json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": GROUP_VERSION,
        "resources": resources,
    })
}

fn value_schema_v2() -> Value {
    json!({
        "io.k8s.metrics.pkg.apis.external_metrics.v1beta1.ExternalMetricValueList": {
            "type": "object",
            "required": ["items"],
            "properties": {
                "apiVersion": {"type": "string"},
                "kind": {"type": "string"},
                "metadata": {"type": "object"},
                "items": {"type": "array", "items": {"$ref": "#/definitions/io.k8s.metrics.pkg.apis.external_metrics.v1beta1.ExternalMetricValue"}},
            },
            "x-kubernetes-group-version-kind": [{"group": GROUP, "kind": "ExternalMetricValueList", "version": VERSION}],
        },
        "io.k8s.metrics.pkg.apis.external_metrics.v1beta1.ExternalMetricValue": {
            "type": "object",
            "required": ["metricName", "metricLabels", "timestamp", "value"],
            "properties": {
                "metricName": {"type": "string"},
                "metricLabels": {"type": "object", "additionalProperties": {"type": "string"}},
                "timestamp": {"type": "string", "format": "date-time"},
                "window": {"type": "integer", "format": "int64"},
                "value": {"type": "string"},
            },
        },
    })
}

fn openapi_v2(live: &Live) -> Value {
    let mut paths = serde_json::Map::new();
    for name in resource_names(live) {
        paths.insert(
            format!("/apis/{GROUP_VERSION}/namespaces/{{namespace}}/{name}"),
            json!({"get": {
                "operationId": format!("readExternalMetric_{}", name.replace(['-', '.', ':'], "_")),
                "produces": ["application/json"],
                "schemes": ["https"],
                "parameters": [
                    {"name": "namespace", "in": "path", "required": true, "type": "string"},
                    {"name": "labelSelector", "in": "query", "type": "string"},
                ],
                "responses": {
                    "200": {"description": "OK", "schema": {"$ref": "#/definitions/io.k8s.metrics.pkg.apis.external_metrics.v1beta1.ExternalMetricValueList"}},
                    "401": {"description": "Unauthorized"},
                },
            }}),
        );
    }
    json!({
        "swagger": "2.0",
        "info": {"title": "vigil external metrics API", "version": VERSION},
        "paths": paths,
        "definitions": value_schema_v2(),
    })
}

fn openapi_v3(live: &Live) -> Value {
    let mut paths = serde_json::Map::new();
    let reference = "#/components/schemas/io.k8s.metrics.pkg.apis.external_metrics.v1beta1.ExternalMetricValueList";
    for name in resource_names(live) {
        paths.insert(
            format!("/apis/{GROUP_VERSION}/namespaces/{{namespace}}/{name}"),
            json!({"get": {
                "operationId": format!("readExternalMetric_{}", name.replace(['-', '.', ':'], "_")),
                "parameters": [
                    {"name": "namespace", "in": "path", "required": true, "schema": {"type": "string"}},
                    {"name": "labelSelector", "in": "query", "schema": {"type": "string"}},
                ],
                "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": {"$ref": reference}}}}},
            }}),
        );
    }
    let schemas = value_schema_v2()
        .to_string()
        .replace("#/definitions/", "#/components/schemas/");
    let schemas: Value = serde_json::from_str(&schemas).unwrap_or_else(|_| json!({}));
    json!({
        "openapi": "3.0.0",
        "info": {"title": "vigil external metrics API", "version": VERSION},
        "paths": paths,
        "components": {"schemas": schemas},
    })
}

/// One value before serialization.
struct Item {
    labels: BTreeMap<String, String>,
    value: f64,
    timestamp_ms: i64,
}

fn query_param<'a>(query: Option<&'a str>, key: &str) -> Option<std::borrow::Cow<'a, str>> {
    query?.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (k == key).then(|| percent_decode(v))
    })
}

fn percent_decode(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.contains(['%', '+']) {
        return std::borrow::Cow::Borrowed(s);
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => match b.get(i + 1..i + 3) {
                Some(h) if h.iter().all(u8::is_ascii_hexdigit) => {
                    let hex = std::str::from_utf8(h).unwrap_or("0");
                    out.push(u8::from_str_radix(hex, 16).unwrap_or(0));
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    std::borrow::Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

fn values(
    state: &ApiState,
    live: &Live,
    namespace: &str,
    metric: &str,
    query: Option<&str>,
) -> Response {
    let not_found = || {
        status(
            StatusCode::NOT_FOUND,
            "NotFound",
            &format!(
                "the server could not find the metric {metric} for namespace {namespace}: no external metric named {metric:?} is configured in vigil's hpa.metrics"
            ),
            Some(json!({"name": metric, "group": GROUP, "kind": metric})),
        )
    };
    let Some(m) = live.metrics.iter().find(|m| m.cfg.name == metric) else {
        return not_found();
    };
    if !m.cfg.namespaces.is_empty() && !m.cfg.namespaces.iter().any(|n| n == namespace) {
        return not_found();
    }
    let selector = match query_param(query, "labelSelector") {
        Some(s) => match LabelSelector::parse(&s) {
            Ok(sel) => sel,
            Err(e) => {
                return status(
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    &format!("unable to parse requirements: {e}"),
                    None,
                );
            }
        },
        None => LabelSelector::default(),
    };
    let now = crate::slo::manager::now_ms();
    let mut items: Vec<Item> = if m.cfg.slo.is_some() {
        slo_items(state, m)
    } else {
        series_items(state, m)
    };
    items.retain(|i| selector.matches(&i.labels));
    if items.is_empty() && live.no_data == NoData::Zero {
        // The HPA treats an empty list as an error: answer 0 with the labels the selector fixed.
        let labels = selector
            .requirements
            .iter()
            .filter_map(|r| match r {
                Requirement::In(k, vs) if vs.len() == 1 => Some((k.clone(), vs[0].clone())),
                _ => None,
            })
            .collect();
        items.push(Item {
            labels,
            value: 0.0,
            timestamp_ms: now,
        });
    }
    let items: Vec<Value> = items
        .into_iter()
        .filter_map(|i| {
            // NaN has no quantity: such a value is dropped; infinities are clamped.
            let v = if i.value.is_infinite() {
                f64::MAX.copysign(i.value)
            } else {
                i.value
            };
            let q = Quantity::from_f64(v).ok()?;
            Some(json!({
                "metricName": metric,
                "metricLabels": i.labels,
                "timestamp": rfc3339(if i.timestamp_ms > 0 { i.timestamp_ms } else { now }),
                "value": q.canonical(),
            }))
        })
        .collect();
    json_response(
        StatusCode::OK,
        &json!({
            "kind": "ExternalMetricValueList",
            "apiVersion": GROUP_VERSION,
            "metadata": {},
            "items": items,
        }),
    )
}

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// Per group: sum, count, min, max, newest timestamp.
type Acc = (f64, u64, f64, f64, i64);

fn series_items(state: &ApiState, m: &Compiled) -> Vec<Item> {
    let Some(sel) = &m.selector else {
        return Vec::new();
    };
    let mut groups: BTreeMap<BTreeMap<String, String>, Acc> = BTreeMap::new();
    for s in state.store.select(sel) {
        if s.value.is_nan() {
            continue;
        }
        let key: BTreeMap<String, String> = m
            .cfg
            .by
            .iter()
            .filter_map(|l| s.series.labels.get(l).map(|v| (l.clone(), v.to_string())))
            .collect();
        let e = groups
            .entry(key)
            .or_insert((0.0, 0, f64::INFINITY, f64::NEG_INFINITY, 0));
        e.0 += s.value;
        e.1 += 1;
        e.2 = e.2.min(s.value);
        e.3 = e.3.max(s.value);
        e.4 = e.4.max(s.timestamp_ms);
    }
    groups
        .into_iter()
        .map(|(labels, (sum, n, min, max, ts))| Item {
            labels,
            value: match m.cfg.aggregate {
                Aggregate::Sum => sum,
                Aggregate::Max => max,
                Aggregate::Min => min,
                Aggregate::Avg => sum / n as f64,
            },
            timestamp_ms: ts,
        })
        .collect()
}

fn slo_items(state: &ApiState, m: &Compiled) -> Vec<Item> {
    let (Some(id), Some(value)) = (&m.cfg.slo, m.cfg.value) else {
        return Vec::new();
    };
    let rounds = state.rounds.borrow();
    let (round_ms, statuses) = &*rounds;
    let Some(st) = statuses.iter().find(|s| &s.id == id) else {
        return Vec::new();
    };
    let window_matches = |w: &str| match m.window {
        Some(want) => crate::config::parse_duration(w).is_ok_and(|d| d == want),
        None => false,
    };
    st.instances
        .iter()
        .filter_map(|inst| {
            let v = match value {
                SloValue::ErrorBudgetRemaining => inst.error_budget_remaining,
                SloValue::BurnRate => {
                    inst.windows
                        .iter()
                        .find(|w| window_matches(&w.window))?
                        .burn_rate
                }
                SloValue::ErrorRatio => {
                    let w = if m.window.is_some() {
                        inst.windows.iter().find(|w| window_matches(&w.window))?
                    } else {
                        inst.windows.last()?
                    };
                    w.error_ratio?
                }
            };
            Some(Item {
                labels: inst.group.clone(),
                value: v,
                timestamp_ms: *round_ms,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aggregated_discovery_only() {
        assert!(only_aggregated_discovery(
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
        ));
        assert!(only_aggregated_discovery(
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList"
        ));
        assert!(!only_aggregated_discovery(
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json"
        ));
        assert!(!only_aggregated_discovery(""));
        assert!(!only_aggregated_discovery("*/*"));
    }

    #[test]
    fn query_decoding() {
        assert_eq!(
            query_param(
                Some("a=1&labelSelector=topic%3Dorders%2Cx+in+(a)"),
                "labelSelector"
            )
            .as_deref(),
            Some("topic=orders,x in (a)")
        );
        assert_eq!(query_param(Some("a=1"), "labelSelector"), None);
        assert_eq!(percent_decode("100%").as_ref(), "100%");
    }

    #[test]
    fn timestamps_are_rfc3339_seconds() {
        assert_eq!(rfc3339(1_700_000_000_123), "2023-11-14T22:13:20Z");
    }
}
