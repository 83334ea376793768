//! privlink: a working copy of an AWS interface VPC endpoint (PrivateLink ENI) on Linux.
pub mod filter;
pub mod flowlog;
