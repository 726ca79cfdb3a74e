//! The pipeline file: YAML schema, `${var}` substitution, `--set`
//! overrides, and validation that reports every problem at once.

pub mod diag;
pub mod executor;
pub mod ops;
pub mod reference;
mod validate;
pub mod yaml;

pub use diag::{Problem, SpecErrors};
pub use ops::{Kind, Op};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use yaml::{Loc, Y, YV};

/// A validated pipeline.
#[derive(Debug, Clone)]
pub struct Pipeline {
    /// `name:`.
    pub name: String,
    /// Where artifacts live (`workdir:`, default `runs/<name>`).
    pub workdir: PathBuf,
    /// `seed:` (default 0).
    pub seed: u64,
    /// `executor:` — where `kiln run` does the work.
    pub executor: executor::ExecutorSpec,
    /// Nodes in file order.
    pub nodes: Vec<NodeSpec>,
    /// The pipeline file as given.
    pub file: String,
    /// Its text (after nothing: locations point into this).
    pub source: Arc<String>,
}

/// One validated node.
#[derive(Debug, Clone)]
pub struct NodeSpec {
    /// The node id (its key under `nodes:`).
    pub id: String,
    /// The op with typed parameters.
    pub op: Op,
    /// The kind of artifact it makes.
    pub kind: Kind,
    /// Where the node is defined.
    pub loc: Option<Loc>,
}

impl Pipeline {
    /// The node with this id.
    pub fn node(&self, id: &str) -> Option<&NodeSpec> {
        self.nodes.iter().find(|n| n.id == id)
    }

    /// Ids of the nodes that `id` reads from.
    pub fn deps(&self, id: &str) -> Vec<String> {
        self.node(id)
            .map(|n| n.op.inputs().iter().map(|r| r.node.to_string()).collect())
            .unwrap_or_default()
    }

    /// Node ids in an order where every node follows its inputs (file order
    /// where the DAG allows).
    pub fn topo_order(&self) -> Vec<String> {
        let mut done: Vec<String> = Vec::new();
        let mut left: Vec<&NodeSpec> = self.nodes.iter().collect();
        while !left.is_empty() {
            let pos = left
                .iter()
                .position(|n| self.deps(&n.id).iter().all(|d| done.contains(d)))
                .unwrap_or(0); // validated acyclic: always found
            done.push(left.remove(pos).id.clone());
        }
        done
    }

    /// `id` and every node downstream of it.
    pub fn descendants(&self, id: &str) -> Vec<String> {
        let mut out = vec![id.to_string()];
        for n in self.topo_order() {
            if !out.contains(&n) && self.deps(&n).iter().any(|d| out.contains(d)) {
                out.push(n);
            }
        }
        out
    }

    /// `id` and every node upstream of it.
    pub fn ancestors(&self, id: &str) -> Vec<String> {
        let mut out = vec![id.to_string()];
        let mut i = 0;
        while i < out.len() {
            for d in self.deps(&out[i].clone()) {
                if !out.contains(&d) {
                    out.push(d);
                }
            }
            i += 1;
        }
        out
    }
}

/// Errors from loading a pipeline file.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum LoadError {
    /// The file could not be read.
    #[error("cannot read pipeline file {path}: {source}")]
    Read {
        /// The path.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file has problems.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Invalid(#[from] SpecErrors),
}

/// Reads, substitutes, overrides and validates a pipeline file.
///
/// `sets` are `a.b=value` strings from `--set`; values are typed like YAML
/// plain scalars (`--set seed=3` is an integer).
pub fn load(path: &Path, sets: &[String]) -> Result<Pipeline, LoadError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Read {
        path: file.clone(),
        source,
    })?;
    load_str(&file, text, sets, path.parent().unwrap_or(Path::new(".")))
}

/// As [`load`], from text already in memory (`dir` resolves `${pipeline_dir}`).
pub fn load_str(file: &str, text: String, sets: &[String], dir: &Path) -> Result<Pipeline, LoadError> {
    let source = Arc::new(text);
    let fail = |problems: Vec<Problem>| LoadError::Invalid(SpecErrors::new(file, source.clone(), problems));
    let mut root = match yaml::parse(&source) {
        Ok(y) => y,
        Err(e) => {
            return Err(fail(vec![Problem::at(
                None,
                None,
                Some(e.loc),
                format!("YAML syntax error: {}", e.message),
            )]));
        }
    };
    let mut problems = Vec::new();
    for set in sets {
        if let Err(p) = apply_set(&mut root, set) {
            problems.push(*p);
        }
    }
    let vars = collect_vars(&root, dir, &mut problems);
    substitute(&mut root, &vars, &mut problems, false);
    let pipeline = validate::validate(&root, file, source.clone(), &mut problems);
    if problems.is_empty() {
        pipeline.ok_or_else(|| fail(vec![Problem::at(None, None, None, "empty pipeline")]))
    } else {
        Err(fail(problems))
    }
}

