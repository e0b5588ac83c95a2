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
use crate::slo::spec::{Budgeting, Slo};

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
