//! What the end-to-end harnesses share: child processes that die with the
//! harness, a running `privlink up`, a process's RSS, the date, and writing
//! one section of `benches/RESULTS.md`.

// Each harness uses a part.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::{SocketAddrV4, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A child process killed and reaped on drop, so a panicking harness leaves none behind.
pub struct Reaped(pub Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `privlink up --config config --state-dir state` and returns once it
/// prints that it is ready; its stdout is read to the end meanwhile.
pub fn privlink_up(config: &Path, state: &Path) -> Reaped {
    let mut child = Command::new(env!("CARGO_BIN_EXE_privlink"))
        .args(["up", "--config"])
        .arg(config)
        .arg("--state-dir")
        .arg(state)
        .stdout(Stdio::piped())
        .spawn()
        .expect("privlink");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    loop {
        match lines.next() {
            Some(Ok(l)) if l == "privlink: ready" => break,
            Some(Ok(_)) => {}
            _ => panic!("privlink did not start"),
        }
    }
    std::thread::spawn(move || for _ in lines {});
    Reaped(child)
}

/// Runs this harness again as a loopback server (`flag` tells it which),
/// in a child process: 10,000 server sockets here beside 10,000 clients
/// would not fit one process's descriptor limit. The child prints its port
/// on its first line; returns that port and the child.
pub fn server_child(flag: &str) -> (u16, Reaped) {
    let mut child =
        Command::new(std::env::current_exe().unwrap()).arg(flag).stdout(Stdio::piped()).spawn().expect("server child");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    (line.trim().parse().expect("server port"), Reaped(child))
}

/// Opens `n` connections to `addr` from namespace `ns`, holds them `hold`,
/// reads `rss()` with them all open, then closes them. Returns how many
/// opened, how long opening took, and the RSS.
pub fn open_hold(
    ns: &str,
    addr: SocketAddrV4,
    n: usize,
    hold: Duration,
    rss: impl FnOnce() -> f64 + Send + 'static,
) -> (usize, Duration, f64) {
    privlink::edge::netns::run_in(ns, move || {
        let start = Instant::now();
        let conns: Vec<TcpStream> =
            (0..n).filter_map(|_| TcpStream::connect_timeout(&addr.into(), Duration::from_secs(3)).ok()).collect();
        let took = start.elapsed();
        std::thread::sleep(hold);
        let mib = rss();
        (conns.len(), took, mib)
    })
    .unwrap()
}

/// Stops a `privlink up` as a user would (SIGTERM: it removes what it made),
/// then removes what is left of namespace `ns` and directory `dir`.
pub fn stop_privlink(child: &mut Reaped, ns: &str, dir: &Path) {
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.0.id() as i32, libc::SIGTERM) };
    let _ = child.0.wait();
    if privlink::edge::netns::exists(ns) {
        let _ = privlink::edge::netns::ip(&["netns", "del", ns]);
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// The resident memory of process `pid`, in MiB (0 if it is gone).
pub fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0
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
