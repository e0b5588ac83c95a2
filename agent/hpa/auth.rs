//! Who may read the external metrics API, as kube-apiserver's delegated authentication does it:
//!
//! 1. front-proxy: a client certificate that verifies against `requestheader.client_ca_file`
//!    with an allowed common name makes the `X-Remote-User` / `X-Remote-Group` headers trusted;
//!    without such a certificate those headers are ignored;
//! 2. bearer tokens from the static token file (the generated `<data_dir>/hpa-token` by
//!    default), then, with `delegate.enabled`, a TokenReview against the API server;
//! 3. anonymous, when `anonymous: true`.
//!
//! Every authenticated user also gets the group `system:authenticated`, as the apiserver's
//! `AuthenticatedGroupAdder` does.
//!
//! Authorization: with `delegate.enabled`, a SubjectAccessReview per request (verb `list` on the
//! metric as a resource of `external.metrics.k8s.io`, or the non-resource path), except for
//! users of the token file (the file is the grant) and the group `system:masters` (the
//! apiserver's default `--authorization-always-allow-groups`); otherwise every authenticated
//! user may read.
//!
//! Delegation follows k8s.io/apiserver's delegating authenticator and authorizer: TokenReview
//! answers are cached for `cache_ttl` whether the token was accepted or not, SubjectAccessReview
//! answers for `authorized_cache_ttl` / `unauthorized_cache_ttl`; failures are never cached. An
//! API server that cannot be asked makes authentication fail (401) and authorization fail (500
//! InternalError), with the details only in the log. Tokens are never logged: log lines carry
//! the first 12 hex digits of the token's SHA-256 (`token_sha256`). Used by api.rs.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use axum::http::{self, HeaderMap};
use sha2::{Digest, Sha256};
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::{CertificateDer, UnixTime};
use tokio_rustls::rustls::server::danger::ClientCertVerifier;

use super::HpaError;
use super::config::{Delegate, HpaAuth, RequestHeader};

/// The client certificate chain of a TLS connection, put into each request's extensions by
/// server.rs (absent when the client sent none).
#[derive(Debug, Clone)]
pub struct PeerCerts(pub Arc<Vec<CertificateDer<'static>>>);

/// Which authenticator recognised a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The front proxy's `X-Remote-User` headers.
    FrontProxy,
    /// The static token file.
    TokenFile,
    /// A TokenReview by the API server.
    TokenReview,
    /// No credentials, with `anonymous: true`.
    Anonymous,
}

/// An authenticated user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// User name (`system:anonymous` for anonymous requests).
    pub name: String,
    /// Groups.
    pub groups: Vec<String>,
    /// UID, when the authenticator knows one (TokenReview, token file).
    pub uid: String,
    /// Extra attributes from a TokenReview (passed on to SubjectAccessReviews).
    pub extra: BTreeMap<String, Vec<String>>,
    /// Who recognised the user.
    pub source: Source,
}

impl User {
    fn new(name: String, groups: Vec<String>, source: Source) -> Self {
        Self {
            name,
            groups,
            uid: String::new(),
            extra: BTreeMap::new(),
            source,
        }
    }
}

/// What a request asks for, for authorization.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Attributes {
    /// `get` of a metric in a namespace.
    Metric {
        /// Namespace.
        namespace: String,
        /// Metric name (the resource).
        name: String,
    },
    /// A non-resource path (discovery, openapi).
    Path(String),
}

/// Why a request is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denied {
    /// 401: no valid credentials.
    Unauthenticated,
    /// 403, with the reason for the message.
    Forbidden(String),
    /// 500: the API server could not be asked (details logged).
    Unavailable,
}

struct FrontProxy {
    verifier: Arc<dyn ClientCertVerifier>,
    allowed_names: Vec<String>,
    username_headers: Vec<String>,
    group_headers: Vec<String>,
}

