//! Crawl cleaning: the row-wise steps of the `clean` op and the global
//! `dedup` op (FILTERS.md holds the published rules these reproduce).
//!
//! A row-wise step is a plain function over one document's text that either
//! keeps it (possibly rewriting the text) or drops it with a reason string
//! `"<class>: <detail>"`, e.g. `"gopher_short_doc: 32 words < 50"`. The
//! class (text before the first `:`) is what the manifest's funnel counts;
//! the whole string goes to the node's `rejected/` output. Nothing in this
//! module knows about YAML or the engine: `exec` fuses the steps into one
//! streaming pass per shard.

pub mod chain;
pub mod dedup;
pub mod expr;
pub mod extract;
pub mod filters;
pub mod langid;
pub mod normalize;
pub mod pii;
pub mod steps;
pub mod words;

/// Why a step dropped a document: `"<class>: <detail>"`.
pub type Reason = String;
