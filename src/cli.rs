//! Output of the look-at-a-pipeline commands: graph, status, inspect.

use kiln::exec::node::{bucket_progress, clusters, done_parts, done_second_parts, existing_part_sets};
use kiln::exec::plan::{State, plan};
use kiln::exec::report::human_bytes;
use kiln::exec::store;
use kiln::io::table::{parquet_batches, parquet_rows};
use kiln::spec::Pipeline;
use std::path::Path;

/// Parses `i/N`.
pub fn parse_shard(s: &str, flag: &str) -> Result<(u32, u32), String> {
    let bad = || format!("{flag} `{s}`: want i/N with 0 <= i < N, e.g. 0/3");
    let (i, n) = s.split_once('/').ok_or_else(bad)?;
    let (i, n): (u32, u32) = (i.trim().parse().map_err(|_| bad())?, n.trim().parse().map_err(|_| bad())?);
    if n == 0 || i >= n {
        return Err(bad());
    }
    Ok((i, n))
}

fn children(p: &Pipeline, id: &str) -> Vec<String> {
    p.nodes
        .iter()
        .filter(|n| p.deps(&n.id).iter().any(|d| d == id))
        .map(|n| n.id.clone())
        .collect()
}

fn label(p: &Pipeline, id: &str) -> String {
    match p.node(id) {
        Some(n) => format!("{id} ({} → {})", n.op.name(), n.kind.name()),
        None => id.to_string(),
    }
}

/// The DAG as an indented tree from each source node; a node with several
/// inputs appears under each, marked after its first appearance.
pub fn graph_text(p: &Pipeline) -> String {
    let mut out = format!("{}\n", p.name);
    let mut seen = Vec::new();
    let roots: Vec<String> = p.topo_order().into_iter().filter(|id| p.deps(id).is_empty()).collect();
    fn walk(p: &Pipeline, id: &str, prefix: &str, last: bool, seen: &mut Vec<String>, out: &mut String) {
        let branch = if last { "└─ " } else { "├─ " };
        let again = seen.iter().any(|s| s == id);
        out.push_str(&format!(
            "{prefix}{branch}{}{}\n",
            label(p, id),
            if again { " (see above)" } else { "" }
        ));
        if again {
            return;
        }
        seen.push(id.to_string());
        let kids = children(p, id);
        let next = format!("{prefix}{}", if last { "   " } else { "│  " });
        for (i, k) in kids.iter().enumerate() {
            walk(p, k, &next, i + 1 == kids.len(), seen, out);
        }
    }
    for (i, r) in roots.iter().enumerate() {
        walk(p, r, "", i + 1 == roots.len(), &mut seen, &mut out);
    }
    out
}

/// Graphviz.
pub fn graph_dot(p: &Pipeline) -> String {
    let mut out = format!("digraph \"{}\" {{\n  rankdir=LR;\n", p.name);
    for n in &p.nodes {
        out.push_str(&format!(
            "  \"{}\" [label=\"{}\\n{} → {}\"];\n",
            n.id,
            n.id,
            n.op.name(),
            n.kind.name()
        ));
    }
    for n in &p.nodes {
        for r in n.op.inputs() {
            out.push_str(&format!("  \"{}\" -> \"{}\" [label=\"{}\"];\n", r.node, n.id, r.field));
        }
    }
    out.push_str("}\n");
    out
}

/// Mermaid.
pub fn graph_mermaid(p: &Pipeline) -> String {
    let mut out = String::from("graph LR\n");
    let key = |id: &str| id.replace(['-', '.'], "_");
    for n in &p.nodes {
        out.push_str(&format!("  {}[\"{}: {} → {}\"]\n", key(&n.id), n.id, n.op.name(), n.kind.name()));
    }
    for n in &p.nodes {
        for r in n.op.inputs() {
            out.push_str(&format!("  {} -->|{}| {}\n", key(r.node), r.field, key(&n.id)));
        }
    }
    out
}

