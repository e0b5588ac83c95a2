//! Maps YAML paths (`agent.listen`, `scrape.targets[2].urls[0]`) to line and column in the source
//! text, so that every config problem can point at the place to edit. serde_yaml's `Value` keeps
//! no positions, so the index is built once per load from yaml-rust2's marked parser events.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// Line and column (both 1-based) of every mapping key and sequence item in a YAML document.
#[derive(Debug, Default, Clone)]
pub struct LocationIndex {
    positions: HashMap<String, (usize, usize)>,
}

impl LocationIndex {
    /// Indexes `text`. A document yaml-rust2 cannot parse yields an empty index (serde_yaml reports
    /// the syntax error itself).
    pub fn build(text: &str) -> Self {
        let mut indexer = Indexer::default();
        let mut parser = Parser::new_from_str(text);
        if parser.load(&mut indexer, false).is_err() {
            return Self::default();
        }
        Self {
            positions: indexer.positions,
        }
    }

    /// The position of `path`, or of its nearest ancestor that has one.
    pub fn find(&self, path: &str) -> Option<(usize, usize)> {
        let mut candidate = path;
        loop {
            if let Some(pos) = self.positions.get(candidate) {
                return Some(*pos);
            }
            candidate = parent(candidate)?;
        }
    }
}

/// `a.b[2].c` -> `a.b[2]` -> `a.b` -> `a` -> None.
fn parent(path: &str) -> Option<&str> {
    if path.is_empty() {
        return None;
    }
    let cut = path.rfind(['.', '['])?;
    Some(&path[..cut])
}

/// Joins a mapping key onto a path.
pub fn join_key(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

enum Frame {
    Map { path: String, key: Option<String> },
    Seq { path: String, index: usize },
}

#[derive(Default)]
struct Indexer {
    stack: Vec<Frame>,
    positions: HashMap<String, (usize, usize)>,
}

impl Indexer {
    /// The path of the node that starts now, or None when it is a mapping key.
    fn child_path(&self) -> Option<String> {
        match self.stack.last() {
            None => Some(String::new()),
            Some(Frame::Map { key: None, .. }) => None,
            Some(Frame::Map { path, key: Some(k) }) => Some(join_key(path, k)),
            Some(Frame::Seq { path, index }) => Some(format!("{path}[{index}]")),
        }
    }

    fn record(&mut self, path: &str, mark: Marker) {
        if !path.is_empty() {
            self.positions
                .entry(path.to_string())
                .or_insert((mark.line(), mark.col() + 1));
        }
    }

    /// A value (scalar or a closed container) has been completed inside the top frame.
    fn value_done(&mut self) {
        match self.stack.last_mut() {
            Some(Frame::Map { key, .. }) => *key = None,
            Some(Frame::Seq { index, .. }) => *index += 1,
            None => {}
        }
    }

    fn open(&mut self, mark: Marker, seq: bool) {
        // A container used as a mapping key has no path of its own; give it a placeholder so the
        // nesting stays balanced.
        let path = self.child_path().unwrap_or_else(|| "?".to_string());
        self.record(&path, mark);
        self.stack.push(if seq {
            Frame::Seq { path, index: 0 }
        } else {
            Frame::Map { path, key: None }
        });
    }
}

impl MarkedEventReceiver for Indexer {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        match ev {
            Event::MappingStart(..) => self.open(mark, false),
            Event::SequenceStart(..) => self.open(mark, true),
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
                self.value_done();
            }
            Event::Scalar(value, ..) => match self.child_path() {
                None => {
                    if let Some(Frame::Map { path, .. }) = self.stack.last() {
                        let full = join_key(path, &value);
                        self.record(&full, mark);
                    }
                    if let Some(Frame::Map { key, .. }) = self.stack.last_mut() {
                        *key = Some(value);
                    }
                }
                Some(path) => {
                    self.record(&path, mark);
                    self.value_done();
                }
            },
            Event::Alias(..) => {
                if let Some(path) = self.child_path() {
                    self.record(&path, mark);
                }
                self.value_done();
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_keys_items_and_ancestors() {
        let text =
            "agent:\n  listen: x\n  labels:\n    a: b\nlist:\n  - one\n  - name: two\n    v: 3\n";
        let idx = LocationIndex::build(text);
        assert_eq!(idx.find("agent"), Some((1, 1)));
        assert_eq!(idx.find("agent.listen"), Some((2, 3)));
        assert_eq!(idx.find("agent.labels.a"), Some((4, 5)));
        assert_eq!(idx.find("list[0]"), Some((6, 5)));
        assert_eq!(idx.find("list[1].name"), Some((7, 5)));
        assert_eq!(idx.find("list[1].v"), Some((8, 5)));
        // Unknown leaf: falls back to the nearest ancestor.
        assert_eq!(idx.find("agent.nope"), Some((1, 1)));
        assert_eq!(idx.find("missing"), None);
    }

    #[test]
    fn flow_style_and_broken_yaml() {
        let idx = LocationIndex::build("a: {b: 1, c: [x, y]}\n");
        assert_eq!(idx.find("a.c[1]"), Some((1, 18)));
        assert!(LocationIndex::build("a: [\n").find("a").is_none());
    }
}
