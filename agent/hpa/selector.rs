//! Kubernetes label selectors (`?labelSelector=` of the external metrics API), with the grammar
//! of apimachinery's `labels.Parse`: comma-separated requirements `key`, `!key`, `key=value`,
//! `key==value`, `key!=value`, `key in (a,b)`, `key notin (a,b)`, `key>1`, `key<1`. api.rs
//! filters `metricLabels` with [`LabelSelector::matches`].

use std::collections::BTreeMap;

/// One requirement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requirement {
    /// `key` (present).
    Exists(String),
    /// `!key` (absent).
    DoesNotExist(String),
    /// `key=v` / `key==v` / `key in (v...)`.
    In(String, Vec<String>),
    /// `key!=v` / `key notin (v...)`: absent keys match too.
    NotIn(String, Vec<String>),
    /// `key>n` (present, an integer above n).
    GreaterThan(String, i64),
    /// `key<n`.
    LessThan(String, i64),
}

/// A parsed selector; empty matches everything.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LabelSelector {
    /// All must hold.
    pub requirements: Vec<Requirement>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Ident(String),
    Not,
    Eq,
    DoubleEq,
    NotEq,
    In,
    NotIn,
    Gt,
    Lt,
    Open,
    Close,
    Comma,
}

fn lex(text: &str) -> Vec<Token> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            ' ' | '\t' | '\r' | '\n' => {
                chars.next();
            }
            '!' => {
                chars.next();
                if chars.peek() == Some(&'=') {
                    chars.next();
                    out.push(Token::NotEq);
                } else {
                    out.push(Token::Not);
                }
            }
            '=' => {
                chars.next();
                if chars.peek() == Some(&'=') {
                    chars.next();
                    out.push(Token::DoubleEq);
                } else {
                    out.push(Token::Eq);
                }
            }
            '>' | '<' | '(' | ')' | ',' => {
                chars.next();
                out.push(match c {
                    '>' => Token::Gt,
                    '<' => Token::Lt,
                    '(' => Token::Open,
                    ')' => Token::Close,
                    _ => Token::Comma,
                });
            }
            _ => {
                let mut ident = String::new();
                while let Some(&c) = chars.peek() {
                    if matches!(
                        c,
                        ' ' | '\t' | '\r' | '\n' | '!' | '=' | '>' | '<' | '(' | ')' | ','
                    ) {
                        break;
                    }
                    ident.push(c);
                    chars.next();
                }
                out.push(match ident.as_str() {
                    "in" => Token::In,
                    "notin" => Token::NotIn,
                    _ => Token::Ident(ident),
                });
            }
        }
    }
    out
}

