//! `GET /api/v1/slos` (every SLO: objective, window, condition, per instance the SLI, error
//! ratio and burn rate per window, budget remaining, time to exhaustion) and
//! `GET /api/v1/slos/{service}/{name}` or `/api/v1/slos/{name}` (one SLO, plus its spec summary
//! and completed calendar periods). Errors are `{"status": "error", "error": "..."}` with 404.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::AppState;
use crate::slo::engine::SloStatus;
use crate::slo::spec::{Budgeting, Slo, Window};
use crate::store::history;

fn not_found(msg: String) -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(json!({"status": "error", "errorType": "not_found", "error": msg})),
    )
        .into_response()
}

pub(super) async fn list(State(state): State<AppState>) -> Json<Value> {
    let data = state
        .slo
        .as_ref()
        .map(|m| m.statuses().iter().map(|s| json!(s)).collect::<Vec<_>>())
        .unwrap_or_default();
    Json(json!({"status": "success", "data": data}))
}

pub(super) async fn one(
    State(state): State<AppState>,
    Path((service, name)): Path<(String, String)>,
) -> Response {
    detail(&state, &format!("{service}/{name}"))
}

pub(super) async fn one_by_name(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Response {
    let Some(m) = &state.slo else {
        return not_found(format!("no SLO named {name:?}"));
    };
    let ids: Vec<String> = m
        .slos()
        .iter()
        .filter(|s| s.spec.name == name)
        .map(|s| s.id.clone())
        .collect();
    match ids.as_slice() {
        [id] => detail(&state, id),
        [] => not_found(format!(
            "no SLO named {name:?}; GET /api/v1/slos lists them"
        )),
        many => not_found(format!(
            "{name:?} names several SLOs ({}); use /api/v1/slos/{{service}}/{{name}}",
            many.join(", ")
        )),
    }
}

fn detail(state: &AppState, id: &str) -> Response {
    let Some(m) = &state.slo else {
        return not_found(format!("no SLO {id:?}"));
    };
    let slos = m.slos();
    let Some(slo) = slos.iter().find(|s| s.id == id) else {
        return not_found(format!("no SLO {id:?}; GET /api/v1/slos lists them"));
    };
    let statuses = m.statuses();
    let status: Option<&SloStatus> = statuses.iter().find(|s| s.id == id);
    let periods: Vec<Value> = m
        .history(id)
        .iter()
        .map(|p| {
            json!({"name": p.name, "group": serde_json::from_str::<Value>(&p.grp).unwrap_or(Value::Null), "start_ms": p.start_ms,
                   "end_ms": p.end_ms, "good": p.good, "total": p.total, "objective": p.objective, "met": p.met, "budget_used": p.budget_used})
        })
        .collect();
    Json(json!({"status": "success", "data": {"spec": spec_summary(slo), "status": status, "periods": periods}})).into_response()
}

fn spec_summary(slo: &Slo) -> Value {
    let budgeting = match &slo.budgeting {
        Budgeting::Occurrences => json!({"type": "occurrences"}),
        Budgeting::Timeslices { slice, target } => {
            json!({"type": "timeslices", "slice": humantime::format_duration(*slice).to_string(), "target": target})
        }
        Budgeting::RatioTimeslices { slice } => {
            json!({"type": "ratio_timeslices", "slice": humantime::format_duration(*slice).to_string()})
        }
    };
    json!({
        "id": slo.id,
        "service": slo.service,
        "name": slo.spec.name,
        "description": slo.spec.description,
        "objective": slo.objective,
        "labels": slo.labels,
        "group_by": slo.spec.group_by,
        "min_events": slo.spec.min_events,
        "budgeting": budgeting,
        "selectors": slo.selectors.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "file": slo.file.display().to_string(),
    })
}

/// Minutes of burn-rate history the chart shows (the minute rows are kept 7 hours).
const BURN_RATE_MINUTES: i64 = 6 * 60;

/// `GET /api/v1/slos/{service}/{name}/history`: the series behind the status page's charts,
/// read from the ledger (agent/store/history.rs): the error-budget burn-down over the current
/// window (minute resolution while the data is younger than 6 hours, else hourly), the burn
/// rates of the short alerting windows over the last 6 hours, and every tier's threshold.
pub(super) async fn history(
    State(state): State<AppState>,
    Path((service, name)): Path<(String, String)>,
) -> Response {
    let id = format!("{service}/{name}");
    let Some(slo) = state
        .slo
        .as_ref()
        .and_then(|m| m.slos().into_iter().find(|s| s.id == id))
    else {
        return not_found(format!("no SLO {id:?}; GET /api/v1/slos lists them"));
    };
    let Some(ledger) = &state.ledger else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "error", "errorType": "unavailable", "error": "the ledger is not open"})),
        )
            .into_response();
    };
    match history_data(ledger, &slo, crate::slo::manager::now_ms()).await {
        Ok(data) => Json(json!({"status": "success", "data": data})).into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({"status": "error", "errorType": "internal", "error": e.to_string()})),
        )
            .into_response(),
    }
}

