//! Building blocks of the generated dashboards: the dashboard skeleton (schemaVersion 41, a
//! `datasource` variable, no `__inputs`), panels of the current Grafana types and their
//! Prometheus targets, and stable uids. Everything is a `serde_json::Value`, whose maps are
//! sorted, so the output is deterministic. Used by `slo.rs`, `collectors.rs` and `agent.rs`.
//! Panel options carry every field the panel's schema requires, at Grafana's defaults
//! (tests/fixtures/dashboards/validate.py fails on a missing one); variables carry no
//! `current`, which Grafana fills on load (an empty one breaks the schema's `text`/`value`).

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// The dashboard JSON schema version the panels are written for (Grafana 11.6 / 12).
pub const SCHEMA_VERSION: u64 = 41;

/// The datasource reference every panel and target uses: the `datasource` variable.
pub fn datasource() -> Value {
    json!({"type": "prometheus", "uid": "${datasource}"})
}

/// A uid from `parts`: `[A-Za-z0-9_-]` only, at most 40 characters. Other characters become
/// `-`; a name that would be longer keeps its first 31 characters and gets 8 hex digits of a
/// SHA-256 of the whole name, so two long names never collide.
pub fn uid(parts: &[&str]) -> String {
    let full = parts.join("-");
    let mut clean: String = full
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    if clean.len() > 40 {
        let digest = Sha256::digest(full.as_bytes());
        let hex: String = digest.iter().take(4).map(|b| format!("{b:02x}")).collect();
        clean.truncate(31);
        clean.push('-');
        clean.push_str(&hex);
    }
    clean
}

/// A query-string-safe file name from a name (`checkout/availability` -> `checkout-availability`).
pub fn file_name(parts: &[&str]) -> String {
    parts
        .join("-")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect()
}

/// Escapes a label value for a PromQL string literal.
pub fn promql_str(v: &str) -> String {
    let mut out = String::with_capacity(v.len() + 2);
    out.push('"');
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A Prometheus target. `legend` is a legend format (`{{window}}`); `instant` for tables and
/// stats that show one value per series.
pub fn target(ref_id: &str, expr: &str, legend: &str, instant: bool) -> Value {
    let mut t = json!({
        "datasource": datasource(),
        "editorMode": "code",
        "expr": expr,
        "legendFormat": legend,
        "range": !instant,
        "instant": instant,
        "refId": ref_id,
    });
    if instant {
        t["format"] = json!("table");
    }
    t
}

/// Grid position.
pub fn grid(x: u32, y: u32, w: u32, h: u32) -> Value {
    json!({"h": h, "w": w, "x": x, "y": y})
}

/// Rounds to 9 decimals so that values such as 1 − 0.999 print as 0.001 and read back
/// exactly.
pub fn nice(x: f64) -> f64 {
    (x * 1e9).round() / 1e9
}

/// Threshold steps: a base colour, then `(value, colour)` pairs in ascending order.
pub fn thresholds(base: &str, steps: &[(f64, &str)]) -> Value {
    let mut s = vec![json!({"color": base, "value": null})];
    for (v, c) in steps {
        s.push(json!({"color": c, "value": nice(*v)}));
    }
    json!({"mode": "absolute", "steps": s})
}

/// Common panel fields.
fn panel(
    id: u32,
    kind: &str,
    title: &str,
    description: &str,
    pos: Value,
    targets: Vec<Value>,
) -> Value {
    json!({
        "datasource": datasource(),
        "description": description,
        "gridPos": pos,
        "id": id,
        "targets": targets,
        "title": title,
        "type": kind,
    })
}

/// Field defaults: unit, thresholds, optional min/max, colour mode.
pub fn field_defaults(unit: &str, th: Value, min: Option<f64>, max: Option<f64>) -> Value {
    let mut d = json!({
        "color": {"mode": "thresholds"},
        "thresholds": th,
        "unit": unit,
    });
    if let Some(m) = min {
        d["min"] = json!(nice(m));
    }
    if let Some(m) = max {
        d["max"] = json!(nice(m));
    }
    d
}

/// A time series panel. `threshold_lines` draws the thresholds as dashed lines (objective,
/// alert factors).
#[allow(clippy::too_many_arguments)]
pub fn timeseries(
    id: u32,
    title: &str,
    description: &str,
    pos: Value,
    targets: Vec<Value>,
    unit: &str,
    th: Value,
    threshold_lines: bool,
) -> Value {
    let mut p = panel(id, "timeseries", title, description, pos, targets);
    let mut defaults = field_defaults(unit, th, None, None);
    defaults["color"] = json!({"mode": "palette-classic"});
    defaults["custom"] = json!({
        "drawStyle": "line",
        "fillOpacity": 10,
        "lineWidth": 1,
        "showPoints": "never",
        "spanNulls": false,
        "thresholdsStyle": {"mode": if threshold_lines { "dashed" } else { "off" }},
    });
    p["fieldConfig"] = json!({"defaults": defaults, "overrides": []});
    p["options"] = json!({
        "legend": {"calcs": ["lastNotNull", "max"], "displayMode": "table", "placement": "bottom", "showLegend": true},
        "tooltip": {"mode": "multi", "sort": "desc"},
    });
    p
}

/// A stat panel (one big number per series).
pub fn stat(
    id: u32,
    title: &str,
    description: &str,
    pos: Value,
    targets: Vec<Value>,
    defaults: Value,
) -> Value {
    let mut p = panel(id, "stat", title, description, pos, targets);
    p["fieldConfig"] = json!({"defaults": defaults, "overrides": []});
    p["options"] = json!({
        "colorMode": "background",
        "graphMode": "none",
        "justifyMode": "auto",
        "orientation": "auto",
        "percentChangeColorMode": "standard",
        "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": false},
        "showPercentChange": false,
        "textMode": "auto",
        "wideLayout": true,
    });
    p
}

