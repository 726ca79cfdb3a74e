//! Training curves from every model's `metrics.jsonl` (one JSON object per
//! line: `step` plus numeric fields), and the tokenizer/tokenize/pack stats.
//!
//! Charts are grouped generically so new trainers need no report code:
//! `x` and `val_x` share a chart; names with a `/` (TRL's PPO names such as
//! `objective/kl`) are grouped under their prefix.

use super::svg::{Chart, Series, fmt_num, line_chart};
use super::{NodeView, esc, show};
use serde_json::Value;
use std::collections::HashMap;
use std::fmt::Write;

/// Every numeric series of a metrics file, in order of first appearance.
#[derive(Debug, Default)]
pub struct Metrics {
    /// `(name, [(step, value)])`; a `null` value is a gap (NaN).
    pub series: Vec<(String, Vec<(f64, f64)>)>,
    /// Lines that were not JSON objects.
    pub bad_lines: usize,
}

/// Parses `metrics.jsonl`. A line without `step` takes its line number.
pub fn parse_metrics(text: &str) -> Metrics {
    let mut m = Metrics::default();
    let mut at: HashMap<String, usize> = HashMap::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let Ok(Value::Object(o)) = serde_json::from_str::<Value>(line) else {
            m.bad_lines += 1;
            continue;
        };
        let step = o.get("step").and_then(Value::as_f64).unwrap_or(i as f64 + 1.0);
        for (k, v) in &o {
            let y = match v {
                _ if k == "step" => continue,
                Value::Number(n) => n.as_f64().unwrap_or(f64::NAN),
                // NaN and infinities are written as null by JSON encoders.
                Value::Null => f64::NAN,
                _ => continue,
            };
            let idx = *at.entry(k.clone()).or_insert_with(|| {
                m.series.push((k.clone(), Vec::new()));
                m.series.len() - 1
            });
            m.series[idx].1.push((step, y));
        }
    }
    m
}

/// What a series is charted under: `val_x` with `x`.
fn base(name: &str) -> &str {
    name.strip_prefix("val_").unwrap_or(name)
}

/// Charts first by these names (the ones people look for), then the rest.
const FIRST: [&str; 8] = [
    "loss",
    "accuracy",
    "margin",
    "rewards/accuracies",
    "rewards/margins",
    "lr",
    "grad_norm",
    "tokens_per_s",
];

/// A chart's title and its lines.
pub type ChartSeries = (String, Vec<Series>);

/// Groups series into charts: `(group heading, [(chart title, series)])`.
/// The heading is the prefix before `/`, or empty for plain names.
pub fn group(m: &Metrics) -> Vec<(String, Vec<ChartSeries>)> {
    let mut charts: Vec<ChartSeries> = Vec::new();
    for (name, pts) in &m.series {
        let b = base(name);
        let s = Series {
            name: name.clone(),
            points: pts.clone(),
        };
        match charts.iter_mut().find(|c| c.0 == b) {
            Some(c) => c.1.push(s),
            None => charts.push((b.to_string(), vec![s])),
        }
    }
    // Stable sort: the well-known charts first, the rest as they appeared.
    charts.sort_by_key(|c| FIRST.iter().position(|f| *f == c.0).unwrap_or(FIRST.len()));
    let mut groups: Vec<(String, Vec<ChartSeries>)> = Vec::new();
    for c in charts {
        let prefix = c.0.split_once('/').map(|p| p.0.to_string()).unwrap_or_default();
        match groups.iter_mut().find(|g| g.0 == prefix) {
            Some(g) => g.1.push(c),
            None => groups.push((prefix, vec![c])),
        }
    }
    groups.sort_by_key(|g| !g.0.is_empty());
    groups
}

fn last_finite(pts: &[(f64, f64)]) -> Option<(f64, f64)> {
    pts.iter().rev().find(|p| p.1.is_finite()).copied()
}

/// Flattens one JSON level deep into `(key, value)` rows.
fn flat(prefix: &str, v: &Value, out: &mut Vec<(String, String)>) {
    match v {
        Value::Object(o) => {
            for (k, x) in o {
                let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                match x {
                    Value::Object(_) if prefix.is_empty() => flat(&key, x, out),
                    Value::Object(_) | Value::Array(_) => out.push((key, super::cut(&x.to_string(), 120))),
                    _ => out.push((key, show(x))),
                }
            }
        }
        Value::Null => {}
        other => out.push((prefix.to_string(), show(other))),
    }
}

