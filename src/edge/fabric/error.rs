//! What can go wrong building the fabric, each error naming the namespace or
//! device and, for a command, the command and its stderr.

use std::io;
use std::net::Ipv4Addr;

use privlink_core::cidr::Cidr;

use crate::edge::netns::NetnsError;

/// Errors from building or removing VPC and instance namespaces.
#[derive(Debug, thiserror::Error)]
pub enum FabricError {
    /// An id of the wrong shape (it names a namespace and a directory).
    #[error("{id:?} is not a well-formed {kind} id (`{prefix}-` and 8 or 17 lowercase hex digits)")]
    BadId {
        /// The id.
        id: String,
        /// What it should have been the id of.
        kind: &'static str,
        /// Its prefix.
        prefix: &'static str,
    },
    /// An instance address that cannot be used in its subnet.
    #[error("instance {id}: {ip} {why} subnet {subnet}")]
    BadAddress {
        /// The instance.
        id: String,
        /// Its address.
        ip: Ipv4Addr,
        /// Its subnet.
        subnet: Cidr,
        /// Why not.
        why: &'static str,
    },
    /// The namespace is already there.
    #[error("namespace {netns} already exists ({why})")]
    Exists {
        /// The namespace.
        netns: String,
        /// What that means here.
        why: &'static str,
    },
    /// The VPC namespace an instance was launched into is gone.
    #[error("namespace {netns} (the instance's VPC) does not exist")]
    NoVpc {
        /// The namespace.
        netns: String,
    },
    /// A step (an `ip` command, entering the namespace, its record) failed.
    #[error("namespace {netns}: {what}: {source}")]
    Setup {
        /// The namespace.
        netns: String,
        /// The step, naming the device.
        what: String,
        /// What failed, with the command and its stderr.
        source: NetnsError,
    },
    /// A sysctl could not be read or written.
    #[error("namespace {netns}: /proc/sys/{} ({key}): {source}", key.replace('.', "/"))]
    Sysctl {
        /// The namespace.
        netns: String,
        /// The key, dotted.
        key: String,
        /// The OS error.
        source: io::Error,
    },
    /// A file (a record, `resolv.conf`) could not be read or written.
    #[error("{path}: {source}")]
    File {
        /// The file or directory.
        path: String,
        /// The OS error.
        source: io::Error,
    },
    /// Removal ran but the namespace is still there.
    #[error("namespace {netns} is still there after `ip netns del`")]
    NotRemoved {
        /// The namespace.
        netns: String,
    },
}

impl FabricError {
    /// A failed step in namespace `netns`.
    pub(crate) fn setup(netns: &str, what: impl Into<String>) -> impl FnOnce(NetnsError) -> FabricError {
        let netns = netns.to_string();
        let what = what.into();
        move |source| FabricError::Setup { netns, what, source }
    }

    /// A failed file operation on `path`.
    pub(crate) fn file(path: &std::path::Path) -> impl FnOnce(io::Error) -> FabricError {
        let path = path.display().to_string();
        move |source| FabricError::File { path, source }
    }
}
