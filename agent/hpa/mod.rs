//! The Kubernetes external metrics API (`external.metrics.k8s.io/v1beta1`) served from values the
//! agent already holds, so an HPA can scale on queue depth, lag or burn rate. See docs/hpa.md.
//!
//! SKELETON (issue #8): the lead wired [`Hpa::bind`], [`HpaServer::run`] and
//! [`Hpa::apply_config`] into the daemon; the implementation fills them in.

pub mod config;

use std::net::SocketAddr;
use std::path::Path;
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
}

/// Handle on the running API: reload and metrics.
#[derive(Clone)]
pub struct Hpa {
    local: SocketAddr,
}

/// The server future, spawned by the daemon.
pub struct HpaServer {
    listener: tokio::net::TcpListener,
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
        let _ = (data_dir, store, slo);
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
        Ok((Self { local }, HpaServer { listener }))
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Applies a reloaded `hpa:` block (metrics, namespaces, auth); `listen` and TLS need a restart.
    pub fn apply_config(&self, cfg: &HpaConfig) {
        let _ = cfg;
    }
}

impl HpaServer {
    /// Serves until `cancel`.
    pub async fn run(self, cancel: CancellationToken) {
        let _ = self.listener;
        cancel.cancelled().await;
    }
}

impl MetricsSource for Hpa {
    fn write_metrics(&self, w: &mut MetricsWriter) {
        let _ = w;
    }
}
