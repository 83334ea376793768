//! Rootless `privlink run`: an ordinary user's privlink makes the sandbox in
//! a user namespace of its own, as slirp4netns and pasta do.
//!
//! # Theory of operation
//!
//! **Probe.** Before anything is touched, [`check`] reads what decides
//! whether an unprivileged user namespace can be made and used here
//! ([`Kernel`], read by [`probe`]): Debian's
//! `kernel.unprivileged_userns_clone` (absent elsewhere),
//! `user.max_user_namespaces`, AppArmor's
//! `kernel.apparmor_restrict_unprivileged_userns` (Ubuntu: the namespace is
//! made, but without capabilities), and whether the caller may open
//! `/dev/net/tun` (the kernel checks its mode against the caller's own uid,
//! user namespace or not). Whatever is off is named with the setting that
//! turns it on, or sudo.
//!
//! **privlink's namespaces.** [`enter`] runs first thing in `main`, while the
//! process has one thread (`unshare(CLONE_NEWUSER)` refuses a threaded
//! process). It unshares a user, a mount and a PID namespace, maps uid and
//! gid 0 in it to the caller's (one id each: that needs no helper, and
//! `setgroups` is denied first, as the kernel requires for the gid map), and
//! so is root of a namespace that owns everything it makes from then on: the
//! VPC and instance network namespaces, their veths, sysctls and TUN
//! devices need `CAP_NET_ADMIN` there only. Its network namespace stays the
//! caller's: its upstream sockets go out as the caller's would, and a
//! stand-in on the host's 127.0.0.1 stays reachable.
//!
//! **Paths.** The mount namespace is made private, then `/run` gets a tmpfs
//! of privlink's own: `ip` keeps named network namespaces in `/run/netns`,
//! runs record in `/run/privlink`, and neither is writable by the caller (nor
//! can a missing directory be made in a root-owned one). The old `/run`
//! entries are bound back onto placeholders in the tmpfs (read from a
//! descriptor of the old directory taken before it was covered), so privlink
//! and CMD still see the host's sockets and files there (a `resolv.conf`
//! symlinked into `/run/systemd`, say); only `netns` and `privlink` start
//! empty. Instances' `resolv.conf` go in the run's directory, not
//! `/etc/netns` ([`crate::edge::fabric::Records::with_etc_netns`]).
//!
//! **Nothing left behind.** After the unshare the process forks. The child
//! is PID 1 of the new PID namespace and goes on to be privlink; it asks for
//! SIGKILL when its parent dies (`PR_SET_PDEATHSIG`), and checks through a
//! pipe that the parent did not die before that. PID 1 drops a signal it
//! has no handler for, so it blocks SIGINT, SIGTERM and SIGHUP (a blocked
//! signal is held) until `run` has its handlers ([`unblock_signals`]). The
//! parent only waits: it
//! passes SIGTERM and SIGHUP on, ignores SIGINT (a terminal's Ctrl-C reaches
//! CMD itself, as in a root run) and exits with the child's status. When PID
//! 1 ends, however it ends (its parent killed with `kill -9`, itself killed,
//! or CMD done), the kernel kills every process in the PID namespace: CMD and
//! all it started. Then nothing holds the namespaces, the mounts, the veths
//! or the TUN devices, and the kernel frees them: a rootless run needs no
//! records to be cleaned up after. PID 1 mounts a `/proc` of its PID
//! namespace, so CMD's pids and `/proc` agree.
//!
//! **CMD** ([`instance_command`]) enters the instance's network namespace
//! itself (`ip netns exec` would try to return to the caller's network
//! namespace, which it may not), in a mount namespace of its own where the
//! instance's `resolv.conf` is bound over `/etc/resolv.conf` and a `/sys` of
//! the instance's network is mounted (as `ip netns exec` does). Last it
//! unshares a user namespace of its own that maps the caller's uid and gid
//! back onto privlink's 0: `id -u` prints the caller's uid, and CMD has no
//! capability over privlink's namespaces (it cannot change a route, a
//! sysctl or the resolver's file). Its supplementary groups stay as they were
//! (the caller's; they show as `nogroup`, being unmapped): `setgroups` is
//! denied in a user namespace made without a helper.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, Ordering};

