//! Whole-file validation: every problem is collected, none stops the others.

use super::diag::{Problem, did_you_mean};
use super::executor::ExecutorSpec;
use super::ops::{Kind, OP_NAMES, Op};
use super::yaml::{Y, YV};
use super::{NodeSpec, Pipeline};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

const TOP_KEYS: &[&str] = &["name", "workdir", "seed", "vars", "executor", "nodes"];

/// Validates a substituted tree; pushes problems and returns the pipeline
/// when the top level was usable.
pub(super) fn validate(root: &Y, file: &str, source: Arc<String>, problems: &mut Vec<Problem>) -> Option<Pipeline> {
    let YV::Map(entries) = &root.v else {
        problems.push(Problem::at(
            None,
            None,
            root.loc,
            format!("a pipeline is a mapping with {}, found {}", TOP_KEYS.join(", "), root.type_name()),
        ));
        return None;
    };
    for (k, _) in entries {
        let key = k.scalar_text();
        if !TOP_KEYS.contains(&key.as_str()) {
            problems.push(unknown_field(None, &key, k, TOP_KEYS.iter().copied()));
        }
    }
    let name = match root.get("name") {
        Some(Y { v: YV::Str(s), .. }) if valid_id(s) => s.clone(),
        Some(y) => {
            problems.push(Problem::at(
                None,
                Some("name"),
                y.loc,
                "must be a name of letters, digits, `_`, `-` or `.`",
            ));
            "pipeline".into()
        }
        None => {
            problems.push(Problem::at(None, Some("name"), root.loc, "missing required field `name`"));
            "pipeline".into()
        }
    };
    let workdir = match root.get("workdir") {
        None | Some(Y { v: YV::Null, .. }) => PathBuf::from("runs").join(&name),
        Some(Y { v: YV::Str(s), .. }) if !s.is_empty() => PathBuf::from(s),
        Some(y) => {
            problems.push(Problem::at(
                None,
                Some("workdir"),
                y.loc,
                format!("expected a directory path, found {}", y.type_name()),
            ));
            PathBuf::from("runs").join(&name)
        }
    };
    let seed = match root.get("seed") {
        None => 0,
        Some(Y { v: YV::Int(i), .. }) if *i >= 0 => *i as u64,
        Some(y) => {
            problems.push(Problem::at(
                None,
                Some("seed"),
                y.loc,
                format!("expected a non-negative integer, found {}", y.type_name()),
            ));
            0
        }
    };
    let mut nodes = Vec::new();
    match root.get("nodes") {
        Some(Y { v: YV::Map(entries), .. }) => {
            for (k, body) in entries {
                if let Some(n) = validate_node(k, body, problems) {
                    nodes.push(n);
                }
            }
        }
        Some(y) => problems.push(Problem::at(
            None,
            Some("nodes"),
            y.loc,
            format!("expected a mapping of node id: {{op: ..., ...}}, found {}", y.type_name()),
        )),
        None => problems.push(Problem::at(None, Some("nodes"), root.loc, "missing required field `nodes`")),
    }
    if nodes.is_empty() && problems.is_empty() {
        problems.push(Problem::at(
            None,
            Some("nodes"),
            root.get("nodes").and_then(|n| n.loc),
            "a pipeline needs at least one node",
        ));
    }
    let nodes_y = root.get("nodes");
    check_graph(&mut nodes, nodes_y, problems);
    let executor = validate_executor(root.get("executor"), &nodes, problems);
    Some(Pipeline {
        name,
        workdir,
        seed,
        executor,
        nodes,
        file: file.to_string(),
        source,
    })
}

