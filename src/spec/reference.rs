//! The YAML reference, generated from the op parameter schemas. The README
//! embeds this text; a test fails when the two differ.

use super::ops::{OP_NAMES, Op, STEP_NAMES, Step};
use serde_json::Value;

/// Markdown for every op: one table of fields (name, type, default, meaning).
pub fn markdown() -> String {
    let mut out = String::new();
    out.push_str("Top level: `name` (string, required), `workdir` (string, default `runs/<name>`), ");
    out.push_str("`seed` (integer, default 0), `vars` (mapping of scalars for `${var}`; `${pipeline_dir}` is built in), ");
    out.push_str("`executor` (`inline`, `local`, `slurm`, or a mapping below; default `inline`), ");
    out.push_str("`nodes` (mapping of node id to `{op: <op>, <fields>}`).\n");
    out.push_str("\n### `executor`\n\nWhere `kiln run` does the work; none of it changes an artifact. ");
    out.push_str("`kiln run --executor`, `--workers` and `--wait` override it.\n\n");
    out.push_str(&fields_table(&schemars::schema_for!(super::executor::ExecutorSpec).to_value()));
    for name in OP_NAMES {
        let Some(schema) = Op::schema(name) else { continue };
        out.push_str(&format!("\n### `{name}`\n\n{}\n\n", Op::about(name)));
        out.push_str(&fields_table(&schema.to_value()));
        if *name == "clean" {
            for step in STEP_NAMES {
                let Some(schema) = Step::schema(step) else { continue };
                out.push_str(&format!("\n#### step `{step}`\n\n{}\n\n", Step::about(step)));
                out.push_str(&fields_table(&schema.to_value()));
            }
        }
    }
    out
}

/// One table of fields (name, type, default, meaning) for a params schema.
fn fields_table(schema: &Value) -> String {
    let mut out = String::from("| field | type | default | meaning |\n|---|---|---|---|\n");
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let Some(props) = schema.get("properties").and_then(Value::as_object) else {
        return out;
    };
    for (field, p) in props {
        let default = if required.contains(&field.as_str()) {
            "required".to_string()
        } else {
            match p.get("default") {
                Some(Value::Null) | None => "none".to_string(),
                Some(v) => format!("`{v}`"),
            }
        };
        let doc = p
            .get("description")
            .and_then(Value::as_str)
            .unwrap_or("")
            .replace('\n', " ")
            .replace('|', "\\|");
        out.push_str(&format!("| `{field}` | {} | {default} | {doc} |\n", type_label(p, schema)));
    }
    out
}

/// A readable type for a property schema.
fn type_label(p: &Value, root: &Value) -> String {
    if let Some(r) = p.get("$ref").and_then(Value::as_str) {
        let name = r.rsplit('/').next().unwrap_or(r);
        return root
            .get("$defs")
            .and_then(|d| d.get(name))
            .map(|d| type_label(d, root))
            .unwrap_or_else(|| name.to_string());
    }
    for key in ["anyOf", "oneOf"] {
        if let Some(alts) = p.get(key).and_then(Value::as_array) {
            let parts: Vec<String> = alts.iter().map(|a| type_label(a, root)).filter(|s| s != "null").collect();
            return parts.join(" \\| ");
        }
    }
    if let Some(e) = p.get("enum").and_then(Value::as_array) {
        return e
            .iter()
            .map(|v| format!("`{}`", v.as_str().unwrap_or("?")))
            .collect::<Vec<_>>()
            .join(" \\| ");
    }
    if let Some(c) = p.get("const").and_then(Value::as_str) {
        return format!("`{c}`");
    }
    match p.get("type") {
        Some(Value::String(t)) => plain_type(t, p),
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(Value::as_str)
            .filter(|t| *t != "null")
            .map(|t| plain_type(t, p))
            .collect::<Vec<_>>()
            .join(" \\| "),
        _ => "any".to_string(),
    }
}

fn plain_type(t: &str, p: &Value) -> String {
    match t {
        "integer" if p.get("minimum").and_then(Value::as_f64) == Some(0.0) => "unsigned integer".into(),
        "number" => "float".into(),
        "array" => "list".into(),
        other => other.into(),
    }
}