/// Counts of delegated reviews, kept across reloads (each reload builds a new [`Auth`]); read
/// by the `/metrics` writer in mod.rs.
#[derive(Debug, Clone, Default)]
pub struct ReviewCounters(Arc<Mutex<BTreeMap<(&'static str, &'static str), u64>>>);

impl ReviewCounters {
    fn add(&self, review: &'static str, result: &'static str) {
        if let Ok(mut m) = self.0.lock() {
            *m.entry((review, result)).or_default() += 1;
        }
    }

    /// ((review, result), count): review `TokenReview` or `SubjectAccessReview`; result
    /// `authenticated` / `unauthenticated`, `allowed` / `denied`, `error`, or `cache_hit`.
    pub fn snapshot(&self) -> Vec<((&'static str, &'static str), u64)> {
        self.0
            .lock()
            .map(|m| m.iter().map(|(k, v)| (*k, *v)).collect())
            .unwrap_or_default()
    }
}

const TOKEN_REVIEW: &str = "TokenReview";
const ACCESS_REVIEW: &str = "SubjectAccessReview";

/// The authenticator and authorizer of one configuration.
pub struct Auth {
    anonymous: bool,
    /// sha256(token) -> user.
    tokens: HashMap<[u8; 32], User>,
    front_proxy: Option<FrontProxy>,
    delegate: Option<Delegator>,
    /// Where the bearer token is (for the start-up log line).
    pub token_file: Option<PathBuf>,
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl Auth {
    /// Builds the authenticator: reads (or generates into `data_dir`) the token file and the
    /// front-proxy CA. Delegated reviews are counted in `counters`.
    pub fn new(cfg: &HpaAuth, data_dir: &Path, counters: ReviewCounters) -> Result<Self, HpaError> {
        let token_file = match &cfg.token_file {
            Some(f) => Some(f.clone()),
            None if !cfg.anonymous => Some(ensure_generated_token(data_dir)?),
            None => None,
        };
        let mut tokens = HashMap::new();
        if let Some(f) = &token_file {
            let text = std::fs::read_to_string(f).map_err(|e| HpaError::Auth {
                key: "hpa.auth.token_file".into(),
                message: format!("cannot read {}: {e}", f.display()),
            })?;
            for (i, line) in text.lines().enumerate() {
                let line = line.trim();
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                let fields = split_csv(line);
                let token = fields.first().cloned().unwrap_or_default();
                if token.is_empty() {
                    continue;
                }
                let name = fields
                    .get(1)
                    .filter(|s| !s.is_empty())
                    .cloned()
                    .unwrap_or_else(|| format!("token-user-{}", i + 1));
                let groups = fields
                    .get(3)
                    .map(|g| {
                        g.split(',')
                            .map(str::trim)
                            .filter(|s| !s.is_empty())
                            .map(String::from)
                            .collect()
                    })
                    .unwrap_or_default();
                let mut user = User::new(name, groups, Source::TokenFile);
                user.uid = fields.get(2).cloned().unwrap_or_default();
                tokens.insert(digest(&token), user);
            }
        }
        let front_proxy = cfg.requestheader.as_ref().map(front_proxy).transpose()?;
        let delegate = cfg
            .delegate
            .enabled
            .then(|| Delegator::new(cfg.delegate.clone(), counters));
        Ok(Self {
            anonymous: cfg.anonymous,
            tokens,
            front_proxy,
            delegate,
            token_file,
        })
    }

    /// Authenticates a request from its headers and client certificate.
    pub async fn authenticate(
        &self,
        headers: &HeaderMap,
        peer: Option<&PeerCerts>,
    ) -> Result<User, Denied> {
        let mut user = self.identify(headers, peer).await?;
        if user.source != Source::Anonymous && !user.groups.iter().any(|g| g == AUTHENTICATED) {
            user.groups.push(AUTHENTICATED.to_string());
        }
        Ok(user)
    }

    async fn identify(
        &self,
        headers: &HeaderMap,
        peer: Option<&PeerCerts>,
    ) -> Result<User, Denied> {
        if let (Some(fp), Some(PeerCerts(chain))) = (&self.front_proxy, peer) {
            if let Some(user) = fp.authenticate(chain, headers)? {
                return Ok(user);
            }
        }
        if let Some(token) = bearer(headers) {
            if let Some(u) = self.tokens.get(&digest(token)) {
                return Ok(u.clone());
            }
            if let Some(d) = &self.delegate {
                return d.token_review(token).await;
            }
            return Err(Denied::Unauthenticated);
        }
        if self.anonymous {
            return Ok(User::new(
                "system:anonymous".into(),
                vec!["system:unauthenticated".into()],
                Source::Anonymous,
            ));
        }
        Err(Denied::Unauthenticated)
    }

    /// Authorizes `user` for `attrs`.
    pub async fn authorize(&self, user: &User, attrs: &Attributes) -> Result<(), Denied> {
        match &self.delegate {
            None => Ok(()),
            Some(_) if user.source == Source::TokenFile => Ok(()),
            Some(_) if user.groups.iter().any(|g| g == MASTERS) => Ok(()),
            Some(d) => d.access_review(user, attrs).await,
        }
    }
}

/// Added to every authenticated user.
const AUTHENTICATED: &str = "system:authenticated";
/// Never reviewed (k8s.io/apiserver's default `AlwaysAllowGroups`).
const MASTERS: &str = "system:masters";

/// What may be logged about a token: the first 12 hex digits of its SHA-256.
pub fn token_id(token: &str) -> String {
    digest(token)[..6]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
        .filter(|t| !t.is_empty())
}

/// Splits a kube token-file line: `token,user,uid,"group1,group2"`.
fn split_csv(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in line.chars() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => out.push(std::mem::take(&mut cur).trim().to_string()),
            c => cur.push(c),
        }
    }
    out.push(cur.trim().to_string());
    out
}

