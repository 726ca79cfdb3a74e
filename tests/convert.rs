//! Converters on `read`: the real SFT and preference files of ../shared/data
//! read as `chat` / `preferences` (counts from the data README, every row
//! compared with its record), and small hand-written files with one record
//! per reject reason.

mod common;

use common::{kiln_in, manifest, pipeline, rejected, rows, shared_data};
use serde_json::{Value, json};
use std::io::Read;
use std::path::Path;

fn q(p: &Path) -> String {
    format!("'{}'", p.display())
}

/// Runs a pipeline of `read` nodes `(node, path, format)` in a fresh tempdir.
fn run_reads(nodes: &[(&str, &Path, &str)]) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    let mut yaml = String::from("name: convert\nworkdir: runs\nnodes:\n");
    for (node, path, format) in nodes {
        yaml.push_str(&format!("  {node}:\n    op: read\n    path: {}\n    format: {format}\n", q(path)));
    }
    pipeline(d.path(), &yaml);
    kiln_in(d.path(), &["run", "pipeline.yaml", "--quiet"]).ok();
    d
}

fn values(wd: &Path, node: &str) -> Vec<Value> {
    rows(wd, node).iter().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// `(line, reason)` of each rejected record, in order.
fn reasons(wd: &Path, node: &str) -> Vec<(u64, String)> {
    rejected(wd, node)
        .iter()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (v["line"].as_u64().unwrap(), v["reason"].as_str().unwrap().to_string())
        })
        .collect()
}

fn counts(wd: &Path, node: &str) -> (u64, u64) {
    let m = manifest(wd, node);
    (m["rows"].as_u64().unwrap(), m["rejected_rows"].as_u64().unwrap())
}

fn msg(role: &str, content: &str) -> Value {
    json!({"role": role, "content": content})
}

