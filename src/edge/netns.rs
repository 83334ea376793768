//! Network namespaces and the `ip` command: the edge where privlink touches the host.
//!
//! The process stays in the host namespace (its upstream sockets use the
//! host's network); work that must happen inside the VPC namespace runs on a
//! short-lived thread that `setns`es into it. `setns` moves only the calling
//! thread, so the rest of the process is never affected.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::Command;

/// Errors from namespace and link setup, each naming what failed.
#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    /// `ip …` could not run or failed.
    #[error("`ip {args}` failed: {msg}")]
    Ip {
        /// The arguments.
        args: String,
        /// Its stderr, or the spawn error.
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
}

/// Runs `ip ARGS…`, turning a failure into an error that quotes its stderr.
pub fn ip(args: &[&str]) -> Result<(), NetnsError> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| NetnsError::Ip { args: args.join(" "), msg: e.to_string() })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(NetnsError::Ip { args: args.join(" "), msg: String::from_utf8_lossy(&out.stderr).trim().to_string() })
    }
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

/// A named network namespace, removed on drop if this process created it.
#[derive(Debug)]
pub struct Netns {
    name: String,
    created: bool,
}

impl Netns {
    /// Uses namespace `name`, creating it (with `lo` up) if it is missing.
    pub fn ensure(name: &str) -> Result<Netns, NetnsError> {
        if exists(name) {
            return Ok(Netns { name: name.to_string(), created: false });
        }
        ip(&["netns", "add", name])?;
        let ns = Netns { name: name.to_string(), created: true };
        ip(&["-n", name, "link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether this process created it (and so removes it).
    pub fn created(&self) -> bool {
        self.created
    }

    /// Writes `/etc/netns/NAME/resolv.conf` naming `nameserver`, so programs run
    /// with `ip netns exec` use the VPC resolver. Only for a namespace this
    /// process created (and so removes, with the file, on drop).
    pub fn write_resolv_conf(&self, nameserver: std::net::Ipv4Addr) -> io::Result<()> {
        if !self.created {
            return Ok(());
        }
        let dir = PathBuf::from("/etc/netns").join(&self.name);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(
            dir.join("resolv.conf"),
            format!("# written by privlink: the VPC resolver\nnameserver {nameserver}\n"),
        )
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if self.created {
            let _ = std::fs::remove_dir_all(PathBuf::from("/etc/netns").join(&self.name));
            if let Err(e) = ip(&["netns", "del", &self.name]) {
                tracing::warn!("removing namespace {}: {e}", self.name);
            }
        }
    }
}
