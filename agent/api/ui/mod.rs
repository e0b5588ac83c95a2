//! The status page: server-rendered HTML on `agent.listen`, all assets embedded in the binary
//! (no CDN, no build step). See docs/status-page.md.
//!
//! - `GET /`: headline cards, SLOs (worst first), alerts, silences (create and expire),
//!   recent notifications, scrape targets and collectors;
//! - `GET /slo/{service}/{name}` (or `/slo/{name}` when the name is unique): burn-down and
//!   burn-rate charts as inline SVG, completed calendar periods, the spec as YAML;
//! - `GET /ui/section/{name}`: one section's HTML, which the page's small script fetches every
//!   few seconds to refresh without a reload;
//! - `GET /api/v1/slos/{service}/{name}/history`: the chart series (agent/api/slos.rs).
//!
//! No second source of truth: every section is rendered from the JSON that the agent's own
//! `/api/v1/*` routes answer, obtained by calling the agent's router in process.

mod chart;
pub mod render;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{Request, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use hyper::service::Service as _;
use serde_json::Value;

use super::AppState;
use render::escape;

const STYLE: &str = include_str!("assets/style.css");
const SCRIPT: &str = include_str!("assets/app.js");
/// The favicon and header mark: an eye-like ring, in the page's accent colour.
const LOGO: &str = "<svg class=\"logo\" viewBox=\"0 0 24 24\" aria-hidden=\"true\"><circle cx=\"12\" cy=\"12\" r=\"9\" fill=\"none\" stroke=\"currentColor\" stroke-width=\"2.5\"/><circle cx=\"12\" cy=\"12\" r=\"3.5\" fill=\"currentColor\"/></svg>";

/// The status page's routes (merged into the agent's router).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(index))
        .route("/slo/{service}/{name}", get(slo_page))
        .route("/slo/{name}", get(slo_by_name))
        .route("/ui/section/{name}", get(section))
        .route(
            "/api/v1/slos/{service}/{name}/history",
            get(super::slos::history),
        )
}

/// Answers `path` through the agent's own router: the exact JSON every other client gets.
async fn api(state: &AppState, path: &str) -> Value {
    let Ok(req) = Request::get(path).body(Body::empty()) else {
        return Value::Null;
    };
    // hyper's Service trait calls the router (tower is only a dev-dependency).
    let svc = hyper_util::service::TowerToHyperService::new(super::router(state.clone()));
    let Ok(resp) = svc.call(req).await;
    match axum::body::to_bytes(resp.into_body(), 64 << 20).await {
        Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        Err(_) => Value::Null,
    }
}

fn now_ms() -> i64 {
    crate::slo::manager::now_ms()
}

fn page(title: &str, body: &str) -> Html<String> {
    Html(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><meta name=\"color-scheme\" content=\"light dark\"><title>{} · Vigil</title><link rel=\"icon\" href=\"data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 24 24'%3E%3Ccircle cx='12' cy='12' r='9' fill='none' stroke='%230969da' stroke-width='2.5'/%3E%3Ccircle cx='12' cy='12' r='3.5' fill='%230969da'/%3E%3C/svg%3E\"><style>{STYLE}</style></head><body><header class=\"top\"><a class=\"brand\" href=\"/\">{LOGO}<span>Vigil</span></a><nav><a href=\"/#slos\">SLOs</a><a href=\"/#alerts\">Alerts</a><a href=\"/#silences\">Silences</a><a href=\"/#targets\">Targets</a></nav><span class=\"updated\" id=\"updated\" aria-live=\"polite\"></span></header><main>{body}</main><footer>Vigil {} · the same data as JSON: <a href=\"/api/v1/slos\">/api/v1/slos</a> · <a href=\"/api/v1/alerts\">/api/v1/alerts</a> · <a href=\"/api/v1/silences\">/api/v1/silences</a> · <a href=\"/api/v1/targets\">/api/v1/targets</a> · <a href=\"/metrics\">/metrics</a></footer><script>{SCRIPT}</script></body></html>",
        escape(title),
        env!("CARGO_PKG_VERSION")
    ))
}

