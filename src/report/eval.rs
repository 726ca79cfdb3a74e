//! Evaluations: the `eval.json` of every `report` node. `eval_chat` writes
//! `{model, accuracy, mean_score, n, samples: [{prompt, reference, answer,
//! correct, score}]}`; `eval` writes `{loss, perplexity, bits_per_byte}`.
//! Sample answers are joined by prompt, so the same question answered by
//! the SFT and the PPO model sits side by side.

use super::{NodeView, cut, esc, show};
use serde_json::Value;
use std::fmt::Write;

/// Prompts shown side by side at most.
const MAX_PROMPTS: usize = 12;

/// `(node id, eval.json)` of every current report node that has one.
fn evals(nodes: &[NodeView]) -> Vec<(String, Value)> {
    nodes
        .iter()
        .filter_map(|n| {
            let a = n.artifact.as_ref()?;
            let text = std::fs::read_to_string(a.dir.join("eval.json")).ok()?;
            let v: Value = serde_json::from_str(&text).ok()?;
            v.is_object().then(|| (n.id.clone(), v))
        })
        .collect()
}

fn is_chat(v: &Value) -> bool {
    v.get("accuracy").is_some() || v.get("samples").is_some()
}

/// The eval tables, or `None` when there are no evaluations.
pub fn table_section(nodes: &[NodeView]) -> Option<String> {
    let all = evals(nodes);
    if all.is_empty() {
        return None;
    }
    let mut s = String::new();
    let chat: Vec<&(String, Value)> = all.iter().filter(|e| is_chat(&e.1)).collect();
    if !chat.is_empty() {
        s.push_str(
            "<h3>Held-out answers</h3><table><tr><th>eval node</th><th>model</th><th>accuracy</th><th>mean score</th><th>n</th></tr>",
        );
        for (id, v) in &chat {
            let _ = write!(
                s,
                r#"<tr><td><code>{}</code></td><td><code>{}</code></td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td></tr>"#,
                esc(id),
                esc(&show(&v["model"])),
                esc(&show(&v["accuracy"])),
                esc(&show(&v["mean_score"])),
                esc(&show(&v["n"]))
            );
        }
        s.push_str("</table>");
    }
    let lm: Vec<&(String, Value)> = all.iter().filter(|e| !is_chat(&e.1)).collect();
    if !lm.is_empty() {
        s.push_str("<h3>Language-model evaluation</h3><table><tr><th>eval node</th><th>inputs</th><th>loss</th><th>perplexity</th><th>bits per byte</th><th>tokens</th></tr>");
        for (id, v) in &lm {
            let inputs = nodes.iter().find(|n| &n.id == id).map(|n| n.deps.join(", ")).unwrap_or_default();
            let _ = write!(
                s,
                r#"<tr><td><code>{}</code></td><td>{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td></tr>"#,
                esc(id),
                esc(&inputs),
                esc(&show(&v["loss"])),
                esc(&show(&v["perplexity"])),
                esc(&show(&v["bits_per_byte"])),
                esc(&show(&v["tokens"]))
            );
        }
        s.push_str("</table>");
    }
    Some(s)
}

