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
//!
//! **In a user namespace** (a rootless `privlink run`)
//! `ip netns add` makes the namespace but then fails: it returns to the
//! namespace it started in with `setns`, and the caller's network namespace
//! belongs to the initial user namespace, where privlink has no
//! capabilities. There privlink makes the namespace itself, as `ip` does
//! but without going back: a thread `unshare`s a network namespace and
//! bind-mounts it on `/run/netns/NAME`, then ends. `ip -n NAME` and `ip
//! netns del` work as they are.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

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

/// Where `ip netns exec` finds a namespace's own `/etc` files: `/etc/netns/NAME/`.
pub const ETC_NETNS: &str = "/etc/netns";

/// Whether this process is in a user namespace other than the initial one
/// (its `uid_map` is not the identity over every id): `ip netns add` cannot
/// be used there (see the module's notes).
pub fn in_user_namespace() -> bool {
    static NESTED: OnceLock<bool> = OnceLock::new();
    *NESTED.get_or_init(|| {
        std::fs::read_to_string("/proc/self/uid_map")
            .map(|m| m.split_whitespace().collect::<Vec<_>>() != ["0", "0", "4294967295"])
            .unwrap_or(false)
    })
}

/// `ip netns add NAME` for a process in a user namespace: the file, then a
/// thread that unshares a network namespace and binds it there. A failure
/// removes the file; one already there is refused ("File exists", as `ip` says).
fn add_in_user_namespace(name: &str) -> Result<(), NetnsError> {
    let shown = || format!("netns add {name} (in a user namespace)");
    let fail = |e: io::Error| NetnsError::Ip { args: shown(), msg: e.to_string() };
    let file = path(name);
    std::fs::create_dir_all(file.parent().expect("/run/netns")).map_err(fail)?;
    std::fs::OpenOptions::new().read(true).write(true).create_new(true).open(&file).map_err(fail)?;
    let target = CString::new(file.as_os_str().as_bytes()).map_err(|e| fail(io::Error::other(e)))?;
    let bound = std::thread::spawn(move || {
        // SAFETY: unshare and mount on this thread only, with valid C strings.
        unsafe {
            if libc::unshare(libc::CLONE_NEWNET) != 0 {
                return Err(io::Error::last_os_error());
            }
            let source = c"/proc/thread-self/ns/net";
            if libc::mount(source.as_ptr(), target.as_ptr(), std::ptr::null(), libc::MS_BIND, std::ptr::null()) != 0 {
                return Err(io::Error::last_os_error());
            }
        }
        Ok(())
    })
    .join()
    .expect("namespace thread panicked");
    if let Err(e) = bound {
        let _ = std::fs::remove_file(&file);
        return Err(fail(e));
    }
    Ok(())
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
    /// Where its `resolv.conf` goes: `DIR/NAME/resolv.conf`.
    etc_dir: PathBuf,
}

impl Netns {
    /// Uses namespace `name` as [`ownership::claim`] decides from `record`:
    /// adopts one an earlier run created, uses someone else's as found, else
    /// creates it (with `lo` up), recording that first. Call with the
    /// namespace's lock held.
    pub fn ensure(name: &str, record: CreatedRecord) -> Result<Netns, NetnsError> {
        Netns::ensure_in(name, record, Path::new(ETC_NETNS))
    }

    /// [`Netns::ensure`], its `resolv.conf` under `etc_dir` instead of [`ETC_NETNS`].
    pub fn ensure_in(name: &str, record: CreatedRecord, etc_dir: &Path) -> Result<Netns, NetnsError> {
        let etc = || etc_dir.to_path_buf();
        let record_err = |source| NetnsError::Record { path: record.path().display().to_string(), source };
        let recorded = record.load().map_err(record_err)?;
        match ownership::claim(recorded.as_ref(), name, inode(name)) {
            Claim::Foreign => {
                if recorded.is_some_and(|r| r.netns == name) {
                    // Ours is gone; this one was made by someone else since.
                    record.clear().map_err(record_err)?;
                }
                Ok(Netns { name: name.to_string(), record: None, etc_dir: etc() })
            }
            Claim::Adopt => {
                tracing::warn!(
                    "namespace {name} was left behind by an earlier run: adopted, and removed when this one stops"
                );
                Ok(Netns { name: name.to_string(), record: Some(record), etc_dir: etc() })
            }
            Claim::Recreate => {
                tracing::warn!("namespace {name} was left half-made by an earlier run: made anew");
                drop(Netns { name: name.to_string(), record: Some(record.clone()), etc_dir: etc() });
                if exists(name) {
                    return Err(record_err(io::Error::other(format!("{} could not be removed", path(name).display()))));
                }
                Netns::create(name, record, etc())
            }
            Claim::Create => Netns::create(name, record, etc()),
        }
    }

    fn create(name: &str, record: CreatedRecord, etc_dir: PathBuf) -> Result<Netns, NetnsError> {
        let record_err = |source| NetnsError::Record { path: record.path().display().to_string(), source };
        record.save(&Created { netns: name.to_string(), inode: None }).map_err(record_err)?;
        let mut ns = Netns { name: name.to_string(), record: Some(record.clone()), etc_dir };
        // From here a drop removes whatever `ip netns add` made, even half of it,
        // unless the name was taken meanwhile by someone else.
        let added = if in_user_namespace() { add_in_user_namespace(name) } else { ip(&["netns", "add", name]) };
        if let Err(e) = added {
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
        Netns::remove_left_behind_in(record, created, Path::new(ETC_NETNS))
    }

    /// [`Netns::remove_left_behind`] for a namespace whose `resolv.conf` is under `etc_dir`.
    pub fn remove_left_behind_in(record: &CreatedRecord, created: &Created, etc_dir: &Path) -> Result<(), NetnsError> {
        match ownership::claim(Some(created), &created.netns, inode(&created.netns)) {
            Claim::Adopt | Claim::Recreate | Claim::Create => {
                drop(Netns {
                    name: created.netns.clone(),
                    record: Some(record.clone()),
                    etc_dir: etc_dir.to_path_buf(),
                });
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

    /// Where its `resolv.conf` is (or would be): `/etc/netns/NAME/resolv.conf` unless made with [`Netns::ensure_in`].
    pub fn resolv_conf(&self) -> PathBuf {
        self.etc_dir.join(&self.name).join("resolv.conf")
    }

    /// Writes `/etc/netns/NAME/resolv.conf` naming `nameserver`, so programs run
    /// with `ip netns exec` use the VPC resolver. Only for a namespace privlink
    /// created (and so removes, with the file, on drop).
    pub fn write_resolv_conf(&self, nameserver: std::net::Ipv4Addr) -> io::Result<()> {
        if !self.created() {
            return Ok(());
        }
        let dir = self.etc_dir.join(&self.name);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join("resolv.conf"), format!("{RESOLV_CONF_HEADER}\nnameserver {nameserver}\n"))
    }
}

/// Removes `/etc/netns/NAME/resolv.conf` if privlink wrote it, then the directory if that left it empty.
fn remove_resolv_conf(etc_dir: &Path, name: &str) {
    let dir = etc_dir.join(name);
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
        remove_resolv_conf(&self.etc_dir, &self.name);
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
