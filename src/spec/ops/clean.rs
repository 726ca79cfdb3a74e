//! Parameters of `clean`: an ordered list of row-wise steps, each with its
//! own parameters (the step structs live in [`crate::clean`], beside the
//! rules they configure).
//!
//! In YAML a step is written `- <name>: {params}`, `- <name>` for the
//! defaults, or, for `expr`, `- expr: "<sql>"`.

use super::RangeProblem;
use crate::clean::extract::ExtractParams;
use crate::clean::filters::{
    C4BadWordsParams, C4QualityParams, FineWebQualityParams, GopherQualityParams, GopherRepetitionParams, LengthParams, UrlFilterParams,
};
use crate::clean::langid::LangIdParams;
use crate::clean::normalize::NormalizeParams;
use crate::clean::pii::PiiParams;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

fn default_shard_bytes() -> u64 {
    256 << 20
}

/// Cleans `documents`: the steps run in order over each document, fused
/// into one streaming pass per input file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CleanParams {
    /// The `documents` node to clean. Give this or `read`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<String>,
    /// Read files instead of a node: the fields of the `read` op (`path`,
    /// `format`, ...), documents formats only. The reader's batches go
    /// straight into the steps, and no artifact of the raw input (for crawl,
    /// all its HTML) is written and read back; the reader's rejects and
    /// skipped records join this node's `rejected/` and funnel. Give this or
    /// `input`; a `read` node instead keeps the raw documents, for other nodes to use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read: Option<super::ReadParams>,
    /// The steps, in order; a document dropped by one step never reaches the next. See the steps below.
    pub steps: Vec<Step>,
    /// Target size of each output Parquet file, in bytes.
    #[serde(default = "default_shard_bytes")]
    pub shard_bytes: u64,
}

impl CleanParams {
    /// Range checks, the steps' own included (fields named `steps[i].<step>.<field>`).
    pub fn check(&self) -> Vec<RangeProblem> {
        let mut p = Vec::new();
        match (&self.input, &self.read) {
            (None, None) => p.push((
                "input".into(),
                "is missing: name a `documents` node, or give `read: {path: ...}`".into(),
            )),
            (Some(_), Some(_)) => p.push(("read".into(), "cannot be given with `input`; clean either a node or files".into())),
            _ => {}
        }
        if let Some(r) = &self.read {
            if r.output_kind() != super::Kind::Documents {
                let f = r.format.map(|f| f.name()).unwrap_or_default();
                p.push((
                    "read.format".into(),
                    format!("`{f}` makes {}, not documents; read it in a `read` node", r.output_kind().name()),
                ));
            }
            for (field, msg) in r.check() {
                p.push((format!("read.{field}"), msg));
            }
        }
        if self.steps.is_empty() {
            p.push(("steps".into(), "is empty; list at least one step".into()));
        }
        if self.shard_bytes < 1 << 16 {
            p.push(("shard_bytes".into(), format!("{} is below the minimum 65536", self.shard_bytes)));
        }
        for (i, s) in self.steps.iter().enumerate() {
            for (field, msg) in s.check() {
                let at = if field.is_empty() { String::new() } else { format!(".{field}") };
                p.push((format!("steps[{i}].{}{at}", s.name()), msg));
            }
        }
        p
    }
}

/// The `expr` step: a SQL boolean expression over the batch's columns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExprParams {
    /// The expression, e.g. `length(text) > 500 AND lang = 'en'`; rows where it is false or null are dropped.
    pub sql: String,
}

impl ExprParams {
    fn check(&self) -> Vec<RangeProblem> {
        match crate::clean::expr::ExprFilter::new(&self.sql) {
            Ok(_) => vec![],
            Err(e) => vec![("sql".into(), e)],
        }
    }
}

/// Declares the steps: YAML name, variant, params type, one line about it.
macro_rules! steps {
    ($( $name:literal => $variant:ident($params:ty) : $about:literal ),* $(,)?) => {
        /// One `clean` step with its parameters.
        #[derive(Debug, Clone, PartialEq)]
        pub enum Step {
            $( #[doc = $about] $variant($params), )*
        }

        /// Every step name, in the reference's order.
        pub const STEP_NAMES: &[&str] = &[$($name),*];

        impl Step {
            /// The step's YAML name.
            pub fn name(&self) -> &'static str {
                match self { $( Step::$variant(_) => $name, )* }
            }

            /// One line about step `name`.
            pub fn about(name: &str) -> &'static str {
                match name { $( $name => $about, )* _ => "" }
            }

            /// The JSON schema of step `name`'s parameters.
            pub fn schema(name: &str) -> Option<schemars::Schema> {
                match name { $( $name => Some(schemars::schema_for!($params)), )* _ => None }
            }

            fn params_json(&self) -> Result<Value, serde_json::Error> {
                match self { $( Step::$variant(p) => serde_json::to_value(p), )* }
            }

            fn from_parts(name: &str, v: Value) -> Result<Step, String> {
                match name {
                    $( $name => serde_path_to_error::deserialize(v)
                        .map(Step::$variant)
                        .map_err(|e| at_path(name, &e)), )*
                    other => Err(unknown_step(other)),
                }
            }

            fn check(&self) -> Vec<RangeProblem> {
                match self { $( Step::$variant(p) => p.check(), )* }
            }
        }
    };
}

