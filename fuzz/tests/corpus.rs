//! Replays every committed input through its target: `corpus/<target>/`
//! (the minimized AFL corpus) and `regressions/<target>/` (inputs that once
//! broke an invariant, kept so the bug stays fixed). This is how CI runs
//! the fuzz targets: `cargo test` builds no AFL and needs none.

use std::fs;
use std::path::Path;

/// Every file under `dir/<target>/`, through `run`; returns how many.
fn replay(dir: &str, target: &str, run: fn(&[u8])) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir).join(target);
    let Ok(entries) = fs::read_dir(&dir) else { return 0 };
    let mut paths: Vec<_> = entries.map(|e| e.expect("a readable directory").path()).collect();
    paths.sort();
    for path in &paths {
        let data = fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        // A panic names the file: rerun it alone with `cargo test -p privlink-fuzz` after a fix.
        eprintln!("replaying {}", path.display());
        run(&data);
    }
    paths.len()
}

#[test]
fn corpus_and_regressions_replay_clean() {
    for (name, run) in privlink_fuzz::TARGETS {
        let n = replay("corpus", name, run);
        assert!(n > 0, "fuzz/corpus/{name}/ is empty: seed it (fuzz/README.md)");
        replay("regressions", name, run);
    }
}