/// The user a rootless run runs CMD as: the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    /// The caller's uid (outside the user namespace).
    pub uid: u32,
    /// The caller's gid.
    pub gid: u32,
}

/// Whether the caller may open `/dev/net/tun` for reading and writing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TunAccess {
    /// It may.
    ReadWrite,
    /// There is no `/dev/net/tun`.
    Missing,
    /// It may not: the device's mode and owner.
    Denied {
        /// Permission bits.
        mode: u32,
        /// Owner uid.
        uid: u32,
        /// Owner gid.
        gid: u32,
    },
}

/// What the kernel says about unprivileged user namespaces and the TUN device
/// (each sysctl as read, trimmed; `None` where the file is absent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kernel {
    /// `kernel.unprivileged_userns_clone` (Debian's kernels only).
    pub unprivileged_userns_clone: Option<String>,
    /// `user.max_user_namespaces`.
    pub max_user_namespaces: Option<String>,
    /// `kernel.apparmor_restrict_unprivileged_userns` (AppArmor, Ubuntu 23.10 on).
    pub apparmor_restrict_unprivileged_userns: Option<String>,
    /// `/dev/net/tun` for this caller.
    pub tun: TunAccess,
}

/// Why a rootless run cannot start (nothing was touched for any of them).
#[derive(Debug, thiserror::Error)]
pub enum RootlessError {
    /// A sysctl turns unprivileged user namespaces off.
    #[error(
        "privlink run as uid {uid} (not root) makes a user namespace of its own, and this kernel allows none to \
         unprivileged users: {sysctl} is {value}; turn them on with `sudo sysctl -w {sysctl}={wanted}` (to keep it, \
         in /etc/sysctl.d/), or run privlink with sudo; nothing was touched"
    )]
    UserNamespacesOff {
        /// The caller.
        uid: u32,
        /// The sysctl, dotted.
        sysctl: &'static str,
        /// Its value.
        value: String,
        /// What it should be.
        wanted: &'static str,
    },
    /// AppArmor leaves an unprivileged user namespace without capabilities.
    #[error(
        "privlink run as uid {uid} (not root) makes a user namespace of its own, and AppArmor takes the \
         capabilities out of those of unconfined programs (kernel.apparmor_restrict_unprivileged_userns is 1): \
         allow them with `sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0`, or give privlink an \
         AppArmor profile with the `userns,` rule, or run privlink with sudo; nothing was touched"
    )]
    AppArmor {
        /// The caller.
        uid: u32,
    },
    /// No TUN device.
    #[error(
        "privlink run makes TUN devices and /dev/net/tun does not exist: load the module (`sudo modprobe tun`), \
         or run privlink with sudo; nothing was touched"
    )]
    TunMissing,
    /// The caller may not open `/dev/net/tun`.
    #[error(
        "privlink run as uid {uid} (not root) opens /dev/net/tun for its TUN devices, and it is mode {mode:04o}, \
         owner {owner}:{group}: let users open it (`sudo chmod 0666 /dev/net/tun`, what most distributions' udev \
         rules set), or run privlink with sudo; nothing was touched"
    )]
    TunDenied {
        /// The caller.
        uid: u32,
        /// The device's permission bits.
        mode: u32,
        /// Its owner.
        owner: u32,
        /// Its group.
        group: u32,
    },
    /// `--user` names someone other than the caller.
    #[error(
        "--user {uid}:{gid}: a run without root maps only your own user ({caller_uid}:{caller_gid}) into its \
         namespace, so CMD runs as you; drop --user, or run privlink with sudo to run CMD as another user"
    )]
    OtherUser {
        /// Asked for.
        uid: u32,
        /// Asked for.
        gid: u32,
        /// The caller.
        caller_uid: u32,
        /// The caller.
        caller_gid: u32,
    },
    /// The kernel refused the user namespace.
    #[error(
        "privlink run as uid {uid} (not root): making a user namespace (unshare): {source}; the kernel, a seccomp \
         filter (a container) or a limit refuses it: run privlink with sudo; nothing was touched"
    )]
    Unshare {
        /// The caller.
        uid: u32,
        /// The OS error.
        source: io::Error,
    },
    /// A step after the unshare (nothing outside privlink's namespaces is touched by any).
    #[error("rootless set-up: {what}: {source}")]
    Setup {
        /// The step.
        what: String,
        /// The OS error.
        source: io::Error,
    },
}

