//! The README's first command, shrunk: `pipelines/quickstart.yaml` on the
//! bundled world with a few steps per training node runs end to end (crawl
//! to PPO and the held-out evaluation), writes a report with every section,
//! and is all cached on a second run. The full-size run is timed by
//! `benches/quickstart.sh`.

mod common;
use common::kiln_in;
use serde_json::Value;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

#[test]
fn the_quickstart_runs_end_to_end_and_then_is_cached() {
    let d = tempfile::tempdir().unwrap();
    let yaml = std::fs::read_to_string(format!("{ROOT}/pipelines/quickstart.yaml")).unwrap();
    // A smaller model too: this test checks the DAG end to end, not what
    // the 6 × 192 model learns (benches/quickstart.sh times the real run),
    // and a debug build on a CI machine without AMX is slow at full size.
    let full = "model: {n_layer: 6, n_head: 6, n_embd: 192}";
    assert!(yaml.contains(full), "quickstart.yaml's model line changed; update this test");
    let yaml = yaml.replace(full, "model: {n_layer: 2, n_head: 2, n_embd: 64}");
    std::fs::write(d.path().join("q.yaml"), yaml).unwrap();
    let world = format!("vars.world={ROOT}/data/world");
    let args = [
        "run",
        "q.yaml",
        "--quiet",
        "--set",
        &world,
        "--set",
        "vars.pretrain_steps=3",
        "--set",
        "vars.sft_steps=3",
        "--set",
        "vars.rm_steps=3",
        "--set",
        "vars.ppo_steps=2",
        "--set",
        "vars.eval_limit=20",
    ];
    let first = kiln_in(d.path(), &args);
    first.ok();
    let wd = d.path().join("runs/quickstart");
    for node in ["raw", "clean", "dedup", "bpe", "lm", "sft", "rm", "ppo", "eval_sft", "eval_ppo"] {
        assert!(
            first
                .stdout
                .lines()
                .any(|l| l.starts_with(&format!("{node} ")) && l.contains(" ran ")),
            "{node} did not run:\n{}",
            first.stdout
        );
        assert!(wd.join(node).join("manifest.json").is_file(), "{node}");
    }
    // The crawl's spam, foreign pages and duplicates are gone, with reasons.
    let dedup: Value = serde_json::from_slice(&std::fs::read(wd.join("dedup/manifest.json")).unwrap()).unwrap();
    assert!(dedup["rejected_rows"].as_u64().unwrap() > 0);
    for e in ["eval_sft", "eval_ppo"] {
        let v: Value = serde_json::from_slice(&std::fs::read(wd.join(e).join("eval.json")).unwrap()).unwrap();
        assert_eq!(v["n"], 20, "{e}: every prompt up to the limit answered");
        assert!(v["accuracy"].as_f64().is_some() && v["mean_score"].as_f64().is_some(), "{e}");
    }
    let html = std::fs::read_to_string(wd.join("report.html")).unwrap();
    for needle in [
        "objective/scores",
        "objective/kl",
        "val_accuracy",
        "eval_ppo",
        "eval_sft",
        "gopher_quality",
        "val_loss",
    ] {
        assert!(html.contains(needle), "the report lacks {needle}");
    }
    let second = kiln_in(d.path(), &args);
    second.ok();
    assert!(second.stdout.lines().skip(1).all(|l| l.contains("cached")), "{}", second.stdout);
}
