//! Placeholder: `/api/v1/alerts`, `/api/v1/silences` and the Alertmanager-compatible `/api/v2/`
//! facade (being written).

use axum::Router;

use super::AppState;

/// The routes of this module.
pub fn routes() -> Router<AppState> {
    Router::new()
}
