//! What the end-to-end harnesses share: child processes that die with the
//! harness, the date, and writing one section of `benches/RESULTS.md`.

use std::path::PathBuf;
use std::process::{Child, Command};

/// A child process killed and reaped on drop, so a panicking harness leaves none behind.
pub struct Reaped(pub Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Now, as `YYYY-MM-DD HH:MM UTC`.
pub fn date_utc() -> String {
    Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

/// The results file the README links.
pub fn path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("benches/RESULTS.md")
}

/// Replaces the section that starts with `heading` (a `## ` line) with `heading` + `body`.
pub fn write_section(heading: &str, body: &str) {
    let p = path();
    let old = std::fs::read_to_string(&p).unwrap_or_else(|_| "# privlink benchmark results\n".to_string());
    let mut out = String::new();
    let mut skipping = false;
    let mut placed = false;
    for line in old.lines() {
        if line.starts_with("## ") {
            skipping = line == heading;
            if skipping {
                out.push_str(heading);
                out.push('\n');
                out.push_str(body.trim_end());
                out.push_str("\n\n");
                placed = true;
                continue;
            }
        }
        if !skipping {
            out.push_str(line);
            out.push('\n');
        }
    }
    if !placed {
        out.push_str(&format!("\n{heading}\n{}\n", body.trim_end()));
    }
    std::fs::write(&p, out).expect("write RESULTS.md");
}
