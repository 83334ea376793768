//! privlink: a working copy of an AWS interface VPC endpoint (PrivateLink ENI) on Linux.
//!
//! The sans-IO core is the `privlink-core` crate; this crate holds the I/O
//! edges ([`edge`]) and the lab helpers ([`lab`]).

pub mod edge;
pub mod lab;
