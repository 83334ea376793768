//! The EC2 API's resources and the calls on them, as pure code: a call is
//! a function from the [`Ec2`] model and the request's [`Params`] to a new
//! model and an XML answer. Nothing here touches the system; the edge
//! realizes the model (namespaces, ENIs, names, rules) after each call that
//! changed it, and stores it.
//!
//! # Theory of operation
//!
//! **One model.** [`Ec2`] holds every VPC, subnet, security group, network
//! ACL, instance, endpoint and its ENIs, managed prefix list, deleted
//! endpoint still listed, and the tags, in sorted maps keyed
//! by id, so Describe answers come out in id order and pagination is a range
//! from the last id returned. The data plane's view of a VPC is derived from
//! it ([`Ec2::vpc_plan`]), never edited apart.
//!
//! **A call is checked whole, then applied.** Each call validates every
//! parameter and every id it names before it changes anything: a refused
//! call leaves the model as it was. The caller works on a copy only when it
//! must (to compare before and after), so a failed call costs nothing.
//!
//! **Ids.** New ids are AWS-shaped (`vpc-` and 17 hex digits) from
//! randomness the caller passes in ([`Call::random`]). An id of the wrong
//! shape is `….Malformed`; a well-formed one nothing holds is `….NotFound`,
//! as EC2 tells them apart.
//!
//! **Pagination.** `MaxResults` (5–1000 where EC2 bounds it) cuts a
//! Describe answer; `NextToken` is the last id returned, so a page is
//! stable while resources come and go.
//!
//! **Time.** `creationTimestamp` and `launchTime` come from the call's
//! [`Call::now`] (Unix seconds); the core reads no clock. So does the age
//! of a deleted endpoint: Describe hides one past its retention at once,
//! and the next call that changes the model forgets it.

#[cfg(test)]
mod consistency_tests;
mod describe;
pub mod endpoint;
mod ids;
pub mod instance;
pub mod network_acl;
pub mod plan;
pub mod prefix_list;
mod resources;
pub mod rules;
pub mod sandbox;
pub mod security_group;
pub mod seed;
#[cfg(test)]
pub(crate) mod testkit;
pub mod vpc;

pub use describe::{matches_pattern, Page};
pub use ids::{IdKind, ACCOUNT_ID};
pub use resources::*;

use std::collections::BTreeMap;

use super::error::ApiError;
use super::query::{Params, Tag};
use super::xml::Xml;

/// One call's context: what the caller supplies so the core stays pure.
pub struct Call<'a> {
    /// The request's parameters.
    pub params: &'a Params,
    /// The request id for the answer.
    pub request_id: &'a str,
    /// Unix seconds now, for creation and launch times.
    pub now: u64,
    /// Fresh randomness for new ids.
    pub random: &'a mut dyn FnMut() -> [u8; 9],
    /// The id the first new resource of its kind takes instead of a random
    /// one: a config file's own id, when it seeds the model ([`seed`]).
    /// `None` for every API request.
    pub chosen_id: Option<&'a str>,
}

impl Call<'_> {
    /// A fresh id of `kind` (the chosen one, the first time its kind is asked).
    pub fn new_id(&mut self, kind: IdKind) -> String {
        if let Some(id) = self.chosen_id.filter(|id| kind.is_well_formed(id)) {
            self.chosen_id = None;
            return id.to_string();
        }
        crate::model::make_id(kind.prefix(), (self.random)())
    }
}

/// What a call did to the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// Nothing changed (a Describe, or an idempotent repeat).
    ReadOnly,
    /// The model changed: store it and realize it before answering.
    Changed,
}

