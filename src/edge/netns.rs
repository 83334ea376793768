//! Network namespaces and the `ip` command: the edge where privlink touches the host.
//!
//! The process stays in the host namespace (its upstream sockets use the
//! host's network); work that must happen inside the VPC namespace runs on a
//! short-lived thread that `setns`es into it. `setns` moves only the calling
//! thread, so the rest of the process is never affected.
//!
//! A namespace privlink creates is recorded in the state dir before it is
//! made ([`crate::edge::ownership`]) and removed, with the `resolv.conf`
//! privlink wrote for it, when its [`Netns`] is dropped; one that was there
//! already is used and left alone.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::Command;

use crate::edge::ownership::{self, Claim, Created, CreatedRecord};

/// Errors from namespace and link setup, each naming what failed.
#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    /// `ip …` could not run or failed.
    #[error("`ip {args}` failed: {msg}")]
    Ip {
        /// The arguments.
        args: String,
        /// Its stderr, else how it ended, or the spawn error.
        msg: String,
    },
    /// Opening or entering the namespace failed.
    #[error("cannot enter network namespace {name}: {source}")]
    Enter {
        /// Namespace name.
        name: String,
        /// The OS error.
        source: io::Error,
    },
    /// The record of what privlink created could not be read or written.
    #[error("{path}: {source}")]
    Record {
        /// The record file.
        path: String,
        /// The OS error.
        source: io::Error,
    },
}

/// Runs `ip ARGS…`, turning a failure into an error that quotes its stderr
/// (or, when it printed nothing, says how it ended).
///
/// A Ctrl-C at the terminal goes to privlink, which finishes what it started
/// and cleans up, never to an `ip` half-way through making a namespace: `ip`
/// runs in a process group of its own, and ignores SIGINT. The pre-exec hook
/// that says so also makes std fork rather than `posix_spawn`: the latter
/// resets the child's handlers to the default *before* it leaves our group,
/// and a Ctrl-C in between (wide on a loaded machine) killed `ip`. Forked,
/// the child keeps privlink's handler until it has left the group.
pub fn ip(args: &[&str]) -> Result<(), NetnsError> {
    let mut cmd = Command::new("ip");
    cmd.args(args).process_group(0);
    // SAFETY: the hook runs between fork and exec and calls only `signal`, which is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            libc::signal(libc::SIGINT, libc::SIG_IGN);
            Ok(())
        })
    };
    let out = cmd.output().map_err(|e| NetnsError::Ip { args: args.join(" "), msg: e.to_string() })?;
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
    let msg = match (stderr.is_empty(), out.status.signal()) {
        (false, _) => stderr,
        (true, Some(sig)) => format!("killed by signal {sig}, before it said why"),
        (true, None) => format!("{} and no message", out.status),
    };
    Err(NetnsError::Ip { args: args.join(" "), msg })
}

/// Runs `lines` as one `ip -n NS -batch -`: one process for several
/// commands, since each `ip` costs a fork and an exec (start-up of `privlink
/// run` is mostly these). The first failing line stops the batch and its
/// message names the line.
pub fn ip_batch(ns: &str, lines: &[String]) -> Result<(), NetnsError> {
    use std::io::Write;
    let mut cmd = Command::new("ip");
    cmd.args(["-n", ns, "-batch", "-"]).process_group(0).stdin(std::process::Stdio::piped());
    cmd.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
    // SAFETY: as in `ip`: only `signal` between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::signal(libc::SIGINT, libc::SIG_IGN);
            Ok(())
        })
    };
    let shown = || format!("-n {ns} -batch: {}", lines.join("; "));
    let mut child = cmd.spawn().map_err(|e| NetnsError::Ip { args: shown(), msg: e.to_string() })?;
    let script: String = lines.iter().map(|l| format!("{l}\n")).collect();
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(script.as_bytes()).map_err(|e| NetnsError::Ip { args: shown(), msg: e.to_string() })?;
    }
    let out = child.wait_with_output().map_err(|e| NetnsError::Ip { args: shown(), msg: e.to_string() })?;
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
    Err(NetnsError::Ip { args: shown(), msg: if stderr.is_empty() { out.status.to_string() } else { stderr } })
}

/// The path `ip netns` uses for a named namespace.
pub fn path(name: &str) -> PathBuf {
    PathBuf::from("/run/netns").join(name)
}

/// Whether a named namespace exists.
pub fn exists(name: &str) -> bool {
    path(name).exists()
}

/// Runs `f` on a thread that has entered namespace `name`; the caller's thread is untouched.
pub fn run_in<T: Send + 'static>(name: &str, f: impl FnOnce() -> T + Send + 'static) -> Result<T, NetnsError> {
    let enter_err = |source| NetnsError::Enter { name: name.to_string(), source };
    let file = File::open(path(name)).map_err(enter_err)?;
    let handle = std::thread::spawn(move || {
        // SAFETY: setns on this thread only; the fd is valid for the call.
        if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(f())
    });
    handle.join().expect("namespace thread panicked").map_err(enter_err)
}

/// The first line of the `resolv.conf` privlink writes: only a file that
/// starts with it is removed.
const RESOLV_CONF_HEADER: &str = "# written by privlink: the VPC resolver";

/// The namespace's nsfs inode (its identity), if it exists.
pub fn inode(name: &str) -> Option<u64> {
    std::fs::metadata(path(name)).ok().map(|m| m.ino())
}

