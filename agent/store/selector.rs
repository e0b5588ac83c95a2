//! PromQL series selectors (`http_requests_total{job="api",code=~"5.."}`), the way SLO specs,
//! alert rules and the external metrics API name series. Parsing follows PromQL: a metric name
//! and/or a brace block of matchers `=`, `!=`, `=~`, `!~`; values in double or single quotes or
//! backticks with Go escapes; regexes anchored at both ends.

use std::fmt;
use std::str::FromStr;

use regex::Regex;

use super::series::LabelSet;

/// A matcher operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchOp {
    /// `=`
    Equal,
    /// `!=`
    NotEqual,
    /// `=~`
    Regex,
    /// `!~`
    NotRegex,
}

impl MatchOp {
    /// The operator as written.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Equal => "=",
            Self::NotEqual => "!=",
            Self::Regex => "=~",
            Self::NotRegex => "!~",
        }
    }
}

/// One label matcher.
#[derive(Debug, Clone)]
pub struct Matcher {
    /// Label name.
    pub name: String,
    /// Operator.
    pub op: MatchOp,
    /// The value or pattern as written (unescaped).
    pub value: String,
    re: Option<Regex>,
}

impl PartialEq for Matcher {
    fn eq(&self, o: &Self) -> bool {
        self.name == o.name && self.op == o.op && self.value == o.value
    }
}

impl Matcher {
    /// Builds a matcher; regexes are anchored.
    pub fn new(name: &str, op: MatchOp, value: &str) -> Result<Self, String> {
        let re = match op {
            MatchOp::Regex | MatchOp::NotRegex => {
                Some(Regex::new(&format!("^(?s:{value})$")).map_err(|e| {
                    format!("regex {value:?} for label {name} does not compile: {e}")
                })?)
            }
            _ => None,
        };
        Ok(Self {
            name: name.to_string(),
            op,
            value: value.to_string(),
            re,
        })
    }

    /// Whether a label value (None when absent, which matches like "") satisfies the matcher.
    pub fn matches_value(&self, v: Option<&str>) -> bool {
        let v = v.unwrap_or("");
        match (self.op, &self.re) {
            (MatchOp::Equal, _) => v == self.value,
            (MatchOp::NotEqual, _) => v != self.value,
            (MatchOp::Regex, Some(re)) => re.is_match(v),
            (MatchOp::NotRegex, Some(re)) => !re.is_match(v),
            _ => false,
        }
    }
}

/// A series selector.
#[derive(Debug, Clone, PartialEq)]
pub struct Selector {
    /// Matchers, the metric name as `__name__="…"` first when given.
    pub matchers: Vec<Matcher>,
}

impl Selector {
    /// Whether `labels` matches every matcher.
    pub fn matches(&self, labels: &LabelSet) -> bool {
        self.matchers
            .iter()
            .all(|m| m.matches_value(labels.get(&m.name)))
    }

    /// The metric name when the selector fixes it with `=`.
    pub fn metric_name(&self) -> Option<&str> {
        self.matchers
            .iter()
            .find(|m| m.name == "__name__" && m.op == MatchOp::Equal)
            .map(|m| m.value.as_str())
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self.metric_name();
        if let Some(n) = name {
            f.write_str(n)?;
        }
        let rest: Vec<&Matcher> = self
            .matchers
            .iter()
            .filter(|m| !(name.is_some() && m.name == "__name__" && m.op == MatchOp::Equal))
            .collect();
        if rest.is_empty() && name.is_some() {
            return Ok(());
        }
        f.write_str("{")?;
        for (i, m) in rest.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            let mut v = String::new();
            crate::api::metrics::escape_label_value(&m.value, &mut v);
            write!(f, "{}{}\"{}\"", m.name, m.op.as_str(), v)?;
        }
        f.write_str("}")
    }
}

impl FromStr for Selector {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let s = text.trim();
        let b = s.as_bytes();
        let mut i = 0;
        let mut matchers = Vec::new();
        while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b':') {
            i += 1;
        }
        if i > 0 {
            let name = &s[..i];
            if name.as_bytes()[0].is_ascii_digit() {
                return Err(format!(
                    "{text:?}: metric name {name:?} must not start with a digit"
                ));
            }
            matchers.push(Matcher::new("__name__", MatchOp::Equal, name)?);
        }
        skip_ws(b, &mut i);
        if i < b.len() {
            if b[i] != b'{' {
                return Err(format!(
                    "{text:?}: unexpected {:?} at column {}; expected `{{`",
                    char::from(b[i]),
                    i + 1
                ));
            }
            i += 1;
            loop {
                skip_ws(b, &mut i);
                if i < b.len() && b[i] == b'}' {
                    i += 1;
                    break;
                }
                let start = i;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                    i += 1;
                }
                let label = &s[start..i];
                if label.is_empty() || label.as_bytes()[0].is_ascii_digit() {
                    return Err(format!(
                        "{text:?}: expected a label name at column {}",
                        start + 1
                    ));
                }
                skip_ws(b, &mut i);
                let op = match (b.get(i), b.get(i + 1)) {
                    (Some(b'='), Some(b'~')) => MatchOp::Regex,
                    (Some(b'!'), Some(b'=')) => MatchOp::NotEqual,
                    (Some(b'!'), Some(b'~')) => MatchOp::NotRegex,
                    (Some(b'='), _) => MatchOp::Equal,
                    _ => {
                        return Err(format!(
                            "{text:?}: expected =, !=, =~ or !~ after {label} at column {}",
                            i + 1
                        ));
                    }
                };
                i += if op == MatchOp::Equal { 1 } else { 2 };
                skip_ws(b, &mut i);
                let value = parse_string(s, &mut i).map_err(|e| format!("{text:?}: {e}"))?;
                matchers.push(Matcher::new(label, op, &value)?);
                skip_ws(b, &mut i);
                match b.get(i) {
                    Some(b',') => i += 1,
                    Some(b'}') => {}
                    _ => {
                        return Err(format!(
                            "{text:?}: expected `,` or `}}` at column {}",
                            i + 1
                        ));
                    }
                }
            }
            skip_ws(b, &mut i);
            if i < b.len() {
                return Err(format!(
                    "{text:?}: unexpected text after `}}` at column {}; only a series selector is accepted here",
                    i + 1
                ));
            }
        }
        if matchers.is_empty() {
            return Err(format!(
                "{text:?}: an empty selector; name a metric, e.g. http_requests_total{{job=\"api\"}}"
            ));
        }
        // PromQL refuses selectors that match everything, such as {a=~".*"}.
        if matchers.iter().all(|m| m.matches_value(Some(""))) {
            return Err(format!(
                "{text:?}: the selector matches every series; add a matcher that needs a non-empty value"
            ));
        }
        Ok(Self { matchers })
    }
}

