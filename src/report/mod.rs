//! `runs/<name>/report.html`: one self-contained page about a run — the DAG
//! with each node's status and time, the cleaning funnel, tokenizer and
//! packing stats, training curves, evaluations and sample answers.
//!
//! Everything is read back from the artifacts on disk (manifests,
//! `metrics.jsonl`, `eval.json`, `rejected/`), so the page can be rebuilt
//! at any time (`kiln report FILE`). A section whose data is absent is left
//! out; a file that cannot be read is noted on the page, never an error.
//! Plots are inline SVG drawn by [`svg`]; there are no external fonts,
//! scripts or styles, and the page displays without its one small script
//! (a hook that records JavaScript errors for the browser test).

mod dag;
mod eval;
mod funnel;
pub mod svg;
mod train;

use crate::exec::plan::{State, plan};
use crate::exec::run::{Outcome, RunSummary};
use crate::exec::store::{self, Artifact};
use crate::spec::Pipeline;
use std::path::PathBuf;

/// How a node stands in the report.
#[derive(Debug, Clone, PartialEq)]
pub enum Status {
    /// Built by this run.
    Ran,
    /// Reused from the cache by this run.
    Cached,
    /// Built earlier, still current (report made without a run).
    Done,
    /// Failed in this run, with the message.
    Failed(String),
    /// Not started because an upstream node failed or the run stopped.
    Skipped,
    /// Stopped by Ctrl-C.
    Cancelled,
    /// Built earlier, but the pipeline changed since (why).
    Stale(Vec<String>),
    /// Never built.
    Missing,
    /// Anything else the run reported (a shard part, a dry run).
    Other(String),
}

impl Status {
    /// The word shown in the DAG.
    pub fn word(&self) -> String {
        match self {
            Status::Ran => "ran".into(),
            Status::Cached => "cached".into(),
            Status::Done => "done".into(),
            Status::Failed(_) => "failed".into(),
            Status::Skipped => "skipped".into(),
            Status::Cancelled => "cancelled".into(),
            Status::Stale(_) => "stale".into(),
            Status::Missing => "not built".into(),
            Status::Other(w) => w.clone(),
        }
    }

    /// CSS class (its colour).
    fn class(&self) -> &'static str {
        match self {
            Status::Ran | Status::Cached | Status::Done => "ok",
            Status::Failed(_) | Status::Cancelled => "bad",
            _ => "idle",
        }
    }
}

/// One node as the report sees it.
#[derive(Debug, Clone)]
pub struct NodeView {
    /// Node id.
    pub id: String,
    /// Op name.
    pub op: String,
    /// Artifact kind it makes.
    pub kind: String,
    /// Ids of its inputs.
    pub deps: Vec<String>,
    /// Status.
    pub status: Status,
    /// Seconds it took (this run's time, or the manifest's when cached).
    pub secs: Option<f64>,
    /// Its finished artifact, only when current (never a stale one).
    pub artifact: Option<Artifact>,
}