/// A named network namespace, removed on drop if privlink created it (this
/// run, or an earlier one whose namespace this run adopted: see
/// [`crate::edge::ownership`]).
#[derive(Debug)]
pub struct Netns {
    name: String,
    /// The record of its creation, when privlink created it.
    record: Option<CreatedRecord>,
}

impl Netns {
    /// Uses namespace `name` as [`ownership::claim`] decides from `record`:
    /// adopts one an earlier run created, uses someone else's as found, else
    /// creates it (with `lo` up), recording that first. Call with the
    /// namespace's lock held.
    pub fn ensure(name: &str, record: CreatedRecord) -> Result<Netns, NetnsError> {
        let record_err = |source| NetnsError::Record { path: record.path().display().to_string(), source };
        let recorded = record.load().map_err(record_err)?;
        match ownership::claim(recorded.as_ref(), name, inode(name)) {
            Claim::Foreign => {
                if recorded.is_some_and(|r| r.netns == name) {
                    // Ours is gone; this one was made by someone else since.
                    record.clear().map_err(record_err)?;
                }
                Ok(Netns { name: name.to_string(), record: None })
            }
            Claim::Adopt => {
                tracing::warn!(
                    "namespace {name} was left behind by an earlier run: adopted, and removed when this one stops"
                );
                Ok(Netns { name: name.to_string(), record: Some(record) })
            }
            Claim::Recreate => {
                tracing::warn!("namespace {name} was left half-made by an earlier run: made anew");
                drop(Netns { name: name.to_string(), record: Some(record.clone()) });
                if exists(name) {
                    return Err(record_err(io::Error::other(format!("{} could not be removed", path(name).display()))));
                }
                Netns::create(name, record)
            }
            Claim::Create => Netns::create(name, record),
        }
    }

    fn create(name: &str, record: CreatedRecord) -> Result<Netns, NetnsError> {
        let record_err = |source| NetnsError::Record { path: record.path().display().to_string(), source };
        record.save(&Created { netns: name.to_string(), inode: None }).map_err(record_err)?;
        let mut ns = Netns { name: name.to_string(), record: Some(record.clone()) };
        // From here a drop removes whatever `ip netns add` made, even half of it,
        // unless the name was taken meanwhile by someone else.
        if let Err(e) = ip(&["netns", "add", name]) {
            if matches!(&e, NetnsError::Ip { msg, .. } if msg.contains("File exists")) {
                ns.record = None;
                record.clear().map_err(record_err)?;
            }
            return Err(e);
        }
        let made = inode(name).ok_or_else(|| record_err(io::Error::other("`ip netns add` left no namespace")))?;
        record.save(&Created { netns: name.to_string(), inode: Some(made) }).map_err(record_err)?;
        ip(&["-n", name, "link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// Removes the namespace an earlier run from this state dir created and
    /// left behind under another name (the config's `vpc.netns` changed
    /// since), if it is still that one. Call with that namespace's lock held.
    pub fn remove_left_behind(record: &CreatedRecord, created: &Created) -> Result<(), NetnsError> {
        match ownership::claim(Some(created), &created.netns, inode(&created.netns)) {
            Claim::Adopt | Claim::Recreate | Claim::Create => {
                drop(Netns { name: created.netns.clone(), record: Some(record.clone()) });
            }
            Claim::Foreign => {}
        }
        record.clear().map_err(|source| NetnsError::Record { path: record.path().display().to_string(), source })
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether privlink created it (and so removes it).
    pub fn created(&self) -> bool {
        self.record.is_some()
    }

    /// Writes `/etc/netns/NAME/resolv.conf` naming `nameserver`, so programs run
    /// with `ip netns exec` use the VPC resolver. Only for a namespace privlink
    /// created (and so removes, with the file, on drop).
    pub fn write_resolv_conf(&self, nameserver: std::net::Ipv4Addr) -> io::Result<()> {
        if !self.created() {
            return Ok(());
        }
        let dir = PathBuf::from("/etc/netns").join(&self.name);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join("resolv.conf"), format!("{RESOLV_CONF_HEADER}\nnameserver {nameserver}\n"))
    }
}

/// Removes `/etc/netns/NAME/resolv.conf` if privlink wrote it, then the directory if that left it empty.
fn remove_resolv_conf(name: &str) {
    let dir = PathBuf::from("/etc/netns").join(name);
    let file = dir.join("resolv.conf");
    if std::fs::read_to_string(&file).is_ok_and(|t| t.starts_with(RESOLV_CONF_HEADER)) {
        if let Err(e) = std::fs::remove_file(&file) {
            tracing::warn!("removing {}: {e}", file.display());
        }
    }
    match std::fs::remove_dir(&dir) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => tracing::warn!("keeping {}: {e}", dir.display()),
        _ => {}
    }
}

impl Netns {
    /// Removes it now, as a drop would (only if privlink created it), saying
    /// what failed: a namespace that could not be removed keeps its record, so
    /// the next run adopts it and tries again.
    pub fn remove(mut self) -> Result<(), NetnsError> {
        self.remove_created()
    }

    fn remove_created(&mut self) -> Result<(), NetnsError> {
        let Some(record) = self.record.take() else { return Ok(()) };
        remove_resolv_conf(&self.name);
        if exists(&self.name) {
            ip(&["netns", "del", &self.name])?;
        }
        record.clear().map_err(|source| NetnsError::Record { path: record.path().display().to_string(), source })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Err(e) = self.remove_created() {
            tracing::warn!("removing namespace {}: {e}", self.name);
        }
    }
}
