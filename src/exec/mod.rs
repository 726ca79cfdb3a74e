//! The executor: fingerprints, the artifact store, the scheduler, shards.

pub mod dist;
pub mod log;
pub mod node;
pub mod ops;
pub mod plan;
pub mod report;
pub mod run;
pub mod sink;
pub mod store;