/// `executor: slurm` (a kind with its defaults) or a mapping of settings.
fn validate_executor(y: Option<&Y>, nodes: &[NodeSpec], problems: &mut Vec<Problem>) -> ExecutorSpec {
    let Some(y) = y else { return ExecutorSpec::default() };
    let json = match &y.v {
        YV::Null => return ExecutorSpec::default(),
        YV::Str(s) => serde_json::json!({ "kind": s }),
        _ => y.to_json(),
    };
    let spec: ExecutorSpec = match serde_path_to_error::deserialize(json) {
        Ok(s) => s,
        Err(e) => {
            let path = path_segments(&e.path().to_string());
            let field = if path.is_empty() {
                "executor".to_string()
            } else {
                format!("executor.{}", field_name(&path))
            };
            let at = if matches!(y.v, YV::Str(_)) { y } else { y.at_path(&path) };
            let mut p = Problem::at(None, Some(&field), at.loc.or(y.loc), e.inner().to_string());
            if field == "executor" || field == "executor.kind" {
                p = p.help("executor kinds: inline, local, slurm");
            }
            problems.push(p);
            return ExecutorSpec::default();
        }
    };
    let shardable = |id: &str| nodes.iter().find(|n| n.id == id).map(|n| n.op.shardable());
    for (field, message) in spec.check(&shardable) {
        let at = y.find_path(&path_segments(&field)).and_then(|f| f.loc).or(y.loc);
        problems.push(Problem::at(None, Some(&format!("executor.{field}")), at, message));
    }
    spec
}

fn valid_id(s: &str) -> bool {
    !s.is_empty() && !s.starts_with('.') && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

fn unknown_field<'a>(node: Option<&str>, key: &str, at: &Y, known: impl Iterator<Item = &'a str>) -> Problem {
    let known: Vec<&str> = known.collect();
    let p = Problem::at(node, Some(key), at.loc, format!("unknown field `{key}`"));
    match did_you_mean(key, known.iter().copied()) {
        Some(s) => p.help(format!("did you mean `{s}`? Fields here: {}", known.join(", "))),
        None => p.help(format!("fields here: {}", known.join(", "))),
    }
}

fn validate_node(key: &Y, body: &Y, problems: &mut Vec<Problem>) -> Option<NodeSpec> {
    let id = key.scalar_text();
    if !valid_id(&id) {
        problems.push(Problem::at(
            Some(&id),
            None,
            key.loc,
            "node ids are letters, digits, `_`, `-` and `.` (they name directories)",
        ));
    }
    let YV::Map(fields) = &body.v else {
        problems.push(Problem::at(
            Some(&id),
            None,
            body.loc.or(key.loc),
            format!("a node is a mapping {{op: ..., ...}}, found {}", body.type_name()),
        ));
        return None;
    };
    let op_name = match body.get("op") {
        Some(Y { v: YV::Str(s), .. }) if OP_NAMES.contains(&s.as_str()) => s.clone(),
        Some(y @ Y { v: YV::Str(s), .. }) => {
            let p = Problem::at(Some(&id), Some("op"), y.loc, format!("unknown op `{s}`"));
            problems.push(match did_you_mean(s, OP_NAMES.iter().copied()) {
                Some(m) => p.help(format!("did you mean `{m}`? Ops: {}", OP_NAMES.join(", "))),
                None => p.help(format!("ops: {}", OP_NAMES.join(", "))),
            });
            return None;
        }
        Some(y) => {
            problems.push(Problem::at(
                Some(&id),
                Some("op"),
                y.loc,
                format!("expected an op name, found {}", y.type_name()),
            ));
            return None;
        }
        None => {
            problems.push(
                Problem::at(Some(&id), Some("op"), key.loc, "missing required field `op`").help(format!("ops: {}", OP_NAMES.join(", "))),
            );
            return None;
        }
    };
    let schema = Op::schema(&op_name)?;
    let props: Vec<String> = schema
        .get("properties")
        .and_then(|p| p.as_object())
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    let mut params = Vec::new();
    for (k, v) in fields {
        let name = k.scalar_text();
        if name == "op" {
            continue;
        }
        if props.contains(&name) {
            params.push((k.clone(), v.clone()));
        } else {
            problems.push(unknown_field(Some(&id), &name, k, props.iter().map(String::as_str).chain(["op"])));
        }
    }
    let params_y = Y {
        v: YV::Map(params),
        loc: body.loc,
    };
    match Op::from_json(&op_name, params_y.to_json()) {
        Ok(op) => {
            for (field, message) in op.check() {
                // A value given with --set has no location: say so rather than point elsewhere.
                let loc = match body.find_path(&path_segments(&field)) {
                    Some(y) => y.loc,
                    None => key.loc,
                };
                problems.push(Problem::at(Some(&id), Some(&field), loc, message));
            }
            // Input files are checked now, so a typo fails before hours of work.
            let input_path = match &op {
                Op::Read(r) => Some((&r.path, "path")),
                Op::Clean(c) => c.read.as_ref().map(|r| (&r.path, "read.path")),
                Op::Tokenizer(t) => Some((&t.path, "path")),
                _ => None,
            };
            if let Some((path, field)) = input_path
                && let Err(m) = crate::io::files::check_path(path)
            {
                let loc = body.find_path(&path_segments(field)).and_then(|y| y.loc);
                problems.push(Problem::at(Some(&id), Some(field), loc, m));
            }
            // Range problems are reported, but the node stays in the graph
            // so its references and kinds are checked too.
            Some(NodeSpec {
                id,
                kind: op.output_kind(None),
                op,
                loc: key.loc,
            })
        }
        Err(e) => {
            let path = path_segments(&e.path().to_string());
            let msg = e.inner().to_string();
            // serde reports a missing field at the struct itself: name it.
            let (field, at) = match msg.strip_prefix("missing field `").and_then(|r| r.strip_suffix('`')) {
                Some(f) => (f.to_string(), key),
                None => (field_name(&path), body.at_path(&path)),
            };
            let field = if field.is_empty() { None } else { Some(field.as_str()) };
            let from_set = at.loc.is_none() && !path.is_empty();
            problems.push(Problem::at(Some(&id), field, if from_set { None } else { at.loc.or(key.loc) }, msg));
            None
        }
    }
}

