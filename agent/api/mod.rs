//! The agent's HTTP surface on `agent.listen`: `/metrics`, `/healthz`, `/readyz` and a landing
//! page; later issues add `/api/v1/*` and the status page here. Reads from the other modules,
//! never writes to them.

mod alerting;
pub mod metrics;
mod notifications;
mod slos;
mod targets;
pub mod ui;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use metrics::{MetricsSource, MetricsWriter, ProcessStats, TEXT_CONTENT_TYPE};

/// Conditions that must all hold before `/readyz` answers 200. Components `require` a condition
/// at start and mark it `done` after their first complete round.
#[derive(Debug, Default)]
pub struct Readiness {
    pending: Mutex<BTreeSet<String>>,
}

impl Readiness {
    /// Adds a condition that is not met yet.
    pub fn require(&self, what: &str) {
        if let Ok(mut p) = self.pending.lock() {
            p.insert(what.to_string());
        }
    }

    /// Marks a condition met.
    pub fn done(&self, what: &str) {
        if let Ok(mut p) = self.pending.lock() {
            p.remove(what);
        }
    }

    /// Conditions still pending, sorted.
    pub fn pending(&self) -> Vec<String> {
        self.pending
            .lock()
            .map(|p| p.iter().cloned().collect())
            .unwrap_or_default()
    }
}

/// Shared state of the HTTP handlers.
#[derive(Clone)]
pub struct AppState {
    /// Readiness conditions.
    pub readiness: Arc<Readiness>,
    /// Every component that exports series on `/metrics`.
    pub sources: Vec<Arc<dyn MetricsSource>>,
    /// The scrape manager, for `/api/v1/targets`.
    pub scrape: Option<crate::scrape::ScrapeManager>,
    /// The SLO manager, for `/api/v1/slos`.
    pub slo: Option<crate::slo::SloManager>,
    /// The collector manager, for `/api/v1/collectors`.
    pub collectors: Option<crate::collect::CollectorManager>,
    /// The alert dispatcher, for `/api/v1/alerts`, silences and `/api/v2/`.
    pub dispatcher: Option<crate::notify::dispatch::Dispatcher>,
    /// The notification outbox, for `/api/v1/alerts/history`.
    pub outbox: Option<crate::notify::outbox::Outbox>,
    /// The ledger, for SLO history (burn-down and burn-rate charts, completed periods).
    pub ledger: Option<crate::store::ledger::Ledger>,
}

/// Builds the router.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/api/v1/targets", get(targets::targets))
        .route("/api/v1/collectors", get(collectors_handler))
        .route("/api/v1/slos", get(slos::list))
        .route("/api/v1/slos/{service}/{name}", get(slos::one))
        .route("/api/v1/slos/{name}", get(slos::one_by_name))
        .merge(alerting::routes())
        .merge(notifications::routes())
        .merge(ui::routes())
        .with_state(state)
}

async fn metrics_handler(State(state): State<AppState>) -> Response {
    let mut w = MetricsWriter::new();
    metrics::write_build_info(&mut w);
    if let Some(p) = ProcessStats::read() {
        p.write_metrics(&mut w);
    }
    for s in &state.sources {
        s.write_metrics(&mut w);
    }
    ([(header::CONTENT_TYPE, TEXT_CONTENT_TYPE)], w.finish()).into_response()
}

async fn collectors_handler(State(state): State<AppState>) -> Response {
    let list: Vec<serde_json::Value> = state
        .collectors
        .map(|c| c.statuses())
        .unwrap_or_default()
        .into_iter()
        .map(|s| {
            serde_json::json!({
                "name": s.name,
                "type": s.kind,
                "health": if s.collections == 0 { "unknown" } else if s.up { "up" } else { "down" },
                "lastCollection": if s.last_collection_ms > 0 {
                    chrono::DateTime::from_timestamp_millis(s.last_collection_ms)
                        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
                        .unwrap_or_default()
                } else {
                    "0001-01-01T00:00:00Z".to_string()
                },
                "lastCollectionDuration": s.duration_seconds,
                "lastError": s.last_error.unwrap_or_default(),
                "collections": s.collections,
                "failures": s.failures,
                "duplicateSeries": s.duplicates,
            })
        })
        .collect();
    axum::Json(serde_json::json!({"status": "success", "data": {"collectors": list}}))
        .into_response()
}

async fn readyz(State(state): State<AppState>) -> Response {
    let pending = state.readiness.pending();
    if pending.is_empty() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        let body = format!("not ready: waiting for {}\n", pending.join(", "));
        (StatusCode::SERVICE_UNAVAILABLE, body).into_response()
    }
}

/// Serves `router` on `listener` until `cancel` fires, then drains in-flight requests.
pub async fn serve(listener: TcpListener, router: Router, cancel: CancellationToken) {
    let shutdown = async move { cancel.cancelled().await };
    if let Err(err) = axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
    {
        tracing::error!(error = %err, "HTTP server failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    async fn get_text(app: Router, path: &str) -> (StatusCode, String) {
        let resp = app
            .oneshot(Request::get(path).body(Body::empty()).expect("request"))
            .await
            .expect("infallible");
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .expect("body");
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }

    #[tokio::test]
    async fn readyz_waits_for_every_condition() {
        let readiness = Arc::new(Readiness::default());
        readiness.require("ledger");
        readiness.require("evaluation");
        let app = router(AppState {
            readiness: readiness.clone(),
            sources: vec![],
            scrape: None,
            slo: None,
            collectors: None,
            dispatcher: None,
            outbox: None,
            ledger: None,
        });
        let (code, body) = get_text(app.clone(), "/readyz").await;
        assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body, "not ready: waiting for evaluation, ledger\n");
        readiness.done("ledger");
        readiness.done("evaluation");
        assert_eq!(
            get_text(app, "/readyz").await,
            (StatusCode::OK, "ready\n".to_string())
        );
    }

    #[tokio::test]
    async fn metrics_has_build_and_process_series() {
        let app = router(AppState {
            readiness: Arc::default(),
            sources: vec![],
            scrape: None,
            slo: None,
            collectors: None,
            dispatcher: None,
            outbox: None,
            ledger: None,
        });
        let (code, body) = get_text(app, "/metrics").await;
        assert_eq!(code, StatusCode::OK);
        assert!(body.contains("vigil_build_info{version=\""), "{body}");
        assert!(body.contains("\nprocess_resident_memory_bytes "), "{body}");
        assert!(
            body.contains("# TYPE process_cpu_seconds_total counter\n"),
            "{body}"
        );
    }
}
