//! A YAML tree that remembers where every value came from.
//!
//! serde alone loses positions, and every validation error must name the YAML
//! line and column, so the pipeline file is first parsed into this tree from
//! saphyr-parser's event stream. Scalars are typed with the YAML 1.2 core
//! schema (quoted scalars are always strings).

use saphyr_parser::{Event, Parser, ScalarStyle, Span};
use std::collections::HashMap;

/// A byte range in the pipeline source; `None` for values that came from
/// `--set` on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Loc {
    /// Byte offset of the first character.
    pub offset: usize,
    /// Length in bytes.
    pub len: usize,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub col: usize,
}

/// One YAML value with its location.
#[derive(Debug, Clone, PartialEq)]
pub struct Y {
    /// The value.
    pub v: YV,
    /// Where it was written; `None` when it came from the command line.
    pub loc: Option<Loc>,
}

/// The shapes a YAML value takes.
#[derive(Debug, Clone, PartialEq)]
pub enum YV {
    /// `null`, `~` or nothing.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A string (quoted, or plain and not another type).
    Str(String),
    /// A sequence.
    Seq(Vec<Y>),
    /// A mapping, in file order; keys are strings.
    Map(Vec<(Y, Y)>),
}

/// A YAML syntax error with its location.
#[derive(Debug, Clone)]
pub struct YamlError {
    /// What the parser said.
    pub message: String,
    /// Where.
    pub loc: Loc,
}

impl Y {
    /// A value with no source location.
    pub fn detached(v: YV) -> Y {
        Y { v, loc: None }
    }

    /// The value under `key` when this is a mapping.
    pub fn get(&self, key: &str) -> Option<&Y> {
        match &self.v {
            YV::Map(entries) => entries.iter().find(|(k, _)| k.as_str() == Some(key)).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The key node for `key` (for pointing at a field name).
    pub fn key_of(&self, key: &str) -> Option<&Y> {
        match &self.v {
            YV::Map(entries) => entries.iter().find(|(k, _)| k.as_str() == Some(key)).map(|(k, _)| k),
            _ => None,
        }
    }

    /// The string, when this is a string scalar.
    pub fn as_str(&self) -> Option<&str> {
        match &self.v {
            YV::Str(s) => Some(s),
            _ => None,
        }
    }

    /// A short name of the value's type for error messages.
    pub fn type_name(&self) -> &'static str {
        match self.v {
            YV::Null => "null",
            YV::Bool(_) => "a boolean",
            YV::Int(_) => "an integer",
            YV::Float(_) => "a float",
            YV::Str(_) => "a string",
            YV::Seq(_) => "a list",
            YV::Map(_) => "a mapping",
        }
    }

    /// Converts to JSON for typed deserialisation (locations are dropped;
    /// callers map serde's error path back to locations with [`Y::at_path`]).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match &self.v {
            YV::Null => J::Null,
            YV::Bool(b) => J::Bool(*b),
            YV::Int(i) => J::from(*i),
            YV::Float(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
            YV::Str(s) => J::String(s.clone()),
            YV::Seq(items) => J::Array(items.iter().map(Y::to_json).collect()),
            YV::Map(entries) => J::Object(entries.iter().map(|(k, v)| (k.scalar_text(), v.to_json())).collect()),
        }
    }

    /// The text of a scalar as it would print (keys, messages).
    pub fn scalar_text(&self) -> String {
        match &self.v {
            YV::Null => "null".into(),
            YV::Bool(b) => b.to_string(),
            YV::Int(i) => i.to_string(),
            YV::Float(f) => f.to_string(),
            YV::Str(s) => s.clone(),
            YV::Seq(_) => "[...]".into(),
            YV::Map(_) => "{...}".into(),
        }
    }

