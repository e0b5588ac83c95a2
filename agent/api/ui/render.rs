//! HTML for the status page's sections, rendered from the JSON the API answers (the same
//! `serde_json::Value`s a browser or `curl` gets), so the page and the API cannot disagree.
//! Every string that reaches the HTML goes through [`escape`].

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::Value;

/// Escapes text for HTML element content and double- or single-quoted attribute values (the
/// same escaping the email receiver's HTML bodies use).
pub use crate::notify::receivers::html_escape as escape;

/// Escapes a JSON value's string (or its JSON text when it is not a string).
fn esc_v(v: &Value) -> String {
    match v {
        Value::String(s) => escape(s),
        Value::Null => String::new(),
        other => escape(&other.to_string()),
    }
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or("")
}

/// Percent with enough decimals to tell 99.9 from 99.95 (objectives and SLIs).
pub fn percent(ratio: f64) -> String {
    let p = ratio * 100.0;
    if !p.is_finite() {
        return "–".into();
    }
    for decimals in 0..=3 {
        let s = format!("{p:.decimals$}");
        if (s.parse::<f64>().unwrap_or(p) - p).abs() < 1e-9 {
            return format!("{s}%");
        }
    }
    format!("{p:.3}%")
}

/// A duration in seconds as `3d 4h`, `2h 5m`, `45s`; `never` when infinite or absent.
pub fn duration(seconds: Option<f64>) -> String {
    let Some(s) = seconds.filter(|s| s.is_finite() && *s >= 0.0) else {
        return "never".into();
    };
    let s = s.round() as u64;
    let (d, h, m) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, m) => format!("{m}m"),
        (0, h, m) => format!("{h}h {m}m"),
        (d, h, _) => format!("{d}d {h}h"),
    }
}

/// `12s ago` from an RFC 3339 time, relative to `now_ms`; `never` for the zero time.
pub fn ago(rfc3339: &str, now_ms: i64) -> String {
    match chrono::DateTime::parse_from_rfc3339(rfc3339) {
        Ok(t) if t.timestamp() > 0 => {
            let secs = (now_ms - t.timestamp_millis()).max(0) as f64 / 1000.0;
            if secs < 60.0 {
                format!("{secs:.0}s ago")
            } else {
                format!("{} ago", duration(Some(secs)))
            }
        }
        _ => "never".into(),
    }
}

/// `2026-11-22 19:45:02 UTC` from RFC 3339.
pub fn clock(rfc3339: &str) -> String {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .map(|t| {
            t.with_timezone(&chrono::Utc)
                .format("%Y-%m-%d %H:%M:%S UTC")
                .to_string()
        })
        .unwrap_or_else(|_| "–".into())
}

fn badge(class: &str, text: &str) -> String {
    format!(
        "<span class=\"badge {}\">{}</span>",
        escape(class),
        escape(text)
    )
}

fn chips(labels: &Value, skip: &[&str]) -> String {
    let mut out = String::new();
    if let Some(map) = labels.as_object() {
        for (k, v) in map {
            if skip.contains(&k.as_str()) {
                continue;
            }
            let _ = write!(
                out,
                "<span class=\"chip\">{}=<b>{}</b></span>",
                escape(k),
                esc_v(v)
            );
        }
    }
    out
}

fn empty(text: &str) -> String {
    format!("<p class=\"empty\">{}</p>", escape(text))
}

fn api_error(v: &Value) -> Option<String> {
    (v["status"] == "error").then(|| empty(str_of(v, "error")))
}

/// The worst alert state of the alerts about one SLO instance: (state, why it does not notify).
fn slo_alert(alerts: &Value, service: &str, name: &str, group: &Value) -> Option<(String, String)> {
    let mut best: Option<(u8, String, String)> = None;
    for a in alerts["data"]["alerts"].as_array().into_iter().flatten() {
        let l = &a["labels"];
        if l["service"] != service || l["slo"] != name {
            continue;
        }
        let same_group = group
            .as_object()
            .is_none_or(|g| g.iter().all(|(k, v)| l[k] == *v));
        if !same_group {
            continue;
        }
        let state = str_of(a, "state");
        let rank = match state {
            "firing" => 0,
            "pending" => 1,
            _ => continue,
        };
        let why = muted_reason(a);
        if best.as_ref().is_none_or(|b| rank < b.0) {
            best = Some((rank, state.to_string(), why));
        }
    }
    best.map(|(_, s, w)| (s, w))
}