/// `[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?`, at most 63 characters.
fn is_name_part(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// A qualified name: `[prefix/]name`, the prefix a DNS subdomain.
fn check_key(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix {
        let ok = !p.is_empty()
            && p.len() <= 253
            && p.split('.').all(|l| {
                let b = l.as_bytes();
                !b.is_empty()
                    && b.len() <= 63
                    && b[0].is_ascii_alphanumeric()
                    && b[b.len() - 1].is_ascii_alphanumeric()
                    && b.iter()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
            });
        if !ok {
            return Err(format!(
                "invalid label key {key:?}: prefix part must be a lowercase RFC 1123 subdomain"
            ));
        }
    }
    if !is_name_part(name) {
        return Err(format!(
            "invalid label key {key:?}: name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (at most 63)"
        ));
    }
    Ok(())
}

fn check_value(v: &str) -> Result<(), String> {
    if v.is_empty() || is_name_part(v) {
        Ok(())
    } else {
        Err(format!(
            "invalid label value {v:?}: must be 63 characters or less and must be empty or begin and end with an alphanumeric character with '-', '_', '.' or alphanumerics between"
        ))
    }
}

impl LabelSelector {
    /// Parses a selector; the error says what is wrong, for a 400 Status.
    pub fn parse(text: &str) -> Result<Self, String> {
        let tokens = lex(text);
        let mut p = 0;
        let mut requirements = Vec::new();
        if tokens.is_empty() {
            return Ok(Self::default());
        }
        loop {
            requirements.push(parse_requirement(&tokens, &mut p)?);
            match tokens.get(p) {
                None => break,
                Some(Token::Comma) => {
                    p += 1;
                    if tokens.get(p).is_none() {
                        return Err("found '', expected: identifier after ','".into());
                    }
                }
                Some(t) => {
                    return Err(format!(
                        "found {}, expected: ',' or 'end of string'",
                        show(t)
                    ));
                }
            }
        }
        Ok(Self { requirements })
    }

    /// Whether `labels` satisfies every requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements.iter().all(|r| match r {
            Requirement::Exists(k) => labels.contains_key(k),
            Requirement::DoesNotExist(k) => !labels.contains_key(k),
            Requirement::In(k, vs) => labels.get(k).is_some_and(|v| vs.contains(v)),
            Requirement::NotIn(k, vs) => labels.get(k).is_none_or(|v| !vs.contains(v)),
            Requirement::GreaterThan(k, n) => labels
                .get(k)
                .and_then(|v| v.parse::<i64>().ok())
                .is_some_and(|v| v > *n),
            Requirement::LessThan(k, n) => labels
                .get(k)
                .and_then(|v| v.parse::<i64>().ok())
                .is_some_and(|v| v < *n),
        })
    }
}

fn show(t: &Token) -> String {
    match t {
        Token::Ident(s) => format!("'{s}'"),
        Token::Not => "'!'".into(),
        Token::Eq => "'='".into(),
        Token::DoubleEq => "'=='".into(),
        Token::NotEq => "'!='".into(),
        Token::In => "'in'".into(),
        Token::NotIn => "'notin'".into(),
        Token::Gt => "'>'".into(),
        Token::Lt => "'<'".into(),
        Token::Open => "'('".into(),
        Token::Close => "')'".into(),
        Token::Comma => "','".into(),
    }
}