    /// The value at a path of map keys and list indices, if it exists.
    pub fn find_path<'a>(&'a self, path: &[String]) -> Option<&'a Y> {
        let mut cur = self;
        for seg in path {
            cur = match &cur.v {
                YV::Map(_) => cur.get(seg)?,
                YV::Seq(items) => items.get(seg.parse::<usize>().ok()?)?,
                _ => return None,
            };
        }
        Some(cur)
    }

    /// The node at `path`, or the deepest node on the way to it.
    pub fn at_path<'a>(&'a self, path: &[String]) -> &'a Y {
        let mut cur = self;
        for seg in path {
            let next = match &cur.v {
                YV::Map(_) => cur.get(seg),
                YV::Seq(items) => seg.parse::<usize>().ok().and_then(|i| items.get(i)),
                _ => None,
            };
            match next {
                Some(n) => cur = n,
                None => break,
            }
        }
        cur
    }
}

/// Types a plain scalar with the YAML 1.2 core schema.
pub fn type_plain_scalar(s: &str) -> YV {
    match s {
        "" | "~" | "null" | "Null" | "NULL" => return YV::Null,
        "true" | "True" | "TRUE" => return YV::Bool(true),
        "false" | "False" | "FALSE" => return YV::Bool(false),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => return YV::Float(f64::INFINITY),
        "-.inf" | "-.Inf" | "-.INF" => return YV::Float(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return YV::Float(f64::NAN),
        _ => {}
    }
    let digits = s.strip_prefix(['-', '+']).unwrap_or(s);
    if !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && let Ok(i) = s.parse::<i64>()
    {
        return YV::Int(i);
    }
    if let Some(hex) = s.strip_prefix("0x")
        && let Ok(i) = i64::from_str_radix(hex, 16)
    {
        return YV::Int(i);
    }
    if let Some(oct) = s.strip_prefix("0o")
        && let Ok(i) = i64::from_str_radix(oct, 8)
    {
        return YV::Int(i);
    }
    let looks_float = s
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'-' | b'+'))
        && s.bytes().any(|b| b.is_ascii_digit());
    if looks_float && let Ok(f) = s.parse::<f64>() {
        return YV::Float(f);
    }
    YV::Str(s.to_string())
}

/// Maps saphyr's character indices to byte offsets.
struct CharIndex {
    byte_of_char: Vec<usize>,
}

impl CharIndex {
    fn new(src: &str) -> Self {
        let mut byte_of_char: Vec<usize> = src.char_indices().map(|(b, _)| b).collect();
        byte_of_char.push(src.len());
        CharIndex { byte_of_char }
    }

    fn loc(&self, span: &Span) -> Loc {
        let last = self.byte_of_char.len() - 1;
        let start = self.byte_of_char[span.start.index().min(last)];
        let end = self.byte_of_char[span.end.index().min(last)].max(start);
        Loc {
            offset: start,
            len: end - start,
            line: span.start.line(),
            col: span.start.col() + 1,
        }
    }
}