fn muted_reason(a: &Value) -> String {
    let list = |key: &str| -> Vec<String> {
        a[key]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect()
    };
    let mut why = Vec::new();
    let s = list("silencedBy");
    if !s.is_empty() {
        why.push(format!("silenced by {}", s.join(", ")));
    }
    let i = list("inhibitedBy");
    if !i.is_empty() {
        why.push(format!("inhibited: {}", i.join("; ")));
    }
    let m = list("mutedBy");
    if !m.is_empty() {
        why.push(format!("muted by time interval {}", m.join(", ")));
    }
    why.join("; ")
}

/// One row of the SLO table, with what it is sorted by.
struct SloRow {
    /// Firing 0, pending 1, none 2.
    alert_rank: u8,
    remaining: f64,
    id: String,
    html: String,
}

/// Windows shown in the burn-rate column: the long windows of the default tiers when reported,
/// else the first four alerting windows.
fn burn_windows(windows: &[Value]) -> Vec<&Value> {
    // The last window is the SLO window itself.
    let alerting = &windows[..windows.len().saturating_sub(1)];
    let preferred: Vec<&Value> = alerting
        .iter()
        .filter(|w| ["5m", "1h", "6h", "3d"].contains(&str_of(w, "window")))
        .collect();
    if preferred.is_empty() {
        alerting.iter().take(4).collect()
    } else {
        preferred
    }
}

/// Budget state class: `crit` spent, `warn` under a quarter left, `ok` otherwise; `muted`
/// without data.
pub fn budget_class(remaining: f64, condition: &str) -> &'static str {
    if condition != "ok" {
        "muted"
    } else if remaining <= 0.0 {
        "crit"
    } else if remaining < 0.25 {
        "warn"
    } else {
        "ok"
    }
}

