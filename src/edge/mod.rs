//! The I/O edges: namespaces, the TUN, the per-queue stack loop, the relay,
//! the in-process streams and the wakers they share, the resolver's sockets,
//! the state store, locks, ownership records, privileges and the daemon.

pub mod config_file;
pub mod daemon;
pub mod guard;
pub mod lock;
pub mod netns;
pub mod ownership;
pub mod pipe;
pub mod privileges;
pub mod queue;
pub mod ready;
pub mod relay;
pub mod resolver;
pub mod store;
pub mod tun;
pub mod upstream;
