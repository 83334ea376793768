//! The kernel side of the EC2 model's VPCs, subnets and instances: the
//! namespaces, veths, addresses, routes and sysctls that make them behave as
//! AWS's fabric does. The API calls it; nothing here knows the model beyond
//! ids, addresses and blocks.
//!
//! # Theory of operation
//!
//! **A VPC is a network namespace** named by its id (`vpc-…`, [`VpcNet`]).
//! It is the VPC router: the data path's TUN (the ENIs, the resolver) lives
//! in it, and so does the VPC side of every instance's link. In it:
//!
//! - `net.ipv4.ip_forward=1`: it routes between instances, and between
//!   instances and the TUN. It also turns on `forwarding` for every device,
//!   which proxy ARP needs (the kernel answers for another host only on a
//!   forwarding device).
//! - `net.ipv4.conf.{all,default}.send_redirects=0`: a router that forwards a
//!   packet out of the device it came in on tells the sender to go direct
//!   (ICMP redirect). In a VPC there is no "direct": every instance is behind
//!   its own link and must keep going through the router. The kernel sends
//!   them if `all` *or* the device says so, hence both, and each instance
//!   link's own setting too.
//! - `net.ipv4.conf.all.rp_filter=0`: a new namespace inherits `all` and
//!   `default` from the host (`net.core.devconf_inherit_init_net=0`), and the
//!   kernel filters a device by `max(all, device)`. systemd sets `all` to 2
//!   (loose), which would turn the strict filter on the instances' links
//!   (below) into a loose one. With `all` at 0, each device's own setting rules.
//!
//! **An instance is a network namespace** named by its id (`i-…`,
//! [`InstanceNet`]) whose `eth0` is one end of a veth pair; the other end,
//! `i` + the id's last 12 hex digits (IFNAMSIZ allows 15), is in the VPC
//! namespace. The instance has its address with the subnet's prefix and
//! `default via` the subnet router (subnet base + 1), as DHCP gives it on EC2;
//! `/etc/netns/<id>/resolv.conf` names the VPC resolver (VPC base + 2), so
//! `ip netns exec i-… CMD` resolves through it (a rootless run, which cannot
//! write `/etc`, keeps it in its run directory: [`Records::with_etc_netns`]).
//!
//! **The subnet router answers ARP for every address of the subnet**, as
//! AWS's fabric does: an instance believes its whole subnet is on its link,
//! yet all it ever talks to is the router. The VPC side of each instance's
//! veth carries the subnet router address as a /32 (no subnet route: the
//! subnet is not on any one link), a /32 route to the instance's address, and
//! `proxy_arp=1`. The kernel answers an ARP request on that device with the
//! device's own MAC when the target is one of its addresses (the router
//! itself) or when it has a unicast route to the target through *another*
//! device: an ENI or the resolver (routed to the TUN by the data path), or
//! another instance (routed to that instance's veth). An address that leads
//! nowhere gets no answer, and the instance sees "host unreachable" as it
//! would for an unused address on EC2. `proxy_arp_pvlan` (answering for a
//! target behind the *same* device) is not needed: every link has exactly one
//! instance on it. `neigh.<dev>.proxy_delay=0`: the kernel otherwise delays a
//! proxied answer to a broadcast request by up to 0.8 s at random.
//!
//! **Source/destination check.** EC2 drops a packet an instance sends from an
//! address that is not its own, and delivers to it only packets for its own
//! address. Delivery follows from the routes: the VPC namespace routes only the
//! instance's /32 to its link. Sending is held by strict reverse-path filtering
//! on the VPC side of the link (`conf.<dev>.rp_filter=1`): a packet is taken
//! only if the route back to its source leaves through the device it came in
//! on, which for that device is true of the instance's own address alone.
//! Another instance's address (same subnet or not) routes to that instance's
//! link, an ENI's to the TUN, the router's own is local, and anything else has
//! no route at all: all dropped, counted in the namespace's
//! `TcpExt: IPReversePathFilter` (`/proc/net/netstat`). Loose mode (2) would let
//! an instance pose as any *routed* address, another instance's included.
//! rp_filter is IPv4's: the links run with IPv6 disabled at both ends
//! (`ipv6.conf.<dev>.disable_ipv6=1`), so nothing else gets through. What it
//! does not cover: ARP (an instance can claim another's address in an ARP
//! packet, but only the router hears it, and the router's neighbour entries
//! are per device, so no one else's traffic moves), and the MAC source, which
//! nobody checks.
//!
//! **Ownership.** What is created is recorded before it is created, one
//! [`crate::edge::ownership`] record per namespace under the state dir
//! (`DIR/fabric/<id>/created.json`, [`Records`]), so a run killed with
//! `kill -9` leaves enough for the next to remove it by id
//! ([`remove_instance`], [`remove_vpc`], [`Records::remove_left_behind`]).
//! The veth needs no record: it goes with either namespace, and removing an
//! instance deletes its `eth0` first, which takes the VPC side, its address
//! and its route at once (a namespace is torn down asynchronously, and only
//! when no process holds it). Everything here runs with the state dir's lock
//! held by the caller: nothing else creates or removes these names meanwhile.

mod error;
mod ids;
mod instance;
mod records;
mod sysctl;
mod vpc;

pub use error::FabricError;
pub use ids::{subnet_router, vpc_resolver, vpc_side_name};
pub use instance::InstanceNet;
pub use records::{remove_instance, remove_vpc, Records};
pub use sysctl::{get as get_sysctl, set as set_sysctl};
pub use vpc::VpcNet;
