//! Who may read the external metrics API, as kube-apiserver's delegated authentication does it:
//!
//! 1. front-proxy: a client certificate that verifies against `requestheader.client_ca_file`
//!    with an allowed common name makes the `X-Remote-User` / `X-Remote-Group` headers trusted;
//!    without such a certificate those headers are ignored;
//! 2. bearer tokens from the static token file (the generated `<data_dir>/hpa-token` by
//!    default), then, with `delegate.enabled`, a TokenReview against the API server;
//! 3. anonymous, when `anonymous: true`.
//!
//! Authorization: with `delegate.enabled`, a SubjectAccessReview per request (verb `get` on the
//! metric as a resource of `external.metrics.k8s.io`, or the non-resource path); otherwise every
//! authenticated user may read. Reviews are cached for `delegate.cache_ttl`. Used by api.rs.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{self, HeaderMap};
use sha2::{Digest, Sha256};
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::{CertificateDer, UnixTime};
use tokio_rustls::rustls::server::danger::ClientCertVerifier;

use super::HpaError;
use super::config::{HpaAuth, RequestHeader};

/// The client certificate chain of a TLS connection, put into each request's extensions by
/// server.rs (absent when the client sent none).
#[derive(Debug, Clone)]
pub struct PeerCerts(pub Arc<Vec<CertificateDer<'static>>>);

/// An authenticated user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// User name (`system:anonymous` for anonymous requests).
    pub name: String,
    /// Groups.
    pub groups: Vec<String>,
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
    /// front-proxy CA.
    pub fn new(cfg: &HpaAuth, data_dir: &Path) -> Result<Self, HpaError> {
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
                tokens.insert(digest(&token), User { name, groups });
            }
        }
        let front_proxy = cfg.requestheader.as_ref().map(front_proxy).transpose()?;
        let delegate = cfg
            .delegate
            .enabled
            .then(|| Delegator::new(cfg.delegate.cache_ttl));
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
            return Ok(User {
                name: "system:anonymous".into(),
                groups: vec!["system:unauthenticated".into()],
            });
        }
        Err(Denied::Unauthenticated)
    }

    /// Authorizes `user` for `attrs`.
    pub async fn authorize(&self, user: &User, attrs: &Attributes) -> Result<(), Denied> {
        match &self.delegate {
            Some(d) => d.access_review(user, attrs).await,
            None => Ok(()),
        }
    }
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
        Ok(Some(User {
            name: name.to_string(),
            groups,
        }))
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

/// A review's answer and when it was given.
type Cached<T> = (Instant, Result<T, Denied>);
/// User, groups, what was asked.
type ReviewKey = (String, Vec<String>, Attributes);

/// TokenReview / SubjectAccessReview against the API server, with a short cache.
struct Delegator {
    ttl: Duration,
    client: tokio::sync::OnceCell<Option<kube::Client>>,
    tokens: Mutex<HashMap<[u8; 32], Cached<User>>>,
    reviews: Mutex<HashMap<ReviewKey, Cached<()>>>,
}

impl Delegator {
    fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            client: tokio::sync::OnceCell::new(),
            tokens: Mutex::new(HashMap::new()),
            reviews: Mutex::new(HashMap::new()),
        }
    }

    async fn client(&self) -> Option<kube::Client> {
        self.client
            .get_or_init(|| async {
                match kube::Client::try_default().await {
                    Ok(c) => Some(c),
                    Err(e) => {
                        tracing::error!(error = %e, "hpa.auth.delegate: no Kubernetes API client (not in a cluster?); delegated requests are refused");
                        None
                    }
                }
            })
            .await
            .clone()
    }

    async fn token_review(&self, token: &str) -> Result<User, Denied> {
        use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
        let key = digest(token);
        if let Ok(cache) = self.tokens.lock() {
            if let Some((at, r)) = cache.get(&key) {
                if at.elapsed() < self.ttl {
                    return r.clone();
                }
            }
        }
        let client = self.client().await.ok_or(Denied::Unavailable)?;
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: Some(token.to_string()),
                ..Default::default()
            },
            ..Default::default()
        };
        let api: kube::Api<TokenReview> = kube::Api::all(client);
        let result = match api.create(&Default::default(), &review).await {
            Ok(r) => {
                let status = r.status.unwrap_or_default();
                match (status.authenticated, status.user) {
                    (Some(true), Some(u)) => Ok(User {
                        name: u.username.unwrap_or_default(),
                        groups: u.groups.unwrap_or_default(),
                    }),
                    _ => Err(Denied::Unauthenticated),
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "TokenReview failed");
                return Err(Denied::Unavailable);
            }
        };
        if let Ok(mut cache) = self.tokens.lock() {
            cache.retain(|_, (at, _)| at.elapsed() < self.ttl);
            cache.insert(key, (Instant::now(), result.clone()));
        }
        result
    }

    async fn access_review(&self, user: &User, attrs: &Attributes) -> Result<(), Denied> {
        use k8s_openapi::api::authorization::v1::{
            NonResourceAttributes, ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
        };
        let key = (user.name.clone(), user.groups.clone(), attrs.clone());
        if let Ok(cache) = self.reviews.lock() {
            if let Some((at, r)) = cache.get(&key) {
                if at.elapsed() < self.ttl {
                    return r.clone();
                }
            }
        }
        let client = self.client().await.ok_or(Denied::Unavailable)?;
        let mut spec = SubjectAccessReviewSpec {
            user: Some(user.name.clone()),
            groups: Some(user.groups.clone()),
            extra: Some(BTreeMap::new()),
            ..Default::default()
        };
        match attrs {
            Attributes::Metric { namespace, name } => {
                spec.resource_attributes = Some(ResourceAttributes {
                    group: Some(super::api::GROUP.into()),
                    version: Some(super::api::VERSION.into()),
                    resource: Some(name.clone()),
                    namespace: Some(namespace.clone()),
                    verb: Some("get".into()),
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
        let review = SubjectAccessReview {
            spec,
            ..Default::default()
        };
        let api: kube::Api<SubjectAccessReview> = kube::Api::all(client);
        let result = match api.create(&Default::default(), &review).await {
            Ok(r) => {
                let status = r.status.unwrap_or_default();
                if status.allowed {
                    Ok(())
                } else {
                    Err(Denied::Forbidden(status.reason.unwrap_or_default()))
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "SubjectAccessReview failed");
                return Err(Denied::Unavailable);
            }
        };
        if let Ok(mut cache) = self.reviews.lock() {
            cache.retain(|_, (at, _)| at.elapsed() < self.ttl);
            cache.insert(key, (Instant::now(), result.clone()));
        }
        result
    }
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