fn setup(what: impl Into<String>) -> impl FnOnce(io::Error) -> RootlessError {
    let what = what.into();
    move |source| RootlessError::Setup { what, source }
}

/// Whether user namespaces can be made and used by an unprivileged caller
/// (`uid`), from the sysctls alone; the first setting in the way is named.
pub fn check_user_namespaces(k: &Kernel, uid: u32) -> Result<(), RootlessError> {
    let number = |v: &Option<String>| v.as_deref().and_then(|s| s.trim().parse::<u64>().ok());
    if number(&k.unprivileged_userns_clone) == Some(0) {
        return Err(RootlessError::UserNamespacesOff {
            uid,
            sysctl: "kernel.unprivileged_userns_clone",
            value: "0".into(),
            wanted: "1",
        });
    }
    if number(&k.max_user_namespaces) == Some(0) {
        return Err(RootlessError::UserNamespacesOff {
            uid,
            sysctl: "user.max_user_namespaces",
            value: "0".into(),
            wanted: "15000",
        });
    }
    if number(&k.apparmor_restrict_unprivileged_userns).is_some_and(|v| v != 0) {
        return Err(RootlessError::AppArmor { uid });
    }
    Ok(())
}

/// [`check_user_namespaces`], then whether `uid` may open `/dev/net/tun`.
pub fn check(k: &Kernel, uid: u32) -> Result<(), RootlessError> {
    check_user_namespaces(k, uid)?;
    match k.tun {
        TunAccess::ReadWrite => Ok(()),
        TunAccess::Missing => Err(RootlessError::TunMissing),
        TunAccess::Denied { mode, uid: owner, gid: group } => Err(RootlessError::TunDenied { uid, mode, owner, group }),
    }
}

/// Reads what [`check`] decides on, for this process's real uid.
pub fn probe() -> Kernel {
    let read = |p: &str| std::fs::read_to_string(p).ok().map(|s| s.trim().to_string());
    Kernel {
        unprivileged_userns_clone: read("/proc/sys/kernel/unprivileged_userns_clone"),
        max_user_namespaces: read("/proc/sys/user/max_user_namespaces"),
        apparmor_restrict_unprivileged_userns: read("/proc/sys/kernel/apparmor_restrict_unprivileged_userns"),
        tun: tun_access(),
    }
}

fn tun_access() -> TunAccess {
    const TUN: &std::ffi::CStr = c"/dev/net/tun";
    // SAFETY: access with a valid C string; it checks the real uid, the caller's.
    if unsafe { libc::access(TUN.as_ptr(), libc::R_OK | libc::W_OK) } == 0 {
        return TunAccess::ReadWrite;
    }
    match std::fs::metadata("/dev/net/tun") {
        Ok(m) => TunAccess::Denied { mode: m.mode() & 0o7777, uid: m.uid(), gid: m.gid() },
        Err(_) => TunAccess::Missing,
    }
}

/// The caller, for a run whose `--user` was `user`: only the caller is mapped.
pub fn caller_as(user: Option<(u32, u32)>) -> Result<Caller, RootlessError> {
    // SAFETY: getuid and getgid cannot fail.
    let me = Caller { uid: unsafe { libc::getuid() }, gid: unsafe { libc::getgid() } };
    match user {
        Some((uid, gid)) if (uid, gid) != (me.uid, me.gid) => {
            Err(RootlessError::OtherUser { uid, gid, caller_uid: me.uid, caller_gid: me.gid })
        }
        _ => Ok(me),
    }
}

