//! The DAG: a layered drawing (a node's column is its longest path from a
//! source, so every edge points right) and a table of statuses and times.

use super::{NodeView, Status, esc};
use std::collections::HashMap;
use std::fmt::Write;

const BOX_W: f64 = 160.0;
const BOX_H: f64 = 44.0;
const COL: f64 = 200.0;
const ROW: f64 = 58.0;

/// Seconds as `0.12s`, `12.3s` or `3m 12s`.
pub fn fmt_secs(s: f64) -> String {
    if s < 10.0 {
        format!("{s:.2}s")
    } else if s < 60.0 {
        format!("{s:.1}s")
    } else if s < 3600.0 {
        format!("{}m {:02}s", (s / 60.0) as u64, (s % 60.0) as u64)
    } else {
        format!("{}h {:02}m", (s / 3600.0) as u64, (s % 3600.0 / 60.0) as u64)
    }
}

/// Column of each node: 0 for sources, else one more than its deepest
/// input. `nodes` is in dependency order, so inputs come first.
pub fn layers(nodes: &[NodeView]) -> HashMap<&str, usize> {
    let mut layer: HashMap<&str, usize> = HashMap::new();
    for n in nodes {
        let l = n
            .deps
            .iter()
            .filter_map(|d| layer.get(d.as_str()))
            .map(|l| l + 1)
            .max()
            .unwrap_or(0);
        layer.insert(n.id.as_str(), l);
    }
    layer
}

fn svg(nodes: &[NodeView]) -> String {
    let layer = layers(nodes);
    let mut rows_in: Vec<usize> = Vec::new();
    let mut pos: HashMap<&str, (f64, f64)> = HashMap::new();
    for n in nodes {
        let l = layer.get(n.id.as_str()).copied().unwrap_or(0);
        if rows_in.len() <= l {
            rows_in.resize(l + 1, 0);
        }
        pos.insert(n.id.as_str(), (10.0 + l as f64 * COL, 10.0 + rows_in[l] as f64 * ROW));
        rows_in[l] += 1;
    }
    let w = 20.0 + (rows_in.len().max(1) - 1) as f64 * COL + BOX_W;
    let h = 20.0 + (rows_in.iter().copied().max().unwrap_or(1).max(1) - 1) as f64 * ROW + BOX_H;
    let mut s = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="dag" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img"><title>pipeline DAG</title>"#
    );
    for n in nodes {
        let Some(&(x1, y1)) = pos.get(n.id.as_str()) else { continue };
        for d in &n.deps {
            let Some(&(x0, y0)) = pos.get(d.as_str()) else { continue };
            let (ax, ay, bx, by) = (x0 + BOX_W, y0 + BOX_H / 2.0, x1, y1 + BOX_H / 2.0);
            let mid = (ax + bx) / 2.0;
            let _ = write!(
                s,
                r##"<path d="M{ax},{ay} C{mid},{ay} {mid},{by} {bx},{by}" fill="none" stroke="#999" stroke-width="1.3"/><circle cx="{bx}" cy="{by}" r="2.5" fill="#999"/>"##
            );
        }
    }
    for n in nodes {
        let Some(&(x, y)) = pos.get(n.id.as_str()) else { continue };
        let (fill, stroke) = match n.status.class() {
            "ok" => ("#e8f5e9", "#2e7d32"),
            "bad" => ("#ffebee", "#c62828"),
            _ => ("#fff8e1", "#b08800"),
        };
        let time = n.secs.map(fmt_secs).unwrap_or_default();
        let _ = write!(
            s,
            r#"<g class="node" data-node="{id}" data-status="{st}"><title>{id}: {op} → {kind}, {st}</title><rect x="{x}" y="{y}" width="{BOX_W}" height="{BOX_H}" rx="6" fill="{fill}" stroke="{stroke}"/><text x="{tx}" y="{ty1}" style="font-weight:600">{idc}</text><text x="{tx}" y="{ty2}">{opc} · {st} {time}</text></g>"#,
            id = esc(&n.id),
            idc = esc(&super::cut(&n.id, 22)),
            op = esc(&n.op),
            opc = esc(&super::cut(&n.op, 14)),
            kind = esc(&n.kind),
            st = esc(&n.status.word()),
            tx = x + 8.0,
            ty1 = y + 18.0,
            ty2 = y + 35.0,
        );
    }
    s.push_str("</svg>");
    s
}

/// The DAG drawing and the node table.
pub fn section(nodes: &[NodeView]) -> String {
    let mut s = format!(r#"<div style="overflow-x:auto">{}</div>"#, svg(nodes));
    s.push_str(
        r#"<table><tr><th>node</th><th>op</th><th>kind</th><th>status</th><th>rows</th><th>rejected</th><th>time</th><th>detail</th></tr>"#,
    );
    for n in nodes {
        let m = n.artifact.as_ref().map(|a| &a.manifest);
        let detail = match &n.status {
            Status::Failed(e) => esc(e),
            Status::Stale(why) => esc(&why.join("; ")),
            Status::Skipped => "an input failed or the run stopped".into(),
            _ => String::new(),
        };
        let _ = write!(
            s,
            r#"<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td class="{}">{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td><td>{}</td></tr>"#,
            esc(&n.id),
            esc(&n.op),
            esc(&n.kind),
            n.status.class(),
            esc(&n.status.word()),
            m.map(|m| m.rows.to_string()).unwrap_or_default(),
            m.map(|m| m.rejected_rows.to_string()).unwrap_or_default(),
            n.secs.map(fmt_secs).unwrap_or_default(),
            detail
        );
    }
    s.push_str("</table>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: &str, deps: &[&str], status: Status) -> NodeView {
        NodeView {
            id: id.into(),
            op: "op".into(),
            kind: "documents".into(),
            deps: deps.iter().map(|d| d.to_string()).collect(),
            status,
            secs: Some(1.5),
            artifact: None,
        }
    }

    #[test]
    fn layers_follow_the_longest_path() {
        let nodes = vec![
            node("a", &[], Status::Ran),
            node("b", &["a"], Status::Ran),
            node("c", &["a", "b"], Status::Ran),
            node("d", &[], Status::Ran),
        ];
        let l = layers(&nodes);
        assert_eq!((l["a"], l["b"], l["c"], l["d"]), (0, 1, 2, 0));
    }

    #[test]
    fn failed_nodes_show_their_error_escaped() {
        let nodes = vec![
            node("a", &[], Status::Ran),
            node("b<x>", &["a"], Status::Failed("bad <thing>".into())),
        ];
        let s = section(&nodes);
        assert!(s.contains(r#"data-status="failed""#) && s.contains("bad &lt;thing&gt;"));
        assert!(!s.contains("<x>") && !s.contains("<thing>"));
        assert_eq!(s.matches("<path").count(), 1, "one edge");
    }

    #[test]
    fn seconds_read_well() {
        assert_eq!(fmt_secs(0.123), "0.12s");
        assert_eq!(fmt_secs(42.0), "42.0s");
        assert_eq!(fmt_secs(192.0), "3m 12s");
        assert_eq!(fmt_secs(7260.0), "2h 01m");
    }
}
