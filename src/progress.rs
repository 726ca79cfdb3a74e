//! How a long-running piece of work reports to whoever runs it: progress,
//! Ctrl-C, and lines for the log. The engine implements it once
//! (`exec::ops::EngineProgress`); packing, dedup and training take it, so
//! none of them knows about progress bars.

/// Progress, cancellation and notes, as a long job sees its caller.
pub trait Progress: Sync {
    /// The total to expect.
    fn start(&self, _total: u64) {}
    /// `n` more done.
    fn inc(&self, _n: u64) {}
    /// Whether to stop at the next block.
    fn cancelled(&self) -> bool {
        false
    }
    /// Something the user should know, for the log.
    fn note(&self, _msg: &str) {}
}

/// Reports nothing and never cancels.
pub struct NoProgress;

impl Progress for NoProgress {}
