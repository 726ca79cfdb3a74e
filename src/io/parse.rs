//! Turns record bytes into document rows: JSON objects with a field mapping,
//! or plain text. A record that cannot be turned into a document becomes a
//! [`Reject`] with its location and reason.

use super::chunker::{Chunk, Rec};
use super::docs::{DocBuilder, Reject};
use serde::de::{Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::fmt;

/// How a record maps onto document columns.
#[derive(Debug, Clone)]
pub struct FieldMap {
    /// Path to the text (`["text"]`, `["chosen", "value"]`).
    pub text: Vec<String>,
    /// Path to an id, if the records have one.
    pub id: Option<Vec<String>>,
    /// Path to a URL (missing is fine).
    pub url: Vec<String>,
    /// Keep other top-level fields as JSON in `metadata`.
    pub keep_metadata: bool,
}

impl FieldMap {
    /// Splits dotted field names into paths.
    pub fn new(text: &str, id: Option<&str>, url: &str, keep_metadata: bool) -> Self {
        let split = |s: &str| s.split('.').map(str::to_string).collect::<Vec<_>>();
        FieldMap {
            text: split(text),
            id: id.map(split),
            url: split(url),
            keep_metadata,
        }
    }

    fn uses_top(&self, key: &str) -> bool {
        let single = |p: &Vec<String>| p.len() == 1 && p[0] == key;
        single(&self.text) || self.id.as_ref().is_some_and(single) || single(&self.url)
    }
}

/// What a parsed chunk yields.
#[derive(Debug, Default)]
pub struct Parsed {
    /// The documents, if any.
    pub docs: Option<arrow::record_batch::RecordBatch>,
    /// Records that could not be read, in input order.
    pub rejects: Vec<Reject>,
    /// Input bytes covered (progress).
    pub bytes: u64,
    /// Per-row digests of `docs` for the content hash, computed here so
    /// that hashing runs in the parallel parse, not on the writer thread.
    pub row_digests: Option<Vec<[u8; 32]>>,
}

/// Where the chunk came from.
#[derive(Debug, Clone)]
pub struct Origin<'a> {
    /// Relative file name (ids, rejects).
    pub rel: &'a str,
    /// The `source` column value.
    pub source: &'a str,
    /// Records are JSON values (ids `<file>#<index>`) rather than lines.
    pub json_values: bool,
    /// `source` was set by the user; otherwise a record's own string
    /// `source` field wins over the file name.
    pub source_fixed: bool,
}

/// A borrowed-when-possible string.
struct Str<'a>(Cow<'a, str>);

impl<'de> serde::Deserialize<'de> for Str<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Str<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Str(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Str(Cow::Owned(v.to_string())))
            }
            fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                Ok(Str(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

/// A JSON object's entries, values left unparsed.
pub(crate) struct Entries<'a>(pub(crate) Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'de> serde::Deserialize<'de> for Entries<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Entries<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::with_capacity(m.size_hint().unwrap_or(8));
                while let Some((k, v)) = m.next_entry::<Str<'de>, &'de RawValue>()? {
                    out.push((k.0, v));
                }
                Ok(Entries(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// A JSON array's items, left unparsed.
pub(crate) struct Items<'a>(pub(crate) Vec<&'a RawValue>);

impl<'de> serde::Deserialize<'de> for Items<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Items<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON array")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some(v) = s.next_element::<&'de RawValue>()? {
                    out.push(v);
                }
                Ok(Items(out))
            }
        }
        d.deserialize_seq(V)
    }
}

/// The JSON type of a value, as an error message names it (`a string`).
pub(crate) fn json_type(raw: &RawValue) -> &'static str {
    match raw.get().as_bytes().first() {
        Some(b'"') => "a string",
        Some(b'{') => "an object",
        Some(b'[') => "a list",
        Some(b't' | b'f') => "a boolean",
        Some(b'n') => "null",
        _ => "a number",
    }
}

