//! Input paths: a file, a directory (recursive, sorted) or a glob, expanded
//! to a stable list of files with names relative to where the user pointed.

use crate::spec::ops::Format;
use std::path::{Path, PathBuf};

/// One input file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputFile {
    /// Where it is.
    pub path: PathBuf,
    /// Its name relative to the directory or glob base the user gave; this is
    /// what ids (`<rel>:<line>`) and the default `source` use, so they do not
    /// depend on where the data lives on a given machine.
    pub rel: String,
    /// Size in bytes on disk.
    pub size: u64,
}

fn has_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// Checks that `spec` names something, for validation (no listing kept).
pub fn check_path(spec: &str) -> Result<(), String> {
    expand(spec).map(|_| ())
}

/// Expands a path spec to files, sorted by relative name.
pub fn expand(spec: &str) -> Result<Vec<InputFile>, String> {
    let mut out = Vec::new();
    if has_glob(spec) {
        let base = glob_base(spec);
        let paths = glob::glob(spec).map_err(|e| format!("bad glob `{spec}`: {e}"))?;
        for p in paths {
            let p = p.map_err(|e| format!("cannot read {}: {}", e.path().display(), e.error()))?;
            if p.is_file() {
                out.push(input_file(&p, &base)?);
            }
        }
        if out.is_empty() {
            return Err(format!("the glob `{spec}` matches no files"));
        }
    } else {
        let p = Path::new(spec);
        let meta = std::fs::metadata(p).map_err(|e| format!("cannot open `{spec}`: {e}"))?;
        if meta.is_dir() {
            walk(p, p, &mut out)?;
            if out.is_empty() {
                return Err(format!("the directory `{spec}` holds no files"));
            }
        } else {
            let base = p.parent().map(Path::to_path_buf).unwrap_or_default();
            out.push(input_file(p, &base)?);
        }
    }
    out.sort_by(|a, b| a.rel.cmp(&b.rel));
    Ok(out)
}

fn glob_base(spec: &str) -> PathBuf {
    let mut base = PathBuf::new();
    for comp in Path::new(spec).components() {
        let s = comp.as_os_str().to_string_lossy();
        if has_glob(&s) {
            break;
        }
        base.push(comp);
    }
    base
}

fn input_file(p: &Path, base: &Path) -> Result<InputFile, String> {
    let size = std::fs::metadata(p).map_err(|e| format!("cannot open {}: {e}", p.display()))?.len();
    let rel = p.strip_prefix(base).unwrap_or(p);
    let rel = if rel.as_os_str().is_empty() { p } else { rel };
    Ok(InputFile {
        path: p.to_path_buf(),
        rel: rel.to_string_lossy().into_owned(),
        size,
    })
}

fn walk(dir: &Path, base: &Path, out: &mut Vec<InputFile>) -> Result<(), String> {
    let rd = std::fs::read_dir(dir).map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
    let mut entries: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    for p in entries {
        let hidden = p.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.'));
        if hidden {
            continue;
        }
        if p.is_dir() {
            walk(&p, base, out)?;
        } else if p.is_file() {
            out.push(input_file(&p, base)?);
        }
    }
    Ok(())
}

/// The format a file name implies, looking through `.gz` / `.zst`.
pub fn format_of(name: &str) -> Option<Format> {
    let lower = name.to_ascii_lowercase();
    let stem = lower
        .strip_suffix(".gz")
        .or_else(|| lower.strip_suffix(".zst"))
        .or_else(|| lower.strip_suffix(".zstd"))
        .unwrap_or(&lower);
    let ext = stem.rsplit_once('.').map(|(_, e)| e).unwrap_or("");
    match ext {
        "jsonl" | "ndjson" => Some(Format::Jsonl),
        "json" => Some(Format::Json),
        "parquet" | "pq" => Some(Format::Parquet),
        "txt" | "text" | "md" | "tokens" => Some(Format::Text),
        // ARC, the WARC's predecessor, is read by the same reader.
        "warc" | "arc" => Some(Format::Warc),
        "wet" => Some(Format::Wet),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_look_through_compression() {
        assert_eq!(format_of("a/b.jsonl.gz"), Some(Format::Jsonl));
        assert_eq!(format_of("b.JSON"), Some(Format::Json));
        assert_eq!(format_of("x.parquet"), Some(Format::Parquet));
        assert_eq!(format_of("x.txt.zst"), Some(Format::Text));
        assert_eq!(format_of("README"), None);
        assert_eq!(format_of("c/x.warc.gz"), Some(Format::Warc));
        assert_eq!(format_of("x.WARC"), Some(Format::Warc));
        assert_eq!(format_of("old.arc.gz"), Some(Format::Warc));
        assert_eq!(format_of("x.warc.wet.gz"), Some(Format::Wet));
        assert_eq!(format_of("x.wet"), Some(Format::Wet));
        assert_eq!(format_of("x.warc.wat.gz"), None);
    }

    #[test]
    fn missing_paths_and_empty_globs_are_errors() {
        assert!(expand("/definitely/not/here.jsonl").unwrap_err().contains("cannot open"));
        let d = tempfile::tempdir().unwrap();
        let g = format!("{}/*.jsonl", d.path().display());
        assert!(expand(&g).unwrap_err().contains("matches no files"));
    }

    #[test]
    fn directories_are_walked_in_sorted_order_with_relative_names() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("sub")).unwrap();
        std::fs::write(d.path().join("b.txt"), "b").unwrap();
        std::fs::write(d.path().join("sub/a.txt"), "a").unwrap();
        std::fs::write(d.path().join(".hidden"), "h").unwrap();
        let files = expand(&d.path().display().to_string()).unwrap();
        let rels: Vec<_> = files.iter().map(|f| f.rel.as_str()).collect();
        assert_eq!(rels, ["b.txt", "sub/a.txt"]);
    }
}