steps! {
    "url_filter" => UrlFilter(UrlFilterParams) : "Drops documents whose URL's domain or URL is on a blocklist, or whose URL holds banned words (datatrove's URL filter).",
    "extract" => Extract(ExtractParams) : "HTML → main text: boilerplate (navigation, headers, footers, cookie banners, forms, comments, ads) removed, blocks as lines; adds a `title` column.",
    "langid" => Langid(LangIdParams) : "Language ID (lingua): adds `lang` and `lang_score`; with `keep`, drops other languages and scores below `min_score`.",
    "gopher_repetition" => GopherRepetition(GopherRepetitionParams) : "Gopher's repetition rules: duplicate lines and paragraphs, top n-grams, duplicated n-grams (FILTERS.md).",
    "gopher_quality" => GopherQuality(GopherQualityParams) : "Gopher's quality rules: word counts and lengths, symbols, bullets, ellipses, alphabetic words, stop words (FILTERS.md).",
    "c4" => C4(C4QualityParams) : "C4's line filter and document rules (FILTERS.md); rewrites the text to the kept lines.",
    "c4_badwords" => C4Badwords(C4BadWordsParams) : "Drops documents containing a term of the LDNOOBW list (C4's bad-words rule).",
    "fineweb" => Fineweb(FineWebQualityParams) : "FineWeb's own rules: line punctuation, short lines, duplicated line characters, newline ratio (FILTERS.md).",
    "length" => Length(LengthParams) : "Drops documents outside min/max characters or words.",
    "pii" => Pii(PiiParams) : "Replaces e-mail addresses, public IP addresses (and optionally phone numbers) with placeholders; counts per kind in the manifest.",
    "normalize" => Normalize(NormalizeParams) : "Unicode NFC, control characters removed, whitespace runs collapsed.",
    "expr" => Expr(ExprParams) : "Keeps rows where a SQL boolean expression over the columns holds (polars SQL).",
}

/// `extract` has no range rules of its own beyond its type.
trait NoCheck {
    fn check(&self) -> Vec<RangeProblem> {
        vec![]
    }
}
impl NoCheck for ExtractParams {}

fn at_path(step: &str, e: &serde_path_to_error::Error<serde_json::Error>) -> String {
    let path = e.path().to_string();
    if path == "." || path.is_empty() {
        format!("step `{step}`: {}", e.inner())
    } else {
        format!("step `{step}`, field `{path}`: {}", e.inner())
    }
}

fn unknown_step(name: &str) -> String {
    let hint = crate::spec::diag::did_you_mean(name, STEP_NAMES.iter().copied())
        .map(|s| format!(" (did you mean `{s}`?)"))
        .unwrap_or_default();
    format!("unknown step `{name}`{hint}; steps are {}", STEP_NAMES.join(", "))
}

impl Serialize for Step {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let params = self.params_json().map_err(serde::ser::Error::custom)?;
        let mut m = s.serialize_map(Some(1))?;
        m.serialize_entry(self.name(), &params)?;
        m.end()
    }
}

impl<'de> Deserialize<'de> for Step {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        let (name, params) = match v {
            Value::String(name) => (name, Value::Object(Default::default())),
            Value::Object(m) if m.len() == 1 => m.into_iter().next().unwrap_or_default(),
            other => {
                return Err(serde::de::Error::custom(format!(
                    "a step is `<name>` or `<name>: {{params}}` (one key), not {}",
                    short(&other)
                )));
            }
        };
        let params = match (name.as_str(), params) {
            ("expr", Value::String(sql)) => serde_json::json!({ "sql": sql }),
            (_, Value::Null) => Value::Object(Default::default()),
            (_, p) => p,
        };
        Step::from_parts(&name, params).map_err(serde::de::Error::custom)
    }
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    match s.char_indices().nth(60) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s,
    }
}

impl JsonSchema for Step {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Step".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let names: Vec<String> = STEP_NAMES.iter().map(|n| format!("`{n}`")).collect();
        schemars::json_schema!({
            "description": format!("A step: {}", names.join(", ")),
            "anyOf": [
                { "type": "string", "enum": STEP_NAMES },
                { "type": "object", "minProperties": 1, "maxProperties": 1 }
            ]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml_json: Value) -> Result<CleanParams, String> {
        serde_json::from_value(yaml_json).map_err(|e| e.to_string())
    }

    #[test]
    fn steps_take_three_shapes() {
        let p = parse(serde_json::json!({"input": "raw", "steps": [{"expr": "length(text) > 3"}, {"expr": {"sql": "true"}}]})).unwrap();
        assert_eq!(p.steps.len(), 2);
        assert_eq!(
            p.steps[0],
            Step::Expr(ExprParams {
                sql: "length(text) > 3".into()
            })
        );
        // Canonical form round-trips.
        let back: CleanParams = serde_json::from_value(serde_json::to_value(&p).unwrap()).unwrap();
        assert_eq!(back, p);
    }

    #[test]
    fn unknown_steps_and_bad_sql_are_named() {
        let e = parse(serde_json::json!({"input": "raw", "steps": ["exprr"]})).unwrap_err();
        assert!(e.contains("unknown step `exprr`") && e.contains("did you mean `expr`"), "{e}");
        let e = parse(serde_json::json!({"input": "raw", "steps": [{"expr": {"sql": "x", "extra": 1}}]})).unwrap_err();
        assert!(e.contains("extra"), "{e}");
        let p = parse(serde_json::json!({"input": "raw", "steps": [{"expr": "length(text) >"}]})).unwrap();
        let problems = p.check();
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].0, "steps[0].expr.sql");
    }
}
