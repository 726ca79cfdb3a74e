//! The cleaning funnel: per documents node, each step's documents in and
//! dropped by reason (from the manifest's `stats.read`, `stats.clean`,
//! `stats.dedup`), a bar per step, and a few dropped documents per step
//! read from the node's `rejected/` Parquet files.

use super::{NodeView, cut, esc};
use arrow::array::{Array, AsArray};
use arrow::datatypes::DataType;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::Path;

/// Dropped documents shown per step.
const EXAMPLES: usize = 3;
/// Rejected rows scanned at most per node, so a huge reject set stays fast.
const SCAN_ROWS: usize = 50_000;

/// One step of a funnel.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// Step name (matches the `step` column of `rejected/`).
    pub name: String,
    /// Documents (or records) that reached it.
    pub docs_in: u64,
    /// Documents it dropped.
    pub dropped: u64,
    /// Drops by reason, most first.
    pub reasons: Vec<(String, u64)>,
    /// Other counts (e.g. PII replacements), as text.
    pub note: String,
}

fn count_map(v: &Value, strip: &str) -> Vec<(String, u64)> {
    let mut out: Vec<(String, u64)> = v
        .as_object()
        .map(|o| {
            o.iter()
                .filter_map(|(k, n)| Some((k.strip_prefix(strip).unwrap_or(k).to_string(), n.as_u64()?)))
                .collect()
        })
        .unwrap_or_default();
    out.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    out
}

fn u(v: &Value, k: &str) -> u64 {
    v.get(k).and_then(Value::as_u64).unwrap_or(0)
}