/// The whole EC2 model of one Region.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct Ec2 {
    /// The Region every resource is in.
    pub region: String,
    /// VPCs by id.
    pub vpcs: BTreeMap<String, Vpc>,
    /// Subnets by id.
    pub subnets: BTreeMap<String, Subnet>,
    /// Security groups by id.
    pub security_groups: BTreeMap<String, SecurityGroup>,
    /// Network ACLs by id.
    pub network_acls: BTreeMap<String, NetworkAcl>,
    /// Instances by id (terminated ones are forgotten at once).
    pub instances: BTreeMap<String, Instance>,
    /// Interface endpoints by id.
    pub endpoints: BTreeMap<String, VpcEndpoint>,
    /// The endpoints' ENIs by id.
    pub network_interfaces: BTreeMap<String, NetworkInterface>,
    /// Tags by resource id.
    pub tags: BTreeMap<String, BTreeMap<String, String>>,
    /// CreateVpcEndpoint's, CreateManagedPrefixList's and RunInstances'
    /// ClientTokens: what each was first sent with and what it made.
    pub client_tokens: BTreeMap<String, ClientToken>,
    /// The fingerprint of the config's VPC part that seeded the model
    /// ([`seed`]), `None`: nothing was seeded.
    #[serde(default)]
    pub seeded_from: Option<String>,
    /// Customer-managed prefix lists by id.
    #[serde(default)]
    pub prefix_lists: BTreeMap<String, ManagedPrefixList>,
    /// Deleted endpoints by id, listed as `deleted` until purged
    /// ([`endpoint::DELETED_RETENTION`] after their deletion).
    #[serde(default)]
    pub deleted_endpoints: BTreeMap<String, DeletedEndpoint>,
}

impl Ec2 {
    /// An empty Region.
    pub fn new(region: &str) -> Ec2 {
        Ec2 { region: region.to_string(), ..Ec2::default() }
    }

    /// Runs one EC2 action. `Err` leaves the model as it was.
    pub fn call(&mut self, action: &str, call: &mut Call<'_>) -> Result<(String, Effect), ApiError> {
        let mut x = Xml::response(action, call.request_id);
        let effect = match action {
            "DescribeAvailabilityZones" => vpc::describe_availability_zones(self, call, &mut x)?,
            "CreateVpc" => vpc::create_vpc(self, call, &mut x)?,
            "DescribeVpcs" => vpc::describe_vpcs(self, call, &mut x)?,
            "ModifyVpcAttribute" => vpc::modify_vpc_attribute(self, call, &mut x)?,
            "DeleteVpc" => vpc::delete_vpc(self, call, &mut x)?,
            "CreateSubnet" => vpc::create_subnet(self, call, &mut x)?,
            "DescribeSubnets" => vpc::describe_subnets(self, call, &mut x)?,
            "DeleteSubnet" => vpc::delete_subnet(self, call, &mut x)?,
            "CreateTags" => vpc::create_tags(self, call, &mut x)?,
            "DeleteTags" => vpc::delete_tags(self, call, &mut x)?,
            "DescribeTags" => vpc::describe_tags(self, call, &mut x)?,
            "RunInstances" => instance::run_instances(self, call, &mut x)?,
            "DescribeInstances" => instance::describe_instances(self, call, &mut x)?,
            "TerminateInstances" => instance::terminate_instances(self, call, &mut x)?,
            "CreateVpcEndpoint" => endpoint::create_vpc_endpoint(self, call, &mut x)?,
            "DescribeVpcEndpoints" => endpoint::describe_vpc_endpoints(self, call, &mut x)?,
            "ModifyVpcEndpoint" => endpoint::modify_vpc_endpoint(self, call, &mut x)?,
            "DeleteVpcEndpoints" => endpoint::delete_vpc_endpoints(self, call, &mut x)?,
            "DescribeVpcEndpointServices" => endpoint::describe_vpc_endpoint_services(self, call, &mut x)?,
            "DescribeNetworkInterfaces" => endpoint::describe_network_interfaces(self, call, &mut x)?,
            "DeleteNetworkInterface" => endpoint::delete_network_interface(self, call, &mut x)?,
            "CreateSecurityGroup" => security_group::create_security_group(self, call, &mut x)?,
            "DescribeSecurityGroups" => security_group::describe_security_groups(self, call, &mut x)?,
            "DeleteSecurityGroup" => security_group::delete_security_group(self, call, &mut x)?,
            "AuthorizeSecurityGroupIngress" => security_group::authorize_ingress(self, call, &mut x)?,
            "AuthorizeSecurityGroupEgress" => security_group::authorize_egress(self, call, &mut x)?,
            "RevokeSecurityGroupIngress" => security_group::revoke_ingress(self, call, &mut x)?,
            "RevokeSecurityGroupEgress" => security_group::revoke_egress(self, call, &mut x)?,
            "DescribeSecurityGroupRules" => security_group::describe_security_group_rules(self, call, &mut x)?,
            "CreateNetworkAcl" => network_acl::create_network_acl(self, call, &mut x)?,
            "DescribeNetworkAcls" => network_acl::describe_network_acls(self, call, &mut x)?,
            "DeleteNetworkAcl" => network_acl::delete_network_acl(self, call, &mut x)?,
            "CreateNetworkAclEntry" => network_acl::create_network_acl_entry(self, call, &mut x)?,
            "ReplaceNetworkAclEntry" => network_acl::replace_network_acl_entry(self, call, &mut x)?,
            "DeleteNetworkAclEntry" => network_acl::delete_network_acl_entry(self, call, &mut x)?,
            "ReplaceNetworkAclAssociation" => network_acl::replace_network_acl_association(self, call, &mut x)?,
            "CreateManagedPrefixList" => prefix_list::create_managed_prefix_list(self, call, &mut x)?,
            "DescribeManagedPrefixLists" => prefix_list::describe_managed_prefix_lists(self, call, &mut x)?,
            "GetManagedPrefixListEntries" => prefix_list::get_managed_prefix_list_entries(self, call, &mut x)?,
            "ModifyManagedPrefixList" => prefix_list::modify_managed_prefix_list(self, call, &mut x)?,
            "DeleteManagedPrefixList" => prefix_list::delete_managed_prefix_list(self, call, &mut x)?,
            "DescribePrefixLists" => prefix_list::describe_prefix_lists(self, call, &mut x)?,
            _ => {
                return Err(ApiError::new(
                    "InvalidAction",
                    format!("The action {action} is not valid for this web service."),
                ))
            }
        };
        if effect == Effect::Changed {
            self.purge_deleted_endpoints(call.now);
        }
        Ok((x.finish(action), effect))
    }