/// The entries of `/run` that start empty in privlink's own `/run`.
const FRESH_IN_RUN: [&str; 2] = ["netns", "privlink"];

/// Makes this process root of user, mount and PID namespaces of its own (see
/// the module's notes) and returns in PID 1 of the latter, which goes on as
/// privlink. The process that called it waits and exits with that one's
/// status: it never returns. Call while the process has one thread.
pub fn enter(caller: Caller) -> Result<(), RootlessError> {
    check(&probe(), caller.uid)?;
    let threads = std::fs::read_dir("/proc/self/task").map(|d| d.count()).unwrap_or(1);
    if threads != 1 {
        let msg = format!("the process has {threads} threads; a user namespace needs one");
        return Err(setup("unshare")(io::Error::other(msg)));
    }
    // SAFETY: unshare with flags only, in a single-threaded process.
    if unsafe { libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNS | libc::CLONE_NEWPID) } != 0 {
        return Err(RootlessError::Unshare { uid: caller.uid, source: io::Error::last_os_error() });
    }
    std::fs::write("/proc/self/setgroups", "deny").map_err(setup("/proc/self/setgroups"))?;
    std::fs::write("/proc/self/uid_map", format!("0 {} 1", caller.uid)).map_err(setup("/proc/self/uid_map"))?;
    std::fs::write("/proc/self/gid_map", format!("0 {} 1", caller.gid)).map_err(setup("/proc/self/gid_map"))?;
    // SAFETY: mount with valid C strings (and nulls where the call allows them).
    if unsafe {
        libc::mount(
            std::ptr::null(),
            c"/".as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        )
    } != 0
    {
        return Err(setup("making the mount namespace private")(io::Error::last_os_error()));
    }
    own_run(Path::new("/run"), &FRESH_IN_RUN)?;
    fork_pid1()
}

/// Covers `dir` with a tmpfs owned by this namespace's root, binds its old
/// entries back (but `fresh`, made empty) and keeps symlinks as they were.
/// An entry that cannot be bound back is left out, with a line in the log.
fn own_run(dir: &Path, fresh: &[&str]) -> Result<(), RootlessError> {
    let old = File::open(dir).map_err(setup(format!("opening {}", dir.display())))?;
    let entries: Vec<std::fs::DirEntry> = std::fs::read_dir(dir)
        .map_err(setup(format!("listing {}", dir.display())))?
        .filter_map(Result::ok)
        .filter(|e| !fresh.iter().any(|f| e.file_name() == *f))
        .collect();
    let target = c_path(dir)?;
    // SAFETY: mount with valid C strings.
    if unsafe {
        libc::mount(
            c"tmpfs".as_ptr(),
            target.as_ptr(),
            c"tmpfs".as_ptr(),
            libc::MS_NOSUID | libc::MS_NODEV,
            c"mode=0755".as_ptr().cast(),
        )
    } != 0
    {
        return Err(setup(format!("mounting a tmpfs on {}", dir.display()))(io::Error::last_os_error()));
    }
    let through_old = PathBuf::from(format!("/proc/self/fd/{}", old.as_raw_fd()));
    for entry in entries {
        let name = entry.file_name();
        let (src, dst) = (through_old.join(&name), dir.join(&name));
        if let Err(e) = bind_back(&src, &dst) {
            tracing::info!("rootless: {} is left out of privlink's own {}: {e}", dst.display(), dir.display());
            let _ = std::fs::remove_dir(&dst).or_else(|_| std::fs::remove_file(&dst));
        }
    }
    for f in fresh {
        let d = dir.join(f);
        std::fs::create_dir(&d).map_err(setup(format!("making {}", d.display())))?;
    }
    Ok(())
}