/// Each node's state, and why when stale.
pub fn status_table(p: &Pipeline) -> String {
    let mut out = format!("{:<20} {:<8} {:<11} {:<8} {}\n", "node", "op", "kind", "state", "detail");
    for pl in plan(p) {
        let Some(n) = p.node(&pl.id) else { continue };
        let detail = match &pl.state {
            State::Done => store::load(&pl.dir)
                .map(|a| {
                    format!(
                        "{} rows, {} rejected, {}",
                        a.manifest.rows,
                        a.manifest.rejected_rows,
                        human_bytes(a.manifest.bytes)
                    )
                })
                .unwrap_or_default(),
            State::Stale(why) => why.join("; "),
            State::Missing => "not built".into(),
        };
        // Shards finished so far, for a node being built by shard jobs.
        let detail = match &pl.state {
            State::Done => detail,
            _ => {
                let sets = existing_part_sets(&p.workdir, &pl.id, &pl.fingerprint);
                let progress: Vec<String> = sets
                    .iter()
                    .map(|&n| {
                        let (w, fp) = (&p.workdir, &pl.fingerprint);
                        match clusters(w, &pl.id, fp, n) {
                            Some(_) => format!("clustered; {}/{n} round-2 shards done", done_second_parts(w, &pl.id, fp, n).len()),
                            None => {
                                let shards = format!("{}/{n} shards done", done_parts(w, &pl.id, fp, n).len());
                                match bucket_progress(w, &pl.id, fp, n) {
                                    Some((done, groups)) => format!("{shards}, {done}/{groups} bucket groups done"),
                                    None => shards,
                                }
                            }
                        }
                    })
                    .collect();
                if progress.is_empty() {
                    detail
                } else {
                    format!("{}; {detail}", progress.join(", "))
                }
            }
        };
        out.push_str(&format!(
            "{:<20} {:<8} {:<11} {:<8} {}\n",
            pl.id,
            n.op.name(),
            n.kind.name(),
            pl.state.word(),
            detail
        ));
    }
    // Jobs of the last Slurm submission that are still in the queue.
    if let Ok(live) = kiln::exec::dist::slurm::still_active(&p.workdir)
        && !live.is_empty()
    {
        out.push_str(&format!("slurm: jobs {} still queued or running\n", live.join(", ")));
    }
    out
}

fn show_rows(paths: &[std::path::PathBuf], rows: usize) -> Result<String, String> {
    let mut batches = Vec::new();
    let mut left = rows;
    for path in paths {
        if left == 0 {
            break;
        }
        // Packed artifacts are Arrow IPC files; every other table is Parquet.
        let file: Box<dyn Iterator<Item = Result<arrow::record_batch::RecordBatch, String>>> =
            if path.extension().is_some_and(|e| e == "arrow") {
                Box::new(kiln::pack::rows::read_file(path)?)
            } else {
                Box::new(parquet_batches(path)?)
            };
        for b in file {
            let b = b?;
            let take = left.min(b.num_rows());
            batches.push(shorten(&b.slice(0, take)));
            left -= take;
            if left == 0 {
                break;
            }
        }
    }
    if batches.is_empty() {
        return Ok("(no rows)\n".into());
    }
    arrow::util::pretty::pretty_format_batches(&batches)
        .map(|t| format!("{t}\n"))
        .map_err(|e| e.to_string())
}

/// `s` on one line, cut to `n` characters.
fn cut(s: &str, n: usize) -> String {
    let v = s.replace('\n', "⏎");
    match v.char_indices().nth(n) {
        Some((at, _)) => format!("{}…", &v[..at]),
        None => v,
    }
}

