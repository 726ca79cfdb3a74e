//! Validation diagnostics: what is wrong, in which node and field, and where
//! in the YAML, rendered by miette with a source snippet.

use super::yaml::Loc;
use miette::{Diagnostic, NamedSource, SourceSpan};
use std::sync::Arc;

/// One problem found in a pipeline file.
#[derive(Debug, Clone)]
pub struct Problem {
    /// Node id, when the problem is inside a node.
    pub node: Option<String>,
    /// Field path inside the node (or top-level key), when known.
    pub field: Option<String>,
    /// What is wrong.
    pub message: String,
    /// Where; `None` for values given with `--set`.
    pub loc: Option<Loc>,
    /// How to fix it, when we can tell.
    pub help: Option<String>,
}

impl Problem {
    /// A problem inside node `node` at field `field`.
    pub fn at(node: Option<&str>, field: Option<&str>, loc: Option<Loc>, message: impl Into<String>) -> Self {
        Problem {
            node: node.map(str::to_string),
            field: field.map(str::to_string),
            message: message.into(),
            loc,
            help: None,
        }
    }

    /// Adds a hint.
    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// One line: `file:line:col: node `x`, field `y`: message`.
    pub fn headline(&self, file: &str) -> String {
        let mut s = match self.loc {
            Some(l) => format!("{file}:{}:{}: ", l.line, l.col),
            None => format!("{file} (from --set): "),
        };
        if let Some(n) = &self.node {
            s.push_str(&format!("node `{n}`"));
            if self.field.is_some() {
                s.push_str(", ");
            } else {
                s.push_str(": ");
            }
        }
        if let Some(f) = &self.field {
            s.push_str(&format!("field `{f}`: "));
        }
        s.push_str(&self.message);
        s
    }
}

/// A single rendered diagnostic (one per problem).
#[derive(Debug, thiserror::Error, Diagnostic)]
#[error("{headline}")]
pub struct ProblemReport {
    headline: String,
    #[source_code]
    src: NamedSource<Arc<String>>,
    #[label("{label}")]
    span: Option<SourceSpan>,
    label: String,
    #[help]
    help: Option<String>,
}

/// All problems of one pipeline file, reported together.
#[derive(Debug, thiserror::Error, Diagnostic)]
#[error("{file}: {count} problem(s) found; nothing was run")]
pub struct SpecErrors {
    /// The pipeline file.
    pub file: String,
    /// How many problems.
    pub count: usize,
    /// The problems, in file order.
    pub problems: Vec<Problem>,
    #[related]
    reports: Vec<ProblemReport>,
}

impl SpecErrors {
    /// Bundles problems with the source they point into.
    pub fn new(file: &str, source: Arc<String>, mut problems: Vec<Problem>) -> Self {
        problems.sort_by_key(|p| p.loc.map_or(usize::MAX, |l| l.offset));
        let reports = problems
            .iter()
            .map(|p| ProblemReport {
                headline: p.headline(file),
                src: NamedSource::new(file, source.clone()),
                span: p.loc.map(|l| SourceSpan::new(l.offset.into(), l.len.max(1))),
                label: p.field.clone().or_else(|| p.node.clone()).unwrap_or_else(|| "here".into()),
                help: p.help.clone(),
            })
            .collect();
        SpecErrors {
            file: file.to_string(),
            count: problems.len(),
            problems,
            reports,
        }
    }

    /// Every problem's headline, one per line (for logs and tests).
    pub fn plain(&self) -> String {
        self.problems.iter().map(|p| p.headline(&self.file)).collect::<Vec<_>>().join("\n")
    }
}

/// The closest of `candidates` to `word`, if it is close enough to suggest.
pub fn did_you_mean<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<String> {
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(word, c), c))
        .filter(|(score, _)| *score > 0.75)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c.to_string())
}