/// Puts what `src` is at `dst`: a symlink as a copy, anything else as a
/// (recursive) bind mount on a placeholder of its kind.
fn bind_back(src: &Path, dst: &Path) -> io::Result<()> {
    let kind = std::fs::symlink_metadata(src)?.file_type();
    if kind.is_symlink() {
        return std::os::unix::fs::symlink(std::fs::read_link(src)?, dst);
    }
    if kind.is_dir() {
        std::fs::create_dir(dst)?;
    } else if kind.is_file() || kind.is_socket() || kind.is_fifo() || kind.is_char_device() || kind.is_block_device() {
        File::create(dst)?;
    }
    let (s, d) = (c_path(src).map_err(io::Error::other)?, c_path(dst).map_err(io::Error::other)?);
    // SAFETY: mount with valid C strings.
    if unsafe { libc::mount(s.as_ptr(), d.as_ptr(), std::ptr::null(), libc::MS_BIND | libc::MS_REC, std::ptr::null()) }
        != 0
    {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn c_path(p: &Path) -> Result<CString, RootlessError> {
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| setup(format!("{}", p.display()))(io::Error::other("a NUL in the path")))
}

/// The child's host pid, for the parent's signal handler.
static PID1: AtomicI32 = AtomicI32::new(0);

extern "C" fn pass_on(sig: libc::c_int) {
    let pid = PID1.load(Ordering::Relaxed);
    if pid > 0 {
        // SAFETY: kill is async-signal-safe.
        unsafe { libc::kill(pid, sig) };
    }
}

/// Forks PID 1 of the new PID namespace and returns in it; the parent waits
/// for it and exits with its status.
fn fork_pid1() -> Result<(), RootlessError> {
    let mut pipe = [0; 2];
    // SAFETY: pipe2 writes two descriptors into the array.
    if unsafe { libc::pipe2(pipe.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(setup("pipe")(io::Error::last_os_error()));
    }
    let [parent_alive, keep_alive] = pipe;
    // SAFETY: the process has one thread, so the child may run anything.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(setup("fork")(io::Error::last_os_error()));
    }
    if pid > 0 {
        // SAFETY: our own descriptor.
        unsafe { libc::close(parent_alive) };
        wait_for_pid1(pid);
    }
    // SAFETY: prctl, close and poll on our own descriptors, integers only.
    unsafe {
        libc::close(keep_alive);
        // PID 1 drops a signal it has no handler for; a blocked one waits
        // (until `run` has its handlers: [`unblock_signals`]).
        libc::pthread_sigmask(libc::SIG_BLOCK, &passed_signals(), std::ptr::null_mut());
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0 as libc::c_ulong, 0, 0);
        // The parent may have died before the prctl: then the pipe has no writer left.
        let mut p = libc::pollfd { fd: parent_alive, events: libc::POLLIN, revents: 0 };
        if libc::poll(&mut p, 1, 0) > 0 && p.revents & libc::POLLHUP != 0 {
            libc::_exit(1);
        }
        libc::close(parent_alive);
        // A /proc of this PID namespace; without it CMD would see the host's pids.
        if libc::mount(
            c"proc".as_ptr(),
            c"/proc".as_ptr(),
            c"proc".as_ptr(),
            libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            std::ptr::null(),
        ) != 0
        {
            tracing::info!("rootless: no /proc of its own ({}): CMD sees the host's", io::Error::last_os_error());
        }
    }
    Ok(())
}

/// SIGINT, SIGTERM and SIGHUP: what `run` handles.
fn passed_signals() -> libc::sigset_t {
    // SAFETY: sigemptyset and sigaddset on a local set.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            libc::sigaddset(&mut set, sig);
        }
        set
    }
}

/// Lets the signals [`enter`] blocked through to this thread, once their
/// handlers are in: one that came meanwhile is handled now. (Threads started
/// since keep them blocked, which is fine: a handler runs on any thread, and
/// processes started with `std::process` begin with nothing blocked.)
pub fn unblock_signals() {
    // SAFETY: pthread_sigmask with a valid set.
    unsafe { libc::pthread_sigmask(libc::SIG_UNBLOCK, &passed_signals(), std::ptr::null_mut()) };
}

