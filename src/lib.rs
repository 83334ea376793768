//! privlink: a working copy of an AWS interface VPC endpoint (PrivateLink ENI) on Linux.
//!
//! The decisions live in the sans-IO core, the `privlink-core` crate (its
//! root has the map: the data path, the control path, who owns what, every
//! timer). This crate does the I/O around it:
//!
//! - [`edge`]: the network namespace, the TUN, each queue's stack (smoltcp
//!   over the link, driven a turn at a time), the relay between a smoltcp
//!   socket and its upstream, the resolver's sockets, the flow-log file, the
//!   state dir, reading the config file, and the daemon behind `privlink up`.
//! - [`lab`]: the demo, the stand-ins for the public side, the probe tests use
//!   from inside a namespace, and the data path in memory (no root, no TUN).
//!
//! `src/main.rs` is the command line.

pub mod edge;
pub mod lab;
