//! Label matchers as Alertmanager writes them (`name=value`, `name!=value`, `name=~regex`,
//! `name!~regex`, values optionally double-quoted), used by routes, inhibit rules and silences.
//! Regexes are anchored at both ends, as in Alertmanager.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer};

/// The operator of a [`Matcher`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
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

    /// From Alertmanager's API flags (`isRegex`, `isEqual`).
    pub fn from_flags(is_regex: bool, is_equal: bool) -> Self {
        match (is_regex, is_equal) {
            (false, true) => Self::Equal,
            (false, false) => Self::NotEqual,
            (true, true) => Self::Regex,
            (true, false) => Self::NotRegex,
        }
    }

    /// Whether the operator is a regex one.
    pub fn is_regex(self) -> bool {
        matches!(self, Self::Regex | Self::NotRegex)
    }

    /// Whether the operator is a positive one (`=`, `=~`).
    pub fn is_equal(self) -> bool {
        matches!(self, Self::Equal | Self::Regex)
    }
}

/// One label matcher.
#[derive(Debug, Clone)]
pub struct Matcher {
    /// Label name.
    pub name: String,
    /// Operator.
    pub op: MatchOp,
    /// Value or regex source, unquoted.
    pub value: String,
    re: Option<regex::Regex>,
}

impl PartialEq for Matcher {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.op == other.op && self.value == other.value
    }
}

impl Eq for Matcher {}

impl Matcher {
    /// A matcher; fails when a regex does not compile or the name is empty.
    pub fn new(name: &str, op: MatchOp, value: &str) -> Result<Self, String> {
        if name.is_empty() {
            return Err("the label name is empty; write name=value".into());
        }
        let re = if op.is_regex() {
            Some(regex::Regex::new(&format!("^(?:{value})$")).map_err(|e| {
                format!(
                    "{value:?} is not a valid regex: {}",
                    e.to_string()
                        .lines()
                        .last()
                        .unwrap_or_default()
                        .trim()
                        .trim_start_matches("error: ")
                )
            })?)
        } else {
            None
        };
        Ok(Self {
            name: name.to_string(),
            op,
            value: value.to_string(),
            re,
        })
    }

    /// Parses `name=value`, `name!=value`, `name=~re`, `name!~re` (value optionally in double
    /// quotes with Go-style escapes).
    pub fn parse(text: &str) -> Result<Self, String> {
        let t = text.trim();
        let name_end = t
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(t.len());
        let (name, rest) = t.split_at(name_end);
        let rest = rest.trim_start();
        let (op, value) = if let Some(v) = rest.strip_prefix("=~") {
            (MatchOp::Regex, v)
        } else if let Some(v) = rest.strip_prefix("!~") {
            (MatchOp::NotRegex, v)
        } else if let Some(v) = rest.strip_prefix("!=") {
            (MatchOp::NotEqual, v)
        } else if let Some(v) = rest.strip_prefix('=') {
            (MatchOp::Equal, v)
        } else {
            return Err(format!(
                "{text:?} is not a matcher; write name=value, name!=value, name=~regex or name!~regex"
            ));
        };
        if name.is_empty() {
            return Err(format!(
                "{text:?} is not a matcher: the label name is missing; write name=value"
            ));
        }
        if name.starts_with(|c: char| c.is_ascii_digit()) {
            return Err(format!(
                "{text:?} is not a matcher: {name:?} is not a valid label name (letters, digits and _, not starting with a digit)"
            ));
        }
        let value = unquote(value.trim()).map_err(|e| format!("{text:?} is not a matcher: {e}"))?;
        Self::new(name, op, &value).map_err(|e| format!("{text:?}: {e}"))
    }

    /// Whether `value` (empty when the label is missing) matches.
    pub fn matches_value(&self, value: &str) -> bool {
        match self.op {
            MatchOp::Equal => value == self.value,
            MatchOp::NotEqual => value != self.value,
            MatchOp::Regex => self.re.as_ref().is_some_and(|r| r.is_match(value)),
            MatchOp::NotRegex => !self.re.as_ref().is_some_and(|r| r.is_match(value)),
        }
    }

    /// Whether the label set matches (a missing label has the empty value).
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.matches_value(labels.get(&self.name).map(String::as_str).unwrap_or(""))
    }
}

impl fmt::Display for Matcher {
    /// Alertmanager's rendering: `name="value"` with the value Go-quoted.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}{}{}",
            self.name,
            self.op.as_str(),
            go_quote(&self.value)
        )
    }
}

impl<'de> Deserialize<'de> for Matcher {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// Whether every matcher matches.
pub fn all_match(matchers: &[Matcher], labels: &BTreeMap<String, String>) -> bool {
    matchers.iter().all(|m| m.matches(labels))
}

/// Alertmanager's `Matchers.String()`: `{a="b",c=~"d"}`, sorted.
pub fn matchers_string(matchers: &[Matcher]) -> String {
    let mut sorted: Vec<&Matcher> = matchers.iter().collect();
    // Alertmanager sorts by name, then value, then operator.
    sorted.sort_by(|a, b| (&a.name, &a.value, a.op).cmp(&(&b.name, &b.value, b.op)));
    let parts: Vec<String> = sorted.iter().map(ToString::to_string).collect();
    format!("{{{}}}", parts.join(","))
}

/// Go's `%q` for the characters that occur in label values.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Removes double quotes and resolves `\"`, `\\`, `\n`, `\t` inside them; unquoted text is
/// returned as it is.
fn unquote(v: &str) -> Result<String, String> {
    let Some(inner) = v.strip_prefix('"') else {
        if v.ends_with('"') {
            return Err("the value ends with a quote but does not start with one".into());
        }
        return Ok(v.to_string());
    };
    let Some(inner) = inner.strip_suffix('"') else {
        return Err("the quoted value is not closed; add the closing \"".into());
    };
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some(other) => out.push(other),
                None => return Err("the quoted value ends with a lone backslash".into()),
            }
        } else if c == '"' {
            return Err("a quote inside a quoted value must be escaped as \\\"".into());
        } else {
            out.push(c);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parses_every_operator() {
        let l = labels(&[("severity", "page"), ("team", "db")]);
        for (text, want) in [
            ("severity=page", true),
            ("severity = \"page\"", true),
            ("severity!=page", false),
            ("severity=~pa.*", true),
            ("severity=~pa", false),
            ("severity!~ticket|info", true),
            ("missing=\"\"", true),
            ("missing!=\"\"", false),
            ("team=~\"d(b|x)\"", true),
        ] {
            let m = Matcher::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(m.matches(&l), want, "{text}");
        }
    }

    #[test]
    fn renders_as_alertmanager() {
        let ms: Vec<Matcher> = ["severity=page", "a=~x.*"]
            .iter()
            .filter_map(|t| Matcher::parse(t).ok())
            .collect();
        assert_eq!(ms.len(), 2);
        assert_eq!(matchers_string(&ms), r#"{a=~"x.*",severity="page"}"#);
        assert_eq!(matchers_string(&[]), "{}");
    }

    #[test]
    fn rejects_bad_matchers() {
        for (text, want) in [
            ("severity", "is not a matcher; write name=value"),
            ("=page", "the label name is missing"),
            ("a=~(", "is not a valid regex"),
            ("a=\"x", "not closed"),
            ("9a=b", "not a valid label name"),
        ] {
            let e = Matcher::parse(text).err().unwrap_or_default();
            assert!(e.contains(want), "{text}: {e}");
        }
    }
}