/// References, kinds and cycles.
fn check_graph(nodes: &mut [NodeSpec], nodes_y: Option<&Y>, problems: &mut Vec<Problem>) {
    let field_loc = |id: &str, field: &str| nodes_y.and_then(|n| n.get(id)).and_then(|b| b.get(field)).and_then(|y| y.loc);
    let ids: Vec<String> = nodes.iter().map(|n| n.id.clone()).collect();
    let all_ids: Vec<String> = match nodes_y.map(|y| &y.v) {
        Some(YV::Map(e)) => e.iter().map(|(k, _)| k.scalar_text()).collect(),
        _ => ids.clone(),
    };
    let mut broken = Vec::new();
    for n in nodes.iter() {
        for r in n.op.inputs() {
            if r.node == n.id {
                problems.push(Problem::at(
                    Some(&n.id),
                    Some(r.field),
                    field_loc(&n.id, r.field),
                    "a node cannot read its own output (cycle: a node -> itself)",
                ));
                broken.push(n.id.clone());
            } else if !all_ids.iter().any(|i| i == r.node) {
                let p = Problem::at(
                    Some(&n.id),
                    Some(r.field),
                    field_loc(&n.id, r.field),
                    format!("refers to undefined node `{}`", r.node),
                );
                problems.push(match did_you_mean(r.node, all_ids.iter().map(String::as_str)) {
                    Some(s) => p.help(format!("did you mean `{s}`?")),
                    None => p.help(format!("nodes: {}", all_ids.join(", "))),
                });
            }
        }
    }
    // Cycles: depth-first search, reporting each cycle once.
    let deps: HashMap<&str, Vec<&str>> = nodes
        .iter()
        .map(|n| {
            (
                n.id.as_str(),
                n.op.inputs()
                    .iter()
                    .map(|r| r.node)
                    .filter(|d| ids.iter().any(|i| i == d))
                    .collect(),
            )
        })
        .collect();
    let mut state: HashMap<&str, u8> = HashMap::new();
    let mut reported: Vec<Vec<String>> = Vec::new();
    fn dfs<'a>(
        n: &'a str,
        deps: &HashMap<&'a str, Vec<&'a str>>,
        state: &mut HashMap<&'a str, u8>,
        stack: &mut Vec<&'a str>,
        cycles: &mut Vec<Vec<String>>,
    ) {
        state.insert(n, 1);
        stack.push(n);
        for &d in deps.get(n).map(Vec::as_slice).unwrap_or(&[]) {
            if d == n {
                continue;
            }
            match state.get(d).copied().unwrap_or(0) {
                0 => dfs(d, deps, state, stack, cycles),
                1 => {
                    let start = stack.iter().position(|s| *s == d).unwrap_or(0);
                    let mut cyc: Vec<String> = stack[start..].iter().map(|s| s.to_string()).collect();
                    let mut key = cyc.clone();
                    key.sort();
                    if !cycles.iter().any(|c| {
                        let mut k = c.clone();
                        k.sort();
                        k == key
                    }) {
                        cyc.reverse();
                        cycles.push(cyc);
                    }
                }
                _ => {}
            }
        }
        stack.pop();
        state.insert(n, 2);
    }
    for id in &ids {
        if state.get(id.as_str()).copied().unwrap_or(0) == 0 {
            dfs(id, &deps, &mut state, &mut Vec::new(), &mut reported);
        }
    }
    for cyc in &reported {
        let first = &cyc[0];
        let mut path = cyc.clone();
        path.push(first.clone());
        let field = nodes
            .iter()
            .find(|n| &n.id == first)
            .and_then(|n| n.op.inputs().first().map(|r| r.field))
            .unwrap_or("input");
        problems.push(
            Problem::at(
                Some(first),
                Some(field),
                field_loc(first, field),
                format!("cycle: {}", path.join(" -> ")),
            )
            .help("a pipeline is a DAG: break the cycle by pointing one of these nodes elsewhere"),
        );
        broken.extend(cyc.iter().cloned());
    }
    if !reported.is_empty() || !broken.is_empty() {
        return;
    }
    // Kinds, in dependency order so pass-through kinds propagate.
    let mut kinds: HashMap<String, Kind> = HashMap::new();
    let mut order: Vec<usize> = Vec::new();
    while order.len() < nodes.len() {
        let before = order.len();
        for (i, n) in nodes.iter().enumerate() {
            if !order.contains(&i)
                && n.op
                    .inputs()
                    .iter()
                    .all(|r| kinds.contains_key(r.node) || !ids.iter().any(|x| x == r.node))
            {
                let first = n.op.inputs().first().and_then(|r| kinds.get(r.node).copied());
                kinds.insert(n.id.clone(), n.op.output_kind(first));
                order.push(i);
            }
        }
        if order.len() == before {
            break;
        }
    }
    for n in nodes.iter_mut() {
        if let Some(k) = kinds.get(&n.id) {
            n.kind = *k;
        }
        for r in n.op.inputs() {
            if let Some(k) = kinds.get(r.node)
                && !r.accepts.contains(k)
            {
                let want: Vec<&str> = r.accepts.iter().map(|k| k.name()).collect();
                problems.push(Problem::at(
                    Some(&n.id),
                    Some(r.field),
                    field_loc(&n.id, r.field),
                    format!(
                        "`{}` makes a `{}` artifact, but op `{}` takes {} here",
                        r.node,
                        k.name(),
                        n.op.name(),
                        want.join(" or ")
                    ),
                ));
            }
        }
    }
}

/// `steps[2].expr.sql` → `["steps", "2", "expr", "sql"]`, for locating a
/// field in the YAML tree.
fn path_segments(field: &str) -> Vec<String> {
    field
        .split(['.', '['])
        .map(|s| s.trim_end_matches(']').to_string())
        .filter(|s| !s.is_empty() && s != "?")
        .collect()
}

/// Segments back to a field name: `steps[2].expr.sql`.
fn field_name(segs: &[String]) -> String {
    let mut out = String::new();
    for s in segs {
        if s.parse::<usize>().is_ok() {
            out.push_str(&format!("[{s}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(s);
        }
    }
    out
}