/// Reads or creates `<data_dir>/hpa-token` (32 random bytes, base64url, mode 0600).
fn ensure_generated_token(data_dir: &Path) -> Result<PathBuf, HpaError> {
    let path = data_dir.join("hpa-token");
    if path.is_file() {
        return Ok(path);
    }
    let err = |message: String| HpaError::Auth {
        key: "hpa.auth.token_file".into(),
        message,
    };
    let mut buf = [0u8; 32];
    rustls::crypto::ring::default_provider()
        .secure_random
        .fill(&mut buf)
        .map_err(|_| err("no secure random source to generate a token".into()))?;
    use base64::Engine as _;
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buf);
    std::fs::create_dir_all(data_dir)
        .map_err(|e| err(format!("cannot create {}: {e}", data_dir.display())))?;
    super::tls::write_private(&path, format!("{token}\n").as_bytes())
        .map_err(|e| err(format!("cannot write {}: {e}", path.display())))?;
    Ok(path)
}

fn front_proxy(rh: &RequestHeader) -> Result<FrontProxy, HpaError> {
    let err = |message: String| HpaError::Auth {
        key: "hpa.auth.requestheader.client_ca_file".into(),
        message,
    };
    let pem = std::fs::read(&rh.client_ca_file)
        .map_err(|e| err(format!("cannot read {}: {e}", rh.client_ca_file.display())))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
        let cert = cert.map_err(|e| err(format!("{}: {e}", rh.client_ca_file.display())))?;
        roots
            .add(cert)
            .map_err(|e| err(format!("{}: {e}", rh.client_ca_file.display())))?;
    }
    if roots.is_empty() {
        return Err(err(format!(
            "{} holds no CERTIFICATE",
            rh.client_ca_file.display()
        )));
    }
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        Arc::new(rustls::crypto::ring::default_provider()),
    )
    .build()
    .map_err(|e| err(e.to_string()))?;
    Ok(FrontProxy {
        verifier,
        allowed_names: rh.allowed_names.clone(),
        username_headers: rh.username_headers.clone(),
        group_headers: rh.group_headers.clone(),
    })
}