/// One section's HTML, by name (`slos`, `alerts`, ...); `slo` limits the SLO table to one id.
async fn render_section(state: &AppState, name: &str, slo: Option<&str>) -> Option<String> {
    let now = now_ms();
    Some(match name {
        "summary" => {
            let (slos, alerts, silences, targets) = tokio::join!(
                api(state, "/api/v1/slos"),
                api(state, "/api/v1/alerts"),
                api(state, "/api/v1/silences"),
                api(state, "/api/v1/targets?state=active"),
            );
            render::summary(&slos, &alerts, &silences, &targets)
        }
        "slos" => {
            let (slos, alerts) =
                tokio::join!(api(state, "/api/v1/slos"), api(state, "/api/v1/alerts"));
            render::slo_table(&slos, &alerts, slo)
        }
        "alerts" => render::alerts_table(&api(state, "/api/v1/alerts").await, now),
        "silences" => render::silences_table(&api(state, "/api/v1/silences").await),
        "history" => {
            render::history_table(&api(state, "/api/v1/alerts/history?limit=20").await, now)
        }
        "targets" => render::targets_table(&api(state, "/api/v1/targets?state=active").await, now),
        "collectors" => render::collectors_table(&api(state, "/api/v1/collectors").await, now),
        _ => return None,
    })
}

fn block(name: &str, html: &str) -> String {
    format!(
        "<div class=\"section-body\" data-section=\"{}\">{html}</div>",
        escape(name)
    )
}

async fn index(State(state): State<AppState>) -> Html<String> {
    let (summary, slos, alerts, silences, history, targets, collectors) = tokio::join!(
        render_section(&state, "summary", None),
        render_section(&state, "slos", None),
        render_section(&state, "alerts", None),
        render_section(&state, "silences", None),
        render_section(&state, "history", None),
        render_section(&state, "targets", None),
        render_section(&state, "collectors", None),
    );
    let s = |x: Option<String>| x.unwrap_or_default();
    let body = format!(
        "<section class=\"cards\" aria-label=\"Summary\">{}</section>\
         <section id=\"slos\"><h2>Service level objectives</h2><p class=\"hint\">Worst first. Burn rate 1 spends exactly the error budget over the SLO window; select an SLO for its charts.</p>{}</section>\
         <section id=\"alerts\"><h2>Alerts</h2>{}</section>\
         <section id=\"silences\"><h2>Silences</h2>{}{}</section>\
         <section id=\"history\"><h2>Recent notifications</h2>{}</section>\
         <section id=\"targets\"><h2>Scrape targets</h2>{}<h2 id=\"collectors\">Collectors</h2>{}</section>",
        block("summary", &s(summary)),
        block("slos", &s(slos)),
        block("alerts", &s(alerts)),
        SILENCE_FORM,
        block("silences", &s(silences)),
        block("history", &s(history)),
        block("targets", &s(targets)),
        block("collectors", &s(collectors)),
    );
    page("Status", &body)
}

const SILENCE_FORM: &str = "<details class=\"new-silence\" id=\"new-silence\"><summary>New silence</summary>\
<form id=\"silence-form\" autocomplete=\"off\">\
<label>Matchers <input name=\"matchers\" required placeholder='alertname=\"SLOBurnRateHigh\", slo=\"availability\"' aria-describedby=\"matchers-help\"></label>\
<small id=\"matchers-help\">Comma-separated, Alertmanager syntax: <code>=</code> <code>!=</code> <code>=~</code> <code>!~</code></small>\
<div class=\"row\"><label>Duration <select name=\"duration\"><option value=\"3600\">1 hour</option><option value=\"7200\" selected>2 hours</option><option value=\"14400\">4 hours</option><option value=\"86400\">1 day</option><option value=\"604800\">1 week</option></select></label>\
<label>Created by <input name=\"createdBy\" required placeholder=\"you@example.com\"></label></div>\
<label>Comment <input name=\"comment\" required placeholder=\"Why, and a ticket link\"></label>\
<div class=\"row\"><button type=\"submit\" class=\"primary\">Create silence</button><span class=\"form-status\" id=\"silence-status\" role=\"status\"></span></div>\
</form></details>";

