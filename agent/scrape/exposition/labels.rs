//! Lazy, zero-copy access to a sample's label set.
//!
//! [`Labels`] wraps the text between the braces of a sample (or exemplar) exactly as it
//! appeared in the body, already validated by the parser. Iterating re-scans that text and
//! yields `(name, value)` pairs; values are unescaped (allocating) only when they contain a
//! backslash. Nothing is collected per sample, so the scrape hot path never builds a `Vec`.

use std::borrow::Cow;
use std::fmt;

use super::scan::{self, Escapes};

/// The label pairs of one sample or exemplar, borrowed from the exposition body.
///
/// Pairs come out in exposition order. The block has been validated by the parser, so
/// iteration cannot fail; on a block that was not produced by the parser it simply stops at
/// the first thing it does not understand.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Labels<'a> {
    /// Text between `{` and `}` (exclusive); empty for no labels or `{}`.
    inner: &'a str,
}

/// One raw label pair as found in the block.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RawLabel<'a> {
    /// Byte offset of the label name within the block.
    pub(crate) offset: usize,
    pub(crate) name: &'a str,
    /// The value between the quotes, still escaped.
    pub(crate) raw_value: &'a str,
    pub(crate) escaped: bool,
}

impl<'a> Labels<'a> {
    /// Labels from the text between a sample's braces (without the braces). The text must
    /// already be valid label-block syntax; this is what the parser hands out.
    pub(crate) fn from_inner(inner: &'a str) -> Self {
        Labels { inner }
    }

    /// No labels.
    pub fn empty() -> Self {
        Labels { inner: "" }
    }

    /// The raw text between the braces, exactly as in the body (escapes not resolved).
    pub fn as_raw(&self) -> &'a str {
        self.inner
    }

    /// Iterates the `(name, value)` pairs in exposition order.
    pub fn iter(&self) -> LabelsIter<'a> {
        LabelsIter {
            raw: RawIter {
                s: self.inner,
                pos: 0,
            },
        }
    }

    pub(crate) fn raw_iter(&self) -> RawIter<'a> {
        RawIter {
            s: self.inner,
            pos: 0,
        }
    }

    /// Number of label pairs (re-scans the block).
    pub fn len(&self) -> usize {
        self.raw_iter().count()
    }

    /// Whether there are no label pairs.
    pub fn is_empty(&self) -> bool {
        self.raw_iter().next().is_none()
    }

    /// The (unescaped) value of the first label called `name`, if any.
    pub fn get(&self, name: &str) -> Option<Cow<'a, str>> {
        self.raw_iter()
            .find(|l| l.name == name)
            .map(RawLabel::value)
    }
}

impl<'a> RawLabel<'a> {
    /// The unescaped value.
    pub(crate) fn value(self) -> Cow<'a, str> {
        if self.escaped {
            scan::unescape(self.raw_value, Escapes::Quoted)
        } else {
            Cow::Borrowed(self.raw_value)
        }
    }
}

impl fmt::Debug for Labels<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<'a> IntoIterator for Labels<'a> {
    type Item = (&'a str, Cow<'a, str>);
    type IntoIter = LabelsIter<'a>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl<'a> IntoIterator for &Labels<'a> {
    type Item = (&'a str, Cow<'a, str>);
    type IntoIter = LabelsIter<'a>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// Iterator over `(name, value)` pairs of a [`Labels`]; see [`Labels::iter`].
#[derive(Debug, Clone)]
pub struct LabelsIter<'a> {
    raw: RawIter<'a>,
}

impl<'a> Iterator for LabelsIter<'a> {
    type Item = (&'a str, Cow<'a, str>);

    fn next(&mut self) -> Option<Self::Item> {
        self.raw.next().map(|l| (l.name, l.value()))
    }
}

/// Scanner over the raw pairs of a validated block. Separators (blanks, commas) between
/// pairs are skipped, so it reads every spelling the parser accepts in either format.
#[derive(Debug, Clone)]
pub(crate) struct RawIter<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Iterator for RawIter<'a> {
    type Item = RawLabel<'a>;

    fn next(&mut self) -> Option<RawLabel<'a>> {
        let b = self.s.as_bytes();
        let mut i = self.pos;
        while let Some(&c) = b.get(i) {
            if c == b',' || scan::is_blank(c) {
                i += 1;
            } else {
                break;
            }
        }
        let name_start = i;
        let name_end = scan::scan_label_name(b, i);
        if name_end == name_start {
            self.pos = b.len();
            return None;
        }
        i = scan::skip_blanks(b, name_end);
        if b.get(i) != Some(&b'=') {
            self.pos = b.len();
            return None;
        }
        i = scan::skip_blanks(b, i + 1);
        if b.get(i) != Some(&b'"') {
            self.pos = b.len();
            return None;
        }
        let v_start = i + 1;
        let mut j = v_start;
        let mut escaped = false;
        let v_end = loop {
            let rest = b.get(j..).unwrap_or_default();
            match scan::find_either(b'"', b'\\', rest) {
                Some(p) if rest.get(p) == Some(&b'\\') => {
                    escaped = true;
                    j += p + 2;
                }
                Some(p) => break j + p,
                None => {
                    self.pos = b.len();
                    return None;
                }
            }
        };
        self.pos = v_end + 1;
        Some(RawLabel {
            offset: name_start,
            name: self.s.get(name_start..name_end)?,
            raw_value: self.s.get(v_start..v_end)?,
            escaped,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iterates_pairs_and_unescapes_lazily() {
        let l = Labels::from_inner(r#"a="1", b = "x\"y\\z\n" ,c="",d="\q","#);
        let v: Vec<(&str, Cow<'_, str>)> = l.iter().collect();
        assert_eq!(v.len(), 4);
        assert_eq!(v[0], ("a", Cow::Borrowed("1")));
        assert!(matches!(v[0].1, Cow::Borrowed(_)));
        assert_eq!(v[1].0, "b");
        assert_eq!(v[1].1, "x\"y\\z\n");
        assert_eq!(v[2], ("c", Cow::Borrowed("")));
        assert_eq!(v[3].1, "\\q");
        assert_eq!(l.len(), 4);
        assert!(!l.is_empty());
        assert_eq!(l.get("b").as_deref(), Some("x\"y\\z\n"));
        assert_eq!(l.get("zz"), None);
        assert!(Labels::empty().is_empty());
        assert_eq!(Labels::empty().len(), 0);
        assert_eq!(
            format!("{:?}", Labels::from_inner(r#"a="1""#)),
            r#"{"a": "1"}"#
        );
    }

    #[test]
    fn stops_on_garbage_without_panicking() {
        for s in [
            "a",
            "a=",
            "a=\"",
            "a=\"\\",
            "=\"x\"",
            "a=x",
            "a=\"x\"b",
            "\u{e9}=\"x\"",
        ] {
            let l = Labels::from_inner(s);
            let _ = l.iter().count();
            let _ = l.get("a");
        }
        assert_eq!(Labels::from_inner(r#"a="1"b="2""#).len(), 2);
    }
}
