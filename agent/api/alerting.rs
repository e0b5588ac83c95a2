//! Alerts and silences over HTTP:
//!
//! - `GET /api/v1/alerts`: every pending, firing and just-resolved alert with its receivers and
//!   why it does not notify (silences, inhibition, mute time intervals);
//! - `GET/POST /api/v1/silences`, `GET/DELETE /api/v1/silences/{id}`: silences in the JSON
//!   shape of Alertmanager's v2 API (`matchers` with `name`, `value`, `isRegex`, `isEqual`;
//!   `startsAt`, `endsAt`, `createdBy`, `comment`; `id` and `status.state` in answers);
//! - `/api/v2/...`: an Alertmanager-compatible facade (`status`, `receivers`, `alerts`,
//!   `alerts/groups`, `silences`, `silence/{id}`) so that `amtool` and Grafana's Alertmanager
//!   data source work against Vigil.
//!
//! Reads and changes the dispatcher's state through its methods.

use std::collections::BTreeMap;

use axum::Json;
use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

use super::AppState;
use crate::alert::AlertState;
use crate::notify::dispatch::{AlertView, Dispatcher, SilenceError};
use crate::notify::matcher::Matcher;
use crate::notify::silence::{PostableSilence, Silence, rfc3339};

/// How long after now a firing alert's `endsAt` is reported in the v2 API (Alertmanager's
/// default `resolve_timeout`).
const RESOLVE_TIMEOUT_MS: i64 = 5 * 60 * 1000;

/// The routes of this module.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/alerts", get(v1_alerts))
        .route("/api/v1/silences", get(v1_silences).post(v1_post_silence))
        .route(
            "/api/v1/silences/{id}",
            get(v1_silence).delete(v1_delete_silence),
        )
        .route("/api/v2/status", get(v2_status))
        .route("/api/v2/receivers", get(v2_receivers))
        .route("/api/v2/alerts", get(v2_alerts))
        .route("/api/v2/alerts/groups", get(v2_groups))
        .route("/api/v2/silences", get(v2_silences).post(v2_post_silence))
        .route(
            "/api/v2/silence/{id}",
            get(v2_silence).delete(v2_delete_silence),
        )
}

fn v1_error(code: StatusCode, kind: &str, msg: String) -> Response {
    (
        code,
        Json(json!({"status": "error", "errorType": kind, "error": msg})),
    )
        .into_response()
}

/// Alertmanager answers errors as a JSON string.
fn v2_error(code: StatusCode, msg: String) -> Response {
    (code, Json(Value::String(msg))).into_response()
}

fn no_dispatcher_v1() -> Response {
    v1_error(
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        "alerting is not running".into(),
    )
}