fn skip_ws(b: &[u8], i: &mut usize) {
    while *i < b.len() && b[*i].is_ascii_whitespace() {
        *i += 1;
    }
}

/// A PromQL string literal at `*i`: "…" or '…' with Go escapes, or `…` raw.
fn parse_string(s: &str, i: &mut usize) -> Result<String, String> {
    let b = s.as_bytes();
    let quote = *b.get(*i).ok_or("expected a quoted value at the end")?;
    if !matches!(quote, b'"' | b'\'' | b'`') {
        return Err(format!("expected a quoted value at column {}", *i + 1));
    }
    *i += 1;
    let mut out = String::new();
    let mut chars = s[*i..].char_indices();
    while let Some((off, c)) = chars.next() {
        if c as u32 == u32::from(quote) {
            *i += off + 1;
            return Ok(out);
        }
        if c == '\\' && quote != b'`' {
            match chars.next() {
                Some((_, 'n')) => out.push('\n'),
                Some((_, 't')) => out.push('\t'),
                Some((_, 'r')) => out.push('\r'),
                Some((_, '\\')) => out.push('\\'),
                Some((_, '"')) => out.push('"'),
                Some((_, '\'')) => out.push('\''),
                Some((_, other)) => return Err(format!("unknown escape \\{other}")),
                None => break,
            }
        } else {
            out.push(c);
        }
    }
    Err("unterminated quoted value".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> LabelSet {
        LabelSet::from_pairs(pairs.iter().copied())
    }

    #[test]
    fn parses_and_matches() {
        let s: Selector =
            r#"http_requests_total{job="api", code=~"5..",method!="GET",path!~'/h.*'}"#
                .parse()
                .expect("ok");
        let hit = labels(&[
            ("__name__", "http_requests_total"),
            ("job", "api"),
            ("code", "503"),
            ("method", "POST"),
            ("path", "/x"),
        ]);
        assert!(s.matches(&hit));
        let miss = labels(&[
            ("__name__", "http_requests_total"),
            ("job", "api"),
            ("code", "5030"),
            ("method", "POST"),
        ]);
        assert!(!s.matches(&miss), "regexes are anchored");
        assert_eq!(s.metric_name(), Some("http_requests_total"));
        assert_eq!(
            s.to_string(),
            r#"http_requests_total{job="api",code=~"5..",method!="GET",path!~"/h.*"}"#
        );
    }

    #[test]
    fn name_only_braces_only_and_escapes() {
        assert!(
            "up".parse::<Selector>()
                .expect("ok")
                .matches(&labels(&[("__name__", "up")]))
        );
        let s: Selector = r#"{__name__="a:b", v="q\"x\\"}"#.parse().expect("ok");
        assert!(s.matches(&labels(&[("__name__", "a:b"), ("v", "q\"x\\")])));
        let s: Selector = "x{v=`a\\b`}".parse().expect("ok");
        assert_eq!(s.matchers[1].value, "a\\b");
        // An absent label matches as "".
        let s: Selector = r#"x{missing=""}"#.parse().expect("ok");
        assert!(s.matches(&labels(&[("__name__", "x")])));
    }

    #[test]
    fn rejects_bad_selectors_with_a_reason() {
        for (text, want) in [
            ("", "empty selector"),
            ("{a=~\".*\"}", "matches every series"),
            ("x{a=\"b\"", "expected `,` or `}`"),
            ("x{a=b}", "expected a quoted value"),
            ("x{a==\"b\"}", "expected a quoted value"),
            ("x{a=~\"(\"}", "does not compile"),
            ("rate(x[5m])", "unexpected"),
            ("x{a=\"b\"} > 3", "only a series selector"),
            ("9x", "must not start with a digit"),
            ("x{a=\"\\q\"}", "unknown escape"),
        ] {
            let err = text.parse::<Selector>().expect_err(text);
            assert!(err.contains(want), "{text}: {err}");
        }
    }
}