/// The nodes in dependency order, with statuses from `summary` when the
/// report follows a run and from the disk otherwise.
pub fn collect(p: &Pipeline, summary: Option<&RunSummary>) -> Vec<NodeView> {
    let plans = plan(p);
    plans
        .iter()
        .filter_map(|pl| {
            let nd = p.node(&pl.id)?;
            let artifact = (pl.state == State::Done).then(|| store::load(&pl.dir)).flatten();
            let from_run = summary.and_then(|s| s.nodes.iter().find(|n| n.id == pl.id));
            let status = match from_run.map(|r| &r.outcome) {
                Some(Outcome::Ran) => Status::Ran,
                Some(Outcome::Cached) => Status::Cached,
                Some(Outcome::Failed(m)) => Status::Failed(m.clone()),
                Some(Outcome::Skipped) => Status::Skipped,
                Some(Outcome::Cancelled) => Status::Cancelled,
                Some(Outcome::Part(i, n)) => Status::Other(format!("part {i}/{n}")),
                Some(Outcome::Clustered(n)) => Status::Other(format!("{n} parts clustered")),
                Some(Outcome::Bands(g, n)) => Status::Other(format!("bucket group {g}/{n}")),
                Some(Outcome::WouldRun(_)) => Status::Other("would run".into()),
                Some(Outcome::Submitted(jobs)) => Status::Other(format!("submitted to Slurm: {jobs}")),
                None => match &pl.state {
                    State::Done => Status::Done,
                    State::Stale(w) => Status::Stale(w.clone()),
                    State::Missing => Status::Missing,
                },
            };
            let secs = match from_run {
                Some(r) if r.outcome != Outcome::Cached => Some(r.secs),
                _ => artifact.as_ref().map(|a| a.manifest.wall_time_s),
            };
            Some(NodeView {
                id: pl.id.clone(),
                op: nd.op.name().to_string(),
                kind: nd.kind.name().to_string(),
                deps: p.deps(&pl.id),
                status,
                secs,
                artifact,
            })
        })
        .collect()
}

/// The whole page.
pub fn render(p: &Pipeline, summary: Option<&RunSummary>) -> String {
    let nodes = collect(p, summary);
    let sections: Vec<(&str, &str, Option<String>)> = vec![
        ("dag", "Pipeline", Some(dag::section(&nodes))),
        ("funnel", "Cleaning funnel", funnel::section(&nodes)),
        ("data", "Tokenizer and data", train::data_section(&nodes)),
        ("training", "Training", train::section(&nodes)),
        ("eval", "Evaluation", eval::table_section(&nodes)),
        ("samples", "Sample answers", eval::samples_section(&nodes)),
    ];
    let mut nav = String::new();
    let mut body = String::new();
    for (id, title, html) in &sections {
        let Some(html) = html else { continue };
        nav.push_str(&format!(r##"<a href="#{id}">{title}</a> "##));
        body.push_str(&format!(r#"<section id="{id}"><h2>{title}</h2>{html}</section>"#));
    }
    let generated = utc(store::unix_now());
    format!(
        r#"<!DOCTYPE html>
<html lang="en" data-errors="">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>kiln report: {name}</title>
<script>{HOOK}</script>
<style>{CSS}</style>
</head>
<body>
<header><h1>kiln report: {name}</h1>
<p class="muted">pipeline <code>{file}</code> · workdir <code>{workdir}</code> · {n} nodes · generated {generated} · kiln {version}</p>
<nav>{nav}</nav></header>
{body}
</body>
</html>
"#,
        name = esc(&p.name),
        file = esc(&p.file),
        workdir = esc(&p.workdir.display().to_string()),
        n = nodes.len(),
        version = env!("CARGO_PKG_VERSION"),
    )
}

/// Writes `<workdir>/report.html` atomically (a temporary file renamed into
/// place, so a reader never sees half a page) and returns its path.
pub fn write(p: &Pipeline, summary: Option<&RunSummary>) -> Result<PathBuf, String> {
    std::fs::create_dir_all(&p.workdir).map_err(|e| format!("cannot create workdir {}: {e}", p.workdir.display()))?;
    let html = render(p, summary);
    let dest = p.workdir.join("report.html");
    let tmp = p.workdir.join(format!(".report.html.{}.tmp", std::process::id()));
    std::fs::write(&tmp, html).map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, &dest).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        format!("cannot move the report into {}: {e}", dest.display())
    })?;
    Ok(dest)
}

/// Records uncaught script errors in `<html data-errors>` and the number of
/// SVG plots in `data-svgs` once loaded, for the headless-browser test.
const HOOK: &str = "(function(){var errs=[];var root=document.documentElement;\
window.onerror=function(m,s,l){errs.push(String(m)+' at '+l);root.setAttribute('data-errors',errs.join(' | '));};\
window.addEventListener('load',function(){root.setAttribute('data-svgs',String(document.querySelectorAll('svg').length));});})();";

const CSS: &str = "body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:0 auto;max-width:1200px;padding:0 16px 40px;color:#222}\
h1{font-size:22px;margin:18px 0 4px}h2{font-size:18px;border-bottom:1px solid #ddd;padding-bottom:4px;margin-top:32px}h3{font-size:15px;margin:18px 0 6px}\
nav a{margin-right:12px}code{font:12px ui-monospace,monospace;background:#f4f4f4;padding:0 3px}\
table{border-collapse:collapse;margin:6px 0 12px}th,td{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}\
th{background:#f6f6f6}td.num{text-align:right;font-variant-numeric:tabular-nums}.muted{color:#777}\
.ok{color:#2e7d32}.bad{color:#c62828;font-weight:600}.idle{color:#8a6d00}\
.charts{display:flex;flex-wrap:wrap;gap:8px}.chart{border:1px solid #eee;background:#fff}\
svg text{font:11px system-ui,sans-serif;fill:#333}svg .ct{font-size:13px;font-weight:600}svg .muted{fill:#999}\
svg .grid{stroke:#eee}svg .axis{stroke:#999}pre.doc{white-space:pre-wrap;max-height:9em;overflow:auto;background:#fafafa;border:1px solid #eee;padding:4px;margin:2px 0;font:12px ui-monospace,monospace}\
details{margin:4px 0 10px}td.ans{max-width:360px;white-space:pre-wrap}";

/// HTML-escapes text for element content and quoted attributes.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// `s` cut to `n` characters, with `…` when cut.
pub(crate) fn cut(s: &str, n: usize) -> String {
    match s.char_indices().nth(n) {
        Some((at, _)) => format!("{}…", &s[..at]),
        None => s.to_string(),
    }
}

/// A JSON number or string as table text.
pub(crate) fn show(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Number(n) => n.as_f64().map(svg::fmt_num).unwrap_or_else(|| n.to_string()),
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => "–".into(),
        other => other.to_string(),
    }
}

