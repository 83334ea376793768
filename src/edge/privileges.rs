//! Privileges: what `privlink up` needs, checked before it touches anything,
//! and given up once the ENI exists.
//!
//! Start-up needs `CAP_NET_ADMIN` (the TUN, its address and routes) and
//! `CAP_SYS_ADMIN` (making and entering the namespace: a mount, `setns`);
//! root has both. [`require`] checks the effective set first thing, so a
//! user without them is told what is needed before any file is read or
//! written.
//!
//! Once the namespace, the TUN's queues, the routes, `resolv.conf`, the flow
//! log and the sockets exist, the data path needs nothing: it reads and
//! writes descriptors it holds and connects out as any user may. Reloads
//! (SIGHUP) swap the zone and the rules in memory and need nothing either.
//! [`drop_all`] gives everything up on the calling thread before the queue
//! threads start (threads inherit it): the bounding and ambient sets are
//! emptied, `no_new_privs` is set, root becomes nobody (65534:65534, no
//! supplementary groups; a root without `CAP_SETUID` stays root, with a
//! warning) and every capability is cleared; the result is checked.
//! Capabilities and ids are per thread in Linux, so this is done with raw
//! system calls: libc's `setuid` would change every thread.
//!
//! What is left is the teardown: removing the namespace (`ip netns del`, an
//! unmount) needs `CAP_SYS_ADMIN`, and the files privlink made under `/run`,
//! `/etc/netns` and the state dir need root's ownership. One thread keeps
//! exactly that ([`Teardown`]): uid 0, `CAP_SYS_ADMIN` only when there is a
//! namespace to remove, bounding set the same, `no_new_privs`. It sleeps
//! until `up` ends, then drops what it was handed. Threads share memory, so
//! this stops a data-path bug from using privileges it reaches by mistake; it
//! is no wall against code run inside the process.

use std::io;
use std::sync::mpsc;
use std::thread::JoinHandle;

/// `CAP_NET_ADMIN`: network configuration (the TUN, addresses, routes).
pub const CAP_NET_ADMIN: u32 = 12;
/// `CAP_SYS_ADMIN`: mounts and `setns` (the namespace).
pub const CAP_SYS_ADMIN: u32 = 21;
/// `CAP_SETGID`: changing group ids.
const CAP_SETGID: u32 = 6;
/// `CAP_SETUID`: changing user ids.
const CAP_SETUID: u32 = 7;
/// The user and group the data path runs as when started by root.
pub const NOBODY: u32 = 65534;

/// What `up` does with its privileges once the ENI exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Privileges {
    /// Keep them (an in-process caller such as the demo, which goes on to
    /// make namespaces of its own).
    Keep,
    /// Give them up: the data path runs without, one thread keeps what the
    /// teardown needs.
    Drop,
}

/// Why privileges are missing or could not be given up.
#[derive(Debug, thiserror::Error)]
pub enum PrivilegeError {
    /// The process cannot make the namespace and the TUN.
    #[error(
        "`privlink up` needs root, or CAP_NET_ADMIN and CAP_SYS_ADMIN, to make the VPC namespace and its TUN device; \
         this process (uid {uid}) lacks {}; nothing was touched",
        missing.join(" and ")
    )]
    Missing {
        /// The real user id.
        uid: u32,
        /// The capabilities it lacks.
        missing: Vec<&'static str>,
    },
    /// A system call to give privileges up failed.
    #[error("giving up privileges: {what}: {source}")]
    Drop {
        /// The step.
        what: &'static str,
        /// The OS error.
        source: io::Error,
    },
    /// Capabilities were still there after giving them up.
    #[error("giving up privileges: capabilities {0:#x} remain")]
    Remain(u64),
}

/// Checks that this thread may make the namespace and the TUN.
pub fn require() -> Result<(), PrivilegeError> {
    let have = caps().map_err(|source| PrivilegeError::Drop { what: "capget", source })?.effective;
    let missing: Vec<&'static str> = [(CAP_NET_ADMIN, "CAP_NET_ADMIN"), (CAP_SYS_ADMIN, "CAP_SYS_ADMIN")]
        .into_iter()
        .filter(|(c, _)| have & (1 << c) == 0)
        .map(|(_, name)| name)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    // SAFETY: getuid cannot fail.
    Err(PrivilegeError::Missing { uid: unsafe { libc::getuid() }, missing })
}

/// Gives up every privilege on the calling thread (and the threads it starts
/// from now on): see the module's notes.
pub fn drop_all() -> Result<(), PrivilegeError> {
    let fail = |what| move |source| PrivilegeError::Drop { what, source };
    let had = caps().map_err(fail("capget"))?.effective;
    restrict(0)?;
    // SAFETY: getuid cannot fail.
    if unsafe { libc::getuid() } == 0 {
        if had & (1 << CAP_SETUID) != 0 && had & (1 << CAP_SETGID) != 0 {
            // Raw calls: they change this thread alone (libc's would signal every thread to follow).
            sys(libc::SYS_setgroups, [0, 0, 0]).map_err(fail("setgroups"))?;
            let id = libc::c_long::from(NOBODY as i32);
            sys(libc::SYS_setresgid, [id, id, id]).map_err(fail("setresgid"))?;
            sys(libc::SYS_setresuid, [id, id, id]).map_err(fail("setresuid"))?;
        } else {
            tracing::warn!("no CAP_SETUID and CAP_SETGID: the data path stays uid 0, without capabilities");
        }
    }
    set_caps(0).map_err(fail("capset"))?;
    let left = caps().map_err(fail("capget"))?;
    if left.effective | left.permitted | left.inheritable != 0 {
        return Err(PrivilegeError::Remain(left.effective | left.permitted | left.inheritable));
    }
    Ok(())
}

