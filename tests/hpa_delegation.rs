//! Delegated authentication and authorization of the external metrics API end to end: a real
//! `vigil run` with `hpa.auth.delegate` whose `kubeconfig_file` points at a Kubernetes API server
//! written here. No kube-apiserver can run on these machines, so the fake speaks the wire format
//! of the two endpoints the delegator uses, over TLS with a generated CA, as the real one does:
//!
//! - `POST /apis/authentication.k8s.io/v1/tokenreviews`: a `TokenReview` answered from a table
//!   of tokens (authenticated with user, uid, groups, extra and audiences; not authenticated;
//!   not authenticated with `status.error`);
//! - `POST /apis/authorization.k8s.io/v1/subjectaccessreviews`: a `SubjectAccessReview`
//!   answered from a table of users (allowed, denied with a reason, or a 500 Status);
//!
//! checking the caller's own bearer token (from the kubeconfig) and recording every body, so the
//! tests can count reviews (caching) and check what the daemon asked. Clients are reqwest (with
//! the daemon's generated CA) and `kubectl get --raw` through a kubeconfig.

mod common;
#[path = "common/fake_k8s.rs"]
mod fake_k8s;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

use fake_k8s::status;

const WAIT: Duration = Duration::from_secs(60);
const BASE: &str = "/apis/external.metrics.k8s.io/v1beta1";
const GROUP: &str = "external.metrics.k8s.io";

/// The daemon's own credential for the API server (the service account token in a cluster).
const SA_TOKEN: &str = "vigil-aggregator-sa-token-7f3e";
/// What the daemon asks TokenReview for.
const AUDIENCE: &str = "https://vigil-aggregator.vigil.svc";

/// Tokens the fake API server knows.
const HPA_TOKEN: &str = "hpa-controller-token-5a1c9e";
const JANE_TOKEN: &str = "jane-token-0b7d42";
const ADMIN_TOKEN: &str = "admin-token-93c1aa";
const BROKEN_TOKEN: &str = "broken-authz-token-61f0";
const EXPIRED_TOKEN: &str = "expired-token-c4d2e8";
const OTHER_AUDIENCE_TOKEN: &str = "other-audience-token-2b9f";
const UNKNOWN_TOKEN: &str = "unknown-token-8e6a13";

const HPA_USER: &str = "system:serviceaccount:kube-system:horizontal-pod-autoscaler";

/// Every request the fake API server received: (path, body), and how many were refused for a
/// wrong caller token.
#[derive(Default)]
struct Recorded {
    requests: Vec<(String, Value)>,
    unauthorized: usize,
}

type Shared = Arc<Mutex<Recorded>>;

