//! The fused chain of `clean` steps over one batch of documents.
//!
//! Row-wise steps run back to back on each document (rayon over the
//! documents), so a document is read once and nothing is written between
//! steps; an `expr` step is the one batch-wise stage (it sees a column of
//! every live document at once), so the chain is cut into stages at each
//! `expr`. Each document remembers the step that dropped it, which is all
//! the funnel needs: a step saw every document that no earlier step dropped.

use super::Reason;
use super::expr::{ExprFilter, Verdict};
use arrow::array::{ArrayRef, Float64Array, StringArray};
use rayon::prelude::*;
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

/// One document as the steps see it.
#[derive(Debug, Clone)]
pub struct Doc<'a> {
    /// The document's id.
    pub id: &'a str,
    /// Its URL, if the input has one.
    pub url: Option<&'a str>,
    /// The current text (steps may rewrite it).
    pub text: Cow<'a, str>,
    /// The page title (set by `extract`).
    pub title: Option<String>,
    /// ISO 639-1 language code (set by `langid`).
    pub lang: Option<&'static str>,
    /// The language's score (set by `langid`).
    pub lang_score: Option<f64>,
    /// Counts a step reports for the manifest (e.g. PII replacements by kind).
    pub counts: Vec<(&'static str, u64)>,
}

impl<'a> Doc<'a> {
    /// A document fresh from the input.
    pub fn new(id: &'a str, url: Option<&'a str>, text: &'a str) -> Self {
        Doc {
            id,
            url,
            text: Cow::Borrowed(text),
            title: None,
            lang: None,
            lang_score: None,
            counts: Vec::new(),
        }
    }
}

