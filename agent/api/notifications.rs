//! Placeholder: `/api/v1/alerts/history` (being written).

use axum::Router;

use super::AppState;

/// The routes of this module.
pub fn routes() -> Router<AppState> {
    Router::new()
}