impl FrontProxy {
    /// Ok(None): this authenticator does not apply (no verified certificate or no user
    /// header), so the next one is tried and the headers are ignored.
    fn authenticate(
        &self,
        chain: &[CertificateDer<'static>],
        headers: &HeaderMap,
    ) -> Result<Option<User>, Denied> {
        let Some((leaf, intermediates)) = chain.split_first() else {
            return Ok(None);
        };
        if self
            .verifier
            .verify_client_cert(leaf, intermediates, UnixTime::now())
            .is_err()
        {
            return Ok(None);
        }
        if !self.allowed_names.is_empty() {
            let cn = common_name(leaf).unwrap_or_default();
            if !self.allowed_names.contains(&cn) {
                tracing::warn!(
                    cn,
                    "front-proxy client certificate with a common name that is not in hpa.auth.requestheader.allowed_names"
                );
                return Err(Denied::Unauthenticated);
            }
        }
        let name = self
            .username_headers
            .iter()
            .find_map(|h| headers.get(h.as_str()).and_then(|v| v.to_str().ok()))
            .map(str::trim)
            .filter(|s| !s.is_empty());
        let Some(name) = name else { return Ok(None) };
        let groups = self
            .group_headers
            .iter()
            .flat_map(|h| headers.get_all(h.as_str()).iter())
            .filter_map(|v| v.to_str().ok())
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
            .collect();
        Ok(Some(User::new(
            name.to_string(),
            groups,
            Source::FrontProxy,
        )))
    }
}

/// The subject common name of a DER certificate (a minimal DER walk: Certificate ->
/// tbsCertificate -> subject -> the RDN with OID 2.5.4.3).
pub fn common_name(der: &[u8]) -> Option<String> {
    fn tlv(b: &[u8]) -> Option<(u8, &[u8], &[u8])> {
        let tag = *b.first()?;
        let first = *b.get(1)? as usize;
        let (len, hdr) = if first < 0x80 {
            (first, 2)
        } else {
            let n = first & 0x7f;
            if n == 0 || n > 4 {
                return None;
            }
            let mut len = 0usize;
            for i in 0..n {
                len = (len << 8) | *b.get(2 + i)? as usize;
            }
            (len, 2 + n)
        };
        let body = b.get(hdr..hdr.checked_add(len)?)?;
        Some((tag, body, &b[hdr + len..]))
    }
    let (_, cert, _) = tlv(der)?;
    let (_, tbs, _) = tlv(cert)?;
    let mut rest = tbs;
    // [0] version (optional), serial, signature algorithm, issuer, validity, subject.
    let (tag, _, r) = tlv(rest)?;
    if tag == 0xa0 {
        rest = r;
    }
    for _ in 0..4 {
        rest = tlv(rest)?.2;
    }
    let (_, subject, _) = tlv(rest)?;
    let mut rdns = subject;
    let mut cn = None;
    while !rdns.is_empty() {
        let (_, set, next) = tlv(rdns)?;
        rdns = next;
        let mut atvs = set;
        while !atvs.is_empty() {
            let (_, atv, next) = tlv(atvs)?;
            atvs = next;
            let (_, oid, value) = tlv(atv)?;
            if oid == [0x55, 0x04, 0x03] {
                let (_, v, _) = tlv(value)?;
                cn = Some(String::from_utf8_lossy(v).into_owned());
            }
        }
    }
    cn
}

/// Answers kept until a deadline; expired entries are dropped on insert once the map is large.
struct TtlCache<K, V> {
    map: Mutex<HashMap<K, (Instant, V)>>,
}

/// Entries kept before expired ones are swept (the apiserver's caches hold a few thousand).
const CACHE_SWEEP_AT: usize = 4096;

impl<K: Hash + Eq, V: Clone> TtlCache<K, V> {
    fn new() -> Self {
        Self {
            map: Mutex::new(HashMap::new()),
        }
    }

    fn get(&self, key: &K) -> Option<V> {
        let map = self.map.lock().ok()?;
        let (until, v) = map.get(key)?;
        (Instant::now() < *until).then(|| v.clone())
    }

