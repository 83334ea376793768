//! Sysctls of a namespace: `/proc/sys/net/…` opened by a thread that entered
//! it (the kernel resolves those files in the opener's network namespace), so
//! no `ip netns exec sysctl` process per setting.

use std::io;

use super::FabricError;
use crate::edge::netns;

fn proc_path(key: &str) -> String {
    format!("/proc/sys/{}", key.replace('.', "/"))
}

/// Sets `key` (dotted, e.g. `net.ipv4.conf.eth0.rp_filter`) to `value` in namespace `ns`.
pub fn set(ns: &str, key: &str, value: &str) -> Result<(), FabricError> {
    let path = proc_path(key);
    let value_nl = format!("{value}\n");
    let written = netns::run_in(ns, move || std::fs::write(path, value_nl))
        .map_err(FabricError::setup(ns, format!("setting {key}={value}")))?;
    written.map_err(|source| sysctl_err(ns, key, source))
}

/// Sets every `(key, value)` in namespace `ns` from one thread (entering a
/// namespace costs a thread and a `setns`); stops at the first failure.
pub fn set_all(ns: &str, settings: &[(String, &str)]) -> Result<(), FabricError> {
    let owned: Vec<(String, String)> = settings.iter().map(|(k, v)| (k.clone(), v.to_string())).collect();
    let written = netns::run_in(ns, move || {
        for (key, value) in &owned {
            if let Err(e) = std::fs::write(proc_path(key), format!("{value}\n")) {
                return Err((key.clone(), e));
            }
        }
        Ok(())
    })
    .map_err(FabricError::setup(ns, "setting sysctls"))?;
    written.map_err(|(key, source)| sysctl_err(ns, &key, source))
}

/// Reads `key` in namespace `ns`, trimmed.
pub fn get(ns: &str, key: &str) -> Result<String, FabricError> {
    let path = proc_path(key);
    let read = netns::run_in(ns, move || std::fs::read_to_string(path))
        .map_err(FabricError::setup(ns, format!("reading {key}")))?;
    read.map(|s| s.trim().to_string()).map_err(|source| sysctl_err(ns, key, source))
}

fn sysctl_err(ns: &str, key: &str, source: io::Error) -> FabricError {
    FabricError::Sysctl { netns: ns.to_string(), key: key.to_string(), source }
}