/// Applies one `a.b.c=value` override to the tree, creating maps as needed.
fn apply_set(root: &mut Y, set: &str) -> Result<(), Box<Problem>> {
    let bad = |m: String| Problem::at(None, None, None, m).help("write --set key.path=value, e.g. --set nodes.docs.path=data/x.jsonl");
    let bad = |m: String| Box::new(bad(m));
    let (path, value) = set.split_once('=').ok_or_else(|| bad(format!("--set `{set}` has no `=`")))?;
    let segs: Vec<&str> = path.split('.').collect();
    if segs.iter().any(|s| s.is_empty()) {
        return Err(bad(format!("--set `{set}`: empty key in path `{path}`")));
    }
    let mut cur = root;
    for seg in &segs {
        if matches!(cur.v, YV::Null) {
            cur.v = YV::Map(Vec::new());
        }
        let YV::Map(entries) = &mut cur.v else {
            return Err(bad(format!("--set `{set}`: `{seg}` is inside a value that is not a mapping")));
        };
        if !entries.iter().any(|(k, _)| k.as_str() == Some(seg)) {
            entries.push((Y::detached(YV::Str(seg.to_string())), Y::detached(YV::Null)));
        }
        let idx = entries.iter().position(|(k, _)| k.as_str() == Some(seg)).unwrap_or(0);
        cur = &mut entries[idx].1;
    }
    *cur = Y::detached(yaml::type_plain_scalar(value));
    Ok(())
}

/// Reads `vars:` (each may use the ones before it) plus the built-in
/// `pipeline_dir`.
fn collect_vars(root: &Y, dir: &Path, problems: &mut Vec<Problem>) -> BTreeMap<String, Y> {
    let mut vars = BTreeMap::new();
    vars.insert("pipeline_dir".to_string(), Y::detached(YV::Str(dir.display().to_string())));
    let Some(v) = root.get("vars") else { return vars };
    match &v.v {
        YV::Map(entries) => {
            for (k, val) in entries {
                let mut val = val.clone();
                if matches!(val.v, YV::Seq(_) | YV::Map(_)) {
                    problems.push(Problem::at(
                        None,
                        Some(&format!("vars.{}", k.scalar_text())),
                        val.loc,
                        "a var must be a scalar (string, number or boolean)",
                    ));
                    continue;
                }
                substitute(&mut val, &vars, problems, true);
                vars.insert(k.scalar_text(), val);
            }
        }
        YV::Null => {}
        _ => problems.push(Problem::at(
            None,
            Some("vars"),
            v.loc,
            format!("expected a mapping of name: value, found {}", v.type_name()),
        )),
    }
    vars
}

/// Replaces `${name}` in every string (except under `vars:` at top level,
/// which [`collect_vars`] handled). A string that is exactly `${name}` takes
/// the var's type, so `n: ${count}` stays an integer.
fn substitute(y: &mut Y, vars: &BTreeMap<String, Y>, problems: &mut Vec<Problem>, inside_vars: bool) {
    match &mut y.v {
        YV::Str(s) if s.contains("${") => {
            let whole = s.strip_prefix("${").and_then(|r| r.strip_suffix('}'));
            if let Some(name) = whole.filter(|n| !n.contains(['{', '}', '$'])) {
                match vars.get(name) {
                    Some(val) => y.v = val.v.clone(),
                    None => problems.push(undefined_var(name, y.loc, vars)),
                }
                return;
            }
            let mut out = String::new();
            let mut rest = s.as_str();
            while let Some(start) = rest.find("${") {
                out.push_str(&rest[..start]);
                let Some(end) = rest[start..].find('}') else {
                    problems.push(Problem::at(None, None, y.loc, "unclosed `${` in string"));
                    return;
                };
                let name = &rest[start + 2..start + end];
                match vars.get(name) {
                    Some(val) => out.push_str(&val.scalar_text()),
                    None => problems.push(undefined_var(name, y.loc, vars)),
                }
                rest = &rest[start + end + 1..];
            }
            out.push_str(rest);
            y.v = YV::Str(out);
        }
        YV::Seq(items) => items.iter_mut().for_each(|i| substitute(i, vars, problems, inside_vars)),
        YV::Map(entries) => {
            for (k, v) in entries.iter_mut() {
                if !inside_vars && k.as_str() == Some("vars") {
                    continue;
                }
                substitute(v, vars, problems, true);
            }
        }
        _ => {}
    }
}

fn undefined_var(name: &str, loc: Option<Loc>, vars: &BTreeMap<String, Y>) -> Problem {
    let p = Problem::at(None, None, loc, format!("undefined variable `${{{name}}}`"));
    match diag::did_you_mean(name, vars.keys().map(String::as_str)) {
        Some(s) => p.help(format!(
            "did you mean `${{{s}}}`? Define vars under `vars:` or with --set vars.{name}=..."
        )),
        None => p.help(format!("define it under `vars:` or with --set vars.{name}=...")),
    }
}
