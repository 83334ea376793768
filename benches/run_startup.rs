//! `privlink run` start-up: the time from the command line to CMD's first
//! instruction (CMD is `date +%s%N`, which reads the clock as it starts), and
//! the whole round trip (`privlink run --service ec2 -- true`, build and
//! teardown included), beside `unshare -rn` (a bare network namespace) and
//! `pasta --config-net` where pasta runs. Runs alternate, so drift on a
//! shared machine hits every tool alike; medians with min–max.
//!
//! `cargo bench --bench run_startup` (root). `PLK_BENCH_RUNS` (default 20).

use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The whole run of `cmd`, if it succeeds.
fn whole(cmd: &mut Command) -> Option<Duration> {
    let start = Instant::now();
    let ok = cmd.status().ok()?.success();
    ok.then(|| start.elapsed())
}

/// From spawning `cmd` (which ends in `date +%s%N`) to the instant `date` printed.
fn to_first_instruction(cmd: &mut Command) -> Option<Duration> {
    let start = SystemTime::now().duration_since(UNIX_EPOCH).ok()?.as_nanos();
    let out = cmd.output().ok()?;
    let at: u128 = String::from_utf8_lossy(&out.stdout).trim().parse().ok()?;
    (out.status.success() && at >= start).then(|| Duration::from_nanos((at - start) as u64))
}

fn summary(name: &str, mut d: Vec<Duration>) {
    if d.is_empty() {
        println!("{name:<52} not run");
        return;
    }
    d.sort();
    let ms = |x: Duration| x.as_secs_f64() * 1000.0;
    println!(
        "{name:<52} median {:7.1} ms   min {:7.1}   max {:7.1}   ({} runs)",
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
    let privlink = || {
        let mut c = Command::new(env!("CARGO_BIN_EXE_privlink"));
        c.args(["run", "--service", "ec2", "--"]);
        c
    };
    let unshare = || {
        let mut c = Command::new("unshare");
        c.arg("-rn");
        c
    };
    // pasta only where it works: on this VM it spins (as root it turns itself into nobody and
    // cannot open its TUN), so a 2-second probe decides.
    let pasta_works = Command::new("timeout")
        .args(["-s", "KILL", "2", "pasta", "--config-net", "--", "true"])
        .output()
        .is_ok_and(|o| o.status.success());
    let pasta = || {
        let mut c = Command::new("timeout");
        c.args(["-s", "KILL", "5", "pasta", "--config-net", "--"]);
        c
    };
    let (mut p_first, mut p_whole, mut u_first, mut u_whole, mut pasta_first) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..runs {
        p_first.extend(to_first_instruction(privlink().args(["date", "+%s%N"])));
        u_first.extend(to_first_instruction(unshare().args(["date", "+%s%N"])));
        if pasta_works {
            pasta_first.extend(to_first_instruction(pasta().args(["date", "+%s%N"])));
        }
        p_whole.extend(whole(privlink().arg("true")));
        u_whole.extend(whole(unshare().arg("true")));
    }
    summary("privlink run --service ec2: to CMD's first instruction", p_first);
    summary("unshare -rn: to CMD's first instruction", u_first);
    summary("pasta --config-net: to CMD's first instruction", pasta_first);
    summary("privlink run --service ec2 -- true, whole", p_whole);
    summary("unshare -rn true, whole", u_whole);
}