fn created(body: Value) -> Response {
    (
        StatusCode::CREATED,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// Records the request and checks the caller's token; Some is the 401 the API server answers.
fn refuse(api: &Shared, path: &str, headers: &HeaderMap, body: &Value) -> Option<Response> {
    let mut r = api.lock().expect("fake api lock");
    r.requests.push((path.to_string(), body.clone()));
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if auth != Some(&format!("Bearer {SA_TOKEN}")) {
        r.unauthorized += 1;
        return Some(status(401, "Unauthorized", "Unauthorized"));
    }
    None
}

async fn token_reviews(
    State(api): State<Shared>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if let Some(r) = refuse(&api, "tokenreviews", &headers, &body) {
        return r;
    }
    if body["apiVersion"] != "authentication.k8s.io/v1" || body["kind"] != "TokenReview" {
        return status(
            400,
            "BadRequest",
            "not an authentication.k8s.io/v1 TokenReview",
        );
    }
    let spec = body["spec"].clone();
    let asked = spec["audiences"].clone();
    let user = |name: &str, uid: &str, groups: Value, extra: Value| {
        json!({"authenticated": true, "audiences": asked,
               "user": {"username": name, "uid": uid, "groups": groups, "extra": extra}})
    };
    let status = match spec["token"].as_str().unwrap_or_default() {
        HPA_TOKEN => user(
            HPA_USER,
            "3f1c2a9e-hpa",
            json!([
                "system:serviceaccounts",
                "system:serviceaccounts:kube-system",
                "system:authenticated"
            ]),
            json!({"authentication.kubernetes.io/credential-id": ["JTI=1234"]}),
        ),
        JANE_TOKEN => user("jane", "uid-jane", json!(["developers"]), json!({})),
        ADMIN_TOKEN => user("admin", "uid-admin", json!(["system:masters"]), json!({})),
        BROKEN_TOKEN => user("broken", "uid-broken", json!([]), json!({})),
        OTHER_AUDIENCE_TOKEN => {
            json!({"authenticated": true, "audiences": ["https://other.example"],
            "user": {"username": "other", "groups": []}})
        }
        EXPIRED_TOKEN => json!({"authenticated": false, "error": "token has expired"}),
        _ => json!({"authenticated": false}),
    };
    created(
        json!({"kind": "TokenReview", "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"creationTimestamp": null}, "spec": spec, "status": status}),
    )
}

async fn access_reviews(
    State(api): State<Shared>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if let Some(r) = refuse(&api, "subjectaccessreviews", &headers, &body) {
        return r;
    }
    if body["apiVersion"] != "authorization.k8s.io/v1" || body["kind"] != "SubjectAccessReview" {
        return status(
            400,
            "BadRequest",
            "not an authorization.k8s.io/v1 SubjectAccessReview",
        );
    }
    let spec = body["spec"].clone();
    let ra = &spec["resourceAttributes"];
    let status = match spec["user"].as_str().unwrap_or_default() {
        HPA_USER => {
            json!({"allowed": true, "reason": "RBAC: allowed by ClusterRoleBinding \"vigil-external-metrics-reader:horizontal-pod-autoscaler\""})
        }
        "jane" if spec["nonResourceAttributes"].is_object() => json!({"allowed": true}),
        "jane" if ra["namespace"] == "dev" => json!({"allowed": true}),
        "jane" => json!({"allowed": false, "reason": "no RBAC policy matched"}),
        "broken" => {
            return status(
                500,
                "InternalError",
                "Internal error occurred: etcdserver: request timed out",
            );
        }
        _ => json!({"allowed": false}),
    };
    created(
        json!({"kind": "SubjectAccessReview", "apiVersion": "authorization.k8s.io/v1",
        "metadata": {"creationTimestamp": null}, "spec": spec, "status": status}),
    )
}

/// The fake API server on TLS with its own CA; stopped (listener and every open connection
/// closed) by [`FakeApi::stop`].
struct FakeApi {
    rt: tokio::runtime::Runtime,
    server: Option<tokio::task::JoinHandle<()>>,
    recorded: Shared,
    addr: SocketAddr,
    ca_pem: String,
}

impl FakeApi {
    fn start() -> FakeApi {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
        use tokio_rustls::rustls;
        let ca_key = KeyPair::generate().expect("key");
        let mut ca = CertificateParams::new(Vec::<String>::new()).expect("params");
        ca.distinguished_name
            .push(DnType::CommonName, "fake-kube-ca");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_pem = ca.self_signed(&ca_key).expect("ca").pem();
        let issuer = Issuer::new(ca, ca_key);
        let key = KeyPair::generate().expect("key");
        let mut p = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
            .expect("params");
        p.distinguished_name
            .push(DnType::CommonName, "kube-apiserver");
        let cert = p.signed_by(&key, &issuer).expect("server cert");
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("protocols")
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .expect("server config");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));

        let recorded: Shared = Arc::default();
        let router = Router::new()
            .route(
                "/apis/authentication.k8s.io/v1/tokenreviews",
                post(token_reviews),
            )
            .route(
                "/apis/authorization.k8s.io/v1/subjectaccessreviews",
                post(access_reviews),
            )
            .with_state(recorded.clone());
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server = rt.spawn(async move {
            // Connections live in this set: aborting the task closes them with the listener.
            let mut conns = tokio::task::JoinSet::new();
            while let Ok((stream, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                let router = router.clone();
                conns.spawn(async move {
                    let Ok(tls) = acceptor.accept(stream).await else {
                        return;
                    };
                    let svc = hyper_util::service::TowerToHyperService::new(router);
                    let _ = hyper_util::server::conn::auto::Builder::new(
                        hyper_util::rt::TokioExecutor::new(),
                    )
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), svc)
                    .await;
                });
                while conns.try_join_next().is_some() {}
            }
        });
        FakeApi {
            rt,
            server: Some(server),
            recorded,
            addr,
            ca_pem,
        }
    }

    /// Stops serving: the port refuses connections from now on.
    fn stop(&mut self) {
        if let Some(s) = self.server.take() {
            s.abort();
            let _ = self.rt.block_on(s);
        }
    }

    /// The kubeconfig the daemon uses: this server, its CA, the daemon's token.
    fn kubeconfig(&self, dir: &Path) -> PathBuf {
        use base64::Engine as _;
        let ca = base64::engine::general_purpose::STANDARD.encode(&self.ca_pem);
        let path = dir.join("delegate-kubeconfig");
        std::fs::write(
            &path,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: https://{}\n    certificate-authority-data: {ca}\n\
                 users:\n- name: vigil-aggregator\n  user:\n    token: {SA_TOKEN}\n\
                 contexts:\n- name: fake\n  context:\n    cluster: fake\n    user: vigil-aggregator\n\
                 current-context: fake\n",
                self.addr
            ),
        )
        .expect("kubeconfig");
        path
    }

    /// Bodies of the requests to `path` (`tokenreviews` or `subjectaccessreviews`).
    fn bodies(&self, path: &str) -> Vec<Value> {
        self.recorded
            .lock()
            .expect("lock")
            .requests
            .iter()
            .filter(|(p, _)| p == path)
            .map(|(_, b)| b.clone())
            .collect()
    }

    /// How many TokenReviews asked about `token`.
    fn token_reviews(&self, token: &str) -> usize {
        self.bodies("tokenreviews")
            .iter()
            .filter(|b| b["spec"]["token"] == token)
            .count()
    }

    /// SubjectAccessReview specs for `user`.
    fn access_reviews(&self, user: &str) -> Vec<Value> {
        self.bodies("subjectaccessreviews")
            .into_iter()
            .filter(|b| b["spec"]["user"] == user)
            .map(|b| b["spec"].clone())
            .collect()
    }
}