/// A step that looks at one document at a time.
pub trait RowStep: Send + Sync {
    /// Keeps the document (possibly rewriting it) or says why it goes.
    fn apply(&self, doc: &mut Doc<'_>) -> Result<(), Reason>;
}

/// A compiled step.
pub enum Stage {
    /// A row-wise step.
    Row(Box<dyn RowStep>),
    /// A SQL filter over the batch.
    Expr(ExprFilter),
}

/// A named, compiled step.
pub struct Step {
    /// The step's YAML name (`gopher_quality`), the `step` of its rejects.
    pub name: &'static str,
    /// What it does.
    pub stage: Stage,
}

/// Where a dropped document died.
#[derive(Debug, Clone)]
pub struct Death {
    /// Index of the step that dropped it.
    pub step: usize,
    /// Why.
    pub reason: Reason,
}

/// Gives the named column of the live documents, for `expr`: the columns
/// the steps maintain (`text`, `title`, `lang`, `lang_score`), else the
/// input's own columns by name.
pub type InputColumn<'c> = dyn Fn(&str, &[usize]) -> Option<ArrayRef> + Sync + 'c;

/// Runs `steps` over `docs`; returns, per document, `None` if kept or where
/// it was dropped. `input` supplies input columns to `expr` steps.
pub fn run(steps: &[Step], docs: &mut [Doc<'_>], input: &InputColumn<'_>) -> Result<Vec<Option<Death>>, String> {
    let mut deaths: Vec<Option<Death>> = vec![None; docs.len()];
    let mut s = 0;
    while s < steps.len() {
        match &steps[s].stage {
            Stage::Expr(f) => {
                apply_expr(s, f, docs, &mut deaths, input)?;
                s += 1;
            }
            Stage::Row(_) => {
                let end = (s..steps.len())
                    .find(|&i| matches!(steps[i].stage, Stage::Expr(_)))
                    .unwrap_or(steps.len());
                let run = &steps[s..end];
                docs.par_iter_mut()
                    .zip(deaths.par_iter_mut())
                    .with_min_len(4)
                    .for_each(|(doc, death)| {
                        if death.is_some() {
                            return;
                        }
                        for (k, step) in run.iter().enumerate() {
                            let Stage::Row(r) = &step.stage else { continue };
                            if let Err(reason) = r.apply(doc) {
                                *death = Some(Death { step: s + k, reason });
                                return;
                            }
                        }
                    });
                s = end;
            }
        }
    }
    Ok(deaths)
}

fn apply_expr(s: usize, f: &ExprFilter, docs: &[Doc<'_>], deaths: &mut [Option<Death>], input: &InputColumn<'_>) -> Result<(), String> {
    let live: Vec<usize> = (0..docs.len()).filter(|&i| deaths[i].is_none()).collect();
    if live.is_empty() {
        return Ok(());
    }
    let mut cols: Vec<(&str, ArrayRef)> = Vec::new();
    for name in f.columns() {
        let col: ArrayRef = match name.as_str() {
            "text" => Arc::new(StringArray::from_iter_values(live.iter().map(|&i| docs[i].text.as_ref()))),
            "title" => Arc::new(live.iter().map(|&i| docs[i].title.as_deref()).collect::<StringArray>()),
            "lang" => Arc::new(live.iter().map(|&i| docs[i].lang).collect::<StringArray>()),
            "lang_score" => Arc::new(live.iter().map(|&i| docs[i].lang_score).collect::<Float64Array>()),
            other => match input(other, &live) {
                Some(c) => c,
                None => continue, // eval names the missing column
            },
        };
        cols.push((name.as_str(), col));
    }
    let verdicts = f.eval(&cols, live.len())?;
    for (&i, v) in live.iter().zip(verdicts) {
        let reason = match v {
            Verdict::Keep => continue,
            Verdict::False => format!("expr_false: {}", f.sql()),
            Verdict::Null => format!("expr_null: {}", f.sql()),
        };
        deaths[i] = Some(Death { step: s, reason });
    }
    Ok(())
}

/// The funnel: per step, documents and bytes in, kept, dropped by reason class.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct StepCount {
    /// The step's name.
    pub step: String,
    /// Documents that reached it.
    pub docs_in: u64,
    /// Documents it dropped.
    pub dropped: u64,
    /// Drops by reason class (text before the first `:`).
    pub reasons: BTreeMap<String, u64>,
    /// Counts the step reported (e.g. PII replacements by kind).
    pub counts: BTreeMap<String, u64>,
}

/// Adds one batch's outcome to the funnel `f` (one entry per step).
pub fn tally(f: &mut [StepCount], docs: &[Doc<'_>], deaths: &[Option<Death>]) {
    for (doc, death) in docs.iter().zip(deaths) {
        let last = death.as_ref().map_or(f.len(), |d| d.step + 1);
        for c in &mut f[..last] {
            c.docs_in += 1;
        }
        if let Some(d) = death {
            f[d.step].dropped += 1;
            *f[d.step].reasons.entry(crate::io::docs::reason_class(&d.reason)).or_default() += 1;
        }
        for (k, n) in &doc.counts {
            // Counts belong to the step that made them; steps name their keys `<step>.<kind>`.
            if let Some((step, kind)) = k.split_once('.')
                && let Some(c) = f.iter_mut().find(|c| c.step == step)
            {
                *c.counts.entry(kind.to_string()).or_default() += n;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct MinLen(usize);
    impl RowStep for MinLen {
        fn apply(&self, doc: &mut Doc<'_>) -> Result<(), Reason> {
            if doc.text.len() < self.0 {
                return Err(format!("too_short: {} < {}", doc.text.len(), self.0));
            }
            Ok(())
        }
    }

    struct Upper;
    impl RowStep for Upper {
        fn apply(&self, doc: &mut Doc<'_>) -> Result<(), Reason> {
            doc.text = Cow::Owned(doc.text.to_uppercase());
            doc.counts.push(("upper.docs", 1));
            Ok(())
        }
    }

    #[test]
    fn steps_run_in_order_and_the_funnel_adds_up() {
        let steps = vec![
            Step {
                name: "upper",
                stage: Stage::Row(Box::new(Upper)),
            },
            Step {
                name: "min_len",
                stage: Stage::Row(Box::new(MinLen(4))),
            },
            Step {
                name: "expr",
                stage: Stage::Expr(ExprFilter::new("text <> 'ABCDE'").unwrap()),
            },
        ];
        let texts = ["abc", "abcde", "abcdef", "xy"];
        let mut docs: Vec<Doc> = texts.iter().map(|t| Doc::new("id", None, t)).collect();
        let deaths = run(&steps, &mut docs, &|_, _| None).unwrap();
        let died: Vec<Option<usize>> = deaths.iter().map(|d| d.as_ref().map(|d| d.step)).collect();
        assert_eq!(died, [Some(1), Some(2), None, Some(1)]);
        assert_eq!(docs[2].text, "ABCDEF");
        let mut f: Vec<StepCount> = steps
            .iter()
            .map(|s| StepCount {
                step: s.name.into(),
                ..Default::default()
            })
            .collect();
        tally(&mut f, &docs, &deaths);
        assert_eq!([f[0].docs_in, f[1].docs_in, f[2].docs_in], [4, 4, 2]);
        assert_eq!([f[0].dropped, f[1].dropped, f[2].dropped], [0, 2, 1]);
        assert_eq!(f[1].reasons["too_short"], 2);
        assert_eq!(f[2].reasons["expr_false"], 1);
        assert_eq!(f[0].counts["docs"], 4);
    }
}