#[derive(serde::Deserialize)]
struct SectionQuery {
    slo: Option<String>,
}

async fn section(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<SectionQuery>,
) -> Response {
    match render_section(&state, &name, q.slo.as_deref()).await {
        Some(html) => (
            [(header::CACHE_CONTROL, "no-store")],
            Html(html),
        )
            .into_response(),
        None => (
            StatusCode::NOT_FOUND,
            format!(
                "no section {name:?}; use summary, slos, alerts, silences, history, targets or collectors\n"
            ),
        )
            .into_response(),
    }
}

fn not_found_page(msg: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        page(
            "Not found",
            &format!(
                "<section><h2>Not found</h2><p class=\"empty\">{}</p><p><a href=\"/\">Back to the status page</a></p></section>",
                escape(msg)
            ),
        ),
    )
        .into_response()
}

async fn slo_by_name(State(state): State<AppState>, Path(name): Path<String>) -> Response {
    let ids: Vec<String> = state
        .slo
        .as_ref()
        .map(|m| m.slos())
        .unwrap_or_default()
        .iter()
        .filter(|s| s.spec.name == name)
        .map(|s| s.id.clone())
        .collect();
    match ids.as_slice() {
        [id] => slo_detail(&state, id).await,
        [] => not_found_page(&format!("No SLO named {name:?}.")),
        many => not_found_page(&format!(
            "{name:?} names several SLOs ({}); open /slo/{{service}}/{{name}}.",
            many.join(", ")
        )),
    }
}

async fn slo_page(
    State(state): State<AppState>,
    Path((service, name)): Path<(String, String)>,
) -> Response {
    slo_detail(&state, &format!("{service}/{name}")).await
}

