//! The status page: server-rendered HTML on `agent.listen` (`/`, `/slo/{name}`, ...), all assets
//! embedded, reading the same JSON API as every other client. See docs/status-page.md.
//!
//! SKELETON (issue #11).

use axum::Router;
use axum::response::Html;
use axum::routing::get;

use super::AppState;

/// The status page's routes (merged into the agent's router).
pub fn routes() -> Router<AppState> {
    Router::new().route(
        "/",
        get(|| async { Html("<!doctype html><title>Vigil</title>") }),
    )
}