fn window_start(slo: &Slo, now: i64) -> i64 {
    match &slo.spec.window {
        Window::Rolling(d) => now - d.as_millis() as i64,
        Window::Calendar { unit, time_zone } => {
            let tz: chrono_tz::Tz = time_zone.parse().unwrap_or(chrono_tz::UTC);
            crate::slo::calendar::period_containing(*unit, tz, now).0
        }
    }
}

fn points(p: &[history::Point]) -> Value {
    Value::Array(p.iter().map(|(t, v)| json!([t, v])).collect())
}

async fn history_data(
    ledger: &crate::store::ledger::Ledger,
    slo: &Slo,
    now: i64,
) -> Result<Value, crate::store::ledger::LedgerError> {
    const MIN_MS: i64 = 60_000;
    const HOUR_MS: i64 = 3_600_000;
    let start = window_start(slo, now);
    let (now_min, now_hour) = (now.div_euclid(MIN_MS), now.div_euclid(HOUR_MS));
    let hours = history::buckets(
        ledger,
        &slo.id,
        history::HOUR_S,
        start.div_euclid(HOUR_MS),
        now_hour,
    )
    .await?;
    let first_hour = hours.iter().find(|b| b.2 > 0.0).map(|b| b.0);
    let minutes = history::buckets(
        ledger,
        &slo.id,
        history::MINUTE_S,
        now_min - BURN_RATE_MINUTES - 60,
        now_min,
    )
    .await?;
    // Young data (the demo after a few minutes) would be one or two hourly points: draw it by
    // the minute instead.
    let (resolution, burn_down) = match first_hour {
        Some(h) if h < now_hour - 6 => ("1h", history::burn_down(&hours, HOUR_MS, slo.objective)),
        _ => {
            let from = start.div_euclid(MIN_MS);
            let rows: Vec<history::Bucket> =
                minutes.iter().filter(|b| b.0 >= from).copied().collect();
            let first = rows.iter().position(|b| b.2 > 0.0).unwrap_or(rows.len());
            (
                "1m",
                history::burn_down(&rows[first..], MIN_MS, slo.objective),
            )
        }
    };
    let tiers = slo.alert_tiers();
    let mut windows: Vec<i64> = tiers
        .iter()
        .filter(|t| t.long_window.as_secs() <= 3600)
        .flat_map(|t| {
            [
                t.short_window.as_secs() as i64 / 60,
                t.long_window.as_secs() as i64 / 60,
            ]
        })
        .filter(|m| *m > 0)
        .collect();
    if windows.is_empty() {
        windows = vec![5, 60];
    }
    windows.sort_unstable();
    windows.dedup();
    let first_min = minutes.iter().find(|b| b.2 > 0.0).map_or(now_min, |b| b.0);
    let from = first_min.max(now_min - BURN_RATE_MINUTES);
    let burn_rate: Vec<Value> = windows
        .iter()
        .map(|w| {
            let name = crate::slo::window::window_name(std::time::Duration::from_secs(*w as u64 * 60));
            json!({"window": name, "points": points(&history::burn_rate(&minutes, *w, from, now_min, slo.objective))})
        })
        .collect();
    let thresholds: Vec<Value> = tiers
        .iter()
        .map(|t| {
            json!({
                "tier": t.name,
                "severity": t.severity,
                "factor": t.factor,
                "longWindow": crate::slo::window::window_name(t.long_window),
                "shortWindow": crate::slo::window::window_name(t.short_window),
            })
        })
        .collect();
    Ok(json!({
        "id": slo.id,
        "objective": slo.objective,
        "windowStart": crate::notify::silence::rfc3339(start),
        "windowStartMs": start,
        "nowMs": now,
        "resolution": resolution,
        "burnDown": points(&burn_down),
        "burnRate": burn_rate,
        "thresholds": thresholds,
    }))
}

/// The SLO's own entry of its rules file, as YAML (with the file's `service` and `labels`), for
/// the status page. Read from the file as written, so comments aside it is what the user wrote.
pub(super) fn spec_yaml(slo: &Slo) -> String {
    let text = match std::fs::read_to_string(&slo.file) {
        Ok(t) => t,
        Err(e) => return format!("# cannot read {}: {e}\n", slo.file.display()),
    };
    let doc: serde_yaml::Value = match serde_yaml::from_str(&text) {
        Ok(v) => v,
        Err(e) => return format!("# cannot parse {}: {e}\n", slo.file.display()),
    };
    let entry = doc
        .get("slos")
        .and_then(serde_yaml::Value::as_sequence)
        .and_then(|l| {
            l.iter().find(|s| {
                s.get("name").and_then(serde_yaml::Value::as_str) == Some(slo.spec.name.as_str())
            })
        })
        .cloned()
        .unwrap_or(serde_yaml::Value::Null);
    // A Mapping keeps insertion order: service and labels first, as in the file.
    let mut out = serde_yaml::Mapping::new();
    out.insert("service".into(), slo.service.clone().into());
    if let Some(labels) = doc.get("labels") {
        out.insert("labels".into(), labels.clone());
    }
    out.insert("slos".into(), serde_yaml::Value::Sequence(vec![entry]));
    let yaml = serde_yaml::to_string(&out).unwrap_or_default();
    format!("# {}\n{yaml}", slo.file.display())
}