/// Follows `path` from the top-level entries; `Ok(None)` when a key is absent.
pub(crate) fn lookup<'a>(entries: &[(Cow<'a, str>, &'a RawValue)], path: &[String]) -> Result<Option<&'a RawValue>, String> {
    let Some(first) = entries.iter().find(|(k, _)| k == &path[0]).map(|(_, v)| *v) else {
        return Ok(None);
    };
    let mut cur = first;
    for (depth, seg) in path.iter().enumerate().skip(1) {
        let here = path[..depth].join(".");
        let next = match cur.get().as_bytes().first() {
            Some(b'{') => {
                let e: Entries = serde_json::from_str(cur.get()).map_err(|e| format!("field `{here}`: {e}"))?;
                e.0.into_iter().find(|(k, _)| k == seg).map(|(_, v)| v)
            }
            Some(b'[') => {
                let i: usize = seg
                    .parse()
                    .map_err(|_| format!("field `{here}` is a list; `{seg}` is not an index"))?;
                let items: Items = serde_json::from_str(cur.get()).map_err(|e| format!("field `{here}`: {e}"))?;
                items.0.get(i).copied()
            }
            _ => return Err(format!("field `{here}` is {}, not an object or list", json_type(cur))),
        };
        match next {
            Some(n) => cur = n,
            None => return Ok(None),
        }
    }
    Ok(Some(cur))
}

/// A JSON string's value; `what` names the field in the error.
pub(crate) fn as_string<'a>(raw: &'a RawValue, what: &str) -> Result<Cow<'a, str>, String> {
    if raw.get().starts_with('"') {
        serde_json::from_str::<Str>(raw.get())
            .map(|s| s.0)
            .map_err(|e| format!("field `{what}`: {e}"))
    } else {
        Err(format!("field `{what}` is {}, not a string", json_type(raw)))
    }
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A reject for record `rec` of a chunk: the raw record and where it was.
pub(crate) fn reject(origin: &Origin, rec: &Rec, raw: &[u8], reason: String) -> Reject {
    Reject {
        id: format!("{}:{}", origin.rel, rec.line),
        text: lossy(raw),
        url: None,
        source: origin.source.to_string(),
        file: origin.rel.to_string(),
        line: Some(rec.line),
        byte_offset: Some(rec.offset),
        step: "read".into(),
        reason,
    }
}

/// A record's top-level entries; anything but a JSON object is an error.
pub(crate) fn record_entries(raw: &[u8]) -> Result<Entries<'_>, String> {
    match raw.first() {
        Some(b'{') => serde_json::from_slice(raw).map_err(|e| format!("invalid JSON: {e}")),
        _ => Err(match serde_json::from_slice::<&RawValue>(raw) {
            Ok(v) => format!("record is {}, not a JSON object", json_type(v)),
            Err(e) => format!("invalid JSON: {e}"),
        }),
    }
}

/// Writes the record's id into `out`: its `id` field when it is a string
/// or a number, else `<file>:<line>` (`<file>#<index>` for JSON values).
pub(crate) fn record_id(entries: &Entries, id: Option<&[String]>, origin: &Origin, rec: &Rec, out: &mut String) -> Result<(), String> {
    out.clear();
    match id.map(|p| lookup(&entries.0, p)).transpose()?.flatten() {
        Some(v) if v.get().starts_with('"') => out.push_str(&as_string(v, "id")?),
        Some(v) if json_type(v) == "a number" => out.push_str(v.get()),
        // JSON values may share a line: number them instead.
        _ if origin.json_values => {
            out.push_str(origin.rel);
            out.push('#');
            out.push_str(&rec.ordinal.to_string());
        }
        _ => {
            out.push_str(origin.rel);
            out.push(':');
            out.push_str(&rec.line.to_string());
        }
    }
    Ok(())
}

/// The record's own string `source` field, unless the user fixed `source`.
pub(crate) fn own_source<'a>(entries: &Entries<'a>, origin: &Origin) -> Result<Option<Cow<'a, str>>, String> {
    match entries.0.iter().find(|(k, _)| k == "source") {
        Some((_, v)) if !origin.source_fixed && v.get().starts_with('"') => Some(as_string(v, "source")).transpose(),
        _ => Ok(None),
    }
}

