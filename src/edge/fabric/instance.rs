//! An instance's namespace and its link to the VPC router.

use std::net::Ipv4Addr;

use privlink_core::api::ec2::IdKind;
use privlink_core::cidr::Cidr;

use super::records::delete_eth0;
use super::{ids, sysctl, FabricError, Records, VpcNet};
use crate::edge::netns::{self, Netns};

/// An instance's network namespace, `eth0` in its subnet, made by
/// [`InstanceNet::launch`] and removed with its veth and `/etc/netns/<id>/`
/// by [`InstanceNet::terminate`] or on drop.
#[derive(Debug)]
pub struct InstanceNet {
    ns: Option<Netns>,
    records: Records,
    id: String,
    vpc: String,
    vpc_side: String,
    ip: Ipv4Addr,
    subnet: Cidr,
}

/// Runs `ip ARGS…`, an error naming namespace `ns` and the step `what`.
fn ip(ns: &str, what: &str, args: &[&str]) -> Result<(), FabricError> {
    netns::ip(args).map_err(FabricError::setup(ns, what))
}

impl InstanceNet {
    /// Launches instance `id` at `ip` in `subnet` of `vpc`: namespace `id`
    /// (recorded first) with `lo` up and `eth0` at `ip`/prefix, `default via`
    /// the subnet router, whose end of the veth in the VPC namespace holds the
    /// router address, answers ARP for the subnet and drops packets from any
    /// source but `ip`; `/etc/netns/<id>/resolv.conf` names `resolver`. Anything
    /// made before a step fails is removed.
    pub fn launch(
        vpc: &VpcNet,
        id: &str,
        ip: Ipv4Addr,
        subnet: Cidr,
        resolver: Ipv4Addr,
    ) -> Result<InstanceNet, FabricError> {
        ids::check(IdKind::Instance, id)?;
        let bad = |why| FabricError::BadAddress { id: id.to_string(), ip, subnet, why };
        if !subnet.contains(ip) {
            return Err(bad("is outside"));
        }
        if subnet.is_reserved(ip) {
            return Err(bad("is one of the five addresses AWS reserves in"));
        }
        let v = vpc.name();
        if !netns::exists(v) {
            return Err(FabricError::NoVpc { netns: v.to_string() });
        }
        if netns::exists(id) {
            return Err(FabricError::Exists { netns: id.to_string(), why: "an instance with this id is running" });
        }
        let record = vpc.records().record(id)?;
        let mut inst = InstanceNet {
            ns: None,
            records: vpc.records().clone(),
            id: id.to_string(),
            vpc: v.to_string(),
            vpc_side: ids::vpc_side_name(id),
            ip,
            subnet,
        };
        let ns = Netns::ensure_in(id, record, vpc.records().etc_netns())
            .map_err(FabricError::setup(id, "creating the instance namespace"))?;
        let created = ns.created();
        inst.ns = Some(ns);
        if !created {
            return Err(FabricError::Exists { netns: id.to_string(), why: "made by someone else meanwhile" });
        }
        inst.wire(resolver)?;
        Ok(inst)
    }

    /// The veth, its addresses, routes and sysctls, and `resolv.conf`.
    fn wire(&self, resolver: Ipv4Addr) -> Result<(), FabricError> {
        let (v, id, x) = (self.vpc.as_str(), self.id.as_str(), self.vpc_side.as_str());
        let router = ids::subnet_router(self.subnet).to_string();
        let what = format!("adding veth {x} ({v}) <-> eth0 ({id})");
        ip(v, &what, &["-n", v, "link", "add", x, "type", "veth", "peer", "name", "eth0", "netns", id])?;
        // Before the links come up, so no IPv6 address is ever configured on them.
        let vpc_side = [
            (format!("net.ipv6.conf.{x}.disable_ipv6"), "1"),
            (format!("net.ipv4.conf.{x}.rp_filter"), "1"),
            (format!("net.ipv4.conf.{x}.proxy_arp"), "1"),
            (format!("net.ipv4.conf.{x}.send_redirects"), "0"),
            (format!("net.ipv4.neigh.{x}.proxy_delay"), "0"),
        ];
        sysctl::set_all(v, &vpc_side)?;
        sysctl::set(id, "net.ipv6.conf.eth0.disable_ipv6", "1")?;

        // One `ip` per namespace: its address, up, its route.
        let host = format!("{}/32", self.ip);
        let vpc_side = [
            format!("addr add {router}/32 dev {x}"),
            format!("link set {x} up"),
            format!("route replace {host} dev {x} src {router}"),
        ];
        let what = format!("giving {x} the subnet router address {router}/32, up, routing {host} to it");
        netns::ip_batch(v, &vpc_side).map_err(FabricError::setup(v, &what))?;
        let addr = format!("{}/{}", self.ip, self.subnet.prefix());
        let instance_side = [
            format!("addr add {addr} dev eth0"),
            "link set eth0 up".to_string(),
            format!("route add default via {router} dev eth0"),
        ];
        let what = format!("giving eth0 {addr}, up, the default route via {router}");
        netns::ip_batch(id, &instance_side).map_err(FabricError::setup(id, &what))?;

        let ns = self.ns.as_ref().expect("launched");
        ns.write_resolv_conf(resolver).map_err(FabricError::file(&ns.resolv_conf()))
    }

    /// Its id, which is the namespace's name.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Its VPC's namespace.
    pub fn vpc(&self) -> &str {
        &self.vpc
    }

    /// Its address.
    pub fn ip(&self) -> Ipv4Addr {
        self.ip
    }

    /// Its subnet.
    pub fn subnet(&self) -> Cidr {
        self.subnet
    }

    /// The VPC side of its veth (a device in the VPC namespace).
    pub fn vpc_side(&self) -> &str {
        &self.vpc_side
    }

    /// Removes its veth, namespace and `/etc/netns/<id>/`, saying what failed.
    pub fn terminate(mut self) -> Result<(), FabricError> {
        self.remove_inner()
    }

    fn remove_inner(&mut self) -> Result<(), FabricError> {
        let Some(ns) = self.ns.take() else { return Ok(()) };
        if ns.created() {
            delete_eth0(&self.id);
        }
        ns.remove().map_err(FabricError::setup(&self.id, "removing the instance namespace"))?;
        self.records.forget(&self.id);
        Ok(())
    }
}

impl Drop for InstanceNet {
    fn drop(&mut self) {
        if let Err(e) = self.remove_inner() {
            tracing::warn!("{e}");
        }
    }
}