/// A gauge panel.
pub fn gauge(
    id: u32,
    title: &str,
    description: &str,
    pos: Value,
    targets: Vec<Value>,
    defaults: Value,
) -> Value {
    let mut p = panel(id, "gauge", title, description, pos, targets);
    p["fieldConfig"] = json!({"defaults": defaults, "overrides": []});
    p["options"] = json!({
        "minVizHeight": 75,
        "minVizWidth": 75,
        "orientation": "auto",
        "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": false},
        "showThresholdLabels": false,
        "showThresholdMarkers": true,
        "sizing": "auto",
    });
    p
}

/// A bar gauge panel (one bar per series).
pub fn bargauge(
    id: u32,
    title: &str,
    description: &str,
    pos: Value,
    targets: Vec<Value>,
    defaults: Value,
) -> Value {
    let mut p = panel(id, "bargauge", title, description, pos, targets);
    p["fieldConfig"] = json!({"defaults": defaults, "overrides": []});
    p["options"] = json!({
        "displayMode": "gradient",
        "legend": {"calcs": [], "displayMode": "list", "placement": "bottom", "showLegend": false},
        "maxVizHeight": 300,
        "minVizHeight": 16,
        "minVizWidth": 8,
        "namePlacement": "auto",
        "orientation": "horizontal",
        "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": false},
        "showUnfilled": true,
        "sizing": "auto",
        "valueMode": "color",
    });
    p
}

/// A table panel over instant queries, merged into one row per label set, with `transforms`
/// after the merge and per-column `overrides`.
pub fn table(
    id: u32,
    title: &str,
    description: &str,
    pos: Value,
    targets: Vec<Value>,
    overrides: Vec<Value>,
    organize: Value,
) -> Value {
    let mut p = panel(id, "table", title, description, pos, targets);
    p["fieldConfig"] = json!({
        "defaults": {"color": {"mode": "thresholds"}, "custom": {"align": "auto", "cellOptions": {"type": "auto"}, "inspect": false}, "thresholds": thresholds("green", &[])},
        "overrides": overrides,
    });
    p["options"] = json!({"cellHeight": "sm", "frameIndex": 0, "showHeader": true});
    p["transformations"] = json!([
        {"id": "merge", "options": {}},
        {"id": "organize", "options": organize},
    ]);
    p
}

/// A table override: column `name` gets `properties` (`[{id, value}]`).
pub fn column(name: &str, properties: Vec<Value>) -> Value {
    json!({"matcher": {"id": "byName", "options": name}, "properties": properties})
}

/// A collapsed-free row header.
pub fn row(id: u32, title: &str, y: u32) -> Value {
    json!({
        "collapsed": false,
        "gridPos": grid(0, y, 24, 1),
        "id": id,
        "panels": [],
        "title": title,
        "type": "row",
    })
}