fn parse_requirement(tokens: &[Token], p: &mut usize) -> Result<Requirement, String> {
    let negated = tokens.get(*p) == Some(&Token::Not);
    if negated {
        *p += 1;
    }
    let key = match tokens.get(*p) {
        Some(Token::Ident(k)) => k.clone(),
        Some(t) => return Err(format!("found {}, expected: identifier", show(t))),
        None => return Err("found '', expected: identifier".into()),
    };
    check_key(&key)?;
    *p += 1;
    if negated {
        return Ok(Requirement::DoesNotExist(key));
    }
    let op = match tokens.get(*p) {
        None | Some(Token::Comma) => return Ok(Requirement::Exists(key)),
        Some(t) => t.clone(),
    };
    *p += 1;
    match op {
        Token::Eq | Token::DoubleEq | Token::NotEq => {
            let value = match tokens.get(*p) {
                Some(Token::Ident(v)) => {
                    *p += 1;
                    v.clone()
                }
                None | Some(Token::Comma) => String::new(),
                Some(t) => return Err(format!("found {}, expected: identifier", show(t))),
            };
            check_value(&value)?;
            Ok(if op == Token::NotEq {
                Requirement::NotIn(key, vec![value])
            } else {
                Requirement::In(key, vec![value])
            })
        }
        Token::Gt | Token::Lt => {
            let n = match tokens.get(*p) {
                Some(Token::Ident(v)) => {
                    *p += 1;
                    v.parse::<i64>().map_err(|_| {
                        format!("for 'Gt', 'Lt' operators, the value must be an integer, not {v:?}")
                    })?
                }
                Some(t) => return Err(format!("found {}, expected: identifier", show(t))),
                None => return Err("found '', expected: identifier".into()),
            };
            Ok(if op == Token::Gt {
                Requirement::GreaterThan(key, n)
            } else {
                Requirement::LessThan(key, n)
            })
        }
        Token::In | Token::NotIn => {
            if tokens.get(*p) != Some(&Token::Open) {
                return Err(format!(
                    "found {}, expected: '('",
                    tokens.get(*p).map(show).unwrap_or_else(|| "''".into())
                ));
            }
            *p += 1;
            let mut values = Vec::new();
            let mut expect_value = true;
            loop {
                match tokens.get(*p) {
                    Some(Token::Ident(v)) if expect_value => {
                        check_value(v)?;
                        values.push(v.clone());
                        expect_value = false;
                    }
                    Some(Token::Comma) => {
                        if expect_value {
                            // `(a,,b)`: an empty value, as apimachinery accepts.
                            values.push(String::new());
                        }
                        expect_value = true;
                    }
                    Some(Token::Close) => {
                        if expect_value && !values.is_empty() {
                            values.push(String::new());
                        }
                        *p += 1;
                        break;
                    }
                    Some(t) => return Err(format!("found {}, expected: ',' or ')'", show(t))),
                    None => return Err("found '', expected: ')'".into()),
                }
                *p += 1;
            }
            if values.is_empty() {
                return Err(format!(
                    "for 'in', 'notin' operators, values set can't be empty (key {key:?})"
                ));
            }
            Ok(if op == Token::In {
                Requirement::In(key, values)
            } else {
                Requirement::NotIn(key, values)
            })
        }
        t => Err(format!(
            "found {}, expected: '=', '!=', '==', 'in', 'notin', '>' or '<'",
            show(&t)
        )),
    }
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

    /// Valid selectors from apimachinery's TestSelectorParse / TestLexer, plus spacing.
    #[test]
    fn valid_selectors_parse() {
        for s in [
            "",
            "x=a,y=b,z=c",
            "x = a , y = b",
            "x!=a,y=b",
            "x=",
            "x= ",
            "x=,z= ",
            "x==a",
            "x>1",
            "x<7",
            "x>1,z<5",
            "x in (a)",
            "x in (a,b,c)",
            "x notin (a, b)",
            "x in (,a)",
            "x,y",
            "!x",
            "x, !y",
            "example.com/x in (a)",
            "a.b-c_d=e.f-g_h",
            "x in (a),y notin (b)",
            "  x  ",
        ] {
            LabelSelector::parse(s).unwrap_or_else(|e| panic!("{s:?}: {e}"));
        }
    }

    #[test]
    fn invalid_selectors_fail() {
        for s in [
            "x=a||y=b",
            "x==a==b",
            "!x=a",
            "x<a",
            "x>1.5",
            "x in ()",
            "x in a",
            "x in (a",
            "x notin",
            "=a",
            "x=a,",
            ",x=a",
            "x=a b",
            "-x=a",
            "x=-a",
            "Example.com/x=a",
            "x=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "x(",
            "!",
            "x!a",
        ] {
            assert!(LabelSelector::parse(s).is_err(), "{s:?} parsed");
        }
    }

    #[test]
    fn matching_follows_kubernetes() {
        let l = labels(&[("topic", "orders"), ("group", "billing"), ("shard", "3")]);
        let cases = [
            ("", true),
            ("topic=orders", true),
            ("topic==orders", true),
            ("topic=payments", false),
            ("topic!=payments", true),
            ("missing!=x", true),
            ("topic in (orders,payments)", true),
            ("topic notin (orders)", false),
            ("missing notin (a)", true),
            ("missing in (a)", false),
            ("topic", true),
            ("missing", false),
            ("!missing", true),
            ("!topic", false),
            ("shard>2", true),
            ("shard<3", false),
            ("topic>1", false),
            ("topic=orders,group=billing", true),
            ("topic=orders,group=other", false),
            ("missing=", false),
        ];
        for (s, want) in cases {
            let sel = LabelSelector::parse(s).expect(s);
            assert_eq!(sel.matches(&l), want, "{s:?}");
        }
        let empty_value = labels(&[("x", "")]);
        assert!(
            LabelSelector::parse("x=")
                .expect("x=")
                .matches(&empty_value)
        );
    }
}
