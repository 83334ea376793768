//! One `privlink up` per VPC namespace and per state dir: an exclusive lock
//! on a file that also names its holder.
//!
//! Two privlinks on one namespace would each add the resolver's routes, and
//! the first to stop would take the other's away (its DNS dies without a
//! word); two on one state dir would drop each other's endpoints from it and
//! hand their addresses out again. So `up` takes the namespace's lock
//! (`/run/privlink/NAME.lock`, on tmpfs like the namespaces themselves) and
//! the state dir's (`DIR/lock`) before it reads or creates anything, and a
//! second `up` is refused with the holder's pid, state dir, namespace and
//! device.
//!
//! The lock is `flock(LOCK_EX | LOCK_NB)`: the kernel releases it when its
//! holder dies, however it dies (`kill -9` included), so a stale file never
//! blocks a restart. A clean exit unlinks the file while still holding it;
//! a process that opened it just before then locks a file no longer at the
//! path, sees so and tries again, at most [`LOCK_TRIES`] times.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{self, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Where the namespaces' locks live.
pub const NETNS_LOCK_DIR: &str = "/run/privlink";

/// Attempts to lock a path whose file is being replaced under us before giving up.
pub const LOCK_TRIES: usize = 8;

/// The lock file of namespace `netns`.
pub fn netns_lock_path(netns: &str) -> PathBuf {
    Path::new(NETNS_LOCK_DIR).join(format!("{netns}.lock"))
}

/// Who holds a lock: written into the lock file for the next one to read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    /// Its process id.
    pub pid: u32,
    /// Its state dir.
    pub state_dir: String,
    /// Its VPC namespace.
    pub netns: String,
    /// Its TUN device.
    pub tun: String,
}

/// Why a lock was not taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another privlink holds it.
    #[error(
        "{what} is in use by privlink pid {} (state dir {}, namespace {}, device {}); stop it first, or give this one another {field}",
        holder.pid, holder.state_dir, holder.netns, holder.tun
    )]
    Held {
        /// What the lock guards: `namespace NAME`, `state dir DIR`.
        what: String,
        /// The config key or option to change instead.
        field: &'static str,
        /// What its lock file says.
        holder: Holder,
    },
    /// Another privlink holds it and has not yet written its name.
    #[error("{what} is in use by another privlink, which is starting (lock {path})")]
    Starting {
        /// What the lock guards.
        what: String,
        /// The lock file.
        path: String,
    },
    /// The lock file could not be made or read.
    #[error("lock {path}: {source}")]
    Io {
        /// The lock file.
        path: String,
        /// The OS error.
        source: io::Error,
    },
}

/// A held lock; dropping it unlinks the file and releases the lock.
#[derive(Debug)]
pub struct Lock {
    path: PathBuf,
    _file: File,
}

impl Lock {
    /// Takes the lock at `path` (creating its directory) for `holder`, or says
    /// who has it. `what` and `field` word the refusal.
    pub fn acquire(path: &Path, what: &str, field: &'static str, holder: &Holder) -> Result<Lock, LockError> {
        let io_err = |source| LockError::Io { path: path.display().to_string(), source };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io_err)?;
        }
        for _ in 0..LOCK_TRIES {
            let mut file =
                OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path).map_err(io_err)?;
            match file.try_lock() {
                Ok(()) => {}
                Err(TryLockError::WouldBlock) => {
                    let mut text = String::new();
                    let _ = file.read_to_string(&mut text);
                    return Err(match serde_json::from_str(&text) {
                        Ok(holder) => LockError::Held { what: what.to_string(), field, holder },
                        Err(_) => LockError::Starting { what: what.to_string(), path: path.display().to_string() },
                    });
                }
                Err(TryLockError::Error(e)) => return Err(io_err(e)),
            }
            // The file we locked must still be the one at the path: a holder
            // that just stopped unlinked it, and whoever comes next makes a new one.
            let ours = file.metadata().map_err(io_err)?;
            match std::fs::metadata(path) {
                Ok(now) if now.ino() == ours.ino() && now.dev() == ours.dev() => {}
                _ => continue,
            }
            file.set_len(0).map_err(io_err)?;
            let text = serde_json::to_vec(holder).expect("a holder serializes");
            file.write_all(&text).map_err(io_err)?;
            return Ok(Lock { path: path.to_path_buf(), _file: file });
        }
        Err(io_err(io::Error::other(format!("replaced {LOCK_TRIES} times while being locked"))))
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        // Unlinked while still locked: see the module's note on the race.
        if let Err(e) = std::fs::remove_file(&self.path) {
            tracing::warn!("removing lock {}: {e}", self.path.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn holder(pid: u32) -> Holder {
        Holder { pid, state_dir: "/var/lib/privlink".into(), netns: "plk-vpc".into(), tun: "eni0".into() }
    }

    #[test]
    fn a_second_taker_is_told_who_holds_it_and_the_lock_goes_at_drop() {
        let dir = std::env::temp_dir().join(format!("plk-lock-{}", std::process::id()));
        let path = dir.join("sub").join("x.lock");
        let first = Lock::acquire(&path, "namespace plk-vpc", "vpc.netns", &holder(41)).unwrap();
        let err = Lock::acquire(&path, "namespace plk-vpc", "vpc.netns", &holder(42)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "namespace plk-vpc is in use by privlink pid 41 (state dir /var/lib/privlink, namespace plk-vpc, \
             device eni0); stop it first, or give this one another vpc.netns"
        );
        drop(first);
        assert!(!path.exists(), "a clean exit removes the lock file");
        let again = Lock::acquire(&path, "namespace plk-vpc", "vpc.netns", &holder(43)).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(serde_json::from_str::<Holder>(&text).unwrap(), holder(43));
        drop(again);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_stale_file_from_a_dead_holder_does_not_block() {
        let dir = std::env::temp_dir().join(format!("plk-lock-stale-{}", std::process::id()));
        let path = dir.join("y.lock");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(&path, serde_json::to_vec(&holder(7)).unwrap()).unwrap();
        let lock = Lock::acquire(&path, "state dir d", "--state-dir", &holder(8)).unwrap();
        assert!(std::fs::read_to_string(&path).unwrap().contains("\"pid\":8"));
        drop(lock);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