/// Sample answers per prompt, one column per `eval_chat` node, or `None`.
pub fn samples_section(nodes: &[NodeView]) -> Option<String> {
    let all = evals(nodes);
    let cols: Vec<(&String, &Value, &Vec<Value>)> = all
        .iter()
        .filter_map(|(id, v)| Some((id, v, v.get("samples")?.as_array()?)))
        .filter(|c| !c.2.is_empty())
        .collect();
    if cols.is_empty() {
        return None;
    }
    let mut prompts: Vec<&str> = Vec::new();
    for (_, _, samples) in &cols {
        for p in samples.iter().filter_map(|x| x.get("prompt")?.as_str()) {
            if !prompts.contains(&p) {
                prompts.push(p);
            }
        }
    }
    let total = prompts.len();
    prompts.truncate(MAX_PROMPTS);
    let mut s = String::from("<table><tr><th>prompt</th><th>reference</th>");
    for (id, v, _) in &cols {
        let _ = write!(
            s,
            "<th><code>{}</code><br><span class=\"muted\">model {}</span></th>",
            esc(id),
            esc(&show(&v["model"]))
        );
    }
    s.push_str("</tr>");
    for p in &prompts {
        let find = |samples: &Vec<Value>| samples.iter().find(|x| x.get("prompt").and_then(Value::as_str) == Some(p)).cloned();
        let reference = cols
            .iter()
            .find_map(|c| find(c.2)?.get("reference")?.as_str().map(str::to_string))
            .unwrap_or_default();
        let _ = write!(
            s,
            r#"<tr><td class="ans">{}</td><td class="ans">{}</td>"#,
            esc(&cut(p, 600)),
            esc(&cut(&reference, 600))
        );
        for c in &cols {
            match find(c.2) {
                Some(x) => {
                    let mark = match x.get("correct").and_then(Value::as_bool) {
                        Some(true) => r#"<span class="ok">✓ correct</span>"#,
                        Some(false) => r#"<span class="bad">✗ wrong</span>"#,
                        None => "",
                    };
                    let score = x
                        .get("score")
                        .filter(|v| !v.is_null())
                        .map(|v| format!(" score {}", esc(&show(v))))
                        .unwrap_or_default();
                    let _ = write!(
                        s,
                        r#"<td class="ans">{}<br>{mark}<span class="muted">{score}</span></td>"#,
                        esc(&cut(x.get("answer").and_then(Value::as_str).unwrap_or(""), 600))
                    );
                }
                None => s.push_str(r#"<td class="muted">–</td>"#),
            }
        }
        s.push_str("</tr>");
    }
    s.push_str("</table>");
    if total > MAX_PROMPTS {
        let _ = write!(
            s,
            r#"<p class="muted">{MAX_PROMPTS} of {total} prompts shown; all are in each node's eval.json.</p>"#
        );
    }
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::super::fake_node;
    use super::*;
    use serde_json::json;

    fn eval_node(root: &std::path::Path, id: &str, v: Value) -> NodeView {
        let dir = root.join(id);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("eval.json"), v.to_string()).unwrap();
        fake_node(&dir, id, "eval_chat", "report", &[], Value::Null)
    }

    fn sample(prompt: &str, answer: &str, correct: bool) -> Value {
        json!({"prompt": prompt, "reference": "42", "answer": answer, "correct": correct, "score": null})
    }

    #[test]
    fn table_and_side_by_side_answers_joined_by_prompt() {
        let d = tempfile::tempdir().unwrap();
        let sft = eval_node(
            d.path(),
            "eval_sft",
            json!({"model": "sft", "accuracy": 0.25, "mean_score": null, "n": 4,
            "samples": [sample("What is 6*7?", "41", false), sample("Say <hi>", "hi & bye", true)]}),
        );
        let ppo = eval_node(
            d.path(),
            "eval_ppo",
            json!({"model": "ppo", "accuracy": 0.5, "mean_score": 1.25, "n": 4,
            "samples": [sample("Say <hi>", "hi", true), sample("What is 6*7?", "42", true), sample("only ppo", "x", false)]}),
        );
        let lm = {
            let dir = d.path().join("ev");
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(
                dir.join("eval.json"),
                r#"{"loss": 2.0, "perplexity": 7.389, "bits_per_byte": 1.5, "tokens": 100}"#,
            )
            .unwrap();
            fake_node(&dir, "ev", "eval", "report", &["lm", "docs"], Value::Null)
        };
        let nodes = vec![sft, ppo, lm];
        let t = table_section(&nodes).unwrap();
        assert!(
            t.contains("<code>eval_sft</code>") && t.contains(">0.25<") && t.contains(">1.25<"),
            "{t}"
        );
        assert!(
            t.contains("Language-model evaluation") && t.contains(">7.389<") && t.contains("lm, docs"),
            "{t}"
        );
        let s = samples_section(&nodes).unwrap();
        // Three prompts, in first-seen order; each row has both models' answers.
        let rows: Vec<&str> = s.split("<tr>").skip(2).collect();
        assert_eq!(rows.len(), 3, "{s}");
        assert!(rows[0].starts_with(r#"<td class="ans">What is 6*7?"#) && rows[0].contains(">41<br>") && rows[0].contains(">42<br>"));
        assert!(rows[1].contains("Say &lt;hi&gt;") && rows[1].contains("hi &amp; bye") && !s.contains("<hi>"));
        assert!(
            rows[2].contains("only ppo") && rows[2].contains(r#"<td class="muted">–</td>"#),
            "missing answer shown as a dash"
        );
        assert!(s.contains("✗ wrong") && s.contains("✓ correct"));
    }

    #[test]
    fn absent_or_unreadable_evals_leave_the_sections_out() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("eval.json"), "{not json").unwrap();
        let nodes = vec![fake_node(d.path(), "e", "eval_chat", "report", &[], Value::Null)];
        assert!(table_section(&nodes).is_none() && samples_section(&nodes).is_none());
    }
}