/// The steps of one node's funnel, from its manifest's stats and params.
pub fn steps(stats: &Value, params: &Value) -> Vec<Step> {
    let mut out = Vec::new();
    if let Some(r) = stats.get("read") {
        // Records that are not documents (requests, images, redirects) are
        // not drops: they are noted beside the step, not in its bar.
        let skipped = count_map(&r["skipped"], "");
        let n_skipped: u64 = skipped.iter().map(|s| s.1).sum();
        let mut note = String::new();
        if n_skipped > 0 {
            let top: Vec<String> = skipped.iter().take(5).map(|(k, n)| format!("{k} {n}")).collect();
            let more = if skipped.len() > 5 { ", …" } else { "" };
            note = format!("{n_skipped} records were not documents: {}{more}", top.join(", "));
        }
        let (rows, rejected) = (u(r, "rows_out"), u(r, "rejected"));
        out.push(Step {
            name: "read".into(),
            docs_in: rows + rejected,
            dropped: rejected,
            reasons: count_map(&r["reasons"], "read: "),
            note,
        });
    }
    if let Some(c) = stats.get("clean") {
        let by_name = c.get("steps").and_then(Value::as_object);
        // Params list the steps in run order: `- name` or `- {name: {...}}`.
        let mut order: Vec<String> = params
            .get("steps")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|s| match s {
                        Value::String(n) => Some(n.clone()),
                        Value::Object(o) => o.keys().next().cloned(),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        for k in by_name.into_iter().flat_map(|o| o.keys()) {
            if !order.contains(k) {
                order.push(k.clone());
            }
        }
        for name in order {
            let Some(s) = by_name.and_then(|o| o.get(&name)) else { continue };
            let note = count_map(&s["counts"], "")
                .iter()
                .map(|(k, n)| format!("{k}: {n}"))
                .collect::<Vec<_>>()
                .join(", ");
            out.push(Step {
                name: name.clone(),
                docs_in: u(s, "docs_in"),
                dropped: u(s, "dropped"),
                reasons: count_map(&s["reasons"], ""),
                note,
            });
        }
    }
    if let Some(d) = stats.get("dedup") {
        let dropped = count_map(&d["dropped"], "dedup: ");
        let method = d.get("method").and_then(Value::as_str).unwrap_or("");
        out.push(Step {
            name: "dedup".into(),
            docs_in: u(d, "docs_in"),
            dropped: dropped.iter().map(|r| r.1).sum(),
            reasons: dropped,
            note: if method.is_empty() {
                String::new()
            } else {
                format!("method: {method}")
            },
        });
    }
    out
}

/// A dropped document, as shown.
#[derive(Debug, Clone)]
pub struct Example {
    /// Its reason (with detail).
    pub reason: String,
    /// URL, or id when there is none.
    pub locator: String,
    /// Start of its text.
    pub text: String,
}

fn col_text(b: &arrow::record_batch::RecordBatch, name: &str, row: usize) -> Option<String> {
    let c = b.column_by_name(name)?;
    let c = match c.data_type() {
        DataType::Utf8 => c.clone(),
        _ => arrow::compute::cast(c, &DataType::Utf8).ok()?,
    };
    let s = c.as_string::<i32>();
    s.is_valid(row).then(|| s.value(row).to_string())
}

/// Up to [`EXAMPLES`] dropped documents per step from `files`; reading
/// stops once every step in `expect` (step → documents it dropped) has its
/// examples, so a large reject set costs only its first rows.
pub fn examples(files: &[impl AsRef<Path>], expect: &BTreeMap<String, u64>) -> Result<BTreeMap<String, Vec<Example>>, String> {
    let done = |out: &BTreeMap<String, Vec<Example>>| {
        !expect.is_empty()
            && expect
                .iter()
                .all(|(k, n)| out.get(k).map_or(0, Vec::len) >= (*n as usize).min(EXAMPLES))
    };
    let mut out: BTreeMap<String, Vec<Example>> = BTreeMap::new();
    let mut scanned = 0usize;
    for path in files {
        let path = path.as_ref();
        let r = crate::io::table::parquet_columns(path, &["id", "url", "text", "step", "reason"], 1024)?;
        for batch in r {
            let batch = batch?;
            for row in 0..batch.num_rows() {
                let step = col_text(&batch, "step", row).unwrap_or_else(|| "?".into());
                let v = out.entry(step).or_default();
                if v.len() < EXAMPLES {
                    let text = col_text(&batch, "text", row).unwrap_or_default();
                    v.push(Example {
                        reason: col_text(&batch, "reason", row).unwrap_or_default(),
                        locator: col_text(&batch, "url", row)
                            .or_else(|| col_text(&batch, "id", row))
                            .unwrap_or_default(),
                        text: cut(text.trim(), 300),
                    });
                }
            }
            scanned += batch.num_rows();
            if scanned >= SCAN_ROWS || done(&out) {
                return Ok(out);
            }
        }
    }
    Ok(out)
}

/// A bar: kept (green) and dropped (red) out of `scale` documents.
fn bar(docs_in: u64, dropped: u64, scale: u64) -> String {
    let w = 220.0;
    let f = |n: u64| if scale == 0 { 0.0 } else { w * n as f64 / scale as f64 };
    let (kept, drop) = (f(docs_in.saturating_sub(dropped)), f(dropped));
    format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" class="bar" width="{w}" height="14" viewBox="0 0 {w} 14"><rect width="{w}" height="14" fill="#f3f3f3"/><rect width="{kept:.1}" height="14" fill="#59a14f"/><rect x="{kept:.1}" width="{drop:.1}" height="14" fill="#e15759"/></svg>"##
    )
}

fn reasons_html(reasons: &[(String, u64)]) -> String {
    let shown: Vec<String> = reasons.iter().take(8).map(|(r, n)| format!("{} {n}", esc(r))).collect();
    let more = reasons.len().saturating_sub(8);
    let mut s = shown.join("<br>");
    if more > 0 {
        s.push_str(&format!("<br><span class=\"muted\">… {more} more reasons</span>"));
    }
    s
}