fn silence_error_code(e: &SilenceError) -> StatusCode {
    match e {
        SilenceError::Invalid(_) => StatusCode::BAD_REQUEST,
        SilenceError::NotFound(_) => StatusCode::NOT_FOUND,
        SilenceError::Ledger(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn opt_time(ms: Option<i64>) -> Value {
    ms.map(|m| Value::String(rfc3339(m))).unwrap_or(Value::Null)
}

fn v1_alert(v: &AlertView) -> Value {
    let a = &v.alert;
    let notifies = a.state != AlertState::Pending
        && v.silenced_by.is_empty()
        && v.inhibited_by.is_empty()
        && v.muted_by.is_empty();
    json!({
        "labels": a.labels,
        "annotations": a.annotations,
        "state": a.state,
        "activeAt": rfc3339(a.active_at_ms),
        "firedAt": opt_time(a.fired_at_ms),
        "resolvedAt": opt_time(a.resolved_at_ms),
        "value": a.value,
        "fingerprint": v.fingerprint,
        "generatorURL": a.generator_url,
        "receivers": v.receivers,
        "notifies": notifies,
        "silencedBy": v.silenced_by,
        "inhibitedBy": v.inhibited_by,
        "mutedBy": v.muted_by,
    })
}

async fn v1_alerts(State(state): State<AppState>) -> Response {
    let Some(d) = &state.dispatcher else {
        return no_dispatcher_v1();
    };
    let alerts: Vec<Value> = d.alerts().iter().map(v1_alert).collect();
    Json(json!({"status": "success", "data": {"alerts": alerts}})).into_response()
}

async fn v1_silences(State(state): State<AppState>) -> Response {
    let Some(d) = &state.dispatcher else {
        return no_dispatcher_v1();
    };
    let now = d.now_ms();
    let list: Vec<Value> = d.silences().iter().map(|s| json!(s.to_json(now))).collect();
    Json(json!(list)).into_response()
}

async fn v1_silence(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    let Some(d) = &state.dispatcher else {
        return no_dispatcher_v1();
    };
    match d.silence(&id) {
        Some(s) => Json(json!(s.to_json(d.now_ms()))).into_response(),
        None => v1_error(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("silence {id} not found; GET /api/v1/silences lists them"),
        ),
    }
}

fn parse_post(body: &str) -> Result<PostableSilence, String> {
    serde_json::from_str(body).map_err(|e| format!("invalid silence JSON: {e}"))
}

async fn v1_post_silence(State(state): State<AppState>, body: String) -> Response {
    let Some(d) = &state.dispatcher else {
        return no_dispatcher_v1();
    };
    let post = match parse_post(&body) {
        Ok(p) => p,
        Err(e) => return v1_error(StatusCode::BAD_REQUEST, "bad_data", e),
    };
    match d.put_silence(post).await {
        Ok(id) => match d.silence(&id) {
            Some(s) => Json(json!(s.to_json(d.now_ms()))).into_response(),
            None => Json(json!({"id": id})).into_response(),
        },
        Err(e) => v1_error(silence_error_code(&e), "bad_data", e.to_string()),
    }
}

async fn v1_delete_silence(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    let Some(d) = &state.dispatcher else {
        return no_dispatcher_v1();
    };
    match d.expire_silence(&id).await {
        Ok(()) => match d.silence(&id) {
            Some(s) => Json(json!(s.to_json(d.now_ms()))).into_response(),
            None => StatusCode::OK.into_response(),
        },
        Err(e) => v1_error(silence_error_code(&e), "bad_data", e.to_string()),
    }
}

/// Query parameters, repeated keys kept (`filter=a&filter=b`).
fn query_params(raw: Option<String>) -> Vec<(String, String)> {
    raw.unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn filters(params: &[(String, String)]) -> Result<Vec<Matcher>, String> {
    params
        .iter()
        .filter(|(k, _)| k == "filter")
        .map(|(_, v)| {
            let v = v.trim();
            let v = v
                .strip_prefix('{')
                .and_then(|x| x.strip_suffix('}'))
                .unwrap_or(v);
            Matcher::parse(v).map_err(|e| format!("bad matcher format: {e}"))
        })
        .collect()
}

fn flag(params: &[(String, String)], key: &str) -> bool {
    params
        .iter()
        .rev()
        .find(|(k, _)| k == key)
        .is_none_or(|(_, v)| v != "false")
}

async fn v2_status(State(state): State<AppState>) -> Response {
    let started = state
        .dispatcher
        .as_ref()
        .map(Dispatcher::started_ms)
        .unwrap_or_else(|| chrono::Utc::now().timestamp_millis());
    let original = state
        .dispatcher
        .as_ref()
        .map(|d| {
            let names = d.receivers();
            let mut text = String::from("# served by vigil; see its alerts files\nreceivers:\n");
            for n in names {
                text.push_str(&format!("  - name: {n}\n"));
            }
            text
        })
        .unwrap_or_default();
    Json(json!({
        "cluster": {"name": "", "status": "disabled", "peers": []},
        "versionInfo": {
            "version": env!("CARGO_PKG_VERSION"),
            "revision": env!("VIGIL_GIT_REVISION"),
            "branch": "",
            "buildUser": "vigil",
            "buildDate": "",
            "goVersion": format!("rustc {}", env!("VIGIL_RUSTC_VERSION")),
        },
        "config": {"original": original},
        "uptime": rfc3339(started),
    }))
    .into_response()
}

async fn v2_receivers(State(state): State<AppState>) -> Response {
    let names = state
        .dispatcher
        .as_ref()
        .map(Dispatcher::receivers)
        .unwrap_or_default();
    let list: Vec<Value> = names.into_iter().map(|n| json!({"name": n})).collect();
    Json(json!(list)).into_response()
}

fn gettable_alert(v: &AlertView, now_ms: i64) -> Value {
    let a = &v.alert;
    let suppressed = !v.silenced_by.is_empty() || !v.inhibited_by.is_empty();
    let ends = a.resolved_at_ms.unwrap_or(now_ms + RESOLVE_TIMEOUT_MS);
    json!({
        "labels": a.labels,
        "annotations": a.annotations,
        "receivers": v.receivers.iter().map(|r| json!({"name": r})).collect::<Vec<_>>(),
        "fingerprint": v.fingerprint,
        "startsAt": rfc3339(a.fired_at_ms.unwrap_or(a.active_at_ms)),
        "updatedAt": rfc3339(now_ms),
        "endsAt": rfc3339(ends),
        "generatorURL": a.generator_url,
        "status": {
            "state": if suppressed { "suppressed" } else { "active" },
            "silencedBy": v.silenced_by,
            "inhibitedBy": v.inhibited_by,
            "mutedBy": v.muted_by,
        },
    })
}

/// The alerts the v2 API shows: firing ones (Alertmanager never sees pending alerts, and
/// forgets resolved ones), filtered as Alertmanager's `GET /api/v2/alerts`.
fn v2_alert_list(d: &Dispatcher, params: &[(String, String)]) -> Result<Vec<AlertView>, String> {
    let matchers = filters(params)?;
    let receiver = match params.iter().rev().find(|(k, _)| k == "receiver") {
        Some((_, r)) if !r.is_empty() => Some(
            regex::Regex::new(&format!("^(?:{r})$"))
                .map_err(|e| format!("failed to parse receiver param: {e}"))?,
        ),
        _ => None,
    };
    let (active, silenced, inhibited) = (
        flag(params, "active"),
        flag(params, "silenced"),
        flag(params, "inhibited"),
    );
    Ok(d.alerts()
        .into_iter()
        .filter(|v| v.alert.state == AlertState::Firing)
        .filter(|v| matchers.iter().all(|m| m.matches(&v.alert.labels)))
        .filter(|v| {
            receiver
                .as_ref()
                .is_none_or(|re| v.receivers.iter().any(|r| re.is_match(r)))
        })
        .filter(|v| {
            let is_silenced = !v.silenced_by.is_empty();
            let is_inhibited = !v.inhibited_by.is_empty();
            (silenced || !is_silenced)
                && (inhibited || !is_inhibited)
                && (active || is_silenced || is_inhibited)
        })
        .collect())
}

async fn v2_alerts(State(state): State<AppState>, RawQuery(q): RawQuery) -> Response {
    let Some(d) = &state.dispatcher else {
        return Json(json!([])).into_response();
    };
    let params = query_params(q);
    match v2_alert_list(d, &params) {
        Ok(list) => {
            let now = d.now_ms();
            Json(json!(
                list.iter()
                    .map(|v| gettable_alert(v, now))
                    .collect::<Vec<_>>()
            ))
            .into_response()
        }
        Err(e) => v2_error(StatusCode::BAD_REQUEST, e),
    }
}

async fn v2_groups(State(state): State<AppState>, RawQuery(q): RawQuery) -> Response {
    let Some(d) = &state.dispatcher else {
        return Json(json!([])).into_response();
    };
    let params = query_params(q);
    let shown = match v2_alert_list(d, &params) {
        Ok(list) => list,
        Err(e) => return v2_error(StatusCode::BAD_REQUEST, e),
    };
    let by_fp: BTreeMap<&str, &AlertView> =
        shown.iter().map(|v| (v.fingerprint.as_str(), v)).collect();
    let now = d.now_ms();
    let mut out = Vec::new();
    for g in d.groups() {
        let list: Vec<Value> = g
            .alerts
            .iter()
            .filter_map(|a| by_fp.get(a.fingerprint().as_str()))
            .map(|v| gettable_alert(v, now))
            .collect();
        if list.is_empty() {
            continue;
        }
        out.push(json!({"labels": g.labels, "receiver": {"name": g.receiver}, "alerts": list}));
    }
    Json(json!(out)).into_response()
}

/// Alertmanager's silence filter: every filter matcher names a label the silence has a
/// matcher for, and matches that matcher's value.
fn silence_matches_filter(s: &Silence, filter: &[Matcher]) -> bool {
    filter.iter().all(|f| {
        s.matchers
            .iter()
            .any(|m| m.name == f.name && f.matches_value(&m.value))
    })
}

async fn v2_silences(State(state): State<AppState>, RawQuery(q): RawQuery) -> Response {
    let Some(d) = &state.dispatcher else {
        return Json(json!([])).into_response();
    };
    let params = query_params(q);
    let filter = match filters(&params) {
        Ok(f) => f,
        Err(e) => return v2_error(StatusCode::BAD_REQUEST, e),
    };
    let now = d.now_ms();
    let list: Vec<Value> = d
        .silences()
        .iter()
        .filter(|s| silence_matches_filter(s, &filter))
        .map(|s| json!(s.to_json(now)))
        .collect();
    Json(json!(list)).into_response()
}

async fn v2_post_silence(State(state): State<AppState>, body: String) -> Response {
    let Some(d) = &state.dispatcher else {
        return v2_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "alerting is not running".into(),
        );
    };
    let post = match parse_post(&body) {
        Ok(p) => p,
        Err(e) => return v2_error(StatusCode::BAD_REQUEST, e),
    };
    match d.put_silence(post).await {
        Ok(id) => Json(json!({"silenceID": id})).into_response(),
        Err(e) => v2_error(silence_error_code(&e), e.to_string()),
    }
}

async fn v2_silence(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    let Some(d) = &state.dispatcher else {
        return v2_error(StatusCode::NOT_FOUND, "silence not found".into());
    };
    match d.silence(&id) {
        Some(s) => Json(json!(s.to_json(d.now_ms()))).into_response(),
        None => v2_error(StatusCode::NOT_FOUND, format!("silence {id} not found")),
    }
}

async fn v2_delete_silence(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    let Some(d) = &state.dispatcher else {
        return v2_error(StatusCode::NOT_FOUND, "silence not found".into());
    };
    match d.expire_silence(&id).await {
        Ok(()) => StatusCode::OK.into_response(),
        // Alertmanager answers 500 for an already expired silence.
        Err(e @ SilenceError::Invalid(_)) => {
            v2_error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
        }
        Err(e) => v2_error(silence_error_code(&e), e.to_string()),
    }
}
