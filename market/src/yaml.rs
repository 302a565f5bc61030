//! A YAML document as a tree whose every node knows its line and column, so that manifest
//! errors can point at the line a user has to fix.

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// Nesting deeper than this is refused: no manifest needs it and it bounds recursion.
const MAX_DEPTH: usize = 64;
/// Nodes in one document, at most (bounds the work a hostile file can cause).
const MAX_NODES: usize = 100_000;

#[derive(Clone, Debug, PartialEq)]
pub enum Node {
    /// A scalar and whether it was written plain (unquoted): `1` and `"1"` differ.
    Scalar {
        text: String,
        plain: bool,
    },
    Seq(Vec<Spanned>),
    Map(Vec<(Spanned, Spanned)>),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Spanned {
    pub node: Node,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
}

impl Spanned {
    pub fn as_str(&self) -> Option<&str> {
        match &self.node {
            Node::Scalar { text, .. } => Some(text),
            _ => None,
        }
    }
    pub fn is_null(&self) -> bool {
        matches!(&self.node, Node::Scalar { text, plain: true } if text.is_empty() || text == "~" || text == "null")
    }
    pub fn kind(&self) -> &'static str {
        match &self.node {
            Node::Scalar { .. } => "a scalar",
            Node::Seq(_) => "a list",
            Node::Map(_) => "a mapping",
        }
    }
}

/// Why a text is not a YAML document we accept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YamlError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

enum Frame {
    Seq(Vec<Spanned>, Marker),
    Map(Vec<(Spanned, Spanned)>, Option<Spanned>, Marker),
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    root: Option<Spanned>,
    documents: usize,
    nodes: usize,
    error: Option<YamlError>,
}

fn span(mark: Marker, node: Node) -> Spanned {
    Spanned {
        node,
        // yaml-rust2 counts lines from 1 and columns from 0.
        line: mark.line(),
        column: mark.col().saturating_add(1),
    }
}

impl Builder {
    fn fail(&mut self, mark: Marker, message: &str) {
        if self.error.is_none() {
            self.error = Some(YamlError {
                line: mark.line(),
                column: mark.col().saturating_add(1),
                message: message.to_string(),
            });
        }
    }

    fn push_value(&mut self, value: Spanned) {
        match self.stack.last_mut() {
            None => self.root = Some(value),
            Some(Frame::Seq(items, _)) => items.push(value),
            Some(Frame::Map(entries, key, _)) => match key.take() {
                None => *key = Some(value),
                Some(k) => entries.push((k, value)),
            },
        }
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, event: Event, mark: Marker) {
        if self.error.is_some() {
            return;
        }
        self.nodes = self.nodes.saturating_add(1);
        if self.nodes > MAX_NODES {
            self.fail(mark, "document too large");
            return;
        }
        match event {
            Event::DocumentStart => {
                self.documents = self.documents.saturating_add(1);
                if self.documents > 1 {
                    self.fail(mark, "only one YAML document is allowed");
                }
            }
            Event::Alias(_) => self.fail(mark, "not supported: YAML aliases (*name)"),
            Event::Scalar(text, style, anchor, _) => {
                if anchor != 0 {
                    self.fail(mark, "not supported: YAML anchors (&name)");
                    return;
                }
                let plain = style == TScalarStyle::Plain;
                self.push_value(span(mark, Node::Scalar { text, plain }));
            }
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                if anchor != 0 {
                    self.fail(mark, "not supported: YAML anchors (&name)");
                    return;
                }
                if self.stack.len() >= MAX_DEPTH {
                    self.fail(mark, "nested too deeply");
                    return;
                }
                if matches!(event, Event::SequenceStart(..)) {
                    self.stack.push(Frame::Seq(Vec::new(), mark));
                } else {
                    self.stack.push(Frame::Map(Vec::new(), None, mark));
                }
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let value = match self.stack.pop() {
                    Some(Frame::Seq(items, m)) => span(m, Node::Seq(items)),
                    Some(Frame::Map(entries, _, m)) => {
                        for (i, (k, _)) in entries.iter().enumerate() {
                            if entries[..i].iter().any(|(other, _)| other.node == k.node) {
                                let name = k.as_str().unwrap_or("?").to_string();
                                self.error = Some(YamlError {
                                    line: k.line,
                                    column: k.column,
                                    message: format!("duplicate key {name:?}"),
                                });
                                return;
                            }
                        }
                        span(m, Node::Map(entries))
                    }
                    None => return,
                };
                self.push_value(value);
            }
            _ => {}
        }
    }
}

/// Parses one YAML document into a positioned tree.
pub fn parse(text: &str) -> Result<Spanned, YamlError> {
    let mut builder = Builder::default();
    let mut parser = Parser::new_from_str(text);
    parser.load(&mut builder, true).map_err(|e| YamlError {
        line: e.marker().line(),
        column: e.marker().col().saturating_add(1),
        message: e.info().to_string(),
    })?;
    if let Some(e) = builder.error {
        return Err(e);
    }
    builder.root.ok_or(YamlError {
        line: 1,
        column: 1,
        message: "the document is empty".to_string(),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn positions_are_one_based() {
        let doc = parse("a: 1\nb:\n  - x\n").unwrap();
        let Node::Map(entries) = &doc.node else {
            panic!("map")
        };
        assert_eq!(entries[1].0.line, 2);
        let Node::Seq(items) = &entries[1].1.node else {
            panic!("seq")
        };
        assert_eq!((items[0].line, items[0].column), (3, 5));
    }

    #[test]
    fn refuses_duplicates_aliases_and_junk() {
        assert!(
            parse("a: 1\na: 2\n")
                .unwrap_err()
                .message
                .contains("duplicate")
        );
        assert!(
            parse("a: &x 1\nb: *x\n")
                .unwrap_err()
                .message
                .contains("anchors")
        );
        let e = parse("a: [1, 2\n").unwrap_err();
        assert!(e.line >= 1, "{e:?}");
        assert!(parse("").is_err());
    }
}