/// The SLO table from `GET /api/v1/slos` and `GET /api/v1/alerts`, one row per SLO instance
/// (group), worst first: firing alerts, then pending, then by budget remaining. `only` limits it
/// to one SLO id (the detail page).
pub fn slo_table(slos: &Value, alerts: &Value, only: Option<&str>) -> String {
    if let Some(e) = api_error(slos) {
        return e;
    }
    let mut rows = Vec::new();
    for s in slos["data"].as_array().into_iter().flatten() {
        let id = str_of(s, "id");
        if only.is_some_and(|o| o != id) {
            continue;
        }
        let (service, name) = (str_of(s, "service"), str_of(s, "name"));
        let condition = str_of(s, "condition");
        let objective = s["objective"].as_f64().unwrap_or(0.0);
        let instances: Vec<Value> = match s["instances"].as_array() {
            Some(list) if !list.is_empty() => list.clone(),
            _ => vec![Value::Null],
        };
        for inst in &instances {
            let group = &inst["group"];
            let windows: Vec<Value> = inst["windows"].as_array().cloned().unwrap_or_default();
            let remaining = inst["error_budget_remaining"].as_f64().unwrap_or(1.0);
            let class = budget_class(remaining, condition);
            let alert = slo_alert(alerts, service, name, group);
            let alert_rank = match alert.as_ref().map(|a| a.0.as_str()) {
                Some("firing") => 0,
                Some("pending") => 1,
                _ => 2,
            };
            let mut h = String::new();
            let _ = write!(
                h,
                "<tr class=\"slo-row\" data-slo=\"{}\"><td class=\"name\"><a href=\"/slo/{}/{}\">{}</a><div class=\"sub\">{}{}</div>",
                escape(id),
                escape(service),
                escape(name),
                escape(name),
                escape(service),
                chips(group, &[])
            );
            if let Some(p) = s["problem"].as_str() {
                let _ = write!(
                    h,
                    "<div class=\"problem\">{}</div>",
                    escape(&format!("{}: {p}", condition.replace('_', " ")))
                );
            }
            let _ = write!(
                h,
                "</td><td class=\"num\">{}</td><td>{}</td>",
                percent(objective),
                esc_v(&s["window"])
            );
            let sli = windows.last().and_then(|w| w["sli"].as_f64());
            let _ = write!(
                h,
                "<td class=\"num\">{}</td>",
                sli.map_or_else(|| "no traffic".into(), percent)
            );
            let shown = (remaining.clamp(0.0, 1.0) * 1000.0).round() / 10.0;
            let (label, aria) = if condition == "ok" {
                // Round away the float noise that would print as "-0.0%".
                let pct = format!("{:.1}%", (remaining * 1000.0).round() / 10.0 + 0.0);
                (pct.clone(), format!("error budget {pct} remaining"))
            } else {
                ("no data".into(), "error budget unknown: no data".into())
            };
            let _ = write!(
                h,
                "<td class=\"budget\"><div class=\"bar\" role=\"img\" aria-label=\"{}\"><span class=\"fill {class}\" style=\"width:{shown}%\"></span></div><span class=\"num {class}-text\">{}</span></td>",
                escape(&aria),
                escape(&label)
            );
            h.push_str("<td class=\"burn\">");
            for w in burn_windows(&windows) {
                let rate = w["burn_rate"].as_f64().unwrap_or(0.0);
                let hot = if rate >= 1.0 { " hot" } else { "" };
                let _ = write!(
                    h,
                    "<span class=\"rate{hot}\" title=\"burn rate over {0}\"><i>{0}</i> {1:.2}</span>",
                    esc_v(&w["window"]),
                    rate
                );
            }
            h.push_str("</td><td>");
            match &alert {
                Some((state, why)) => {
                    h.push_str(&badge(
                        if state == "firing" { "crit" } else { "warn" },
                        state,
                    ));
                    if !why.is_empty() {
                        let _ = write!(h, "<div class=\"sub\">{}</div>", escape(why));
                    }
                }
                None if condition != "ok" => {
                    h.push_str(&badge("muted", &condition.replace('_', " ")))
                }
                None => h.push_str(&badge("ok", "ok")),
            }
            let tte = if condition == "ok" && remaining <= 0.0 {
                "spent".to_string()
            } else {
                duration(inst["time_to_exhaustion_seconds"].as_f64())
            };
            let _ = write!(h, "</td><td class=\"num\">{}</td></tr>", escape(&tte));
            rows.push(SloRow {
                alert_rank,
                remaining: if condition == "ok" { remaining } else { 2.0 },
                id: format!("{id}{group}"),
                html: h,
            });
        }
    }
    if rows.is_empty() {
        return empty("No SLOs are loaded. Add rules files under `rules:` in vigil.yaml.");
    }
    rows.sort_by(|a, b| {
        a.alert_rank
            .cmp(&b.alert_rank)
            .then(a.remaining.total_cmp(&b.remaining))
            .then(a.id.cmp(&b.id))
    });
    let mut out = String::from(
        "<div class=\"scroll\"><table class=\"slos\"><thead><tr><th>SLO</th><th>Objective</th><th>Window</th><th>SLI</th><th>Error budget</th><th>Burn rate</th><th>Alert</th><th>Exhausted in</th></tr></thead><tbody>",
    );
    for r in rows {
        out.push_str(&r.html);
    }
    out.push_str("</tbody></table></div>");
    out
}