/// The section, or `None` when no node has funnel stats.
pub fn section(nodes: &[NodeView]) -> Option<String> {
    let mut s = String::new();
    for n in nodes {
        let Some(a) = &n.artifact else { continue };
        let steps = steps(&a.manifest.stats, &a.manifest.params);
        if steps.is_empty() {
            continue;
        }
        let scale = steps.iter().map(|s| s.docs_in).max().unwrap_or(0);
        let out_rows = a.manifest.rows;
        let _ = write!(
            s,
            r#"<h3><code>{}</code> ({}): {} in, {} kept, {} dropped</h3><table class="funnel"><tr><th>step</th><th>in</th><th>dropped</th><th>kept</th><th>kept / dropped</th><th>reasons</th></tr>"#,
            esc(&n.id),
            esc(&n.op),
            steps[0].docs_in,
            out_rows,
            a.manifest.rejected_rows
        );
        for st in &steps {
            let _ = write!(
                s,
                r#"<tr><td><code>{}</code></td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td><td>{}</td><td>{}{}</td></tr>"#,
                esc(&st.name),
                st.docs_in,
                st.dropped,
                st.docs_in.saturating_sub(st.dropped),
                bar(st.docs_in, st.dropped, scale),
                reasons_html(&st.reasons),
                if st.note.is_empty() {
                    String::new()
                } else {
                    format!("<span class=\"muted\">{}</span>", esc(&st.note))
                }
            );
        }
        s.push_str("</table>");
        let files: Vec<_> = a.manifest.rejected_files.iter().map(|f| a.dir.join(&f.name)).collect();
        if files.is_empty() {
            continue;
        }
        let expect: BTreeMap<String, u64> = steps.iter().map(|s| (s.name.clone(), s.dropped)).collect();
        match examples(&files, &expect) {
            Ok(mut ex) => {
                // In funnel order, then any step the stats do not name.
                let mut order: Vec<String> = steps.iter().map(|s| s.name.clone()).filter(|n| ex.contains_key(n)).collect();
                order.extend(ex.keys().filter(|k| !order.contains(k)).cloned().collect::<Vec<_>>());
                for step in order {
                    let docs = ex.remove(&step).unwrap_or_default();
                    let _ = write!(
                        s,
                        r#"<details open><summary>dropped at <code>{}</code>: examples</summary>"#,
                        esc(&step)
                    );
                    for d in docs {
                        let _ = write!(
                            s,
                            r#"<div><b>{}</b> <span class="muted">{}</span><pre class="doc">{}</pre></div>"#,
                            esc(&cut(&d.reason, 200)),
                            esc(&cut(&d.locator, 120)),
                            esc(&d.text)
                        );
                    }
                    s.push_str("</details>");
                }
            }
            Err(e) => {
                let _ = write!(s, r#"<p class="muted">examples unavailable: {}</p>"#, esc(&e));
            }
        }
    }
    (!s.is_empty()).then_some(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn clean_steps_follow_params_order() {
        let stats = json!({"clean": {"steps": {
            "b": {"docs_in": 8, "dropped": 2, "reasons": {"x": 1, "y": 1}, "counts": {}},
            "a": {"docs_in": 10, "dropped": 2, "reasons": {"z": 2}, "counts": {"emails": 3}}}}});
        let params = json!({"steps": ["a", {"b": {"k": 1}}]});
        let s = steps(&stats, &params);
        assert_eq!(s.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!((s[0].docs_in, s[0].dropped, s[0].note.as_str()), (10, 2, "emails: 3"));
        assert_eq!(s[1].reasons, vec![("x".to_string(), 1), ("y".to_string(), 1)]);
    }

    #[test]
    fn read_and_dedup_steps() {
        let stats = json!({"read": {"records_in": 12, "rows_out": 9, "rejected": 1, "reasons": {"read: invalid JSON": 1}, "skipped": {"request": 2}}});
        let s = steps(&stats, &Value::Null);
        assert_eq!((s[0].docs_in, s[0].dropped), (10, 1));
        assert_eq!(s[0].reasons, vec![("invalid JSON".to_string(), 1)]);
        assert_eq!(s[0].note, "2 records were not documents: request 2");
        let d = steps(
            &json!({"dedup": {"docs_in": 31, "kept": 29, "dropped": {"dedup: minhash_duplicate": 2}, "method": "minhash"}}),
            &Value::Null,
        );
        assert_eq!(
            (d[0].docs_in, d[0].dropped, d[0].reasons[0].0.as_str()),
            (31, 2, "minhash_duplicate")
        );
        assert!(steps(&json!({"pack": {}}), &Value::Null).is_empty());
    }

    #[test]
    fn bar_splits_kept_and_dropped() {
        let b = bar(10, 5, 20);
        assert!(
            b.contains(r##"width="55.0" height="14" fill="#59a14f""##) && b.contains(r#"x="55.0" width="55.0""#),
            "{b}"
        );
        assert!(!bar(0, 0, 0).contains("NaN"));
    }
}
