//! The records of what the fabric created: one [`CreatedRecord`] per
//! namespace, in `DIR/fabric/<id>/`, so a run killed before it cleaned up
//! leaves the next one enough to remove each namespace by id, and never one
//! someone else made under the same name ([`crate::edge::ownership`]).

use std::io;
use std::path::{Path, PathBuf};

use privlink_core::api::ec2::IdKind;

use super::{ids, FabricError};
use crate::edge::netns::{self, Netns};
use crate::edge::ownership::{self, Claim, CreatedRecord};

/// Where the fabric's records live: `STATE_DIR/fabric/`.
#[derive(Debug, Clone)]
pub struct Records {
    dir: PathBuf,
    /// Where instances' `resolv.conf` go: `ETC_NETNS/<id>/resolv.conf`.
    etc_netns: PathBuf,
}

impl Records {
    /// The records under state dir `state_dir`; `resolv.conf` files in [`netns::ETC_NETNS`].
    pub fn in_state_dir(state_dir: &Path) -> Records {
        Records { dir: state_dir.join("fabric"), etc_netns: PathBuf::from(netns::ETC_NETNS) }
    }

    /// The same, with instances' `resolv.conf` under `etc_netns` instead (a
    /// rootless run, which cannot write `/etc/netns`).
    pub fn with_etc_netns(self, etc_netns: PathBuf) -> Records {
        Records { etc_netns, ..self }
    }

    /// Where instances' `resolv.conf` go: `DIR/<id>/resolv.conf`.
    pub fn etc_netns(&self) -> &Path {
        &self.etc_netns
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The record of namespace `id`, its directory made.
    pub(crate) fn record(&self, id: &str) -> Result<CreatedRecord, FabricError> {
        let dir = self.dir.join(id);
        std::fs::create_dir_all(&dir).map_err(FabricError::file(&dir))?;
        Ok(CreatedRecord::in_dir(&dir))
    }

    /// Drops the (by now empty) directory of `id`'s record.
    pub(crate) fn forget(&self, id: &str) {
        let dir = self.dir.join(id);
        match std::fs::remove_dir(&dir) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => tracing::warn!("keeping {}: {e}", dir.display()),
            _ => {}
        }
    }

    /// The ids of the namespaces recorded as created and not yet removed
    /// (left behind by a run that died, or live in this one), sorted.
    pub fn left_behind(&self) -> Result<Vec<String>, FabricError> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(FabricError::file(&self.dir)(e)),
        };
        let mut ids = Vec::new();
        for entry in entries {
            let entry = entry.map_err(FabricError::file(&self.dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if entry.path().join("created.json").exists() {
                ids.push(name);
            }
        }
        ids.sort();
        Ok(ids)
    }

    /// Removes everything [`Records::left_behind`] names, instances first;
    /// returns the ids. Call before making anything anew after a restart.
    pub fn remove_left_behind(&self) -> Result<Vec<String>, FabricError> {
        let ids = self.left_behind()?;
        let (instances, others): (Vec<&String>, Vec<&String>) = ids.iter().partition(|id| id.starts_with("i-"));
        for id in instances {
            remove_instance(self, id)?;
        }
        for id in others {
            remove_vpc(self, id)?;
        }
        Ok(ids)
    }
}

/// Removes instance `id`'s namespace, its veth (both ends) and
/// `/etc/netns/<id>/` if the record says the fabric made it. Nothing
/// recorded, or nothing left: nothing to do, so calling it twice is fine.
pub fn remove_instance(records: &Records, id: &str) -> Result<(), FabricError> {
    ids::check(IdKind::Instance, id)?;
    remove(records, id, true)
}

/// Removes VPC `id`'s namespace (and with it the VPC side of any instance
/// veth still in it) if the record says the fabric made it; idempotent.
/// Instances are not removed: terminate them first, as EC2 requires.
pub fn remove_vpc(records: &Records, id: &str) -> Result<(), FabricError> {
    ids::check(IdKind::Vpc, id)?;
    remove(records, id, false)
}

fn remove(records: &Records, id: &str, instance: bool) -> Result<(), FabricError> {
    let record = CreatedRecord::in_dir(&records.dir.join(id));
    let loaded = record.load().map_err(FabricError::file(record.path()))?;
    let Some(created) = loaded.filter(|c| c.netns == id) else {
        records.forget(id);
        return Ok(());
    };
    let ours = matches!(ownership::claim(Some(&created), id, netns::inode(id)), Claim::Adopt | Claim::Recreate);
    if ours && instance {
        delete_eth0(id);
    }
    Netns::remove_left_behind_in(&record, &created, &records.etc_netns)
        .map_err(FabricError::setup(id, "removing what an earlier run left"))?;
    if ours && netns::exists(id) {
        return Err(FabricError::NotRemoved { netns: id.to_string() });
    }
    records.forget(id);
    Ok(())
}

/// Deletes `eth0` in instance namespace `id`, which takes its veth peer in
/// the VPC namespace with it at once (the namespace itself goes only when
/// nothing holds it any more). A missing one is fine.
pub(crate) fn delete_eth0(id: &str) {
    match netns::ip(&["-n", id, "link", "del", "eth0"]) {
        Err(netns::NetnsError::Ip { msg, .. }) if msg.contains("Cannot find device") => {}
        Err(e) => tracing::warn!("namespace {id}: deleting eth0: {e}"),
        Ok(()) => {}
    }
}
