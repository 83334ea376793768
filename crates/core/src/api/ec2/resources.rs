//! The resources of the EC2 model, as stored: plain data, each field what
//! Describe shows or what the data plane is built from. Derived facts (a
//! subnet's AZ id, an ENI's groups, which subnets a NACL is associated with)
//! are computed where they are shown, never stored twice.

use std::net::Ipv4Addr;

use crate::cidr::Cidr;

/// A VPC: a network namespace named by its id.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Vpc {
    /// `vpc-…`.
    pub id: String,
    /// Its IPv4 block (/16 to /28).
    pub cidr: Cidr,
    /// enableDnsSupport: the VPC resolver answers.
    pub dns_support: bool,
    /// enableDnsHostnames.
    pub dns_hostnames: bool,
    /// The group made with the VPC, used when a call names none.
    pub default_security_group: String,
    /// The NACL made with the VPC; new subnets are associated with it.
    pub default_network_acl: String,
}

/// A subnet: one AZ's range of its VPC.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Subnet {
    /// `subnet-…`.
    pub id: String,
    /// Its VPC.
    pub vpc: String,
    /// Its block, inside the VPC's.
    pub cidr: Cidr,
    /// Its AZ name, e.g. `us-east-1a`.
    pub az: String,
    /// The NACL associated with it (every subnet has exactly one).
    pub network_acl: String,
    /// That association's id (`aclassoc-…`), which ReplaceNetworkAclAssociation names.
    pub network_acl_association: String,
}

/// The other end of a security group rule.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum RulePeer {
    /// `IpRanges.N.CidrIp`.
    Cidr(Cidr),
    /// `UserIdGroupPairs.N.GroupId`: every member of that group.
    Group(String),
    /// `PrefixListIds.N.PrefixListId`.
    PrefixList(String),
}

/// One security group rule with one peer (`sgr-…`), as DescribeSecurityGroupRules shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SecurityGroupRule {
    /// `sgr-…`.
    pub id: String,
    /// `tcp`, `udp`, `icmp` or `-1` (all).
    pub protocol: String,
    /// First port (ICMP: the type), `None` for all.
    pub from_port: Option<i32>,
    /// Last port (ICMP: the code), `None` for all.
    pub to_port: Option<i32>,
    /// Who.
    pub peer: RulePeer,
    /// The rule's description.
    pub description: Option<String>,
}

/// A security group of a VPC.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SecurityGroup {
    /// `sg-…`.
    pub id: String,
    /// Its VPC.
    pub vpc: String,
    /// GroupName (`default` for the VPC's own).
    pub name: String,
    /// GroupDescription.
    pub description: String,
    /// Inbound rules.
    pub ingress: Vec<SecurityGroupRule>,
    /// Outbound rules.
    pub egress: Vec<SecurityGroupRule>,
}

/// One numbered entry of a network ACL.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NetworkAclEntry {
    /// 1–32766; the `*` entry is 32767.
    pub rule_number: u16,
    /// Outbound (`true`) or inbound.
    pub egress: bool,
    /// `-1`, `6`, `17`, `1` (EC2 shows numbers).
    pub protocol: String,
    /// `allow` or `deny`.
    pub rule_action: String,
    /// The block matched.
    pub cidr: Cidr,
    /// Destination ports (TCP/UDP), `None`: all.
    pub ports: Option<(u16, u16)>,
}

/// A network ACL of a VPC.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NetworkAcl {
    /// `acl-…`.
    pub id: String,
    /// Its VPC.
    pub vpc: String,
    /// The VPC's default NACL (cannot be deleted).
    pub is_default: bool,
    /// Its entries, the `*` ones included.
    pub entries: Vec<NetworkAclEntry>,
}

/// An instance: a network namespace named by its id, with eth0 in its subnet.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Instance {
    /// `i-…`.
    pub id: String,
    /// `r-…` of the RunInstances call that made it.
    pub reservation: String,
    /// Its VPC.
    pub vpc: String,
    /// Its subnet.
    pub subnet: String,
    /// Its private IP.
    pub ip: Ipv4Addr,
    /// Its groups (members, for rules that name a group).
    pub security_groups: Vec<String>,
    /// ImageId, echoed.
    pub image_id: String,
    /// InstanceType, echoed.
    pub instance_type: String,
    /// Unix seconds.
    pub launch_time: u64,
}

/// The lifecycle states AWS shows for an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum EndpointState {
    /// Just created (the Create answer says so; the data plane is up).
    Pending,
    /// Serving.
    Available,
    /// Deleted: still listed for a while, with no ENIs and no names.
    Deleted,
}