/// The `datasource` variable (type prometheus): every panel reads `${datasource}`, so file
/// provisioning works without `__inputs`.
pub fn datasource_variable() -> Value {
    json!({
        "hide": 0,
        "includeAll": false,
        "label": "Data source",
        "multi": false,
        "name": "datasource",
        "options": [],
        "query": "prometheus",
        "refresh": 1,
        "regex": "",
        "type": "datasource",
    })
}

/// A query variable over a label's values (`label_values(selector, label)`), multi-select with
/// an "All" of `.*`.
pub fn label_variable(name: &str, label: &str, selector: &str) -> Value {
    let q = format!("label_values({selector}, {name})");
    json!({
        "allValue": ".*",
        "datasource": datasource(),
        "hide": 0,
        "includeAll": true,
        "label": label,
        "multi": true,
        "name": name,
        "options": [],
        "query": {"qryType": 1, "query": q, "refId": "PrometheusVariableQueryEditor-VariableQuery"},
        "refresh": 2,
        "regex": "",
        "sort": 1,
        "type": "query",
    })
}

/// A whole dashboard.
pub fn dashboard(
    uid: &str,
    title: &str,
    description: &str,
    tags: &[&str],
    variables: Vec<Value>,
    panels: Vec<Value>,
    links: Vec<Value>,
) -> Value {
    json!({
        "annotations": {"list": [{
            "builtIn": 1,
            "datasource": {"type": "grafana", "uid": "-- Grafana --"},
            "enable": true,
            "hide": true,
            "iconColor": "rgba(0, 211, 255, 1)",
            "name": "Annotations & Alerts",
            "type": "dashboard",
        }]},
        "description": description,
        "editable": true,
        "fiscalYearStartMonth": 0,
        "graphTooltip": 1,
        "links": links,
        "panels": panels,
        "refresh": "1m",
        "schemaVersion": SCHEMA_VERSION,
        "tags": tags,
        "templating": {"list": variables},
        "time": {"from": "now-6h", "to": "now"},
        "timepicker": {},
        "timezone": "browser",
        "title": title,
        "uid": uid,
        "version": 1,
        "weekStart": "",
    })
}

/// A link to other dashboards by tag (shown as a drop-down).
pub fn tag_link(title: &str, tag: &str) -> Value {
    json!({
        "asDropdown": true,
        "icon": "external link",
        "includeVars": false,
        "keepTime": true,
        "tags": [tag],
        "targetBlank": false,
        "title": title,
        "tooltip": "",
        "type": "dashboards",
        "url": "",
    })
}

/// Pretty JSON with sorted keys (serde_json's map is a BTreeMap) and a trailing newline.
pub fn render(v: &Value) -> String {
    let mut s = serde_json::to_string_pretty(v).unwrap_or_default();
    s.push('\n');
    s
}

/// A time series panel with the plain green threshold and no stacking: the agent and collector
/// dashboards' common case.
pub fn ts(id: u32, title: &str, desc: &str, pos: Value, targets: Vec<Value>, unit: &str) -> Value {
    timeseries(
        id,
        title,
        desc,
        pos,
        targets,
        unit,
        thresholds("green", &[]),
        false,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dashboards::config::check_uid;

    #[test]
    fn uids_are_valid_and_stable() {
        assert_eq!(
            uid(&["vigil-slo", "demo", "availability"]),
            "vigil-slo-demo-availability"
        );
        assert_eq!(uid(&["a b/c"]), "a-b-c");
        let long = uid(&[
            "vigil-slo",
            "a-very-long-service-name",
            "an-even-longer-slo-name",
        ]);
        assert_eq!(long.len(), 40);
        check_uid(&long).expect("valid");
        let other = uid(&[
            "vigil-slo",
            "a-very-long-service-name",
            "an-even-longer-slo-namf",
        ]);
        assert_ne!(long, other);
        assert_eq!(
            long,
            uid(&[
                "vigil-slo",
                "a-very-long-service-name",
                "an-even-longer-slo-name"
            ])
        );
    }

    #[test]
    fn promql_strings_are_escaped() {
        assert_eq!(promql_str(r#"a"b\c"#), r#""a\"b\\c""#);
    }

    #[test]
    fn render_sorts_keys() {
        let v = json!({"b": 1, "a": {"d": 2, "c": 3}});
        assert_eq!(
            render(&v),
            "{\n  \"a\": {\n    \"c\": 3,\n    \"d\": 2\n  },\n  \"b\": 1\n}\n"
        );
    }
}