/// The parent's part: pass SIGTERM and SIGHUP on to PID 1, ignore SIGINT
/// (the terminal sent it to CMD too), exit as PID 1 did.
fn wait_for_pid1(pid: libc::pid_t) -> ! {
    PID1.store(pid, Ordering::Relaxed);
    // SAFETY: sigaction with a handler that only calls kill; signal with SIG_IGN.
    unsafe {
        let mut act: libc::sigaction = std::mem::zeroed();
        act.sa_sigaction = pass_on as *const () as libc::sighandler_t;
        act.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut act.sa_mask);
        libc::sigaction(libc::SIGTERM, &act, std::ptr::null_mut());
        libc::sigaction(libc::SIGHUP, &act, std::ptr::null_mut());
        libc::signal(libc::SIGINT, libc::SIG_IGN);
    }
    let mut status = 0;
    loop {
        // SAFETY: waitpid on our child with a valid status pointer.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r == pid {
            break;
        }
        if r < 0 && io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            std::process::exit(1);
        }
    }
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else if libc::WIFSIGNALED(status) {
        128 + libc::WTERMSIG(status)
    } else {
        1
    };
    std::process::exit(code)
}

/// What CMD's pre-exec hook needs, made before the fork (the hook itself
/// may not allocate).
struct Entry {
    netns: File,
    resolv_conf: CString,
    uid_map: Vec<u8>,
    gid_map: Vec<u8>,
}

/// Writes `data` to `path` with raw calls (async-signal-safe).
fn write_raw(path: &std::ffi::CStr, data: &[u8]) -> io::Result<()> {
    // SAFETY: open, write and close with a valid C string and buffer.
    unsafe {
        let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let n = libc::write(fd, data.as_ptr().cast(), data.len());
        let err = io::Error::last_os_error();
        libc::close(fd);
        if n != data.len() as isize {
            return Err(err);
        }
    }
    Ok(())
}

impl Entry {
    /// Between fork and exec, in CMD: the instance's network, a mount
    /// namespace with its `resolv.conf` and `/sys`, then the caller's own
    /// user namespace. Only system calls.
    fn enter(&self) -> io::Result<()> {
        let fail = || Err(io::Error::last_os_error());
        // SAFETY: system calls with descriptors and C strings that live in `self`.
        unsafe {
            if libc::setns(self.netns.as_raw_fd(), libc::CLONE_NEWNET) != 0 {
                return fail();
            }
            if libc::unshare(libc::CLONE_NEWNS) != 0 {
                return fail();
            }
            let null = std::ptr::null();
            if libc::mount(self.resolv_conf.as_ptr(), c"/etc/resolv.conf".as_ptr(), null, libc::MS_BIND, null.cast())
                != 0
            {
                return fail();
            }
            // As `ip netns exec`: a /sys that shows the instance's devices;
            // a read-only one can only be covered by another read-only one.
            let (sysfs, sys) = (c"sysfs".as_ptr(), c"/sys".as_ptr());
            if libc::mount(sysfs, sys, sysfs, 0, null.cast()) != 0 {
                libc::mount(sysfs, sys, sysfs, libc::MS_RDONLY, null.cast());
            }
            if libc::unshare(libc::CLONE_NEWUSER) != 0 {
                return fail();
            }
        }
        write_raw(c"/proc/self/setgroups", b"deny")?;
        write_raw(c"/proc/self/uid_map", &self.uid_map)?;
        write_raw(c"/proc/self/gid_map", &self.gid_map)
    }
}