/// Percent-encodes a path segment (SLO names are mostly plain, but need not be).
fn seg(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

async fn slo_detail(state: &AppState, id: &str) -> Response {
    let Some(slo) = state
        .slo
        .as_ref()
        .and_then(|m| m.slos().into_iter().find(|s| s.id == id))
    else {
        return not_found_page(&format!("No SLO {id:?}."));
    };
    let (svc, name) = (seg(&slo.service), seg(&slo.spec.name));
    let (detail_path, history_path) = (
        format!("/api/v1/slos/{svc}/{name}"),
        format!("/api/v1/slos/{svc}/{name}/history"),
    );
    let (detail, history, table) = tokio::join!(
        api(state, &detail_path),
        api(state, &history_path),
        render_section(state, "slos", Some(id)),
    );
    let spec = &detail["data"]["spec"];
    let description = spec["description"].as_str().unwrap_or("");
    let charts = if history["status"] == "success" {
        format!(
            "<div class=\"charts\"><figure><figcaption>Error budget burn-down <span class=\"sub\">since {} · {} resolution</span></figcaption>{}</figure><figure><figcaption>Burn rate <span class=\"sub\">last 6 hours, alert thresholds dashed</span></figcaption>{}</figure></div>",
            escape(&render::clock(
                history["data"]["windowStart"].as_str().unwrap_or("")
            )),
            escape(history["data"]["resolution"].as_str().unwrap_or("")),
            chart::burn_down(&history),
            chart::burn_rate(&history),
        )
    } else {
        format!(
            "<p class=\"empty\">{}</p>",
            escape(history["error"].as_str().unwrap_or("no history available"))
        )
    };
    let rows = format!(
        "<div class=\"section-body\" data-section=\"slos\" data-slo=\"{}\">{}</div>",
        escape(id),
        table.unwrap_or_default()
    );
    let body = format!(
        "<nav class=\"crumbs\"><a href=\"/\">Status</a> › <a href=\"/#slos\">SLOs</a> › {}</nav>\
         <section><h1>{} <span class=\"sub\">{}</span></h1><p class=\"hint\">{}</p>{}</section>\
         <section><h2>History</h2>{charts}</section>\
         <section><h2>Completed periods</h2>{}</section>\
         <section><h2>Spec</h2><pre class=\"yaml\"><code>{}</code></pre></section>",
        escape(id),
        escape(&slo.spec.name),
        escape(&slo.service),
        escape(description),
        rows,
        render::periods_table(&detail),
        escape(&super::slos::spec_yaml(&slo)),
    );
    page(&slo.spec.name, &body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `--name: #rrggbb` declarations of the first block after `marker` in the stylesheet.
    fn palette(marker: &str) -> std::collections::HashMap<String, (f64, f64, f64)> {
        let start = STYLE.find(marker).expect("marker in style.css");
        let rest = &STYLE[start..];
        let block = &rest[rest.find('{').expect("{")..rest.find('}').expect("}")];
        block
            .split(';')
            .filter_map(|d| {
                let d = d.rsplit('{').next()?;
                let (k, v) = d.split_once(':')?;
                let k = k.trim();
                let hex = v.trim().strip_prefix('#')?;
                let n = u32::from_str_radix(hex, 16).ok()?;
                let ch = |s: u32| f64::from((n >> s) & 0xff) / 255.0;
                Some((k.to_string(), (ch(16), ch(8), ch(0))))
            })
            .collect()
    }

    /// WCAG 2.x relative luminance and contrast ratio.
    fn contrast(a: (f64, f64, f64), b: (f64, f64, f64)) -> f64 {
        let lin = |c: f64| {
            if c <= 0.03928 {
                c / 12.92
            } else {
                ((c + 0.055) / 1.055).powf(2.4)
            }
        };
        let lum = |(r, g, b): (f64, f64, f64)| 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b);
        let (la, lb) = (lum(a), lum(b));
        (la.max(lb) + 0.05) / (la.min(lb) + 0.05)
    }

    #[test]
    fn contrast_formula_matches_known_values() {
        assert!((contrast((0.0, 0.0, 0.0), (1.0, 1.0, 1.0)) - 21.0).abs() < 1e-9);
        // #767676 on white is the classic 4.54:1 threshold grey.
        let g = f64::from(0x76) / 255.0;
        assert!((contrast((g, g, g), (1.0, 1.0, 1.0)) - 4.54).abs() < 0.01);
    }

    #[test]
    fn state_colours_meet_wcag_aa_in_both_themes() {
        for (theme, marker) in [("light", ":root"), ("dark", "prefers-color-scheme: dark")] {
            let p = palette(marker);
            for bg in ["--bg", "--surface"] {
                let bgc = p[bg];
                // Text: 4.5:1 (AA, normal text).
                for fg in [
                    "--text", "--muted", "--ok", "--warn", "--crit", "--info", "--accent",
                ] {
                    let c = contrast(p[fg], bgc);
                    assert!(
                        c >= 4.5,
                        "{theme}: {fg} on {bg} is {c:.2}:1, AA needs 4.5:1"
                    );
                }
                // Graphics (bars, chart lines): 3:1 (AA, non-text contrast).
                for fg in [
                    "--ok",
                    "--warn",
                    "--crit",
                    "--s1",
                    "--s2",
                    "--s3",
                    "--s4",
                    "--threshold",
                ] {
                    let c = contrast(p[fg], bgc);
                    assert!(c >= 3.0, "{theme}: {fg} on {bg} is {c:.2}:1, AA needs 3:1");
                }
            }
        }
    }

    #[test]
    fn path_segments_are_percent_encoded() {
        assert_eq!(seg("availability"), "availability");
        assert_eq!(seg("a b/c"), "a%20b%2Fc");
    }
}