fn json_array(path: &Path) -> Vec<Value> {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn jsonl(path: &Path) -> Vec<Value> {
    let raw = std::fs::read(path).unwrap();
    let mut bytes = Vec::new();
    if path.extension().is_some_and(|e| e == "gz") {
        flate2::read::MultiGzDecoder::new(&raw[..]).read_to_end(&mut bytes).unwrap();
    } else {
        bytes = raw;
    }
    String::from_utf8(bytes)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// An HH-RLHF transcript from messages (the inverse of the converter for
/// transcripts whose markers are all followed by one space, as in the data).
fn transcript(messages: &[Value]) -> String {
    messages
        .iter()
        .map(|m| {
            let who = if m["role"] == "user" { "Human" } else { "Assistant" };
            format!("\n\n{who}: {}", m["content"].as_str().unwrap())
        })
        .collect()
}

#[test]
fn alpaca_demo_files_become_two_turn_chats() {
    let Some(data) = shared_data() else { return };
    let lf = data.join("sft/llama-factory");
    let (alpaca, identity) = (lf.join("alpaca_en_demo.json"), lf.join("identity.json"));
    let d = run_reads(&[("alpaca", &alpaca, "alpaca"), ("identity", &identity, "alpaca")]);
    let wd = d.path().join("runs");
    for (node, path, n) in [("alpaca", &alpaca, 999usize), ("identity", &identity, 91)] {
        assert_eq!(counts(&wd, node), (n as u64, 0), "{node}");
        assert_eq!(manifest(&wd, node)["kind"], "chat", "{node}");
        let recs = json_array(path);
        let got = values(&wd, node);
        assert_eq!((recs.len(), got.len()), (n, n), "{node}");
        let name = path.file_name().unwrap().to_str().unwrap();
        for (i, (rec, row)) in recs.iter().zip(&got).enumerate() {
            let (ins, input) = (rec["instruction"].as_str().unwrap(), rec["input"].as_str().unwrap());
            let user = if input.is_empty() {
                ins.to_string()
            } else {
                format!("{ins}\n\n{input}")
            };
            let want = json!({
                "id": format!("{name}#{i}"),
                "messages": [msg("user", &user), msg("assistant", rec["output"].as_str().unwrap())],
                "source": name,
                "reference": null,
            });
            assert_eq!(row, &want, "{node} record {i}");
        }
    }
}

#[test]
fn gsm8k_keeps_the_worked_answer_and_its_final_number() {
    let Some(data) = shared_data() else { return };
    let path = data.join("sft/gsm8k/test.jsonl");
    let d = run_reads(&[("gsm8k", &path, "gsm8k")]);
    let wd = d.path().join("runs");
    assert_eq!(counts(&wd, "gsm8k"), (1319, 0));
    let recs = jsonl(&path);
    let got = values(&wd, "gsm8k");
    assert_eq!(got.len(), recs.len());
    for (i, (rec, row)) in recs.iter().zip(&got).enumerate() {
        let answer = rec["answer"].as_str().unwrap();
        // The number on the `#### n` line, found here independently.
        let last = answer.lines().last().unwrap();
        let n = last.strip_prefix("#### ").unwrap_or_else(|| panic!("record {i}: {last}"));
        assert!(n.replace(',', "").parse::<f64>().is_ok(), "record {i}: {n}");
        assert_eq!(row["reference"], n, "record {i}");
        assert_eq!(
            row["messages"],
            json!([msg("user", rec["question"].as_str().unwrap()), msg("assistant", answer)]),
            "record {i}"
        );
        assert_eq!(row["id"], format!("test.jsonl:{}", i + 1));
    }
    assert_eq!(got[0]["reference"], "18");
}

#[test]
fn hh_rlhf_reads_as_chat_and_as_preferences() {
    let Some(data) = shared_data() else { return };
    let path = data.join("preference/hh-rlhf/harmless-base/test.jsonl.gz");
    let d = run_reads(&[("hh", &path, "hh-rlhf"), ("hhp", &path, "hh-rlhf-preferences")]);
    let wd = d.path().join("runs");
    let recs = jsonl(&path);
    assert_eq!(recs.len(), 2312);

    // Four chosen transcripts end with an empty assistant turn.
    let empty: Vec<(u64, String)> = [(87, 4), (517, 2), (926, 2), (1104, 2)]
        .iter()
        .map(|&(l, n)| (l, format!("empty assistant turn in `chosen` (turn {n} of {n})")))
        .collect();
    assert_eq!(counts(&wd, "hh"), (2308, 4));
    assert_eq!(reasons(&wd, "hh"), empty);
    let chats = values(&wd, "hh");
    let kept: Vec<&Value> = recs
        .iter()
        .enumerate()
        .filter(|(i, _)| !empty.iter().any(|(l, _)| *l == *i as u64 + 1))
        .map(|(_, r)| r)
        .collect();
    for (rec, row) in kept.iter().zip(&chats) {
        assert_eq!(
            transcript(row["messages"].as_array().unwrap()),
            rec["chosen"].as_str().unwrap(),
            "{}",
            row["id"]
        );
    }

    // Pairs: also five whose transcripts differ before the last turn
    // (an inline "Human:" or an extra assistant turn on one side).
    assert_eq!(counts(&wd, "hhp"), (2303, 9));
    let mut want = empty.clone();
    for (l, k, a, b) in [
        (1255, 4, 4, 3),
        (1689, 4, 4, 3),
        (1951, 2, 1, 2),
        (1953, 4, 4, 3),
        (2037, 10, 10, 9),
    ] {
        want.push((
            l,
            format!("chosen and rejected do not share the prompt: they differ at message {k} (prompts of {a} and {b} messages)"),
        ));
    }
    want.sort();
    assert_eq!(reasons(&wd, "hhp"), want);
    let pairs = values(&wd, "hhp");
    let first = &pairs[0];
    let roles: Vec<&str> = first["prompt"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["user", "assistant", "user", "assistant", "user"]);
    assert_eq!(first["prompt"][0]["content"], "what are some pranks with a pen i can do?");
    assert_eq!(first["prompt"][2]["content"], "yep");
    assert_eq!(
        first["prompt"][4]["content"],
        "okay some of these do not have anything to do with pens"
    );
    assert_eq!(
        first["chosen"],
        "No, sorry!  All of these involve a pen, the point is that you can get funny results by doing pranks with pens."
    );
    assert!(
        first["rejected"]
            .as_str()
            .unwrap()
            .starts_with("There are lots of funny things you can do with pens")
    );
    // Every pair rebuilds both transcripts exactly.
    let kept: Vec<&Value> = recs
        .iter()
        .enumerate()
        .filter(|(i, _)| !want.iter().any(|(l, _)| *l == *i as u64 + 1))
        .map(|(_, r)| r)
        .collect();
    assert_eq!(kept.len(), pairs.len());
    for (rec, row) in kept.iter().zip(&pairs) {
        let prompt = row["prompt"].as_array().unwrap();
        for side in ["chosen", "rejected"] {
            let mut conv = prompt.clone();
            conv.push(msg("assistant", row[side].as_str().unwrap()));
            assert_eq!(transcript(&conv), rec[side].as_str().unwrap(), "{} {side}", row["id"]);
        }
    }
}

#[test]
fn llama_factory_dpo_and_kto_demos_read_as_preferences_and_chat() {
    let Some(data) = shared_data() else { return };
    let lf = data.join("preference/llama-factory");
    let (dpo, kto) = (lf.join("dpo_en_demo.json"), lf.join("kto_en_demo.json"));
    let d = run_reads(&[("dpo", &dpo, "preferences"), ("kto", &kto, "chat")]);
    let wd = d.path().join("runs");
    assert_eq!(counts(&wd, "dpo"), (300, 0));
    assert_eq!(manifest(&wd, "dpo")["kind"], "preferences");
    let role = |from: &Value| match from.as_str().unwrap() {
        "human" => "user",
        "gpt" => "assistant",
        other => {
            assert_eq!(other, "system");
            "system"
        }
    };
    for (i, (rec, row)) in json_array(&dpo).iter().zip(&values(&wd, "dpo")).enumerate() {
        let prompt: Vec<Value> = rec["conversations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| msg(role(&m["from"]), m["value"].as_str().unwrap()))
            .collect();
        assert_eq!(row["prompt"], Value::Array(prompt), "record {i}");
        assert_eq!(row["chosen"], rec["chosen"]["value"], "record {i}");
        assert_eq!(row["rejected"], rec["rejected"]["value"], "record {i}");
        assert_eq!(row["id"], format!("dpo_en_demo.json#{i}"));
    }
    assert_eq!(counts(&wd, "kto"), (300, 0));
    for (i, (rec, row)) in json_array(&kto).iter().zip(&values(&wd, "kto")).enumerate() {
        assert_eq!(row["messages"], rec["messages"], "record {i}");
        // `label` is not a chat field: it is kept as metadata.
        assert_eq!(row["label"], rec["label"], "record {i}");
    }
}

/// Writes `name` into `dir` with one record per line.
fn write_lines(dir: &Path, name: &str, lines: &[&str]) {
    std::fs::write(dir.join(name), lines.join("\n") + "\n").unwrap();
}

#[test]
fn every_reject_reason_is_exact_and_counted() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    write_lines(
        dir,
        "alpaca.jsonl",
        &[
            r#"{"instruction": "Add", "input": "2 and 3", "output": "5"}"#,
            r#"{"instruction": "And now?", "input": "", "output": "ok", "system": "Be terse.", "history": [["hi", "hello"]]}"#,
            r#"{"input": "x", "output": "y"}"#,
            r#"{"instruction": 3, "output": "y"}"#,
            r#"{"instruction": "q", "output": "  "}"#,
            r#"{"instruction": "q", "output": "a", "history": [["only one"]]}"#,
            r#"[1, 2]"#,
            r#"{"instruction": "q", "output": "a", "input": null, "id": 42, "lang": "en"}"#,
            r#"{"instruction": "q", "output": "#,
        ],
    );
    write_lines(
        dir,
        "chat.jsonl",
        &[
            r#"{"messages": [{"role": "system", "content": "sys"}, {"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}"#,
            r#"{"messages": [{"role": "user", "content": "q"}, {"role": "tool", "content": "x"}, {"role": "assistant", "content": "a"}]}"#,
            r#"{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": 3}]}"#,
            r#"{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}, {"role": "user", "content": "q2"}]}"#,
            r#"{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": null}]}"#,
            r#"{"messages": []}"#,
            r#"{"text": "x"}"#,
            r#"{"messages": [{"role": "system", "content": ""}, {"role": "user", "content": "q"}, {"role": "assistant", "content": " "}]}"#,
        ],
    );
    let gsm8k = [
        json!({"question": "2+2?", "answer": "2+2=<<2+2=4>>4\n#### 1,234 "}),
        json!({"question": "q", "answer": "no marker"}),
        json!({"question": "q"}),
        json!({"question": "", "answer": "#### 3"}),
    ];
    write_lines(
        dir,
        "gsm8k.jsonl",
        &gsm8k
            .iter()
            .map(Value::to_string)
            .collect::<Vec<_>>()
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    let t = |turns: &[(&str, &str)]| -> String { turns.iter().map(|(w, c)| format!("\n\n{w}: {c}")).collect() };
    let hh = |c: &str, r: &str| json!({"chosen": c, "rejected": r}).to_string();
    let qa = |a: &str| t(&[("Human", "q"), ("Assistant", a)]);
    let hh_lines = [
        hh(&qa("good"), &qa("bad")),
        hh(&t(&[("Human", "q"), ("Assistant", "a"), ("Human", "more")]), &qa("b")),
        hh("hello", &qa("b")),
        hh(&qa("a"), &t(&[("Human", "other q"), ("Assistant", "b")])),
        hh(&qa("a"), &(t(&[("Human", "q")]) + "\n\nAssistant: ")),
        json!({"chosen": qa("a")}).to_string(),
        hh(&format!("Intro{}", qa("a")), &qa("b")),
        json!({"chosen": 7, "rejected": qa("b")}).to_string(),
        hh(&t(&[("Assistant", "hi")]), &qa("b")),
    ];
    write_lines(dir, "hh.jsonl", &hh_lines.iter().map(String::as_str).collect::<Vec<_>>());
    write_lines(
        dir,
        "prefs.jsonl",
        &[
            r#"{"prompt": "q", "chosen": "good", "rejected": "bad", "score": 1}"#,
            r#"{"prompt": [{"role": "user", "content": "q"}], "chosen": "good", "rejected": "bad"}"#,
            r#"{"chosen": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "good"}], "rejected": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "bad"}]}"#,
            r#"{"prompt": [{"role": "user", "content": "q"}], "chosen": [{"role": "assistant", "content": "good"}], "rejected": [{"role": "assistant", "content": "bad"}]}"#,
            r#"{"system": "sys", "conversations": [{"from": "human", "value": "q"}], "chosen": {"from": "gpt", "value": "good"}, "rejected": {"from": "gpt", "value": "bad"}}"#,
            r#"{"prompt": "q", "chosen": "a"}"#,
            r#"{"prompt": 5, "chosen": "a", "rejected": "b"}"#,
            r#"{"chosen": "a", "rejected": "b"}"#,
            r#"{"chosen": [{"role": "user", "content": "q1"}, {"role": "assistant", "content": "a"}], "rejected": [{"role": "user", "content": "q2"}, {"role": "assistant", "content": "b"}]}"#,
            r#"{"prompt": "q", "chosen": "a", "rejected": ""}"#,
            r#"{"prompt": "q", "chosen": {"from": "bot", "value": "x"}, "rejected": "b"}"#,
            r#"{"prompt": "q", "chosen": true, "rejected": "b"}"#,
            r#"{"conversations": [{"from": "human", "value": "q"}], "chosen": {"from": "human", "value": "x"}, "rejected": {"from": "gpt", "value": "y"}}"#,
        ],
    );
    let sharegpt = json!([
        {"conversations": [{"from": "human", "value": "hi"}, {"from": "bot", "value": "yo"}]},
        {"conversations": [{"from": "human", "value": "hi"}]},
        {"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "a"}, {"from": "human", "value": "more?"}]},
        {"conversations": [{"from": "human", "value": ""}, {"from": "gpt", "value": "a"}]},
        {"conversations": [{"from": "human"}, {"from": "gpt", "value": "a"}]},
        {"conversations": "hi"},
        {"conversations": [{"from": "gpt", "value": "a"}]},
        {"chat": []},
        {"conversations": [{"from": "system", "value": ""}, {"from": "user", "value": "q"}, {"from": "assistant", "value": "a"}]},
        {"conversations": ["hi"]},
    ]);
    std::fs::write(dir.join("sharegpt.json"), serde_json::to_string_pretty(&sharegpt).unwrap()).unwrap();
    let nodes: Vec<(&str, std::path::PathBuf, &str)> = vec![
        ("alpaca", dir.join("alpaca.jsonl"), "alpaca"),
        ("chat", dir.join("chat.jsonl"), "chat"),
        ("gsm8k", dir.join("gsm8k.jsonl"), "gsm8k"),
        ("hh", dir.join("hh.jsonl"), "hh-rlhf"),
        ("hhp", dir.join("hh.jsonl"), "hh-rlhf-preferences"),
        ("prefs", dir.join("prefs.jsonl"), "preferences"),
        ("sharegpt", dir.join("sharegpt.json"), "sharegpt"),
    ];
    let refs: Vec<(&str, &Path, &str)> = nodes.iter().map(|(n, p, f)| (*n, p.as_path(), *f)).collect();
    let run = run_reads(&refs);
    let wd = run.path().join("runs");
    let check = |node: &str, rows_n: u64, want: &[(u64, &str)]| {
        let got = reasons(&wd, node);
        let want: Vec<(u64, String)> = want.iter().map(|(l, r)| (*l, r.to_string())).collect();
        // `invalid JSON: …` carries serde's position; compare its head only.
        let got: Vec<(u64, String)> = got
            .into_iter()
            .map(|(l, r)| {
                (
                    l,
                    if r.starts_with("invalid JSON: ") {
                        "invalid JSON".into()
                    } else {
                        r
                    },
                )
            })
            .collect();
        assert_eq!(got, want, "{node}");
        assert_eq!(counts(&wd, node), (rows_n, want.len() as u64), "{node}");
        let stats = &manifest(&wd, node)["stats"]["read"];
        assert_eq!(stats["rejected"], want.len(), "{node}");
        assert_eq!(stats["records_in"], rows_n + want.len() as u64, "{node}");
    };
    check(
        "alpaca",
        3,
        &[
            (3, "missing field `instruction`"),
            (4, "field `instruction` is a number, not a string"),
            (5, "field `output` is empty"),
            (6, "field `history.0` has 1 items, not a [user, assistant] pair"),
            (7, "record is a list, not a JSON object"),
            (9, "invalid JSON"),
        ],
    );
    check(
        "chat",
        1,
        &[
            (2, "unknown role in `messages.1.role`: `tool` (expected system, user or assistant)"),
            (3, "field `messages.1.content` is a number, not a string"),
            (4, "`messages` ends with a user turn, not an assistant reply"),
            (5, "field `messages.1.content` is null, not a string"),
            (6, "no assistant turn in `messages`"),
            (7, "missing field `messages`"),
            (8, "empty assistant message in `messages.2`"),
        ],
    );
    check(
        "gsm8k",
        1,
        &[
            (2, "field `answer` has no final `#### <answer>` line"),
            (3, "missing field `answer`"),
            (4, "field `question` is empty"),
        ],
    );
    let hh_common = [
        (2, "`chosen` ends with a user turn, not an assistant reply"),
        (3, "no `Human:`/`Assistant:` turns in `chosen`"),
        (7, "text before the first `Human:` turn in `chosen`"),
        (8, "field `chosen` is a number, not a string"),
        (9, "no user turn in `chosen`"),
    ];
    check("hh", 4, &hh_common);
    let mut hhp = hh_common.to_vec();
    hhp.extend([
        (
            4,
            "chosen and rejected do not share the prompt: they differ at message 1 (prompts of 1 and 1 messages)",
        ),
        (5, "empty assistant turn in `rejected` (turn 2 of 2)"),
        (6, "missing field `rejected`"),
    ]);
    hhp.sort();
    check("hhp", 1, &hhp);
    check(
        "prefs",
        5,
        &[
            (6, "missing field `rejected`"),
            (7, "field `prompt` is a number, not a string or a message list"),
            (8, "missing field `prompt`"),
            (
                9,
                "chosen and rejected do not share the prompt: they differ at message 1 (prompts of 1 and 1 messages)",
            ),
            (10, "field `rejected` is empty"),
            (11, "unknown ShareGPT role in `chosen.from`: `bot` (expected human, gpt or system)"),
            (12, "field `chosen` is a boolean, not a string, a message or a message list"),
            (13, "no assistant turn in `chosen`"),
        ],
    );
    // JSON arrays: `line` is where the element starts in the pretty file.
    let sg: Vec<(u64, String)> = reasons(&wd, "sharegpt");
    let sg_reasons: Vec<&str> = sg.iter().map(|(_, r)| r.as_str()).collect();
    assert_eq!(
        sg_reasons,
        [
            "unknown ShareGPT role in `conversations.1.from`: `bot` (expected human, gpt or system)",
            "no assistant turn in `conversations`",
            "`conversations` ends with a user turn, not an assistant reply",
            "empty user message in `conversations.0`",
            "missing field `conversations.0.value`",
            "field `conversations` is a string, not a list",
            "no user turn in `conversations`",
            "missing field `conversations`",
            "field `conversations.0` is a string, not an object",
        ]
    );
    assert_eq!(counts(&wd, "sharegpt"), (1, 9));
    // The raw record is kept with the reason.
    let raw: Value = serde_json::from_str(&rejected(&wd, "sharegpt")[0]).unwrap();
    let text: Value = serde_json::from_str(raw["text"].as_str().unwrap()).unwrap();
    assert_eq!(text, sharegpt[0]);

    // What was kept, row by row.
    let a = values(&wd, "alpaca");
    assert_eq!(a[0]["messages"], json!([msg("user", "Add\n\n2 and 3"), msg("assistant", "5")]));
    assert_eq!(
        a[1]["messages"],
        json!([
            msg("system", "Be terse."),
            msg("user", "hi"),
            msg("assistant", "hello"),
            msg("user", "And now?"),
            msg("assistant", "ok")
        ])
    );
    assert_eq!((&a[2]["id"], &a[2]["lang"]), (&json!("42"), &json!("en")));
    assert_eq!(a[0]["id"], "alpaca.jsonl:1");
    assert_eq!(
        values(&wd, "chat")[0]["messages"],
        json!([msg("system", "sys"), msg("user", "q"), msg("assistant", "a")])
    );
    assert_eq!(values(&wd, "gsm8k")[0]["reference"], "1,234");
    assert_eq!(
        values(&wd, "hhp")[0],
        // A plain pair has no ranking and no margin: both columns are null.
        json!({"id": "hh.jsonl:1", "prompt": [msg("user", "q")], "chosen": "good", "rejected": "bad", "source": "hh.jsonl",
               "responses": null, "margin": null})
    );
    let p = values(&wd, "prefs");
    assert_eq!(p.len(), 5);
    for (i, row) in p.iter().enumerate() {
        let prompt = if i == 4 {
            json!([msg("system", "sys"), msg("user", "q")])
        } else {
            json!([msg("user", "q")])
        };
        assert_eq!(
            (&row["prompt"], &row["chosen"], &row["rejected"]),
            (&prompt, &json!("good"), &json!("bad")),
            "row {i}"
        );
    }
    assert_eq!(p[0]["score"], 1);
    // An empty system message says nothing and is dropped; user/assistant
    // are accepted as ShareGPT roles too.
    assert_eq!(
        values(&wd, "sharegpt")[0],
        json!({"id": "sharegpt.json#8", "messages": [msg("user", "q"), msg("assistant", "a")], "source": "sharegpt.json", "reference": null})
    );
}

#[test]
fn a_multi_turn_sharegpt_conversation_keeps_every_turn_in_order() {
    let d = tempfile::tempdir().unwrap();
    let rec = json!({
        "id": "conv-1",
        "system": "You are kiln.",
        "conversations": [
            {"from": "human", "value": "What is 2+2?"},
            {"from": "gpt", "value": "4."},
            {"from": "human", "value": "And times 3?"},
            {"from": "gpt", "value": "12.\n\nBecause 4 × 3 = 12."},
            {"from": "human", "value": "Thanks!"},
            {"from": "gpt", "value": "You're welcome."}
        ],
        "tools": "[]",
        "source": "handmade"
    });
    std::fs::write(d.path().join("sg.jsonl"), format!("{rec}\n")).unwrap();
    let run = run_reads(&[("sg", &d.path().join("sg.jsonl"), "sharegpt")]);
    let wd = run.path().join("runs");
    let got = values(&wd, "sg");
    assert_eq!(got.len(), 1);
    let m = got[0]["messages"].as_array().unwrap();
    let want = [
        ("system", "You are kiln."),
        ("user", "What is 2+2?"),
        ("assistant", "4."),
        ("user", "And times 3?"),
        ("assistant", "12.\n\nBecause 4 × 3 = 12."),
        ("user", "Thanks!"),
        ("assistant", "You're welcome."),
    ];
    assert_eq!(m.len(), want.len());
    for (i, (got, (role, content))) in m.iter().zip(want).enumerate() {
        assert_eq!(got, &msg(role, content), "turn {i}");
    }
    // The record's id and source are used; other fields stay as metadata.
    assert_eq!(
        (&got[0]["id"], &got[0]["source"], &got[0]["tools"]),
        (&json!("conv-1"), &json!("handmade"), &json!("[]"))
    );
    let m = manifest(&wd, "sg");
    let schema: Vec<(&str, &str)> = m["schema"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["name"].as_str().unwrap(), c["type"].as_str().unwrap()))
        .collect();
    assert_eq!(
        schema.iter().map(|c| c.0).collect::<Vec<_>>(),
        ["id", "messages", "source", "reference", "metadata"]
    );
    assert!(
        schema[1].1.contains("List") && schema[1].1.contains("role") && schema[1].1.contains("content"),
        "{schema:?}"
    );
}

#[test]
fn chat_artifacts_inspect_shard_and_check_kinds() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("in");
    std::fs::create_dir(&dir).unwrap();
    for f in 0..2 {
        let lines: Vec<String> = (0..50)
            .map(|i| json!({"messages": [msg("user", &format!("q{f}.{i}\nsecond line")), msg("assistant", &format!("a{i}"))]}).to_string())
            .collect();
        std::fs::write(dir.join(format!("part{f}.jsonl")), lines.join("\n")).unwrap();
    }
    pipeline(
        d.path(),
        &format!(
            "name: c\nworkdir: runs\nnodes:\n  chat:\n    op: read\n    path: {}\n    format: chat\n  few:\n    op: sample\n    input: chat\n    n: 3\n",
            q(&dir)
        ),
    );
    kiln_in(d.path(), &["run", "pipeline.yaml", "--quiet"]).ok();
    let wd = d.path().join("runs");
    assert_eq!(counts(&wd, "chat"), (100, 0));
    assert_eq!(manifest(&wd, "few")["kind"], "chat");
    assert_eq!(values(&wd, "few")[2]["messages"][0]["content"], "q0.2\nsecond line");

    // `inspect` shows the conversation as one short line per row.
    let out = kiln_in(d.path(), &["inspect", "runs/chat", "--rows", "2"]);
    out.ok();
    assert!(out.stdout.contains("kind chat"), "{}", out.stdout);
    assert!(out.stdout.contains("(2) user: q0.0⏎second line | assistant: a0"), "{}", out.stdout);

    // Sharded by file, then merged: the same rows and content hash.
    let hash = manifest(&wd, "chat")["content_hash"].clone();
    let rows_before = rows(&wd, "chat");
    std::fs::remove_dir_all(wd.join("chat")).unwrap();
    for s in ["0/2", "1/2"] {
        kiln_in(d.path(), &["run", "pipeline.yaml", "--quiet", "--node", "chat", "--shard", s]).ok();
    }
    kiln_in(d.path(), &["run", "pipeline.yaml", "--quiet", "--node", "chat", "--merge"]).ok();
    assert_eq!(manifest(&wd, "chat")["content_hash"], hash);
    assert_eq!(rows(&wd, "chat"), rows_before);

    // Kinds flow into validation: a tokenizer trains on documents only.
    pipeline(
        d.path(),
        &format!(
            "name: c\nworkdir: runs\nnodes:\n  prefs:\n    op: read\n    path: {}\n    format: preferences\n  tok:\n    op: train_tokenizer\n    input: prefs\n",
            q(&dir)
        ),
    );
    let v = kiln_in(d.path(), &["validate", "pipeline.yaml"]);
    assert_eq!(v.code, 2, "{}", v.stderr);
    assert!(
        v.stderr
            .contains("`prefs` makes a `preferences` artifact, but op `train_tokenizer` takes documents here"),
        "{}",
        v.stderr
    );
}

#[test]
fn converters_refuse_parquet_and_fail_when_nothing_converts() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("x.parquet"), b"PAR1").unwrap();
    write_lines(d.path(), "bad.jsonl", &[r#"{"prompt": "q"}"#, r#"{"prompt": "q", "chosen": "a"}"#]);
    pipeline(
        d.path(),
        "name: c\nworkdir: runs\nnodes:\n  pq:\n    op: read\n    path: x.parquet\n    format: alpaca\n  bad:\n    op: read\n    path: bad.jsonl\n    format: preferences\n",
    );
    let r = kiln_in(d.path(), &["run", "pipeline.yaml", "--quiet"]);
    assert_eq!(r.code, 1, "{r:?}");
    let all = format!("{}{}", r.stdout, r.stderr);
    assert!(
        all.contains("`format: alpaca` reads JSON arrays (.json) or JSON lines (.jsonl, .gz, .zst), not Parquet (x.parquet)"),
        "{all}"
    );
    assert!(
        all.contains("no preference pair could be read from `bad.jsonl`: 2 record(s) rejected (read: missing field `chosen` ×1, read: missing field `rejected` ×1)"),
        "{all}"
    );
}
