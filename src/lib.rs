//! privlink: a working copy of an AWS interface VPC endpoint (PrivateLink ENI) on Linux.

pub mod catalog;
pub mod dns;
