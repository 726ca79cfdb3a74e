//! A node's log file (`log.txt` in its artifact) and the run's event output.

use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

/// Lines written to `<artifact>/log.txt`, timestamped from the node's start.
pub struct NodeLog {
    file: Mutex<Option<std::fs::File>>,
    start: std::time::Instant,
}

impl NodeLog {
    /// Opens `dir/log.txt`.
    pub fn open(dir: &Path) -> Self {
        let file = std::fs::File::create(dir.join("log.txt")).ok();
        NodeLog {
            file: Mutex::new(file),
            start: std::time::Instant::now(),
        }
    }

    /// Appends one line.
    pub fn line(&self, msg: impl AsRef<str>) {
        if let Ok(mut g) = self.file.lock()
            && let Some(f) = g.as_mut()
        {
            let _ = writeln!(f, "[{:>9.3}s] {}", self.start.elapsed().as_secs_f64(), msg.as_ref());
        }
    }

    /// Flushes to disk (before the artifact is committed).
    pub fn sync(&self) {
        if let Ok(mut g) = self.file.lock()
            && let Some(f) = g.as_mut()
        {
            let _ = f.sync_all();
        }
    }
}
