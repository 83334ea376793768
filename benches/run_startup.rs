//! `privlink run` start-up: the time from the command line to CMD's first
//! instruction and back (`privlink run --service ec2 -- true`, build and
//! teardown included), beside `unshare -rn true` (a bare network namespace)
//! and `pasta -- true` where pasta is installed. Runs alternate, so drift on a
//! shared machine hits every tool alike; medians with min–max.
//!
//! `cargo bench --bench run_startup` (root). `PLK_BENCH_RUNS` (default 20).

use std::process::Command;
use std::time::{Duration, Instant};

fn time(cmd: &mut Command) -> Option<Duration> {
    let start = Instant::now();
    let ok = cmd.status().ok()?.success();
    ok.then(|| start.elapsed())
}

fn summary(name: &str, mut d: Vec<Duration>) {
    if d.is_empty() {
        println!("{name:<40} not run");
        return;
    }
    d.sort();
    let ms = |x: Duration| x.as_secs_f64() * 1000.0;
    println!(
        "{name:<40} median {:7.1} ms   min {:7.1}   max {:7.1}   ({} runs)",
        ms(d[d.len() / 2]),
        ms(d[0]),
        ms(d[d.len() - 1]),
        d.len()
    );
}

fn main() {
    if unsafe { libc::geteuid() } != 0 {
        println!("run_startup: needs root (privlink run makes namespaces); skipped");
        return;
    }
    let runs: usize = std::env::var("PLK_BENCH_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(20);
    let pasta = Command::new("pasta").arg("--version").output().is_ok_and(|o| o.status.success());
    let (mut privlink, mut unshare, mut pasta_t) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..runs {
        privlink.extend(time(Command::new(env!("CARGO_BIN_EXE_privlink")).args([
            "run",
            "--service",
            "ec2",
            "--",
            "true",
        ])));
        unshare.extend(time(Command::new("unshare").args(["-rn", "true"])));
        if pasta {
            pasta_t.extend(time(Command::new("pasta").args(["--config-net", "--", "true"])));
        }
    }
    summary("privlink run --service ec2 -- true", privlink);
    summary("unshare -rn true", unshare);
    summary(if pasta { "pasta --config-net -- true" } else { "pasta (not installed)" }, pasta_t);
}
