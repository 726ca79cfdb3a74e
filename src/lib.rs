//! kiln: a dataflow engine that turns raw web crawl into a chat model.
//!
//! A pipeline is one YAML file ([`spec`]) describing a DAG of nodes that
//! exchange typed artifacts; [`exec`] runs it with caching by fingerprint;
//! [`io`] reads and writes the Arrow data. See DESIGN.md for the map.

pub mod alloc;
pub mod backend;
pub mod clean;
pub mod exec;
pub mod infer;
pub mod io;
pub mod model;
pub mod pack;
pub mod progress;
pub mod report;
pub mod serve;
pub mod spec;
pub mod synth;
pub mod tokenize;
pub mod train;

#[global_allocator]
static ALLOC: alloc::LineAligned = alloc::LineAligned;
