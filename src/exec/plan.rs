//! Fingerprints and node states: what is done, what is stale and why.

use super::store::{self, Artifact, FORMAT_VERSION, InputInfo};
use crate::spec::{NodeSpec, Pipeline};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Everything that goes into a node's fingerprint.
#[derive(Debug, Clone)]
pub struct Planned {
    /// Node id.
    pub id: String,
    /// The fingerprint.
    pub fingerprint: String,
    /// Canonical params.
    pub params: Value,
    /// Input field → node and fingerprint.
    pub inputs: BTreeMap<String, InputInfo>,
    /// The seed, if the op uses it.
    pub seed: Option<u64>,
    /// Fingerprinted facts about external inputs.
    pub sources: Value,
    /// Where its artifact lives.
    pub dir: PathBuf,
    /// Its state now.
    pub state: State,
}

/// Whether a node's artifact is usable.
#[derive(Debug, Clone, PartialEq)]
pub enum State {
    /// A finished artifact with the same fingerprint exists.
    Done,
    /// A finished artifact exists but was made differently.
    Stale(Vec<String>),
    /// No finished artifact.
    Missing,
}

impl State {
    /// `done`, `stale` or `missing`.
    pub fn word(&self) -> &'static str {
        match self {
            State::Done => "done",
            State::Stale(_) => "stale",
            State::Missing => "missing",
        }
    }
}

/// Facts about external inputs that should trigger a re-run when they change:
/// for `read` (and `clean` with `read:`), every matched file's relative
/// name, size and modification time.
fn sources_of(node: &NodeSpec) -> Value {
    match node.op.read_source() {
        Some(r) => match crate::io::files::expand(&r.path) {
            Ok(files) => Value::Array(
                files
                    .iter()
                    .map(|f| {
                        let mtime = std::fs::metadata(&f.path)
                            .and_then(|m| m.modified())
                            .ok()
                            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                            .map(|d| d.as_nanos() as u64)
                            .unwrap_or(0);
                        json!([f.rel, f.size, mtime])
                    })
                    .collect(),
            ),
            Err(e) => json!({ "error": e }),
        },
        None => Value::Null,
    }
}

/// Plans every node: fingerprints in dependency order, states from disk.
pub fn plan(p: &Pipeline) -> Vec<Planned> {
    let mut out: Vec<Planned> = Vec::new();
    for id in p.topo_order() {
        let Some(node) = p.node(&id) else { continue };
        let params = node.op.params_json();
        let inputs: BTreeMap<String, InputInfo> = node
            .op
            .inputs()
            .iter()
            .map(|r| {
                let fp = out
                    .iter()
                    .find(|q| q.id == r.node)
                    .map(|q| q.fingerprint.clone())
                    .unwrap_or_default();
                (
                    r.field.to_string(),
                    InputInfo {
                        node: r.node.to_string(),
                        fingerprint: fp,
                    },
                )
            })
            .collect();
        let seed = node.op.uses_seed().then_some(p.seed);
        let sources = sources_of(node);
        let fingerprint = fingerprint(node.op.name(), &params, &inputs, seed, &sources);
        let dir = p.workdir.join(&id);
        let mut planned = Planned {
            id: id.clone(),
            fingerprint,
            params,
            inputs,
            seed,
            sources,
            dir,
            state: State::Missing,
        };
        planned.state = state_of(&planned, node, store::load(&planned.dir).as_ref());
        out.push(planned);
    }
    out
}

/// The fingerprint hash.
pub fn fingerprint(op: &str, params: &Value, inputs: &BTreeMap<String, InputInfo>, seed: Option<u64>, sources: &Value) -> String {
    let inputs: BTreeMap<&String, &String> = inputs.iter().map(|(k, v)| (k, &v.fingerprint)).collect();
    let canon = json!({ "format": FORMAT_VERSION, "op": op, "params": params, "inputs": inputs, "seed": seed, "sources": sources });
    blake3::hash(canon.to_string().as_bytes()).to_hex()[..32].to_string()
}

fn state_of(p: &Planned, node: &NodeSpec, art: Option<&Artifact>) -> State {
    let Some(a) = art else { return State::Missing };
    let m = &a.manifest;
    if m.fingerprint == p.fingerprint {
        if let Some(path) = m.extra.get("export").and_then(Value::as_str) {
            let size = std::fs::metadata(path).map(|m| m.len()).ok();
            if size != m.extra.get("export_bytes").and_then(Value::as_u64) {
                return State::Stale(vec![format!("the exported file {path} is missing or was changed")]);
            }
        }
        return State::Done;
    }
    let mut why = Vec::new();
    if m.format_version != FORMAT_VERSION {
        why.push(format!("artifact format {} → {}", m.format_version, FORMAT_VERSION));
    }
    if m.op != node.op.name() {
        why.push(format!("op {} → {}", m.op, node.op.name()));
    } else if let (Value::Object(old), Value::Object(new)) = (&m.params, &p.params) {
        for (k, v) in new {
            let before = old.get(k).unwrap_or(&Value::Null);
            if before != v {
                why.push(format!("param `{k}`: {before} → {v}"));
            }
        }
    }
    for (field, info) in &p.inputs {
        match m.inputs.get(field) {
            Some(old) if old.node != info.node => why.push(format!("input `{field}`: node {} → {}", old.node, info.node)),
            Some(old) if old.fingerprint != info.fingerprint => why.push(format!("input `{field}` (node `{}`) changed", info.node)),
            None => why.push(format!("new input `{field}`")),
            _ => {}
        }
    }
    if m.seed != p.seed {
        why.push(format!("seed {:?} → {:?}", m.seed, p.seed));
    }
    if m.sources != p.sources {
        why.push("input files changed (names, sizes or modification times)".into());
    }
    if why.is_empty() {
        why.push("fingerprint changed".into());
    }
    State::Stale(why)
}
