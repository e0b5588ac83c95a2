//! The Kubernetes external metrics API (`external.metrics.k8s.io/v1beta1`) served from values the
//! agent already holds, so an HPA can scale on queue depth, lag or burn rate. See docs/hpa.md.
//!
//! - config.rs: the `hpa:` block;
//! - tls.rs: the serving certificate (files, or generated and kept in `data_dir`);
//! - auth.rs: front-proxy client certificates, bearer tokens, delegation to the API server;
//! - server.rs: the TLS listener (tokio-rustls + hyper-util) serving the router;
//! - api.rs: discovery, values, OpenAPI, `metav1.Status` errors;
//! - quantity.rs, selector.rs: Kubernetes Quantity and label selector.
//!
//! The daemon calls [`Hpa::bind`], spawns [`HpaServer::run`] and calls [`Hpa::apply_config`] on
//! reload. Data flows one way: the store and the SLO manager are read, never written.

pub mod api;
pub mod auth;
pub mod config;
pub mod quantity;
pub mod selector;
pub mod server;
pub mod tls;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

pub use config::HpaConfig;

use crate::api::metrics::{MetricsSource, MetricsWriter};
use crate::slo::SloManager;
use crate::store::series::SeriesStore;

/// Why the external metrics API could not start.
#[derive(Debug, thiserror::Error)]
pub enum HpaError {
    /// The listener could not be bound.
    #[error("hpa.listen: cannot listen on {addr}: {source}; change hpa.listen")]
    Bind {
        /// The address.
        addr: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The serving certificate could not be loaded or generated.
    #[error("hpa.tls: {file}: {message}")]
    Tls {
        /// The file (or key) concerned.
        file: String,
        /// What went wrong.
        message: String,
    },
    /// Token file or front-proxy CA problems.
    #[error("{key}: {message}")]
    Auth {
        /// The config key.
        key: String,
        /// What went wrong.
        message: String,
    },
}

/// Handle on the running API: reload and metrics.
#[derive(Clone)]
pub struct Hpa {
    local: SocketAddr,
    state: Arc<api::ApiState>,
    data_dir: PathBuf,
    reviews: auth::ReviewCounters,
}

/// The server future, spawned by the daemon.
pub struct HpaServer {
    listener: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    router: axum::Router,
}

impl Hpa {
    /// Binds `hpa.listen`, loads or generates the TLS certificate and the token file in
    /// `data_dir`, and logs `external metrics API on https://ADDR, token file PATH`.
    pub async fn bind(
        cfg: &HpaConfig,
        data_dir: &Path,
        store: Arc<SeriesStore>,
        slo: SloManager,
    ) -> Result<(Self, HpaServer), HpaError> {
        let cert = tls::serving_cert(&cfg.tls, data_dir)?;
        if let Some(ca) = &cert.generated_ca {
            tracing::warn!(
                ca = %ca.display(),
                "hpa.tls: no cert_file/key_file, serving a self-signed certificate; an APIService then needs insecureSkipTLSVerify: true or caBundle set to this CA"
            );
        }
        let acceptor = server::acceptor(cert)?;
        let reviews = auth::ReviewCounters::default();
        let auth = auth::Auth::new(&cfg.auth, data_dir, reviews.clone())?;
        let listener = tokio::net::TcpListener::bind(&cfg.listen)
            .await
            .map_err(|source| HpaError::Bind {
                addr: cfg.listen.clone(),
                source,
            })?;
        let local = listener.local_addr().map_err(|source| HpaError::Bind {
            addr: cfg.listen.clone(),
            source,
        })?;
        match &auth.token_file {
            Some(f) => tracing::info!(
                "external metrics API on https://{local}, token file {}",
                f.display()
            ),
            None => tracing::info!("external metrics API on https://{local}, anonymous access"),
        }
        let state = Arc::new(api::ApiState {
            live: std::sync::RwLock::new(Arc::new(api::Live {
                metrics: api::Compiled::all(&cfg.metrics),
                no_data: cfg.no_data,
                auth: Arc::new(auth),
            })),
            store,
            rounds: slo.subscribe(),
            counters: api::Counters::default(),
            _slo: slo,
        });
        let router = api::router(state.clone());
        Ok((
            Self {
                local,
                state,
                data_dir: data_dir.to_path_buf(),
                reviews,
            },
            HpaServer {
                listener,
                acceptor,
                router,
            },
        ))
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Applies a reloaded `hpa:` block (metrics, namespaces, auth); `listen` and TLS need a restart.
    pub fn apply_config(&self, cfg: &HpaConfig) {
        let auth = match auth::Auth::new(&cfg.auth, &self.data_dir, self.reviews.clone()) {
            Ok(a) => Arc::new(a),
            Err(e) => {
                tracing::error!(error = %e, "hpa.auth: reload failed; keeping the previous authentication");
                match self.state.live.read() {
                    Ok(l) => l.auth.clone(),
                    Err(_) => return,
                }
            }
        };
        let live = Arc::new(api::Live {
            metrics: api::Compiled::all(&cfg.metrics),
            no_data: cfg.no_data,
            auth,
        });
        if let Ok(mut l) = self.state.live.write() {
            *l = live;
        }
    }
}

impl HpaServer {
    /// Serves until `cancel`, on a thread of its own with a single-threaded runtime: the HPA
    /// controller's requests then never wait behind a scrape or an evaluation round on the
    /// agent's runtime (the tail latency this API promises). Returns when the server has
    /// drained, or at once (logged) if its thread or runtime cannot be started.
    pub async fn run(self, cancel: CancellationToken) {
        let HpaServer {
            listener,
            acceptor,
            router,
        } = self;
        let std_listener = match listener.into_std() {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(error = %e, "external metrics API: cannot hand the listener to its thread");
                return;
            }
        };
        let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
        let thread_cancel = cancel.clone();
        let spawned = std::thread::Builder::new()
            .name("vigil-hpa".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build();
                match rt {
                    Ok(rt) => rt.block_on(async move {
                        match tokio::net::TcpListener::from_std(std_listener) {
                            Ok(l) => server::serve(l, acceptor, router, thread_cancel).await,
                            Err(e) => {
                                tracing::error!(error = %e, "external metrics API: cannot register the listener");
                            }
                        }
                    }),
                    Err(e) => {
                        tracing::error!(error = %e, "external metrics API: cannot start its runtime");
                    }
                }
                let _ = done_tx.send(());
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "external metrics API: cannot start its thread");
            return;
        }
        let _ = done_rx.await;
    }
}

