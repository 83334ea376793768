//! The core is sans-IO: this test fails when its code (tests aside) reaches
//! for the file system, a socket, a process, the environment or the clock,
//! or when its manifest gains a dependency that does I/O.
//!
//! The compiler already keeps edge modules out (they live in another crate,
//! which this one does not depend on) and tokio, libc and socket2 (not in
//! this crate's dependencies); what std itself offers, only a look at the
//! source can catch. Comments and `#[cfg(test)]` items are not looked at:
//! tests may read the clock for a base instant.

use std::fs;
use std::path::{Path, PathBuf};

/// What core code must not name, and why.
const FORBIDDEN: &[(&str, &str)] = &[
    ("std::fs", "the file system"),
    ("File::", "the file system"),
    ("TcpStream", "a socket"),
    ("TcpListener", "a socket"),
    ("UdpSocket", "a socket"),
    ("std::os::fd", "file descriptors"),
    ("std::process", "processes"),
    ("std::env", "the environment"),
    ("std::thread", "threads"),
    ("Instant::now", "the clock (callers pass `Instant`s in)"),
    ("SystemTime", "the clock (callers pass times in)"),
    ("tokio", "an async runtime"),
    ("libc", "system calls"),
    ("socket2", "sockets"),
    ("getrandom", "the OS's randomness (callers pass it in)"),
    ("privlink::", "the edge crate"),
];

/// Crates the core's manifest must not depend on.
const FORBIDDEN_DEPS: &[&str] = &["tokio", "libc", "socket2", "getrandom", "privlink", "smoltcp", "nix", "mio"];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The source without comments, string contents and `#[cfg(test)]` items.
fn code_only(src: &str) -> String {
    let mut out = String::with_capacity(src.len());
    let b = src.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if src[i..].starts_with("//") {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if src[i..].starts_with("/*") {
            i += src[i..].find("*/").map_or(b.len() - i, |n| n + 2);
        } else if b[i] == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("\"\"");
        } else if src[i..].starts_with("#[cfg(test)]") {
            i = skip_item(b, i + "#[cfg(test)]".len());
        } else {
            out.push(b[i] as char);
            i += 1;
        }
    }
    out
}

/// The index after the item starting at `i`: through its `;` or its braces.
fn skip_item(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && b[i] != b'{' && b[i] != b';' {
        i += 1;
    }
    if i < b.len() && b[i] == b';' {
        return i + 1;
    }
    let mut depth = 0usize;
    while i < b.len() {
        match b[i] {
            b'{' => depth += 1,
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    return i + 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    i
}

/// Files that hold only tests (`tests.rs`, or under a `tests/` folder).
fn is_test_file(src_dir: &Path, path: &Path) -> bool {
    let rel = path.strip_prefix(src_dir).unwrap();
    rel.file_name().is_some_and(|n| n == "tests.rs") || rel.components().any(|c| c.as_os_str() == "tests")
}

/// Every place in `src_dir`'s non-test code that names something forbidden.
fn violations(src_dir: &Path) -> Vec<String> {
    let mut files = Vec::new();
    rust_files(src_dir, &mut files);
    files.sort();
    let mut found = Vec::new();
    for path in files.iter().filter(|p| !is_test_file(src_dir, p)) {
        let code = code_only(&fs::read_to_string(path).unwrap());
        for (n, line) in code.lines().enumerate() {
            for (name, why) in FORBIDDEN {
                if line.contains(name) {
                    found.push(format!("{}:{}: `{name}` ({why}): {}", path.display(), n + 1, line.trim()));
                }
            }
        }
    }
    found
}

#[test]
fn core_code_does_no_io_and_reads_no_clock() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let found = violations(&src);
    assert!(found.is_empty(), "the sans-IO core reaches for I/O:\n{}", found.join("\n"));
}

#[test]
fn the_core_manifest_has_no_io_dependency() {
    let manifest = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml")).unwrap();
    let toml: toml::Table = manifest.parse().unwrap();
    let deps = toml.get("dependencies").and_then(|d| d.as_table()).cloned().unwrap_or_default();
    let bad: Vec<&str> = FORBIDDEN_DEPS.iter().copied().filter(|d| deps.contains_key(*d)).collect();
    assert!(bad.is_empty(), "the core depends on {bad:?}, which do I/O: move that code to the edge crate");
}

#[test]
fn the_check_sees_what_it_must_and_skips_what_it_may() {
    let code = code_only(
        "use std::fs;\n// Instant::now in a comment\nlet s = \"TcpStream\";\n#[cfg(test)]\nmod tests { fn f() { Instant::now(); } }\nfn g() { SystemTime::now(); }\n",
    );
    assert!(code.contains("std::fs") && code.contains("SystemTime"), "{code}");
    assert!(!code.contains("Instant::now") && !code.contains("TcpStream"), "{code}");
}