    fn put(&self, key: K, value: V, ttl: Duration) {
        if ttl.is_zero() {
            return;
        }
        if let Ok(mut map) = self.map.lock() {
            let now = Instant::now();
            if map.len() >= CACHE_SWEEP_AT {
                map.retain(|_, (until, _)| now < *until);
                if map.len() >= CACHE_SWEEP_AT {
                    map.clear();
                }
            }
            map.insert(key, (now + ttl, value));
        }
    }
}

/// TokenReview / SubjectAccessReview against the API server, with short caches.
struct Delegator {
    cfg: Delegate,
    /// Built on first use; a failure is retried on the next request.
    client: tokio::sync::OnceCell<kube::Client>,
    /// sha256(token) -> the user, or None when the API server said "not authenticated".
    tokens: TtlCache<[u8; 32], Option<User>>,
    /// The SubjectAccessReview spec (JSON) -> allowed, or denied with the reason.
    reviews: TtlCache<String, Result<(), String>>,
    counters: ReviewCounters,
}

/// The API server's client: `kubeconfig_file`, else inferred (in-cluster, then `$KUBECONFIG` /
/// `~/.kube/config`). Same rules as kubernetes_sd_configs (agent/scrape/kubernetes.rs), plus the
/// review timeout.
async fn api_client(cfg: &Delegate) -> Result<kube::Client, String> {
    let mut config = crate::scrape::kubernetes::kube_config(
        cfg.kubeconfig_file.as_deref(),
        "hpa.auth.delegate.kubeconfig_file",
    )
    .await?;
    config.connect_timeout = Some(cfg.timeout);
    config.read_timeout = Some(cfg.timeout);
    config.write_timeout = Some(cfg.timeout);
    let server = config.cluster_url.to_string();
    let client =
        kube::Client::try_from(config).map_err(|e| format!("cannot build the client: {e}"))?;
    tracing::info!(
        server,
        "hpa.auth.delegate: TokenReviews and SubjectAccessReviews go to this API server"
    );
    Ok(client)
}

impl Delegator {
    fn new(cfg: Delegate, counters: ReviewCounters) -> Self {
        Self {
            cfg,
            client: tokio::sync::OnceCell::new(),
            tokens: TtlCache::new(),
            reviews: TtlCache::new(),
            counters,
        }
    }

    async fn client(&self) -> Result<kube::Client, String> {
        self.client
            .get_or_try_init(|| api_client(&self.cfg))
            .await
            .cloned()
    }

    /// POSTs `review` (TokenReview or SubjectAccessReview) and returns the API server's answer.
    async fn create<K>(&self, review: &K) -> Result<K, String>
    where
        K: kube::Resource<Scope = k8s_openapi::ClusterResourceScope>
            + Clone
            + std::fmt::Debug
            + serde::Serialize
            + serde::de::DeserializeOwned,
        K::DynamicType: Default,
    {
        let client = self.client().await?;
        let api: kube::Api<K> = kube::Api::all(client);
        match tokio::time::timeout(self.cfg.timeout, api.create(&Default::default(), review)).await
        {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!(
                "no answer within {:?} (hpa.auth.delegate.timeout)",
                self.cfg.timeout
            )),
        }
    }

    async fn token_review(&self, token: &str) -> Result<User, Denied> {
        let key = digest(token);
        if let Some(answer) = self.tokens.get(&key) {
            self.counters.add(TOKEN_REVIEW, "cache_hit");
            return answer.ok_or(Denied::Unauthenticated);
        }
        match self.ask_token(token).await {
            Ok(answer) => {
                let result = match answer {
                    Some(_) => "authenticated",
                    None => "unauthenticated",
                };
                self.counters.add(TOKEN_REVIEW, result);
                if answer.is_none() {
                    tracing::debug!(
                        token_sha256 = %token_id(token),
                        "hpa.auth.delegate: TokenReview: not authenticated"
                    );
                }
                self.tokens.put(key, answer.clone(), self.cfg.cache_ttl);
                answer.ok_or(Denied::Unauthenticated)
            }
            Err(e) => {
                // As the apiserver: an authenticator error is a 401 for the client, with the
                // cause in the log only, and is not cached. Responses echo the token in
                // `spec.token`; keep it out of the message whatever the error quotes.
                let e = e.replace(token, "<token>");
                self.counters.add(TOKEN_REVIEW, "error");
                tracing::error!(
                    token_sha256 = %token_id(token),
                    error = %e,
                    "hpa.auth.delegate: TokenReview failed; answering 401 Unauthorized"
                );
                Err(Denied::Unauthenticated)
            }
        }
    }