impl Drop for FakeApi {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A daemon with delegation on, and what a client needs to reach it.
struct Api {
    d: common::Daemon,
    url: String,
    ca: PathBuf,
    token_file: PathBuf,
    dir: PathBuf,
}

/// The demo service scraped every second, so `up{job="demo"}` is 1.
fn demo_extra() -> String {
    let port = common::free_port();
    format!(
        "demo:\n  enabled: true\n  listen: 127.0.0.1:{port}\n  requests_per_second: 50\n  error_rate: 0\n\
         scrape:\n  targets:\n    - job: demo\n      urls: [http://127.0.0.1:{port}/metrics]\n      interval: 1s\n      timeout: 900ms\n"
    )
}

fn start(dir: &Path, fake: &FakeApi, extra: &str) -> Api {
    let kubeconfig = fake.kubeconfig(dir);
    // Long cache TTLs so that "no second review" cannot depend on how fast the test runs.
    let cfg = common::write_config(
        dir,
        &format!(
            "{extra}hpa:\n  listen: 127.0.0.1:0\n  auth:\n    delegate:\n      enabled: true\n      kubeconfig_file: {}\n\
             \x20     audiences: [\"{AUDIENCE}\"]\n      cache_ttl: 5m\n      authorized_cache_ttl: 5m\n      unauthorized_cache_ttl: 5m\n\
             \x20 metrics:\n    - name: demo-up\n      selector: up{{job=\"demo\"}}\n      by: [job]\n",
            kubeconfig.display()
        ),
    );
    let mut d = common::Daemon::start(&cfg);
    let (url, token_file) = d.hpa_endpoint(WAIT);
    Api {
        d,
        url,
        ca: dir.join("data/hpa-ca.crt"),
        token_file,
        dir: dir.to_path_buf(),
    }
}

impl Api {
    fn client(&self) -> reqwest::blocking::Client {
        let ca =
            reqwest::Certificate::from_pem(&std::fs::read(&self.ca).expect("ca")).expect("ca pem");
        reqwest::blocking::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(ca)
            .timeout(Duration::from_secs(30))
            .build()
            .expect("client")
    }