/// Appends the top-level entries that `skip` does not claim to `out` as one
/// JSON object (nothing when there are none).
pub(crate) fn metadata_json(entries: &Entries, skip: impl Fn(&str) -> bool, out: &mut String) {
    let start = out.len();
    for (k, v) in &entries.0 {
        if skip(k) {
            continue;
        }
        out.push(if out.len() == start { '{' } else { ',' });
        // ok: serialising a str to a String cannot fail.
        out.push_str(&serde_json::to_string(k.as_ref()).unwrap_or_default());
        out.push(':');
        out.push_str(v.get());
    }
    if out.len() > start {
        out.push('}');
    }
}

/// Parses a chunk of JSON records.
pub fn parse_json(chunk: &Chunk, origin: &Origin, map: &FieldMap) -> Parsed {
    let mut b = DocBuilder::with_capacity(chunk.recs.len(), chunk.data.len());
    let mut rejects = Vec::new();
    let mut meta = String::new();
    let mut id_buf = String::new();
    let text_name = map.text.join(".");
    for rec in &chunk.recs {
        let raw = &chunk.data[rec.start..rec.end];
        let result = (|| -> Result<(), String> {
            let entries = record_entries(raw)?;
            let text_raw = lookup(&entries.0, &map.text)?.ok_or_else(|| format!("missing text field `{text_name}`"))?;
            let text = as_string(text_raw, &text_name)?;
            record_id(&entries, map.id.as_deref(), origin, rec, &mut id_buf)?;
            let url = match lookup(&entries.0, &map.url)? {
                Some(v) if v.get().starts_with('"') => Some(as_string(v, "url")?),
                _ => None,
            };
            let own_source = own_source(&entries, origin)?;
            meta.clear();
            if map.keep_metadata {
                metadata_json(&entries, |k| map.uses_top(k) || (k == "source" && own_source.is_some()), &mut meta);
            }
            b.push(
                &id_buf,
                &text,
                url.as_deref(),
                own_source.as_deref().unwrap_or(origin.source),
                (!meta.is_empty()).then_some(meta.as_str()),
            );
            Ok(())
        })();
        if let Err(reason) = result {
            rejects.push(reject(origin, rec, raw, reason));
        }
    }
    finish(b, rejects, chunk, origin)
}

/// Parses a chunk of plain-text records.
pub fn parse_text(chunk: &Chunk, origin: &Origin) -> Parsed {
    let mut b = DocBuilder::with_capacity(chunk.recs.len(), chunk.data.len());
    let mut rejects = Vec::new();
    for rec in &chunk.recs {
        let raw = &chunk.data[rec.start..rec.end];
        match std::str::from_utf8(raw) {
            Ok(text) => b.push(&format!("{}:{}", origin.rel, rec.line), text, None, origin.source, None),
            Err(e) => rejects.push(reject(
                origin,
                rec,
                raw,
                format!("invalid UTF-8 at byte {} of the record", e.valid_up_to()),
            )),
        }
    }
    finish(b, rejects, chunk, origin)
}

fn finish(b: DocBuilder, rejects: Vec<Reject>, chunk: &Chunk, origin: &Origin) -> Parsed {
    finish_batch((!b.is_empty()).then(|| b.finish()), rejects, chunk, origin)
}

