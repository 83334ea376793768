//! `privlink run` start-up: the time from the command line to CMD's first
//! instruction (CMD is `date +%s%N`, which reads the clock as it starts), and
//! the whole round trip (`privlink run --service ec2 -- true`, build and
//! teardown included), beside `unshare -rn` (a bare network namespace) and
//! `pasta --config-net` where pasta runs. Runs alternate, so drift on a
//! shared machine hits every tool alike; medians with min–max.
//!
//! The rootless rows run the same as an unnamed uid (45678): each run goes
//! through `unshare -m`, a bind of a `/dev/net/tun` node of the bench's own
//! owned by that uid (the host's may be 0600), and `setpriv`; the wrapper
//! alone (`-- date`) is timed too, to subtract.
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
    let tun = TunNode::new();
    let as_user = |args: &[&str]| {
        let mut c = Command::new("unshare");
        c.args(["-m", "--propagation", "private", "--", "sh", "-c", r#"mount --bind "$0" /dev/net/tun && exec "$@""#])
            .arg(&tun.0)
            .args(["setpriv", "--reuid=45678", "--regid=45679", "--clear-groups", "--"])
            .args(args)
            .env("HOME", "/tmp");
        c
    };
    let rootless = |cmd: &[&str]| {
        let mut args = vec![env!("CARGO_BIN_EXE_privlink"), "run", "--service", "ec2", "--"];
        args.extend(cmd);
        as_user(&args)
    };
    let (mut r_first, mut r_whole, mut w_first) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..runs {
        p_first.extend(to_first_instruction(privlink().args(["date", "+%s%N"])));
        r_first.extend(to_first_instruction(&mut rootless(&["date", "+%s%N"])));
        w_first.extend(to_first_instruction(&mut as_user(&["date", "+%s%N"])));
        u_first.extend(to_first_instruction(unshare().args(["date", "+%s%N"])));
        if pasta_works {
            pasta_first.extend(to_first_instruction(pasta().args(["date", "+%s%N"])));
        }
        p_whole.extend(whole(privlink().arg("true")));
        r_whole.extend(whole(&mut rootless(&["true"])));
        u_whole.extend(whole(unshare().arg("true")));
    }
    summary("privlink run --service ec2: to CMD's first instruction", p_first);
    summary("the same rootless (wrapper included)", r_first);
    summary("the rootless wrapper alone (unshare -m, mount, setpriv)", w_first);
    summary("unshare -rn: to CMD's first instruction", u_first);
    summary("pasta --config-net: to CMD's first instruction", pasta_first);
    summary("privlink run --service ec2 -- true, whole", p_whole);
    summary("the same rootless (wrapper included), whole", r_whole);
    summary("unshare -rn true, whole", u_whole);
}

/// A `/dev/net/tun` node (10, 200) owned by the bench's uid, removed on drop.
struct TunNode(std::path::PathBuf);

impl TunNode {
    fn new() -> TunNode {
        let dir = std::env::temp_dir().join(format!("privlink-bench-tun-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let node = dir.join("tun");
        let st = Command::new("mknod").args(["-m", "0600"]).arg(&node).args(["c", "10", "200"]).status().unwrap();
        assert!(st.success(), "mknod");
        std::os::unix::fs::chown(&node, Some(45678), Some(45679)).unwrap();
        TunNode(node)
    }
}

impl Drop for TunNode {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(self.0.parent().unwrap());
    }
}