/// Firing and pending alerts from `GET /api/v1/alerts`, with why each does not notify.
pub fn alerts_table(alerts: &Value, now_ms: i64) -> String {
    if let Some(e) = api_error(alerts) {
        return e;
    }
    let list: Vec<&Value> = alerts["data"]["alerts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|a| a["state"] == "firing" || a["state"] == "pending")
        .collect();
    if list.is_empty() {
        return empty("No alerts are firing or pending.");
    }
    let mut sorted = list;
    sorted.sort_by_key(|a| {
        (
            a["state"] != "firing",
            str_of(&a["labels"], "alertname").to_string(),
        )
    });
    let mut out = String::from(
        "<div class=\"scroll\"><table class=\"alerts\"><thead><tr><th>Alert</th><th>State</th><th>Labels</th><th>Active since</th><th>Notifies</th><th></th></tr></thead><tbody>",
    );
    for a in sorted {
        let l = &a["labels"];
        let state = str_of(a, "state");
        let summary = a["annotations"]["summary"].as_str().unwrap_or("");
        let why = muted_reason(a);
        let notifies = if a["notifies"] == true {
            let receivers: Vec<&str> = a["receivers"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            format!("→ {}", escape(&receivers.join(", ")))
        } else if state == "pending" {
            "not yet (pending)".into()
        } else {
            format!("<span class=\"muted-text\">{}</span>", escape(&why))
        };
        let matchers: Vec<String> = l
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(k, _)| {
                ["alertname", "service", "slo", "severity", "tier"].contains(&k.as_str())
            })
            .map(|(k, v)| format!("{k}=\"{}\"", v.as_str().unwrap_or("")))
            .collect();
        let _ = write!(
            out,
            "<tr><td class=\"name\">{}<div class=\"sub\">{}</div></td><td>{}</td><td>{}</td><td title=\"{}\">{}</td><td>{}</td><td><button type=\"button\" class=\"link\" data-silence=\"{}\">Silence…</button></td></tr>",
            esc_v(&l["alertname"]),
            escape(summary),
            badge(if state == "firing" { "crit" } else { "warn" }, state),
            chips(l, &["alertname"]),
            escape(&clock(str_of(a, "activeAt"))),
            escape(&ago(str_of(a, "activeAt"), now_ms)),
            notifies,
            escape(&matchers.join(", "))
        );
    }
    out.push_str("</tbody></table></div>");
    out
}

/// Silences from `GET /api/v1/silences` (Alertmanager's shape), active first, with expire
/// buttons.
pub fn silences_table(silences: &Value) -> String {
    if let Some(e) = api_error(silences) {
        return e;
    }
    let mut list: Vec<&Value> = silences.as_array().into_iter().flatten().collect();
    if list.is_empty() {
        return empty("No silences.");
    }
    let rank = |s: &Value| match s["status"]["state"].as_str() {
        Some("active") => 0,
        Some("pending") => 1,
        _ => 2,
    };
    list.sort_by(|a, b| {
        rank(a)
            .cmp(&rank(b))
            .then(str_of(b, "endsAt").cmp(str_of(a, "endsAt")))
    });
    let mut out = String::from(
        "<div class=\"scroll\"><table class=\"silences\"><thead><tr><th>Matchers</th><th>State</th><th>Ends</th><th>Created by</th><th>Comment</th><th></th></tr></thead><tbody>",
    );
    for s in list {
        let state = s["status"]["state"].as_str().unwrap_or("");
        let mut m = String::new();
        for x in s["matchers"].as_array().into_iter().flatten() {
            let op = match (x["isRegex"] == true, x["isEqual"] != false) {
                (false, true) => "=",
                (false, false) => "!=",
                (true, true) => "=~",
                (true, false) => "!~",
            };
            let _ = write!(
                m,
                "<span class=\"chip\">{}{op}<b>{}</b></span>",
                esc_v(&x["name"]),
                esc_v(&x["value"])
            );
        }
        let action = if state == "expired" {
            String::new()
        } else {
            format!(
                "<button type=\"button\" class=\"danger\" data-expire=\"{}\">Expire</button>",
                esc_v(&s["id"])
            )
        };
        let _ = write!(
            out,
            "<tr class=\"silence\" data-id=\"{}\"><td>{m}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{action}</td></tr>",
            esc_v(&s["id"]),
            badge(
                match state {
                    "active" => "info",
                    "pending" => "warn",
                    _ => "muted",
                },
                state
            ),
            escape(&clock(str_of(s, "endsAt"))),
            esc_v(&s["createdBy"]),
            esc_v(&s["comment"]),
        );
    }
    out.push_str("</tbody></table></div>");
    out
}

/// Recent notifications from `GET /api/v1/alerts/history`.
pub fn history_table(history: &Value, now_ms: i64) -> String {
    if let Some(e) = api_error(history) {
        return e;
    }
    let list: Vec<&Value> = history["data"]["notifications"]
        .as_array()
        .into_iter()
        .flatten()
        .take(20)
        .collect();
    if list.is_empty() {
        return empty("No notifications sent yet.");
    }
    let mut out = String::from(
        "<div class=\"scroll\"><table class=\"history\"><thead><tr><th>When</th><th>Alerts</th><th>Receiver</th><th>Delivery</th><th>Last error</th></tr></thead><tbody>",
    );
    for n in list {
        let names: Vec<String> = n["alerts"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|a| format!("{} ({})", str_of(a, "alertname"), str_of(a, "status")))
            .collect();
        let state = str_of(n, "state");
        let _ = write!(
            out,
            "<tr><td title=\"{}\">{}</td><td>{} {}</td><td>{} <span class=\"sub\">{}</span></td><td>{} <span class=\"sub\">{} attempt(s)</span></td><td class=\"err\">{}</td></tr>",
            escape(&clock(str_of(n, "createdAt"))),
            escape(&ago(str_of(n, "createdAt"), now_ms)),
            badge(
                if n["status"] == "firing" {
                    "crit"
                } else {
                    "ok"
                },
                str_of(n, "status")
            ),
            escape(&names.join(", ")),
            esc_v(&n["receiver"]),
            esc_v(&n["integration"]),
            badge(
                match state {
                    "sent" => "ok",
                    "failed" => "crit",
                    "pending" => "warn",
                    _ => "muted",
                },
                state
            ),
            n["attempts"].as_i64().unwrap_or(0),
            esc_v(&n["lastError"]),
        );
    }
    out.push_str("</tbody></table></div>");
    out
}

fn health_badge(h: &str) -> String {
    badge(
        match h {
            "up" => "ok",
            "down" => "crit",
            _ => "muted",
        },
        h,
    )
}

/// Scrape targets from `GET /api/v1/targets`.
pub fn targets_table(targets: &Value, now_ms: i64) -> String {
    let list: Vec<&Value> = targets["data"]["activeTargets"]
        .as_array()
        .into_iter()
        .flatten()
        .collect();
    if list.is_empty() {
        return empty("No scrape targets configured.");
    }
    let mut out = String::from(
        "<div class=\"scroll\"><table class=\"targets\"><thead><tr><th>Endpoint</th><th>Health</th><th>Labels</th><th>Last scrape</th><th>Duration</th><th>Samples</th><th>Error</th></tr></thead><tbody>",
    );
    for t in list {
        let _ = write!(
            out,
            "<tr><td class=\"name\">{}<div class=\"sub\">{}</div></td><td>{}</td><td>{}</td><td title=\"{}\">{}</td><td class=\"num\">{:.1} ms</td><td class=\"num\">{}</td><td class=\"err\">{}</td></tr>",
            esc_v(&t["scrapeUrl"]),
            esc_v(&t["scrapePool"]),
            health_badge(str_of(t, "health")),
            chips(&t["labels"], &["job", "instance"]),
            escape(&clock(str_of(t, "lastScrape"))),
            escape(&ago(str_of(t, "lastScrape"), now_ms)),
            t["lastScrapeDuration"].as_f64().unwrap_or(0.0) * 1000.0,
            t["samples"].as_u64().unwrap_or(0),
            esc_v(&t["lastError"]),
        );
    }
    out.push_str("</tbody></table></div>");
    out
}

/// Native collectors from `GET /api/v1/collectors`.
pub fn collectors_table(collectors: &Value, now_ms: i64) -> String {
    let list: Vec<&Value> = collectors["data"]["collectors"]
        .as_array()
        .into_iter()
        .flatten()
        .collect();
    if list.is_empty() {
        return empty("No native collectors configured (Postgres, Redis, Kafka).");
    }
    let mut out = String::from(
        "<div class=\"scroll\"><table class=\"collectors\"><thead><tr><th>Collector</th><th>Health</th><th>Last collection</th><th>Duration</th><th>Collections</th><th>Error</th></tr></thead><tbody>",
    );
    for c in list {
        let _ = write!(
            out,
            "<tr><td class=\"name\">{}<div class=\"sub\">{}</div></td><td>{}</td><td title=\"{}\">{}</td><td class=\"num\">{:.1} ms</td><td class=\"num\">{} <span class=\"sub\">{} failed</span></td><td class=\"err\">{}</td></tr>",
            esc_v(&c["name"]),
            esc_v(&c["type"]),
            health_badge(str_of(c, "health")),
            escape(&clock(str_of(c, "lastCollection"))),
            escape(&ago(str_of(c, "lastCollection"), now_ms)),
            c["lastCollectionDuration"].as_f64().unwrap_or(0.0) * 1000.0,
            c["collections"].as_u64().unwrap_or(0),
            c["failures"].as_u64().unwrap_or(0),
            esc_v(&c["lastError"]),
        );
    }
    out.push_str("</tbody></table></div>");
    out
}

/// The headline cards: SLOs burning, alerts firing, silences active, targets up.
pub fn summary(slos: &Value, alerts: &Value, silences: &Value, targets: &Value) -> String {
    let mut instances = 0;
    let mut burning = 0;
    for s in slos["data"].as_array().into_iter().flatten() {
        // An SLO without instances (no data yet) is still one row of the table.
        instances += s["instances"].as_array().map_or(1, |l| l.len().max(1));
        for i in s["instances"].as_array().into_iter().flatten() {
            if i["error_budget_remaining"].as_f64().unwrap_or(1.0) < 0.25 {
                burning += 1;
            }
        }
    }
    let count = |state: &str| {
        alerts["data"]["alerts"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|a| a["state"] == state)
            .count()
    };
    let (firing, pending) = (count("firing"), count("pending"));
    let active = silences
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| s["status"]["state"] == "active")
        .count();
    let mut by_health: BTreeMap<&str, usize> = BTreeMap::new();
    let list = targets["data"]["activeTargets"].as_array();
    for t in list.into_iter().flatten() {
        *by_health.entry(str_of(t, "health")).or_default() += 1;
    }
    let total_targets = list.map_or(0, Vec::len);
    let up = by_health.get("up").copied().unwrap_or(0);
    let card = |href: &str, class: &str, value: String, label: String| {
        format!(
            "<a class=\"card {class}\" href=\"{href}\"><span class=\"value\">{}</span><span class=\"label\">{}</span></a>",
            escape(&value),
            escape(&label)
        )
    };
    [
        card(
            "#slos",
            if burning > 0 { "warn" } else { "ok" },
            format!("{instances}"),
            format!("SLOs · {burning} low on budget"),
        ),
        card(
            "#alerts",
            if firing > 0 {
                "crit"
            } else if pending > 0 {
                "warn"
            } else {
                "ok"
            },
            format!("{firing}"),
            format!("alerts firing · {pending} pending"),
        ),
        card(
            "#silences",
            if active > 0 { "info" } else { "neutral" },
            format!("{active}"),
            "silences active".into(),
        ),
        card(
            "#targets",
            if up < total_targets { "crit" } else { "ok" },
            format!("{up}/{total_targets}"),
            "targets up".into(),
        ),
    ]
    .concat()
}

