//! `GET /api/v1/targets`: scrape targets in the JSON shape of Prometheus' API
//! (`activeTargets`, `droppedTargets`), plus Vigil's `samples` and `seriesAdded` per target.
//! `?state=active|dropped|any` filters as in Prometheus.

use std::collections::{BTreeMap, HashMap};

use axum::Json;
use axum::extract::{Query, State};
use serde_json::{Value, json};

use super::AppState;
use crate::store::series::LabelSet;

fn labels_json(l: &LabelSet) -> BTreeMap<&str, &str> {
    l.iter().collect()
}

pub(super) async fn targets(
    State(state): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Json<Value> {
    let want = q.get("state").map(String::as_str).unwrap_or("any");
    let mut active = Vec::new();
    let mut dropped = Vec::new();
    if let Some(scrape) = &state.scrape {
        if want != "dropped" {
            for t in scrape.targets() {
                let h = t.health();
                active.push(json!({
                    "discoveredLabels": labels_json(&t.target.discovered),
                    "labels": labels_json(&t.target.labels),
                    "scrapePool": t.target.job,
                    "scrapeUrl": t.target.url,
                    "globalUrl": t.target.url,
                    "lastError": h.last_error,
                    "lastScrape": h.last_scrape.map(|s| humantime::format_rfc3339_millis(s).to_string()).unwrap_or_else(|| "0001-01-01T00:00:00Z".into()),
                    "lastScrapeDuration": h.last_duration,
                    "health": h.health,
                    "scrapeInterval": humantime::format_duration(t.job.interval).to_string(),
                    "scrapeTimeout": humantime::format_duration(t.job.timeout).to_string(),
                    "samples": h.samples,
                    "seriesAdded": h.series_added,
                }));
            }
        }
        if want != "active" {
            for (job, d) in scrape.dropped() {
                dropped.push(
                    json!({ "discoveredLabels": labels_json(&d.discovered), "scrapePool": job }),
                );
            }
        }
    }
    Json(
        json!({ "status": "success", "data": { "activeTargets": active, "droppedTargets": dropped } }),
    )
}
