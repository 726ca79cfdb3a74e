//! What a run shows: progress bars, one line per node, a summary table, or
//! JSON lines for machines (`--log-format json`).

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::{Value, json};

/// Where run output goes.
pub struct Reporter {
    multi: MultiProgress,
    /// No progress bars or info lines.
    pub quiet: bool,
    /// JSON lines instead of text.
    pub json: bool,
}

impl Reporter {
    /// A reporter writing to stderr.
    pub fn new(quiet: bool, json: bool) -> Self {
        let multi = if quiet || json {
            MultiProgress::with_draw_target(ProgressDrawTarget::hidden())
        } else {
            MultiProgress::with_draw_target(ProgressDrawTarget::stderr())
        };
        Reporter { multi, quiet, json }
    }

    /// A byte or row progress bar for a node.
    pub fn bar(&self, node: &str, unit: &str) -> ProgressBar {
        let bar = self.multi.add(ProgressBar::new(0));
        let template = if unit == "bytes" {
            "{prefix:>14} [{bar:30}] {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} {msg} eta {eta}"
        } else {
            "{prefix:>14} [{bar:30}] {human_pos}/{human_len} rows {per_sec} eta {eta}"
        };
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_prefix(node.to_string());
        bar
    }

    /// An informational line (hidden with --quiet; an event with JSON).
    pub fn info(&self, event: &str, fields: Value, text: impl AsRef<str>) {
        if self.json {
            let mut v = json!({ "event": event });
            if let (Some(o), Value::Object(f)) = (v.as_object_mut(), fields) {
                o.extend(f);
            }
            println!("{v}");
        } else if !self.quiet {
            self.line(text.as_ref());
        }
    }

    /// A warning or error line: always shown.
    pub fn warn(&self, event: &str, fields: Value, text: impl AsRef<str>) {
        if self.json {
            self.info(event, fields, text);
        } else {
            self.line(text.as_ref());
        }
    }

    /// Prints above the bars on a terminal, plainly elsewhere.
    fn line(&self, text: &str) {
        use std::io::IsTerminal;
        if std::io::stderr().is_terminal() {
            let _ = self.multi.println(text);
        } else {
            eprintln!("{text}");
        }
    }
}

/// Human-readable bytes.
pub fn human_bytes(b: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < units.len() {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 { format!("{b} B") } else { format!("{v:.1} {}", units[i]) }
}