    /// Ok(None): the API server answered "not authenticated" (cacheable); Err: it could not be
    /// asked or reported an error (not cacheable).
    async fn ask_token(&self, token: &str) -> Result<Option<User>, String> {
        use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: Some(token.to_string()),
                audiences: (!self.cfg.audiences.is_empty()).then(|| self.cfg.audiences.clone()),
            },
            ..Default::default()
        };
        let status = self.create(&review).await?.status.unwrap_or_default();
        if !self.cfg.audiences.is_empty() {
            // An answer without audiences means "the audiences asked for" (the API server's
            // implicit audiences); otherwise one of ours must be among them.
            let got = status.audiences.clone().unwrap_or_default();
            if !got.is_empty() && !got.iter().any(|a| self.cfg.audiences.contains(a)) {
                return Ok(None);
            }
        }
        if status.authenticated != Some(true) {
            return match status.error.filter(|e| !e.is_empty()) {
                Some(e) => Err(format!("TokenReview status.error: {e}")),
                None => Ok(None),
            };
        }
        let u = status.user.unwrap_or_default();
        let mut user = User::new(
            u.username.unwrap_or_default(),
            u.groups.unwrap_or_default(),
            Source::TokenReview,
        );
        user.uid = u.uid.unwrap_or_default();
        user.extra = u.extra.unwrap_or_default();
        Ok(Some(user))
    }

    async fn access_review(&self, user: &User, attrs: &Attributes) -> Result<(), Denied> {
        use k8s_openapi::api::authorization::v1::SubjectAccessReview;
        let review = SubjectAccessReview {
            spec: access_review_spec(user, attrs),
            ..Default::default()
        };
        // Keyed by the whole spec, as the apiserver's webhook authorizer does.
        let key = serde_json::to_string(&review.spec).ok();
        if let Some(answer) = key.as_ref().and_then(|k| self.reviews.get(k)) {
            self.counters.add(ACCESS_REVIEW, "cache_hit");
            return answer.map_err(Denied::Forbidden);
        }
        match self.create(&review).await {
            Ok(r) => {
                let status = r.status.unwrap_or_default();
                self.counters.add(
                    ACCESS_REVIEW,
                    if status.allowed { "allowed" } else { "denied" },
                );
                let (answer, ttl) = if status.allowed {
                    (Ok(()), self.cfg.authorized_cache_ttl)
                } else {
                    (
                        Err(status.reason.unwrap_or_default()),
                        self.cfg.unauthorized_cache_ttl,
                    )
                };
                if let Some(k) = key {
                    self.reviews.put(k, answer.clone(), ttl);
                }
                answer.map_err(Denied::Forbidden)
            }
            Err(e) => {
                self.counters.add(ACCESS_REVIEW, "error");
                // The apiserver answers an authorizer error with 500 InternalError.
                tracing::error!(
                    user = %user.name,
                    error = %e,
                    "hpa.auth.delegate: SubjectAccessReview failed; answering 500 InternalError"
                );
                Err(Denied::Unavailable)
            }
        }
    }
}