impl EndpointState {
    /// As EC2 spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            EndpointState::Pending => "pending",
            EndpointState::Available => "available",
            EndpointState::Deleted => "deleted",
        }
    }
}

/// An interface VPC endpoint.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct VpcEndpoint {
    /// `vpce-…`.
    pub id: String,
    /// Its VPC.
    pub vpc: String,
    /// e.g. `com.amazonaws.us-east-1.ec2`.
    pub service_name: String,
    /// Its state.
    pub state: EndpointState,
    /// One subnet per AZ.
    pub subnets: Vec<String>,
    /// Its groups (the VPC's default when the call named none).
    pub security_groups: Vec<String>,
    /// PrivateDnsEnabled.
    pub private_dns: bool,
    /// The policy document, `None`: the full-access default.
    pub policy: Option<String>,
    /// The 8 characters of its endpoint-specific names, kept for its life.
    pub dns_suffix: String,
    /// Unix seconds.
    pub created: u64,
    /// privlink's own knobs, which the EC2 API has no field for; `None`
    /// (every API-made endpoint): the data plane's defaults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub carriage: Option<Carriage>,
}

/// How an endpoint carries its streams beyond what EC2 describes: set only
/// by a config file's VPC when it seeds the model (the seed module), kept
/// with the endpoint, and shown by no API call.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Carriage {
    /// TCP ports carried (default 443).
    pub ports: Vec<u16>,
    /// Per-ENI shaping; `None`: unshaped.
    pub bandwidth: Option<crate::model::Bandwidth>,
    /// Server names a ClientHello may carry; empty: any.
    pub allowed_sni: Vec<String>,
    /// Streams that do not open with a ClientHello pass.
    pub allow_non_tls: bool,
    /// How long a stream may take to send its ClientHello.
    pub hello_timeout: std::time::Duration,
    /// How long a SYN waits for the upstream connection.
    pub connect_timeout: std::time::Duration,
    /// Concurrent connections the endpoint carries.
    pub max_connections: usize,
}

/// An endpoint's ENI in one subnet (requester-managed).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NetworkInterface {
    /// `eni-…`.
    pub id: String,
    /// The endpoint it serves.
    pub endpoint: String,
    /// Its subnet.
    pub subnet: String,
    /// Its private IP, kept until the endpoint (or its subnet) is removed.
    pub ip: Ipv4Addr,
}

/// What a ClientToken was first used for.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ClientToken {
    /// The request's parameters, less the token: a repeat must match.
    pub fingerprint: String,
    /// What the first request made.
    pub resource: String,
}

/// The states a managed prefix list shows (EC2's `PrefixListState`). The
/// `…-in-progress` ones are only in answers: the model's changes are done
/// when the call returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum PrefixListState {
    /// Made, never modified.
    CreateComplete,
    /// Modified.
    ModifyComplete,
    /// A MaxEntries change a referencing group could not take: nothing changed.
    ModifyFailed,
    /// A delete while rules referenced it: it is still there.
    DeleteFailed,
}

impl PrefixListState {
    /// As EC2 spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            PrefixListState::CreateComplete => "create-complete",
            PrefixListState::ModifyComplete => "modify-complete",
            PrefixListState::ModifyFailed => "modify-failed",
            PrefixListState::DeleteFailed => "delete-failed",
        }
    }
}

/// One entry of a managed prefix list.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PrefixListEntry {
    /// Its block.
    pub cidr: Cidr,
    /// Its description.
    pub description: Option<String>,
}

/// A customer-managed prefix list (`pl-…`), IPv4 only.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ManagedPrefixList {
    /// `pl-…`.
    pub id: String,
    /// PrefixListName.
    pub name: String,
    /// MaxEntries: also the weight of a rule naming it in its group's rule quota.
    pub max_entries: u32,
    /// Its state.
    pub state: PrefixListState,
    /// Why the last Modify or Delete failed (`stateMessage`).
    pub state_message: Option<String>,
    /// 1 when made, +1 for each Modify that changed the entries.
    pub version: u64,
    /// The current version's entries, in block order.
    pub entries: Vec<PrefixListEntry>,
    /// The entries of each earlier version, for `TargetVersion`.
    pub history: std::collections::BTreeMap<u64, Vec<PrefixListEntry>>,
}

/// A deleted endpoint, still listed (as `deleted`) until it is purged.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DeletedEndpoint {
    /// The endpoint as it was, less its subnets and groups (they went with its ENIs).
    pub endpoint: VpcEndpoint,
    /// Its tags when it was deleted.
    pub tags: std::collections::BTreeMap<String, String>,
    /// Unix seconds of the DeleteVpcEndpoints call.
    pub deleted_at: u64,
}