    /// The tags of `id`, as `(key, value)` pairs in key order.
    pub fn tags_of<'a>(&'a self, id: &str) -> impl Iterator<Item = (&'a String, &'a String)> {
        self.tags.get(id).into_iter().flat_map(|t| t.iter())
    }

    /// Sets `tags` on `id` (after the caller checked that it exists).
    pub fn set_tags(&mut self, id: &str, tags: &[Tag]) {
        if tags.is_empty() {
            return;
        }
        let t = self.tags.entry(id.to_string()).or_default();
        for tag in tags {
            t.insert(tag.key.clone(), tag.value.clone());
        }
    }

    /// Forgets a deleted resource's tags.
    pub fn drop_tags(&mut self, id: &str) {
        self.tags.remove(id);
    }

    /// Whether a resource with this id exists (for CreateTags and DeleteTags).
    pub fn exists(&self, id: &str) -> bool {
        self.vpcs.contains_key(id)
            || self.subnets.contains_key(id)
            || self.security_groups.contains_key(id)
            || self.network_acls.contains_key(id)
            || self.instances.contains_key(id)
            || self.endpoints.contains_key(id)
            || self.network_interfaces.contains_key(id)
            || self.prefix_lists.contains_key(id)
    }

    /// The VPC `id`, checked: `InvalidVpcID.Malformed` / `.NotFound`.
    pub fn vpc(&self, id: &str) -> Result<&Vpc, ApiError> {
        IdKind::Vpc.check(id)?;
        self.vpcs.get(id).ok_or_else(|| IdKind::Vpc.not_found(id))
    }

    /// The subnet `id`, checked.
    pub fn subnet(&self, id: &str) -> Result<&Subnet, ApiError> {
        IdKind::Subnet.check(id)?;
        self.subnets.get(id).ok_or_else(|| IdKind::Subnet.not_found(id))
    }

    /// The security group `id`, checked.
    pub fn security_group(&self, id: &str) -> Result<&SecurityGroup, ApiError> {
        IdKind::SecurityGroup.check(id)?;
        self.security_groups.get(id).ok_or_else(|| IdKind::SecurityGroup.not_found(id))
    }

    /// Every address a VPC's subnets hold: instances' and ENIs'.
    pub fn taken_ips(&self, subnet: &str) -> Vec<std::net::Ipv4Addr> {
        let instances = self.instances.values().filter(|i| i.subnet == subnet).map(|i| i.ip);
        let enis = self.network_interfaces.values().filter(|n| n.subnet == subnet).map(|n| n.ip);
        instances.chain(enis).collect()
    }
}