/// Completed calendar periods from `GET /api/v1/slos/{service}/{name}`.
pub fn periods_table(detail: &Value) -> String {
    let list: Vec<&Value> = detail["data"]["periods"]
        .as_array()
        .into_iter()
        .flatten()
        .collect();
    if list.is_empty() {
        return empty(
            "No completed calendar periods yet (only calendar windows have them; the first appears when the current period ends).",
        );
    }
    let mut out = String::from(
        "<div class=\"scroll\"><table class=\"periods\"><thead><tr><th>Period</th><th>Group</th><th>SLI</th><th>Objective</th><th>Result</th><th>Budget used</th></tr></thead><tbody>",
    );
    for p in list {
        let (good, total) = (
            p["good"].as_f64().unwrap_or(0.0),
            p["total"].as_f64().unwrap_or(0.0),
        );
        let sli = if total > 0.0 {
            percent(good / total)
        } else {
            "no traffic".into()
        };
        let met = p["met"] == true;
        let group = match &p["group"] {
            Value::Array(a) if !a.is_empty() => a
                .iter()
                .map(|v| v.as_str().unwrap_or("").to_string())
                .collect::<Vec<_>>()
                .join(", "),
            _ => "–".into(),
        };
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td><td class=\"num\">{:.1}%</td></tr>",
            esc_v(&p["name"]),
            escape(&group),
            sli,
            percent(p["objective"].as_f64().unwrap_or(0.0)),
            if met {
                badge("ok", "met")
            } else {
                badge("crit", "missed")
            },
            p["budget_used"].as_f64().unwrap_or(0.0) * 100.0
        );
    }
    out.push_str("</tbody></table></div>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn escape_covers_every_html_special_character() {
        assert_eq!(
            escape("<script>alert(\"x&y\")</script> it's"),
            "&lt;script&gt;alert(&quot;x&amp;y&quot;)&lt;/script&gt; it&#39;s"
        );
        assert_eq!(escape("plain ünïcode"), "plain ünïcode");
        assert_eq!(escape(""), "");
        // Already-escaped text is escaped again (it is text, not markup).
        assert_eq!(escape("&amp;"), "&amp;amp;");
    }

    #[test]
    fn numbers_read_well() {
        assert_eq!(percent(0.995), "99.5%");
        assert_eq!(percent(0.999), "99.9%");
        assert_eq!(percent(0.99), "99%");
        assert_eq!(percent(0.998123), "99.812%");
        assert_eq!(duration(None), "never");
        assert_eq!(duration(Some(f64::INFINITY)), "never");
        assert_eq!(duration(Some(42.0)), "42s");
        assert_eq!(duration(Some(2.0 * 3600.0 + 300.0)), "2h 5m");
        assert_eq!(duration(Some(3.0 * 86_400.0 + 4.0 * 3600.0)), "3d 4h");
        assert_eq!(
            ago("2026-11-22T10:00:00.000Z", 1_795_341_612_000),
            "12s ago"
        );
        assert_eq!(ago("0001-01-01T00:00:00Z", 0), "never");
        assert_eq!(clock("2026-11-22T10:00:00.000Z"), "2026-11-22 10:00:00 UTC");
    }

    #[test]
    fn slo_table_sorts_worst_first_and_escapes_labels() {
        let inst = |g: &str, remaining: f64| {
            json!({"group": {"handler": g}, "windows": [
                {"window": "1h", "burn_rate": 2.5, "sli": 0.9875},
                {"window": "30d", "burn_rate": 0.5, "sli": 0.9975}],
                "error_budget_remaining": remaining, "time_to_exhaustion_seconds": 7200.0})
        };
        let slos = json!({"status": "success", "data": [
            {"id": "web/ok", "service": "web", "name": "ok", "objective": 0.99, "window": "30d",
             "condition": "ok", "instances": [inst("a", 0.9)]},
            {"id": "web/low", "service": "web", "name": "low", "objective": 0.99, "window": "30d",
             "condition": "ok", "instances": [inst("<b>", 0.1), inst("b", 0.5)]},
        ]});
        let alerts = json!({"status": "success", "data": {"alerts": [
            {"labels": {"service": "web", "slo": "ok", "handler": "a", "alertname": "SLOBurnRateHigh"},
             "state": "firing", "silencedBy": ["s1"], "inhibitedBy": [], "mutedBy": []}]}});
        let html = slo_table(&slos, &alerts, None);
        let firing = html.find("data-slo=\"web/ok\"").expect("ok row");
        let low = html
            .find("handler=<b>&lt;b&gt;</b>")
            .expect("escaped label");
        let half = html.find("handler=<b>b</b>").expect("b row");
        assert!(firing < low && low < half, "{html}");
        assert!(html.contains("silenced by s1"), "{html}");
        assert!(
            html.contains("class=\"fill warn\" style=\"width:10%\""),
            "{html}"
        );
        assert!(html.contains("<i>1h</i> 2.50"), "{html}");
        assert!(html.contains("2h 0m"), "{html}");
        assert!(!html.contains("<b>\""), "{html}");
    }
}