/// The thread that keeps what the teardown needs and drops what it holds when `up` ends.
pub struct Teardown {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Teardown {
    /// Hands `held` to a thread of its own that keeps uid 0 and, with
    /// `sys_admin`, `CAP_SYS_ADMIN` (nothing else), and that drops `held`
    /// when this is dropped (and waits for it). Call before [`drop_all`].
    pub fn start<T: Send + 'static>(held: T, sys_admin: bool) -> Result<Teardown, PrivilegeError> {
        let keep = if sys_admin { 1 << CAP_SYS_ADMIN } else { 0 };
        let (ready_tx, ready_rx) = mpsc::sync_channel(1);
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("privlink-clean".into())
            .spawn(move || {
                let _ =
                    ready_tx.send(restrict(keep).and_then(|()| {
                        set_caps(keep).map_err(|source| PrivilegeError::Drop { what: "capset", source })
                    }));
                // Returns when the sender goes: `up` is over.
                let _ = stopped.recv();
                drop(held);
            })
            .map_err(|source| PrivilegeError::Drop { what: "spawning the teardown thread", source })?;
        let teardown = Teardown { stop: Some(stop), thread: Some(thread) };
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(teardown),
            Ok(Err(e)) => Err(e),
            Err(_) => {
                Err(PrivilegeError::Drop { what: "the teardown thread", source: io::Error::other("it panicked") })
            }
        }
    }
}

impl Drop for Teardown {
    fn drop(&mut self) {
        self.stop.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Empties the bounding set but `keep` (a mask), clears the ambient set and
/// sets `no_new_privs` on this thread, so nothing it runs gains more.
fn restrict(keep: u64) -> Result<(), PrivilegeError> {
    let fail = |what| move |source| PrivilegeError::Drop { what, source };
    for cap in 0..64u32 {
        if keep & (1 << cap) != 0 {
            continue;
        }
        match prctl(libc::PR_CAPBSET_DROP, cap.into()) {
            Ok(()) => {}
            // Past the kernel's last capability.
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => break,
            // Without CAP_SETPCAP (not root, only the two capabilities), the bounding set stays.
            Err(e) if e.raw_os_error() == Some(libc::EPERM) => break,
            Err(e) => return Err(fail("dropping from the bounding set")(e)),
        }
    }
    prctl(libc::PR_CAP_AMBIENT, libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong)
        .map_err(fail("clearing the ambient set"))?;
    prctl(libc::PR_SET_NO_NEW_PRIVS, 1).map_err(fail("no_new_privs"))
}

/// `prctl(option, arg, 0, 0, 0)`, every argument a full `unsigned long` (the
/// kernel refuses garbage in the upper halves of the unused ones).
fn prctl(option: libc::c_int, arg: libc::c_ulong) -> io::Result<()> {
    const ZERO: libc::c_ulong = 0;
    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(option, arg, ZERO, ZERO, ZERO) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn sys(call: libc::c_long, args: [libc::c_long; 3]) -> io::Result<()> {
    // SAFETY: setgroups(0, NULL), setresgid and setresuid take integers (a null list for setgroups).
    if unsafe { libc::syscall(call, args[0], args[1], args[2]) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `_LINUX_CAPABILITY_VERSION_3`: 64-bit sets in two 32-bit words.
const CAPABILITY_VERSION_3: u32 = 0x2008_0522;

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// A thread's capability sets, as 64-bit masks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Caps {
    effective: u64,
    permitted: u64,
    inheritable: u64,
}

/// The calling thread's capabilities.
fn caps() -> io::Result<Caps> {
    let mut hdr = CapHeader { version: CAPABILITY_VERSION_3, pid: 0 };
    let mut data = [CapData::default(); 2];
    // SAFETY: capget writes two CapData for version 3; both live for the call.
    if unsafe { libc::syscall(libc::SYS_capget, &mut hdr, data.as_mut_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let join = |f: fn(&CapData) -> u32| u64::from(f(&data[0])) | u64::from(f(&data[1])) << 32;
    Ok(Caps {
        effective: join(|d| d.effective),
        permitted: join(|d| d.permitted),
        inheritable: join(|d| d.inheritable),
    })
}

/// Sets this thread's effective and permitted sets to `keep` and its inheritable set to nothing.
fn set_caps(keep: u64) -> io::Result<()> {
    let mut hdr = CapHeader { version: CAPABILITY_VERSION_3, pid: 0 };
    let word = |i: u32| CapData { effective: (keep >> i) as u32, permitted: (keep >> i) as u32, inheritable: 0 };
    let data = [word(0), word(32)];
    // SAFETY: capset reads two CapData for version 3; both live for the call.
    if unsafe { libc::syscall(libc::SYS_capset, &mut hdr, data.as_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_that_gives_everything_up_cannot_take_it_back() {
        // On a thread of its own: the test process keeps what it has.
        std::thread::spawn(|| {
            let root = require().is_ok();
            drop_all().unwrap();
            let left = caps().unwrap();
            assert_eq!((left.effective, left.permitted), (0, 0));
            assert!(set_caps(1 << CAP_NET_ADMIN).is_err(), "a capability came back");
            let err = require().unwrap_err().to_string();
            assert!(err.contains("needs root, or CAP_NET_ADMIN and CAP_SYS_ADMIN"), "{err}");
            assert!(err.contains("lacks CAP_NET_ADMIN and CAP_SYS_ADMIN"), "{err}");
            if root {
                // SAFETY: getuid cannot fail.
                let uid = unsafe { libc::syscall(libc::SYS_getuid) };
                assert_eq!(uid, i64::from(NOBODY));
            }
        })
        .join()
        .unwrap();
    }
}