/// The SubjectAccessReview spec for `user` doing `attrs`: verb `list` on the metric as a
/// resource of `external.metrics.k8s.io/v1beta1` in its namespace (a GET without an object name
/// is a `list` to kube-apiserver's request-info resolver, and the HPA controller's bootstrap role
/// grants `list` on external metrics), or `get` on the non-resource path.
fn access_review_spec(
    user: &User,
    attrs: &Attributes,
) -> k8s_openapi::api::authorization::v1::SubjectAccessReviewSpec {
    use k8s_openapi::api::authorization::v1::{
        NonResourceAttributes, ResourceAttributes, SubjectAccessReviewSpec,
    };
    let mut spec = SubjectAccessReviewSpec {
        user: Some(user.name.clone()),
        groups: Some(user.groups.clone()),
        uid: (!user.uid.is_empty()).then(|| user.uid.clone()),
        extra: (!user.extra.is_empty()).then(|| user.extra.clone()),
        ..Default::default()
    };
    match attrs {
        Attributes::Metric { namespace, name } => {
            spec.resource_attributes = Some(ResourceAttributes {
                group: Some(super::api::GROUP.into()),
                version: Some(super::api::VERSION.into()),
                resource: Some(name.clone()),
                namespace: Some(namespace.clone()),
                verb: Some("list".into()),
                ..Default::default()
            })
        }
        Attributes::Path(p) => {
            spec.non_resource_attributes = Some(NonResourceAttributes {
                path: Some(p.clone()),
                verb: Some("get".into()),
            })
        }
    }
    spec
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_file_lines() {
        assert_eq!(
            split_csv(r#"abc,alice,42,"g1,g2""#),
            vec!["abc", "alice", "42", "g1,g2"]
        );
        assert_eq!(split_csv("abc"), vec!["abc"]);
    }

    #[test]
    fn common_name_of_a_generated_cert() {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut p = rcgen::CertificateParams::new(vec!["x".to_string()]).expect("params");
        p.distinguished_name
            .push(rcgen::DnType::OrganizationName, "org");
        p.distinguished_name
            .push(rcgen::DnType::CommonName, "front-proxy-client");
        let cert = p.self_signed(&key).expect("cert");
        assert_eq!(
            common_name(cert.der()).as_deref(),
            Some("front-proxy-client")
        );
    }

    fn user(name: &str, groups: &[&str], source: Source) -> User {
        User::new(
            name.into(),
            groups.iter().map(|g| g.to_string()).collect(),
            source,
        )
    }

    #[tokio::test(start_paused = true)]
    async fn cache_entries_expire_after_their_ttl() {
        let c: TtlCache<&str, u32> = TtlCache::new();
        c.put("a", 1, Duration::from_secs(10));
        c.put("b", 2, Duration::from_secs(30));
        c.put("zero", 3, Duration::ZERO);
        assert_eq!(c.get(&"a"), Some(1));
        assert_eq!(c.get(&"zero"), None, "a zero TTL caches nothing");
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(c.get(&"a"), None);
        assert_eq!(c.get(&"b"), Some(2));
        tokio::time::advance(Duration::from_secs(20)).await;
        assert_eq!(c.get(&"b"), None);
    }

    #[tokio::test(start_paused = true)]
    async fn cache_sweeps_expired_entries_when_full() {
        let c: TtlCache<usize, ()> = TtlCache::new();
        for i in 0..CACHE_SWEEP_AT {
            c.put(i, (), Duration::from_secs(1));
        }
        tokio::time::advance(Duration::from_secs(2)).await;
        c.put(usize::MAX, (), Duration::from_secs(1));
        assert_eq!(c.map.lock().map(|m| m.len()).unwrap_or(0), 1);
    }

    #[test]
    fn access_review_specs() {
        let mut u = user(
            "jane",
            &["dev", "system:authenticated"],
            Source::TokenReview,
        );
        u.uid = "42".into();
        u.extra
            .insert("scopes".into(), vec!["a".to_string(), "b".to_string()]);
        let spec = access_review_spec(
            &u,
            &Attributes::Metric {
                namespace: "prod".into(),
                name: "kafka-lag".into(),
            },
        );
        assert_eq!(
            serde_json::to_value(&spec).unwrap_or_default(),
            serde_json::json!({
                "user": "jane", "uid": "42", "groups": ["dev", "system:authenticated"],
                "extra": {"scopes": ["a", "b"]},
                "resourceAttributes": {"group": "external.metrics.k8s.io", "version": "v1beta1",
                    "resource": "kafka-lag", "namespace": "prod", "verb": "list"}
            })
        );
        let spec = access_review_spec(
            &user("bob", &[], Source::FrontProxy),
            &Attributes::Path("/apis".into()),
        );
        assert_eq!(
            serde_json::to_value(&spec).unwrap_or_default(),
            serde_json::json!({"user": "bob", "groups": [],
                "nonResourceAttributes": {"path": "/apis", "verb": "get"}})
        );
    }

    #[test]
    fn token_id_is_a_digest_prefix() {
        let id = token_id("s3cret-token");
        assert_eq!(id.len(), 12);
        assert!(!id.contains("s3cret"));
        assert_ne!(id, token_id("s3cret-token2"));
    }

    /// With delegation on but no API server reachable, token-file users and system:masters are
    /// authorized without a review (a review would fail: the kubeconfig points at nothing).
    #[tokio::test]
    async fn token_file_users_and_masters_skip_reviews() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let tokens = dir.path().join("tokens.csv");
        let kubeconfig = dir.path().join("kubeconfig");
        std::fs::write(&tokens, "tok-1,alice,7,\"ops\"\n").unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(
            &kubeconfig,
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:1\n\
             users:\n- name: u\n  user:\n    token: t\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: u\n\
             current-context: c\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let cfg = HpaAuth {
            token_file: Some(tokens),
            delegate: Delegate {
                enabled: true,
                kubeconfig_file: Some(kubeconfig),
                timeout: Duration::from_secs(2),
                ..Delegate::default()
            },
            ..HpaAuth::default()
        };
        let counters = ReviewCounters::default();
        let auth = Auth::new(&cfg, dir.path(), counters.clone()).unwrap_or_else(|e| panic!("{e}"));
        let mut h = HeaderMap::new();
        h.insert(
            http::header::AUTHORIZATION,
            "Bearer tok-1".parse().unwrap_or_else(|e| panic!("{e}")),
        );
        let alice = auth.authenticate(&h, None).await;
        let Ok(alice) = alice else {
            panic!("alice: {alice:?}")
        };
        assert_eq!(alice.name, "alice");
        assert_eq!(alice.uid, "7");
        assert_eq!(alice.groups, ["ops", "system:authenticated"]);
        let metric = Attributes::Metric {
            namespace: "default".into(),
            name: "m".into(),
        };
        assert_eq!(auth.authorize(&alice, &metric).await, Ok(()));
        let admin = user("admin", &["system:masters"], Source::FrontProxy);
        assert_eq!(auth.authorize(&admin, &metric).await, Ok(()));
        // Anyone else needs a review, which cannot be made: 500, not a silent allow.
        let bob = user("bob", &[], Source::FrontProxy);
        assert_eq!(
            auth.authorize(&bob, &metric).await,
            Err(Denied::Unavailable)
        );
        // An unknown token cannot be reviewed: 401.
        h.insert(
            http::header::AUTHORIZATION,
            "Bearer other".parse().unwrap_or_else(|e| panic!("{e}")),
        );
        assert_eq!(
            auth.authenticate(&h, None).await,
            Err(Denied::Unauthenticated)
        );
        assert_eq!(
            counters.snapshot(),
            vec![((ACCESS_REVIEW, "error"), 1), ((TOKEN_REVIEW, "error"), 1)]
        );
    }

    #[test]
    fn bearer_header() {
        let mut h = HeaderMap::new();
        h.insert(
            http::header::AUTHORIZATION,
            "Bearer  tok ".parse().expect("header"),
        );
        assert_eq!(bearer(&h), Some("tok"));
        h.insert(http::header::AUTHORIZATION, "Basic x".parse().expect("h"));
        assert_eq!(bearer(&h), None);
    }
}
