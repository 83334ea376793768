//! A VPC's namespace: the VPC router, named by the VPC's id.

use privlink_core::api::ec2::IdKind;

use super::{ids, sysctl, FabricError, Records};
use crate::edge::netns::{self, Netns};

/// The sysctls of a VPC namespace (see the module's theory of operation).
const VPC_SYSCTLS: &[(&str, &str)] = &[
    ("net.ipv4.ip_forward", "1"),
    ("net.ipv4.conf.all.send_redirects", "0"),
    ("net.ipv4.conf.default.send_redirects", "0"),
    ("net.ipv4.conf.all.rp_filter", "0"),
];

/// A VPC's network namespace, made by [`VpcNet::create`] and removed by
/// [`VpcNet::remove`] or on drop.
#[derive(Debug)]
pub struct VpcNet {
    ns: Option<Netns>,
    records: Records,
    id: String,
}

impl VpcNet {
    /// Creates namespace `vpc_id` (recorded in `records` first) with `lo`
    /// up and the VPC router's sysctls. One already there is refused: a left
    /// behind one is removed by [`Records::remove_left_behind`] first, and
    /// someone else's is not ours to change.
    pub fn create(records: &Records, vpc_id: &str) -> Result<VpcNet, FabricError> {
        ids::check(IdKind::Vpc, vpc_id)?;
        if netns::exists(vpc_id) {
            return Err(FabricError::Exists { netns: vpc_id.to_string(), why: "a VPC with this id is already up" });
        }
        let record = records.record(vpc_id)?;
        let mut vpc = VpcNet { ns: None, records: records.clone(), id: vpc_id.to_string() };
        let ns = Netns::ensure_in(vpc_id, record, records.etc_netns())
            .map_err(FabricError::setup(vpc_id, "creating the VPC namespace"))?;
        let created = ns.created();
        vpc.ns = Some(ns);
        if !created {
            return Err(FabricError::Exists { netns: vpc_id.to_string(), why: "made by someone else meanwhile" });
        }
        let settings: Vec<(String, &str)> = VPC_SYSCTLS.iter().map(|(k, v)| (k.to_string(), *v)).collect();
        sysctl::set_all(vpc_id, &settings)?;
        Ok(vpc)
    }

    /// The VPC's id, which is the namespace's name.
    pub fn name(&self) -> &str {
        &self.id
    }

    /// Where its records live (instances launched into it record theirs there too).
    pub fn records(&self) -> &Records {
        &self.records
    }

    /// Removes the namespace (and the VPC side of any instance link left in
    /// it), saying what failed.
    pub fn remove(mut self) -> Result<(), FabricError> {
        self.remove_inner()
    }

    fn remove_inner(&mut self) -> Result<(), FabricError> {
        let Some(ns) = self.ns.take() else { return Ok(()) };
        ns.remove().map_err(FabricError::setup(&self.id, "removing the VPC namespace"))?;
        self.records.forget(&self.id);
        Ok(())
    }
}

impl Drop for VpcNet {
    fn drop(&mut self) {
        if let Err(e) = self.remove_inner() {
            tracing::warn!("{e}");
        }
    }
}