/// Long strings cut to 60 characters so a table fits a terminal; lists and
/// structs (chat messages, token ids) shown as short text: a conversation
/// as `(n) role: start of content | role: …`.
fn shorten(b: &arrow::record_batch::RecordBatch) -> arrow::record_batch::RecordBatch {
    use arrow::array::{Array, ArrayRef, AsArray, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use arrow::util::display::{ArrayFormatter, FormatOptions};
    let mut fields = Vec::new();
    let cols: Vec<ArrayRef> = b
        .schema()
        .fields()
        .iter()
        .zip(b.columns())
        .map(|(f, c)| match c.data_type() {
            DataType::Utf8 => {
                let s = c.as_string::<i32>();
                let short: StringArray = (0..s.len()).map(|i| s.is_valid(i).then(|| cut(s.value(i), 60))).collect();
                fields.push(f.as_ref().clone());
                std::sync::Arc::new(short) as ArrayRef
            }
            DataType::List(item) if matches!(item.data_type(), DataType::Struct(fs) if fs.len() == 2) => {
                let l = c.as_list::<i32>();
                let short: StringArray = (0..l.len())
                    .map(|i| {
                        l.is_valid(i).then(|| {
                            let m = l.value(i);
                            let m = m.as_struct();
                            let (role, content) = (m.column(0), m.column(1));
                            let text = |a: &ArrayRef, j: usize| match a.data_type() {
                                DataType::Utf8 => a.as_string::<i32>().value(j).to_string(),
                                _ => String::new(),
                            };
                            let turns: Vec<String> = (0..m.len())
                                .map(|j| format!("{}: {}", text(role, j), cut(&text(content, j), 24)))
                                .collect();
                            cut(&format!("({}) {}", m.len(), turns.join(" | ")), 80)
                        })
                    })
                    .collect();
                fields.push(Field::new(f.name(), DataType::Utf8, true));
                std::sync::Arc::new(short) as ArrayRef
            }
            DataType::List(_) | DataType::LargeList(_) | DataType::FixedSizeList(..) | DataType::Struct(_) => {
                let fmt = ArrayFormatter::try_new(c.as_ref(), &FormatOptions::default()).ok();
                let short: StringArray = (0..c.len())
                    .map(|i| {
                        c.is_valid(i)
                            .then(|| fmt.as_ref().map(|f| cut(&f.value(i).to_string(), 60)).unwrap_or_default())
                    })
                    .collect();
                fields.push(Field::new(f.name(), DataType::Utf8, true));
                std::sync::Arc::new(short) as ArrayRef
            }
            _ => {
                fields.push(f.as_ref().clone());
                c.clone()
            }
        })
        .collect();
    arrow::record_batch::RecordBatch::try_new(std::sync::Arc::new(Schema::new(fields)), cols).unwrap_or_else(|_| b.clone())
}

/// An artifact directory or a single Parquet file; `json` prints the whole
/// manifest.
pub fn inspect(path: &Path, rows: usize, json: bool) -> Result<String, String> {
    if path.is_file() {
        let n = parquet_rows(path)?;
        let mut out = format!("{}: {n} rows\n", path.display());
        out.push_str(&show_rows(&[path.to_path_buf()], rows)?);
        return Ok(out);
    }
    let a = store::load(path).ok_or_else(|| {
        format!(
            "{} is not a finished artifact (no readable manifest.json); point at runs/<pipeline>/<node> or a .parquet file",
            path.display()
        )
    })?;
    if json {
        return std::fs::read_to_string(path.join("manifest.json")).map_err(|e| e.to_string());
    }
    let m = &a.manifest;
    let mut out = String::new();
    out.push_str(&format!("artifact   {}\n", path.display()));
    out.push_str(&format!("node       {} (op {}, kind {})\n", m.node, m.op, m.kind.name()));
    out.push_str(&format!("fingerprint {}\n", m.fingerprint));
    out.push_str(&format!("rows       {} ({} rejected)\n", m.rows, m.rejected_rows));
    out.push_str(&format!(
        "files      {} data, {} rejected, {}\n",
        m.files.len(),
        m.rejected_files.len(),
        human_bytes(m.bytes)
    ));
    if let Some(h) = &m.content_hash {
        out.push_str(&format!("content    {h}\n"));
    }
    out.push_str(&format!(
        "wall time  {:.3}s, peak RSS {}\n",
        m.wall_time_s,
        m.peak_rss_bytes.map(human_bytes).unwrap_or_else(|| "-".into())
    ));
    out.push_str(&format!("params     {}\n", m.params));
    if !m.stats.is_null() {
        out.push_str(&format!("stats      {}\n", m.stats));
    }
    if !m.extra.is_null() {
        out.push_str(&format!("result     {}\n", m.extra));
    }
    if !m.schema.is_empty() {
        out.push_str("schema\n");
        for c in &m.schema {
            out.push_str(&format!(
                "  {:<16} {}{}\n",
                c.name,
                c.r#type,
                if c.nullable { " (nullable)" } else { "" }
            ));
        }
    }
    if !m.files.is_empty() && rows > 0 {
        out.push_str(&format!("first {} rows\n", rows.min(m.rows as usize)));
        out.push_str(&show_rows(&a.data_paths(), rows)?);
    }
    if !m.rejected_files.is_empty() && rows > 0 {
        let paths: Vec<_> = m.rejected_files.iter().map(|f| a.dir.join(&f.name)).collect();
        out.push_str("first rejected\n");
        out.push_str(&show_rows(&paths, rows.min(3))?);
    }
    Ok(out)
}