/// Unix seconds as `YYYY-MM-DD HH:MM UTC` (days to civil date: Howard
/// Hinnant, "chrono-Compatible Low-Level Date Algorithms").
fn utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02} UTC", rem / 3600, rem % 3600 / 60)
}

/// Test helper: a node whose current artifact lives in `dir` (files
/// written by the caller), with a manifest made from these fields.
#[cfg(test)]
pub(crate) fn fake_node(dir: &std::path::Path, id: &str, op: &str, kind: &str, deps: &[&str], stats: serde_json::Value) -> NodeView {
    let m = serde_json::json!({"format_version": 1, "kind": kind, "node": id, "op": op, "fingerprint": "f", "params": {},
        "inputs": {}, "seed": null, "sources": null, "schema": [], "rows": 0, "rejected_rows": 0, "bytes": 0, "files": [],
        "rejected_files": [], "content_hash": null, "rows_hash": {"lanes": [0, 0], "rows": 0}, "wall_time_s": 2.0,
        "peak_rss_bytes": null, "stats": stats, "extra": null, "shard": null, "parts": 1, "completed_unix": 0, "kiln_version": "t"});
    let manifest = serde_json::from_value(m).expect("a valid manifest"); // ok: test helper, fixed JSON
    NodeView {
        id: id.into(),
        op: op.into(),
        kind: kind.into(),
        deps: deps.iter().map(|d| d.to_string()).collect(),
        status: Status::Ran,
        secs: Some(2.0),
        artifact: Some(Artifact {
            dir: dir.to_path_buf(),
            manifest,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            esc(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }

    #[test]
    fn cuts_on_char_boundaries() {
        assert_eq!(cut("héllo wörld", 5), "héllo…");
        assert_eq!(cut("short", 10), "short");
    }

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00 UTC");
        assert_eq!(utc(1_700_000_000), "2023-11-14 22:13 UTC");
    }
}