/// Makes `cmd` run in instance namespace `netns` as the caller (see the
/// module's notes), `resolv_conf` bound over `/etc/resolv.conf`.
pub fn instance_command(
    cmd: &mut tokio::process::Command,
    netns: &str,
    resolv_conf: &Path,
    caller: Caller,
) -> io::Result<()> {
    // The hook can only say "os error N"; a missing target is said here, in words.
    if let Err(e) = std::fs::metadata("/etc/resolv.conf") {
        let msg = format!(
            "/etc/resolv.conf: {e}; a run without root binds the instance's resolv.conf over it (following a \
             symlink), so it must exist"
        );
        return Err(io::Error::new(e.kind(), msg));
    }
    let netns_path = crate::edge::netns::path(netns);
    let entry = Entry {
        netns: File::open(&netns_path)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", netns_path.display())))?,
        resolv_conf: CString::new(resolv_conf.as_os_str().as_bytes()).map_err(io::Error::other)?,
        uid_map: format!("{} 0 1", caller.uid).into_bytes(),
        gid_map: format!("{} 0 1", caller.gid).into_bytes(),
    };
    // SAFETY: the hook makes system calls only (no allocation, no locks).
    unsafe { cmd.pre_exec(move || entry.enter()) };
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kernel(clone: Option<&str>, max: Option<&str>, apparmor: Option<&str>, tun: TunAccess) -> Kernel {
        Kernel {
            unprivileged_userns_clone: clone.map(str::to_string),
            max_user_namespaces: max.map(str::to_string),
            apparmor_restrict_unprivileged_userns: apparmor.map(str::to_string),
            tun,
        }
    }

    #[test]
    fn each_setting_in_the_way_is_named_with_its_fix() {
        let ok = TunAccess::ReadWrite;
        // Absent files say nothing: most kernels have neither Debian's nor AppArmor's.
        assert!(check(&kernel(None, Some("15000"), None, ok.clone()), 1000).is_ok());
        assert!(check(&kernel(Some("1"), Some("15000"), Some("0"), ok.clone()), 1000).is_ok());

        let e = check(&kernel(Some("0"), Some("15000"), None, ok.clone()), 1000).unwrap_err().to_string();
        assert!(e.contains("kernel.unprivileged_userns_clone is 0"), "{e}");
        assert!(e.contains("`sudo sysctl -w kernel.unprivileged_userns_clone=1`"), "{e}");
        assert!(e.contains("uid 1000") && e.contains("sudo") && e.contains("nothing was touched"), "{e}");

        let e = check(&kernel(Some("1"), Some("0"), None, ok.clone()), 1000).unwrap_err().to_string();
        assert!(e.contains("user.max_user_namespaces is 0"), "{e}");
        assert!(e.contains("`sudo sysctl -w user.max_user_namespaces=15000`"), "{e}");

        let e = check(&kernel(None, Some("15000"), Some("1"), ok.clone()), 1000).unwrap_err().to_string();
        assert!(e.contains("`sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0`"), "{e}");
        assert!(e.contains("`userns,`"), "{e}");

        // The first in the way is the one named.
        let e = check(&kernel(Some("0"), Some("0"), Some("1"), ok), 1000).unwrap_err().to_string();
        assert!(e.contains("kernel.unprivileged_userns_clone"), "{e}");
    }

    #[test]
    fn the_tun_device_is_checked_after_the_namespaces() {
        let on = |tun| kernel(None, Some("15000"), None, tun);
        let e = check(&on(TunAccess::Missing), 1000).unwrap_err().to_string();
        assert!(e.contains("/dev/net/tun does not exist") && e.contains("modprobe tun"), "{e}");
        let denied = TunAccess::Denied { mode: 0o600, uid: 0, gid: 0 };
        let e = check(&on(denied.clone()), 1000).unwrap_err().to_string();
        assert!(e.contains("mode 0600, owner 0:0") && e.contains("chmod 0666 /dev/net/tun"), "{e}");
        assert!(e.contains("uid 1000"), "{e}");
        // Namespaces off: that is what is said, whatever the device.
        let e = check(&kernel(Some("0"), None, None, denied), 1000).unwrap_err().to_string();
        assert!(e.contains("unprivileged_userns_clone"), "{e}");
        assert!(check_user_namespaces(&on(TunAccess::Missing), 1000).is_ok());
    }

    #[test]
    fn only_the_caller_may_be_the_user() {
        // SAFETY: getuid and getgid cannot fail.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        assert_eq!(caller_as(None).unwrap(), Caller { uid, gid });
        assert_eq!(caller_as(Some((uid, gid))).unwrap(), Caller { uid, gid });
        let e = caller_as(Some((uid + 1, gid))).unwrap_err().to_string();
        assert!(e.contains(&format!("--user {}:{gid}", uid + 1)) && e.contains("sudo"), "{e}");
    }
}