    /// GET `path` with `token`; (status code, JSON body).
    fn get(&self, path: &str, token: &str) -> (u16, Value) {
        let url = format!("{}{path}", self.url);
        let resp = self
            .client()
            .get(&url)
            .bearer_auth(token)
            .send()
            .unwrap_or_else(|e| panic!("GET {url}: {e:?}"));
        let code = resp.status().as_u16();
        let text = resp.text().unwrap_or_default();
        (
            code,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// `kubectl get --raw PATH` through a kubeconfig holding `token`: (success, stdout, stderr).
    fn kubectl_raw(&self, token: &str, path: &str) -> (bool, String, String) {
        let kubeconfig = self.dir.join(format!("kubeconfig-{}", &token[..6]));
        std::fs::write(
            &kubeconfig,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: vigil\n  cluster:\n    server: {}\n    certificate-authority: {}\n\
                 users:\n- name: u\n  user:\n    token: {token}\ncontexts:\n- name: vigil\n  context:\n    cluster: vigil\n    user: u\n\
                 current-context: vigil\n",
                self.url,
                self.ca.display()
            ),
        )
        .expect("kubeconfig");
        let out = Command::new(common::service("VIGIL_TEST_KUBECTL", "kubectl"))
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .arg("--cache-dir")
            .arg(self.dir.join("kube-cache"))
            .args(["get", "--raw", path])
            .env("HOME", &self.dir)
            .output()
            .expect("run kubectl");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn static_token(&self) -> String {
        std::fs::read_to_string(&self.token_file)
            .expect("token file")
            .trim()
            .to_string()
    }
}

fn assert_status(got: &(u16, Value), code: u16, reason: &str) {
    assert_eq!(got.0, code, "{}", got.1);
    assert_eq!(got.1["kind"], "Status", "{}", got.1);
    assert_eq!(got.1["apiVersion"], "v1", "{}", got.1);
    assert_eq!(got.1["status"], "Failure", "{}", got.1);
    assert_eq!(got.1["code"], code, "{}", got.1);
    assert_eq!(got.1["reason"], reason, "{}", got.1);
}

fn values_path(ns: &str) -> String {
    format!("{BASE}/namespaces/{ns}/demo-up")
}

/// The resource attributes of a review of demo-up in `ns`.
fn metric_attrs(ns: &str) -> Value {
    json!({"group": GROUP, "version": "v1beta1", "resource": "demo-up", "namespace": ns, "verb": "list"})
}

fn reviews_of(fake: &FakeApi, user: &str, key: &str, attrs: &Value) -> usize {
    fake.access_reviews(user)
        .iter()
        .filter(|s| s[key] == *attrs)
        .count()
}

#[test]
fn token_review_and_access_review_decide_who_reads() {
    let fake = FakeApi::start();
    let tmp = tempfile::tempdir().expect("tempdir");
    let api = start(tmp.path(), &fake, &demo_extra());

    // The HPA controller's token: TokenReview says who it is, SubjectAccessReview allows it.
    let body = common::eventually(WAIT, "demo-up = 1 for the HPA controller", || {
        let (code, body) = api.get(&values_path("default"), HPA_TOKEN);
        assert_eq!(code, 200, "{body}");
        (body["items"][0]["value"] == "1").then_some(body)
    });
    assert_eq!(body["kind"], "ExternalMetricValueList");
    assert_eq!(body["items"][0]["metricLabels"], json!({"job": "demo"}));

    // One TokenReview, with the token and the configured audiences, whatever the number of
    // requests above (cached for cache_ttl).
    assert_eq!(fake.token_reviews(HPA_TOKEN), 1);
    let review = fake
        .bodies("tokenreviews")
        .into_iter()
        .find(|b| b["spec"]["token"] == HPA_TOKEN)
        .expect("review");
    assert_eq!(review["spec"]["audiences"], json!([AUDIENCE]), "{review}");
    // One SubjectAccessReview with the user as TokenReview described it and the metric as the
    // resource.
    let sars = fake.access_reviews(HPA_USER);
    assert_eq!(sars.len(), 1, "{sars:?}");
    let spec = &sars[0];
    assert_eq!(
        spec["resourceAttributes"],
        metric_attrs("default"),
        "{spec}"
    );
    assert!(spec.get("nonResourceAttributes").is_none(), "{spec}");
    assert_eq!(spec["uid"], "3f1c2a9e-hpa");
    assert_eq!(
        spec["groups"],
        json!([
            "system:serviceaccounts",
            "system:serviceaccounts:kube-system",
            "system:authenticated"
        ])
    );
    assert_eq!(
        spec["extra"],
        json!({"authentication.kubernetes.io/credential-id": ["JTI=1234"]})
    );

    // Discovery paths are non-resource reviews; a repeat within the TTL asks nothing again.
    for path in ["/apis", "/apis/external.metrics.k8s.io", BASE, "/apis"] {
        let (code, body) = api.get(path, HPA_TOKEN);
        assert_eq!(code, 200, "{path}: {body}");
    }
    for path in ["/apis", "/apis/external.metrics.k8s.io", BASE] {
        let attrs = json!({"path": path, "verb": "get"});
        assert_eq!(
            reviews_of(&fake, HPA_USER, "nonResourceAttributes", &attrs),
            1,
            "{path}: {:?}",
            fake.access_reviews(HPA_USER)
        );
    }
    assert_eq!(fake.token_reviews(HPA_TOKEN), 1);

    // kubectl through a kubeconfig with the same token reads the value.
    let (ok, out, err) = api.kubectl_raw(HPA_TOKEN, &values_path("default"));
    assert!(ok, "kubectl: {err}");
    let list: Value = serde_json::from_str(&out).expect("kubectl json");
    assert_eq!(list["items"][0]["metricName"], "demo-up");

    // jane is authenticated but may not read demo-up in default: a Forbidden Status naming the
    // user, verb, resource, group and namespace, plus the authorizer's reason, as apiserver's.
    let denied = api.get(&values_path("default"), JANE_TOKEN);
    assert_status(&denied, 403, "Forbidden");
    assert_eq!(
        denied.1["message"],
        "demo-up.external.metrics.k8s.io is forbidden: User \"jane\" cannot list resource \"demo-up\" in API group \"external.metrics.k8s.io\" in the namespace \"default\": no RBAC policy matched"
    );
    let jane = fake.access_reviews("jane");
    assert_eq!(jane.len(), 1, "{jane:?}");
    // The authenticated group is added, as the apiserver's AuthenticatedGroupAdder does.
    assert_eq!(
        jane[0]["groups"],
        json!(["developers", "system:authenticated"])
    );
    // The denial is cached too (unauthorized_cache_ttl).
    assert_status(
        &api.get(&values_path("default"), JANE_TOKEN),
        403,
        "Forbidden",
    );
    assert_eq!(
        reviews_of(
            &fake,
            "jane",
            "resourceAttributes",
            &metric_attrs("default")
        ),
        1
    );
    // ... and it is per namespace: jane may read in dev.
    let (code, body) = api.get(&values_path("dev"), JANE_TOKEN);
    assert_eq!(code, 200, "{body}");
    let (ok, _, err) = api.kubectl_raw(JANE_TOKEN, &values_path("default"));
    assert!(!ok);
    assert!(
        err.contains("Forbidden") && err.contains("User \"jane\" cannot list resource \"demo-up\""),
        "{err}"
    );

    // Tokens the API server does not authenticate: 401, and the answer is cached.
    for _ in 0..3 {
        assert_status(
            &api.get(&values_path("default"), UNKNOWN_TOKEN),
            401,
            "Unauthorized",
        );
    }
    assert_eq!(fake.token_reviews(UNKNOWN_TOKEN), 1);
    let (ok, _, err) = api.kubectl_raw(UNKNOWN_TOKEN, &values_path("default"));
    assert!(!ok);
    assert!(err.contains("Unauthorized"), "{err}");
    // A token for another audience is not authenticated.
    assert_status(
        &api.get(&values_path("default"), OTHER_AUDIENCE_TOKEN),
        401,
        "Unauthorized",
    );
    assert!(fake.access_reviews("other").is_empty());
    // status.error is an authenticator error: 401, logged, and not cached.
    for _ in 0..2 {
        assert_status(
            &api.get(&values_path("default"), EXPIRED_TOKEN),
            401,
            "Unauthorized",
        );
    }
    assert_eq!(fake.token_reviews(EXPIRED_TOKEN), 2);
    let expired_id = vigil::hpa::auth::token_id(EXPIRED_TOKEN);
    common::eventually(WAIT, "the TokenReview error in the log", || {
        api.d
            .log_lines()
            .iter()
            .any(|l| {
                l.contains("TokenReview failed")
                    && l.contains("token has expired")
                    && l.contains(&expired_id)
            })
            .then_some(())
    });

    // system:masters is never reviewed (the apiserver's default always-allow group).
    let (code, body) = api.get(&values_path("default"), ADMIN_TOKEN);
    assert_eq!(code, 200, "{body}");
    assert!(fake.access_reviews("admin").is_empty());

    // The static token file still works, without any review.
    let own = api.static_token();
    let (code, body) = api.get(&values_path("default"), &own);
    assert_eq!(code, 200, "{body}");
    assert_eq!(fake.token_reviews(&own), 0);
    assert!(fake.access_reviews("token-user-1").is_empty());

    // An authorizer that fails: 500 InternalError, details only in the log, not cached.
    for _ in 0..2 {
        assert_status(
            &api.get(&values_path("default"), BROKEN_TOKEN),
            500,
            "InternalError",
        );
    }
    assert_eq!(fake.access_reviews("broken").len(), 2);
    common::eventually(WAIT, "the SubjectAccessReview error in the log", || {
        api.d
            .log_lines()
            .iter()
            .any(|l| l.contains("SubjectAccessReview failed") && l.contains("etcdserver"))
            .then_some(())
    });

    // The API server it asks is logged once, when the client is built.
    let announced: Vec<String> = api
        .d
        .log_lines()
        .into_iter()
        .filter(|l| l.contains("go to this API server"))
        .collect();
    assert_eq!(announced.len(), 1, "{announced:?}");
    assert!(
        announced[0].contains(&format!("https://{}", fake.addr)),
        "{announced:?}"
    );

    // What the fake API server saw is what the agent's /metrics counts.
    let asked: Vec<Value> = fake
        .bodies("tokenreviews")
        .iter()
        .map(|b| b["spec"]["token"].clone())
        .collect();
    assert_eq!(asked.len(), 8, "{asked:?}");
    let sars: Vec<Value> = fake
        .bodies("subjectaccessreviews")
        .into_iter()
        .map(|b| b["spec"].clone())
        .collect();
    // kubectl may also GET /version (a non-resource review), so allowed reviews are counted
    // from what the fake answered.
    let errors = sars.iter().filter(|s| s["user"] == "broken").count();
    let denied = sars
        .iter()
        .filter(|s| s["user"] == "jane" && s["resourceAttributes"]["namespace"] == "default")
        .count();
    let allowed = sars.len() - errors - denied;
    assert_eq!((errors, denied), (2, 1), "{sars:#?}");
    assert!(allowed >= 5, "{sars:#?}");
    let (_, metrics) = api.d.get("/metrics");
    let reviews = |review: &str, result: &str| {
        common::metric_value(
            &metrics,
            &format!(
                "vigil_hpa_delegated_reviews_total{{review=\"{review}\",result=\"{result}\"}}"
            ),
        )
        .unwrap_or(0.0)
    };
    for (review, result, n) in [
        ("TokenReview", "authenticated", 4.0),
        ("TokenReview", "unauthenticated", 2.0),
        ("TokenReview", "error", 2.0),
        ("SubjectAccessReview", "allowed", allowed as f64),
        ("SubjectAccessReview", "denied", 1.0),
        ("SubjectAccessReview", "error", 2.0),
    ] {
        assert_eq!(reviews(review, result), n, "{review} {result}:\n{metrics}");
    }
    assert!(reviews("TokenReview", "cache_hit") >= 5.0, "{metrics}");
    assert!(
        reviews("SubjectAccessReview", "cache_hit") >= 2.0,
        "{metrics}"
    );

    // Every review carried the daemon's own token; no client token ever reached the log.
    assert_eq!(fake.recorded.lock().expect("lock").unauthorized, 0);
    let log = api.d.log_text();
    for t in [
        HPA_TOKEN,
        JANE_TOKEN,
        ADMIN_TOKEN,
        BROKEN_TOKEN,
        EXPIRED_TOKEN,
        OTHER_AUDIENCE_TOKEN,
        UNKNOWN_TOKEN,
        SA_TOKEN,
        &own,
    ] {
        assert!(!log.contains(t), "{t} in the log:\n{log}");
    }
}

#[test]
fn unreachable_api_server_fails_closed() {
    let mut fake = FakeApi::start();
    let tmp = tempfile::tempdir().expect("tempdir");
    let api = start(tmp.path(), &fake, "");

    // Reviews made while the API server is up are served from the cache afterwards.
    let (code, body) = api.get(&values_path("default"), HPA_TOKEN);
    assert_eq!(code, 200, "{body}");
    assert_eq!(fake.token_reviews(HPA_TOKEN), 1);
    fake.stop();
    let (code, body) = api.get(&values_path("default"), HPA_TOKEN);
    assert_eq!(code, 200, "cached review: {body}");

    // A token never seen: TokenReview cannot be made: 401, as the apiserver answers
    // authenticator errors.
    let got = api.get(&values_path("default"), JANE_TOKEN);
    assert_status(&got, 401, "Unauthorized");
    // A known user asking something new: SubjectAccessReview cannot be made: 500.
    let got = api.get(&values_path("prod"), HPA_TOKEN);
    assert_status(&got, 500, "InternalError");
    assert!(
        !got.1["message"]
            .as_str()
            .unwrap_or_default()
            .contains("127.0.0.1"),
        "no details for the client: {}",
        got.1
    );
    // The static token does not need the API server.
    let (code, body) = api.get(&values_path("default"), &api.static_token());
    assert_eq!(code, 200, "{body}");

    let jane_id = vigil::hpa::auth::token_id(JANE_TOKEN);
    common::eventually(WAIT, "both failures in the log", || {
        let lines = api.d.log_lines();
        (lines
            .iter()
            .any(|l| l.contains("TokenReview failed") && l.contains(&jane_id))
            && lines
                .iter()
                .any(|l| l.contains("SubjectAccessReview failed")))
        .then_some(())
    });
    let log = api.d.log_text();
    for t in [HPA_TOKEN, JANE_TOKEN, SA_TOKEN] {
        assert!(!log.contains(t), "{t} in the log:\n{log}");
    }
}
