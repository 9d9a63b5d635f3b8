//! What the benchmarks share: the real Binance recordings, read from `../shared` at run time.

use std::path::PathBuf;

/// Every recording of market streams (REST captures left out), sorted by name.
pub fn recordings() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data/binance");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("recordings expected at {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy().to_string();
            (n.ends_with(".gz") || n.ends_with(".txt")) && !n.contains("_rest_")
        })
        .collect();
    files.sort();
    files
}