fn kv_table(rows: &[(String, String)]) -> String {
    let mut s = String::from("<table>");
    for (k, v) in rows.iter().take(60) {
        let _ = write!(s, r#"<tr><th>{}</th><td class="num">{}</td></tr>"#, esc(k), esc(v));
    }
    s.push_str("</table>");
    s
}

/// Tokenizer, tokenize and pack stats, or `None` when no such node.
pub fn data_section(nodes: &[NodeView]) -> Option<String> {
    let mut s = String::new();
    for n in nodes {
        let Some(a) = &n.artifact else { continue };
        if !matches!(n.kind.as_str(), "tokenizer" | "tokens" | "packed") {
            continue;
        }
        let m = &a.manifest;
        let mut rows = Vec::new();
        // The op's own stats block, not the wrapper object named after it.
        flat("", m.stats.get(&m.op).unwrap_or(&m.stats), &mut rows);
        let mut extra = Vec::new();
        flat("", &m.extra, &mut extra);
        for (k, v) in extra {
            // `splits` lists file names and `tokenizer` a fingerprint: noise here.
            if !rows.iter().any(|r| r.0 == k) && !k.starts_with("splits") && k != "tokenizer" {
                rows.push((k, v));
            }
        }
        let _ = write!(
            s,
            r#"<div><h3><code>{}</code> ({} → {})</h3>{}</div>"#,
            esc(&n.id),
            esc(&n.op),
            esc(&n.kind),
            kv_table(&rows)
        );
    }
    (!s.is_empty()).then(|| format!(r#"<div class="charts">{s}</div>"#))
}

/// Curves of every model node with a `metrics.jsonl`, or `None`.
pub fn section(nodes: &[NodeView]) -> Option<String> {
    let mut s = String::new();
    for n in nodes {
        let Some(a) = &n.artifact else { continue };
        if n.kind != "model" {
            continue;
        }
        let path = a.dir.join("metrics.jsonl");
        let Ok(text) = std::fs::read_to_string(&path) else { continue };
        let m = parse_metrics(&text);
        let _ = write!(s, r#"<h3><code>{}</code> ({})</h3>"#, esc(&n.id), esc(&n.op));
        let man = &a.manifest;
        let mut facts = Vec::new();
        if let Some(p) = man.extra.get("params") {
            facts.push(format!("{} parameters", show(p)));
        }
        if let Some(c) = man.extra.get("config").and_then(Value::as_object) {
            let c: Vec<String> = c.iter().map(|(k, v)| format!("{k}={}", show(v))).collect();
            facts.push(c.join(" "));
        }
        if let Some(p) = man.extra.get("precision").and_then(Value::as_str) {
            facts.push(p.to_string());
        }
        if !facts.is_empty() {
            let _ = write!(s, r#"<p class="muted">{}</p>"#, esc(&facts.join(" · ")));
        }
        if m.bad_lines > 0 {
            let _ = write!(
                s,
                r#"<p class="muted">{} unreadable line(s) of {} skipped</p>"#,
                m.bad_lines,
                esc(&path.display().to_string())
            );
        }
        if m.series.is_empty() {
            s.push_str(r#"<p class="muted">metrics.jsonl has no numeric series</p>"#);
            continue;
        }
        // The last value of each series: final loss, reward-model accuracy, PPO score.
        s.push_str("<table><tr><th>metric</th><th>last</th><th>at step</th></tr>");
        for (name, pts) in &m.series {
            if let Some((x, y)) = last_finite(pts) {
                let _ = write!(
                    s,
                    r#"<tr><td>{}</td><td class="num">{}</td><td class="num">{}</td></tr>"#,
                    esc(name),
                    fmt_num(y),
                    fmt_num(x)
                );
            }
        }
        s.push_str("</table>");
        if let Some(t) = rollouts(&a.dir.join("samples.jsonl")) {
            s.push_str(&t);
        }
        for (prefix, charts) in group(&m) {
            if !prefix.is_empty() {
                let _ = write!(s, "<h4>{}/</h4>", esc(&prefix));
            }
            s.push_str(r#"<div class="charts">"#);
            for (title, series) in charts {
                s.push_str(&line_chart(&Chart {
                    title,
                    x_label: "step".into(),
                    series,
                    width: 380.0,
                    height: 230.0,
                }));
            }
            s.push_str("</div>");
        }
    }
    (!s.is_empty()).then_some(s)
}

/// PPO's `samples.jsonl` (`{step, prompt, response, score}` every few
/// steps): the rollouts of the first and the last step logged, so the
/// policy's answers early and late in training can be compared.
fn rollouts(path: &std::path::Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let rows: Vec<Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(Value::is_object)
        .collect();
    let step = |v: &Value| v.get("step").and_then(Value::as_u64).unwrap_or(0);
    let (first, last) = (rows.iter().map(step).min()?, rows.iter().map(step).max()?);
    let mut s = format!(
        "<details open><summary>rollouts at step {first} and step {last}</summary><table><tr><th>step</th><th>prompt</th><th>response</th><th>score</th></tr>"
    );
    for r in rows.iter().filter(|r| step(r) == first || step(r) == last) {
        let text = |k: &str| esc(&super::cut(r.get(k).and_then(Value::as_str).unwrap_or(""), 400));
        let _ = write!(
            s,
            r#"<tr><td class="num">{}</td><td class="ans">{}</td><td class="ans">{}</td><td class="num">{}</td></tr>"#,
            step(r),
            text("prompt"),
            text("response"),
            esc(&show(r.get("score").unwrap_or(&Value::Null)))
        );
    }
    s.push_str("</table></details>");
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_series_gaps_and_bad_lines() {
        let m = parse_metrics(
            "{\"step\":1,\"loss\":3.0,\"lr\":0.1}\nnot json\n{\"step\":2,\"loss\":null}\n\n{\"step\":10,\"val_loss\":2.5,\"note\":\"x\"}\n",
        );
        assert_eq!(m.bad_lines, 1);
        let names: Vec<&str> = m.series.iter().map(|s| s.0.as_str()).collect();
        assert_eq!(names, ["loss", "lr", "val_loss"]);
        assert_eq!(m.series[0].1[0], (1.0, 3.0));
        assert!(m.series[0].1[1].1.is_nan());
        assert_eq!(m.series[2].1, vec![(10.0, 2.5)]);
    }

    #[test]
    fn groups_val_with_train_and_ppo_by_prefix() {
        let lines = [
            r#"{"step":1,"lr":1e-3,"loss":2.0,"objective/kl":0.1,"objective/scores":0.5,"val/response_length":30,"accuracy":0.5}"#,
            r#"{"step":2,"val_loss":1.9,"val_accuracy":0.6}"#,
        ];
        let g = group(&parse_metrics(&lines.join("\n")));
        assert_eq!(g[0].0, "");
        let plain: Vec<(&str, usize)> = g[0].1.iter().map(|c| (c.0.as_str(), c.1.len())).collect();
        assert_eq!(plain, [("loss", 2), ("accuracy", 2), ("lr", 1)]);
        let heads: Vec<&str> = g.iter().map(|g| g.0.as_str()).collect();
        assert_eq!(heads, ["", "objective", "val"]);
        assert_eq!(
            g[1].1.len(),
            2,
            "objective/kl and objective/scores are separate charts under one heading"
        );
    }

    #[test]
    fn ppo_and_reward_curves_render_from_a_model_dir() {
        let d = tempfile::tempdir().unwrap();
        let mut lines = Vec::new();
        for step in 1..=20 {
            let f = step as f64;
            lines.push(
                serde_json::json!({"step": step, "objective/scores": f / 10.0, "objective/kl": 0.01 * f,
                "objective/entropy": 3.0 - f / 20.0, "val/response_length": 30.0 + f, "loss/policy_avg": -0.1, "kl_coef": 0.05})
                .to_string(),
            );
        }
        std::fs::write(d.path().join("metrics.jsonl"), lines.join("\n")).unwrap();
        let samples = [
            (1, "Q <1>", "early", -1.0),
            (10, "Q2", "halfway", 0.0),
            (20, "Q3", "late & good", 1.5),
        ]
        .map(|(step, p, r, sc)| serde_json::json!({"step": step, "prompt": p, "response": r, "score": sc, "has_eos": true}).to_string());
        std::fs::write(d.path().join("samples.jsonl"), samples.join("\n")).unwrap();
        let nodes = vec![super::super::fake_node(d.path(), "ppo", "ppo", "model", &["sft"], Value::Null)];
        let s = section(&nodes).unwrap();
        for h in [
            "<h4>objective/</h4>",
            "<h4>val/</h4>",
            "<h4>loss/</h4>",
            "<title>objective/kl</title>",
            "<title>kl_coef</title>",
        ] {
            assert!(s.contains(h), "missing {h}");
        }
        assert_eq!(s.matches("<svg").count(), 6, "one chart per metric");
        assert!(s.contains("rollouts at step 1 and step 20") && s.contains("Q &lt;1&gt;") && s.contains("late &amp; good"));
        assert!(!s.contains("halfway"), "only the first and last logged steps");
        // The table of last values: the score ends at 2.
        assert!(
            s.contains(r#"<td>objective/scores</td><td class="num">2</td><td class="num">20</td>"#),
            "{s}"
        );
    }

    #[test]
    fn flattens_one_level() {
        let mut rows = Vec::new();
        flat(
            "",
            &serde_json::json!({"a": 1, "b": {"c": 2.5, "d": {"e": 1}}, "f": [1, 2]}),
            &mut rows,
        );
        assert_eq!(rows[0], ("a".into(), "1".into()));
        assert_eq!(rows[1], ("b.c".into(), "2.5".into()));
        assert_eq!(rows[2], ("b.d".into(), r#"{"e":1}"#.into()));
        assert_eq!(rows[3], ("f".into(), "[1,2]".into()));
    }
}