/// Parses one YAML document into a located tree.
pub fn parse(src: &str) -> Result<Y, YamlError> {
    let index = CharIndex::new(src);
    let mut parser = Parser::new_from_str(src);
    let mut anchors: HashMap<usize, Y> = HashMap::new();
    // Stack of open containers: (value being built, pending key for maps, anchor id).
    let mut stack: Vec<(Y, Option<Y>, usize)> = Vec::new();
    let mut root: Option<Y> = None;
    let err = |message: String, loc: Loc| YamlError { message, loc };

    for item in parser.by_ref() {
        let (event, span) = item.map_err(|e| {
            let m = e.marker();
            let offset = index.byte_of_char[m.index().min(index.byte_of_char.len() - 1)];
            err(
                e.info().to_string(),
                Loc {
                    offset,
                    len: 1,
                    line: m.line(),
                    col: m.col() + 1,
                },
            )
        })?;
        let loc = index.loc(&span);
        let finished: Option<(Y, usize)> = match event {
            Event::Scalar(value, style, anchor, _tag) => {
                let v = if style == ScalarStyle::Plain {
                    type_plain_scalar(&value)
                } else {
                    YV::Str(value.into_owned())
                };
                Some((Y { v, loc: Some(loc) }, anchor))
            }
            Event::SequenceStart(anchor, _) => {
                stack.push((
                    Y {
                        v: YV::Seq(Vec::new()),
                        loc: Some(loc),
                    },
                    None,
                    anchor,
                ));
                None
            }
            Event::MappingStart(anchor, _) => {
                stack.push((
                    Y {
                        v: YV::Map(Vec::new()),
                        loc: Some(loc),
                    },
                    None,
                    anchor,
                ));
                None
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let (node, pending, anchor) = stack.pop().ok_or_else(|| err("unbalanced YAML".into(), loc))?;
                if pending.is_some() {
                    return Err(err("mapping key without a value".into(), loc));
                }
                Some((node, anchor))
            }
            Event::Alias(id) => {
                let target = anchors
                    .get(&id)
                    .cloned()
                    .ok_or_else(|| err("alias to an unknown anchor".into(), loc))?;
                Some((
                    Y {
                        v: target.v,
                        loc: Some(loc),
                    },
                    0,
                ))
            }
            Event::DocumentStart(_) if root.is_some() => {
                return Err(err("a pipeline file holds one YAML document; found a second `---`".into(), loc));
            }
            _ => None,
        };
        let Some((node, anchor)) = finished else { continue };
        if anchor != 0 {
            anchors.insert(anchor, node.clone());
        }
        match stack.last_mut() {
            None => root = Some(node),
            Some((parent, pending, _)) => match &mut parent.v {
                YV::Seq(items) => items.push(node),
                YV::Map(entries) => match pending.take() {
                    None => {
                        if !matches!(node.v, YV::Str(_) | YV::Int(_) | YV::Bool(_)) {
                            return Err(err("mapping keys must be plain strings".into(), loc));
                        }
                        let key = Y {
                            v: YV::Str(node.scalar_text()),
                            loc: node.loc,
                        };
                        if entries.iter().any(|(k, _)| k.v == key.v) {
                            return Err(err(format!("duplicate key `{}`", key.scalar_text()), loc));
                        }
                        *pending = Some(key);
                    }
                    Some(key) => entries.push((key, node)),
                },
                _ => unreachable!("only containers are pushed on the stack"),
            },
        }
    }
    Ok(root.unwrap_or(Y { v: YV::Null, loc: None }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalars_are_typed_by_the_core_schema() {
        let y = parse("a: 1\nb: '1'\nc: 1.5\nd: true\ne: ~\nf: hello\ng: -3\n").unwrap();
        assert_eq!(y.get("a").unwrap().v, YV::Int(1));
        assert_eq!(y.get("b").unwrap().v, YV::Str("1".into()));
        assert_eq!(y.get("c").unwrap().v, YV::Float(1.5));
        assert_eq!(y.get("d").unwrap().v, YV::Bool(true));
        assert_eq!(y.get("e").unwrap().v, YV::Null);
        assert_eq!(y.get("f").unwrap().v, YV::Str("hello".into()));
        assert_eq!(y.get("g").unwrap().v, YV::Int(-3));
    }

    #[test]
    fn locations_are_lines_and_columns() {
        let y = parse("name: x\nnodes:\n  read:\n    op: read\n").unwrap();
        let op = y.get("nodes").unwrap().get("read").unwrap().get("op").unwrap();
        let loc = op.loc.unwrap();
        assert_eq!((loc.line, loc.col), (4, 9));
        let key = y.get("nodes").unwrap().key_of("read").unwrap().loc.unwrap();
        assert_eq!((key.line, key.col), (3, 3));
    }

    #[test]
    fn duplicate_keys_and_syntax_errors_are_located() {
        let e = parse("a: 1\na: 2\n").unwrap_err();
        assert!(e.message.contains("duplicate"), "{}", e.message);
        assert_eq!(e.loc.line, 2);
        let e = parse("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(e.loc.line >= 1);
    }

    #[test]
    fn anchors_and_aliases_copy_values() {
        let y = parse("a: &x {k: 1}\nb: *x\n").unwrap();
        assert_eq!(y.get("b").unwrap().get("k").unwrap().v, YV::Int(1));
    }
}