impl MetricsSource for Hpa {
    fn write_metrics(&self, w: &mut MetricsWriter) {
        w.family(
            "vigil_hpa_requests_total",
            "Requests to the external metrics API by handler and HTTP status code.",
            "counter",
        );
        if let Ok(m) = self.state.counters.requests.lock() {
            for ((handler, code), n) in m.iter() {
                let code = code.to_string();
                w.sample(
                    "vigil_hpa_requests_total",
                    &[("handler", handler), ("code", &code)],
                    *n as f64,
                );
            }
        }
        w.family(
            "vigil_hpa_request_duration_seconds",
            "Time spent answering external metrics API requests, by handler.",
            "summary",
        );
        if let Ok(m) = self.state.counters.durations.lock() {
            for (handler, (n, sum)) in m.iter() {
                w.sample(
                    "vigil_hpa_request_duration_seconds_sum",
                    &[("handler", handler)],
                    *sum,
                );
                w.sample(
                    "vigil_hpa_request_duration_seconds_count",
                    &[("handler", handler)],
                    *n as f64,
                );
            }
        }
        w.family(
            "vigil_hpa_metrics",
            "External metrics configured in hpa.metrics.",
            "gauge",
        );
        let n = self.state.live.read().map(|l| l.metrics.len()).unwrap_or(0);
        w.sample("vigil_hpa_metrics", &[], n as f64);
        w.family(
            "vigil_hpa_delegated_reviews_total",
            "TokenReviews and SubjectAccessReviews for hpa.auth.delegate, by review and result (authenticated, unauthenticated, allowed, denied, error, cache_hit).",
            "counter",
        );
        for ((review, result), n) in self.reviews.snapshot() {
            w.sample(
                "vigil_hpa_delegated_reviews_total",
                &[("review", review), ("result", result)],
                n as f64,
            );
        }
    }
}