/// The chunk's result: its rows (hashed here, in the parallel parse), its
/// rejects, then the records the chunker could not cut out.
pub(crate) fn finish_batch(
    docs: Option<arrow::record_batch::RecordBatch>,
    mut rejects: Vec<Reject>,
    chunk: &Chunk,
    origin: &Origin,
) -> Parsed {
    for br in &chunk.broken {
        rejects.push(Reject {
            id: format!("{}:{}", origin.rel, br.line),
            text: lossy(&br.raw),
            url: None,
            source: origin.source.to_string(),
            file: origin.rel.to_string(),
            line: Some(br.line),
            byte_offset: Some(br.offset),
            step: "read".into(),
            reason: br.reason.clone(),
        });
    }
    let row_digests = docs.as_ref().map(super::hash::row_digests);
    Parsed {
        docs,
        rejects,
        bytes: chunk.bytes,
        row_digests,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::chunker::{Chunker, Shape};
    use arrow::array::{Array, AsArray};

    fn parse(data: &str, map: &FieldMap) -> Parsed {
        let mut c = Chunker::new(data.as_bytes(), Shape::Lines, 1 << 20, 1 << 20);
        let chunk = c.next_chunk().unwrap();
        parse_json(
            &chunk,
            &Origin {
                rel: "f.jsonl",
                source: "src",
                json_values: false,
                source_fixed: false,
            },
            map,
        )
    }

    #[test]
    fn fields_map_and_metadata_keeps_the_rest() {
        let map = FieldMap::new("text", Some("id"), "url", true);
        let p = parse(
            "{\"id\": 7, \"text\": \"caf\\u00e9\", \"url\": \"http://x\", \"lang\": \"fr\", \"n\": [1,2]}\n",
            &map,
        );
        let b = p.docs.unwrap();
        assert_eq!(b.column(0).as_string::<i32>().value(0), "7");
        assert_eq!(b.column(1).as_string::<i32>().value(0), "café");
        assert_eq!(b.column(2).as_string::<i32>().value(0), "http://x");
        assert_eq!(b.column(4).as_string::<i32>().value(0), "{\"lang\":\"fr\",\"n\":[1,2]}");
    }

    #[test]
    fn bad_records_are_rejected_with_line_and_reason() {
        let map = FieldMap::new("text", None, "url", true);
        let data = "{\"text\": \"ok\"}\n{bad json\n{\"body\": \"x\"}\n{\"text\": 3}\n[1]\n{\"text\": \"fine\"}\n";
        let p = parse(data, &map);
        let b = p.docs.unwrap();
        assert_eq!(b.num_rows(), 2);
        assert_eq!(b.column(0).as_string::<i32>().value(1), "f.jsonl:6");
        assert!(b.column(4).is_null(0));
        let reasons: Vec<_> = p.rejects.iter().map(|r| (r.line.unwrap(), r.reason.clone())).collect();
        assert_eq!(reasons.len(), 4);
        assert!(reasons[0].1.starts_with("invalid JSON"), "{reasons:?}");
        assert_eq!(reasons[1], (3, "missing text field `text`".to_string()));
        assert_eq!(reasons[2], (4, "field `text` is a number, not a string".to_string()));
        assert_eq!(reasons[3], (5, "record is a list, not a JSON object".to_string()));
    }

    #[test]
    fn dotted_paths_reach_into_objects_and_lists() {
        let map = FieldMap::new("messages.1.content", None, "url", false);
        let p = parse("{\"messages\": [{\"content\": \"a\"}, {\"content\": \"b\"}]}\n", &map);
        assert_eq!(p.docs.unwrap().column(1).as_string::<i32>().value(0), "b");
    }

    #[test]
    fn invalid_utf8_inside_json_is_rejected() {
        let map = FieldMap::new("text", None, "url", true);
        let mut data = b"{\"text\": \"ok\"}\n{\"text\": \"".to_vec();
        data.extend_from_slice(&[0xff, 0xfe]);
        data.extend_from_slice(b"\"}\n");
        let mut c = Chunker::new(&data[..], Shape::Lines, 1 << 20, 1 << 20);
        let p = parse_json(
            &c.next_chunk().unwrap(),
            &Origin {
                rel: "f",
                source: "s",
                json_values: false,
                source_fixed: false,
            },
            &map,
        );
        assert_eq!(p.docs.unwrap().num_rows(), 1);
        assert_eq!(p.rejects.len(), 1);
        assert_eq!(p.rejects[0].line, Some(2));
    }
}
