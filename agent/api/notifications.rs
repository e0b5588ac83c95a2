//! `GET /api/v1/alerts/history`: what the outbox sent to whom and when, with delivery state,
//! attempts and last error, plus per alert fingerprint when it fired and resolved (derived from
//! the notifications about it). Query parameters: `receiver`, `fingerprint`, `state`
//! (`pending`, `sent`, `failed`, `superseded`, `skipped`), `since` (RFC 3339 or ms since the
//! epoch) and `limit` (default 100, at most 1000). Reads the outbox; never writes.

use std::collections::BTreeMap;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use super::AppState;
use crate::notify::outbox::{DeliveryRecord, HistoryQuery};

/// The routes of this module.
pub fn routes() -> Router<AppState> {
    Router::new().route("/api/v1/alerts/history", get(history))
}

fn error(code: StatusCode, kind: &str, msg: String) -> Response {
    (
        code,
        Json(json!({"status": "error", "errorType": kind, "error": msg})),
    )
        .into_response()
}

fn time(ms: Option<i64>) -> Value {
    ms.and_then(chrono::DateTime::from_timestamp_millis)
        .map(|t| Value::String(t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)))
        .unwrap_or(Value::Null)
}

fn parse_since(s: &str) -> Option<i64> {
    s.parse::<i64>().ok().or_else(|| {
        chrono::DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|t| t.timestamp_millis())
    })
}

fn delivery_json(d: &DeliveryRecord) -> Value {
    json!({
        "idempotencyKey": d.idempotency_key,
        "deliveryKey": d.delivery_key,
        "receiver": d.receiver,
        "integration": d.integration,
        "groupKey": d.group_key,
        "status": d.status,
        "state": d.state,
        "attempts": d.attempts,
        "createdAt": time(Some(d.created_ms)),
        "lastAttemptAt": time(d.last_attempt_ms),
        "nextAttemptAt": if d.state == "pending" { time(Some(d.next_attempt_ms)) } else { Value::Null },
        "sentAt": time(d.sent_ms),
        "lastError": d.last_error,
        "alerts": d.alerts,
    })
}

async fn history(
    State(state): State<AppState>,
    Query(params): Query<BTreeMap<String, String>>,
) -> Response {
    let Some(outbox) = &state.outbox else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the notification outbox is not running".into(),
        );
    };
    let mut query = HistoryQuery::default();
    for (k, v) in &params {
        match k.as_str() {
            "receiver" => query.receiver = Some(v.clone()),
            "fingerprint" => query.fingerprint = Some(v.clone()),
            "state" => {
                if !["pending", "sent", "failed", "superseded", "skipped"].contains(&v.as_str()) {
                    return error(
                        StatusCode::BAD_REQUEST,
                        "bad_data",
                        format!(
                            "state {v:?} is unknown; use pending, sent, failed, superseded or skipped"
                        ),
                    );
                }
                query.state = Some(v.clone());
            }
            "since" => match parse_since(v) {
                Some(ms) => query.since_ms = Some(ms),
                None => {
                    return error(
                        StatusCode::BAD_REQUEST,
                        "bad_data",
                        format!("since {v:?} is neither RFC 3339 nor milliseconds since the epoch"),
                    );
                }
            },
            "limit" => match v.parse::<i64>() {
                Ok(n) if (1..=1000).contains(&n) => query.limit = Some(n),
                _ => {
                    return error(
                        StatusCode::BAD_REQUEST,
                        "bad_data",
                        format!("limit {v:?} must be a number from 1 to 1000"),
                    );
                }
            },
            other => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "bad_data",
                    format!(
                        "unknown parameter {other:?}; use receiver, fingerprint, state, since or limit"
                    ),
                );
            }
        }
    }
    match outbox.history(&query).await {
        Ok(h) => {
            let notifications: Vec<Value> = h.notifications.iter().map(delivery_json).collect();
            let alerts: Vec<Value> = h
                .alerts
                .iter()
                .map(|t| {
                    json!({
                        "fingerprint": t.fingerprint,
                        "alertname": t.alertname,
                        "labels": t.labels,
                        "firings": t.firings.iter().map(|f| json!({
                            "startsAt": time(Some(f.starts_ms)),
                            "endsAt": time(f.ends_ms),
                            "notifications": f.notifications,
                        })).collect::<Vec<_>>(),
                    })
                })
                .collect();
            Json(json!({"status": "success", "data": {"notifications": notifications, "alerts": alerts}}))
                .into_response()
        }
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()),
    }
}
