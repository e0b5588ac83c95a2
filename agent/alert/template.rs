//! The small template syntax of alert labels and annotations: `{{ .name }}` is replaced by the
//! value of `name`, `{{ .labels.team }}` by the alert's `team` label; everything else is copied.
//! No logic, no pipes: a missing label renders as the empty string, an unknown variable is a
//! config problem found at load time ([`check`]). Used by the SLO specs (`crate::slo::spec`),
//! the threshold rules and the alert engine.

/// Variables of alerts generated from SLOs.
pub const SLO_VARS: &[&str] = &[
    "slo",
    "service",
    "objective",
    "window",
    "burn_rate",
    "short_burn_rate",
    "factor",
    "long_window",
    "short_window",
    "budget_remaining",
    "severity",
    "tier",
    "value",
    "problem",
    "description",
];

/// Variables of threshold rules.
pub const THRESHOLD_VARS: &[&str] = &["alert", "value", "op", "threshold", "selector"];

/// One piece of a parsed template.
enum Piece<'a> {
    Text(&'a str),
    Var(&'a str),
}

fn parse(text: &str) -> Result<Vec<Piece<'_>>, String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        out.push(Piece::Text(&rest[..start]));
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            return Err(format!(
                "{text:?} has {{{{ without }}}}; write {{{{ .name }}}}"
            ));
        };
        let inner = after[..end].trim();
        let Some(name) = inner.strip_prefix('.') else {
            return Err(format!(
                "{{{{ {inner} }}}} is not a variable; write {{{{ .name }}}} with a leading dot"
            ));
        };
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
        {
            return Err(format!("{{{{ {inner} }}}} is not a variable name"));
        }
        out.push(Piece::Var(name));
        rest = &after[end + 2..];
    }
    out.push(Piece::Text(rest));
    Ok(out)
}

/// Checks that `text` parses and names only `vars` (or `labels.<name>`).
pub fn check(text: &str, vars: &[&str]) -> Result<(), String> {
    for p in parse(text)? {
        if let Piece::Var(name) = p {
            let known = vars.contains(&name)
                || name
                    .strip_prefix("labels.")
                    .is_some_and(|l| !l.is_empty() && !l.contains('.'));
            if !known {
                return Err(format!(
                    "{{{{ .{name} }}}} is not a known variable; use one of {}, or .labels.<name>",
                    vars.iter()
                        .map(|v| format!(".{v}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
        }
    }
    Ok(())
}

/// The variable names `text` uses (`labels.x` included); none when it does not parse.
pub fn variables(text: &str) -> Vec<&str> {
    if !text.contains("{{") {
        return Vec::new();
    }
    parse(text)
        .map(|pieces| {
            pieces
                .into_iter()
                .filter_map(|p| match p {
                    Piece::Var(v) => Some(v),
                    Piece::Text(_) => None,
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Renders `text`; `var` answers a variable name (`labels.x` included); unknown names render as
/// the empty string. Text that does not parse is returned unchanged.
pub fn render(text: &str, var: &dyn Fn(&str) -> Option<String>) -> String {
    if !text.contains("{{") {
        return text.to_string();
    }
    let Ok(pieces) = parse(text) else {
        return text.to_string();
    };
    let mut out = String::with_capacity(text.len() + 16);
    for p in pieces {
        match p {
            Piece::Text(t) => out.push_str(t),
            Piece::Var(v) => out.push_str(&var(v).unwrap_or_default()),
        }
    }
    out
}

/// Formats a number for people: at most 4 significant decimals, no trailing zeros
/// (`14.4`, `0.3333`, `50`, `+Inf`).
pub fn number(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    let s = format!("{v:.4}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" { "0".into() } else { s.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_variables_and_labels() {
        let var = |n: &str| match n {
            "slo" => Some("availability".to_string()),
            "labels.team" => Some("payments".to_string()),
            _ => None,
        };
        assert_eq!(
            render("{{ .slo }} of {{.labels.team}} ({{ .labels.none }})", &var),
            "availability of payments ()"
        );
        assert_eq!(render("no braces", &var), "no braces");
        assert_eq!(
            variables("{{ .slo }} {{.labels.team}} x"),
            vec!["slo", "labels.team"]
        );
        assert!(variables("{{ broken").is_empty());
    }

    #[test]
    fn check_names_the_problem() {
        assert!(check("{{ .slo }} {{ .labels.x }}", SLO_VARS).is_ok());
        let e = check("{{ .sloo }}", SLO_VARS).expect_err("unknown");
        assert!(
            e.starts_with("{{ .sloo }} is not a known variable; use one of .slo, "),
            "{e}"
        );
        assert_eq!(
            check("{{ slo }}", SLO_VARS).expect_err("no dot"),
            "{{ slo }} is not a variable; write {{ .name }} with a leading dot"
        );
        assert_eq!(
            check("a {{ .slo", SLO_VARS).expect_err("open"),
            "\"a {{ .slo\" has {{ without }}; write {{ .name }}"
        );
    }

    #[test]
    fn numbers_for_people() {
        assert_eq!(number(14.4), "14.4");
        assert_eq!(number(1.0 / 3.0), "0.3333");
        assert_eq!(number(50.0), "50");
        assert_eq!(number(-0.00001), "0");
        assert_eq!(number(f64::INFINITY), "+Inf");
    }
}
