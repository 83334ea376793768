//! The I/O edges: namespaces, the TUN, the per-queue stack loop, the relay,
//! the in-process streams and the wakers they share, the resolver's sockets,
//! the state store, locks, ownership records, privileges, the daemon, and the
//! fabric (VPC and instance namespaces) the EC2 API builds.

/// Logs a failure: at `info` when `$limit` (a [`privlink_core::log_limit::LogLimit`])
/// has room for a line at `$now`, saying how many it held back; else at `debug`.
macro_rules! log_failure {
    ($limit:expr, $now:expr, $($fmt:tt)+) => {
        match $limit.allow($now) {
            Some(n) => tracing::info!("{}{}", format_args!($($fmt)+), privlink_core::log_limit::HeldBack(n)),
            None => tracing::debug!($($fmt)+),
        }
    };
}

pub mod api;
pub mod config_file;
pub mod daemon;
pub mod data_path;
pub mod fabric;
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
pub mod rootless;
pub mod run;
pub mod store;
pub mod tun;
pub mod upstream;
