//! Interface VPC endpoints and their requester-managed ENIs.
//!
//! CreateVpcEndpoint makes one ENI per subnet (one subnet per AZ), each
//! with the lowest free address of its subnet off AWS's five reserved ones
//! (or the one `SubnetConfiguration.N.Ipv4` names), kept until the endpoint
//! or that subnet's ENI goes. The endpoint's groups are the VPC's default
//! one when the call names none. Private DNS is on by default, off for S3
//! (which has none), and, as at AWS, needs the VPC's `enableDnsSupport` and
//! `enableDnsHostnames`, and refuses a second endpoint of the same service
//! with private DNS in one VPC (their names would conflict).
//!
//! **Idempotency.** A `ClientToken` is remembered with the request's other
//! parameters: the same token with the same parameters answers the endpoint
//! it made, with other parameters `IdempotentParameterMismatch`. Retried
//! after that endpoint was deleted, it answers the endpoint as it is,
//! `deleted`, while Describe still lists it (as EC2 answers a retried
//! RunInstances with the terminated instance); once the endpoint is purged
//! the token is forgotten with it, and the same request makes a new endpoint.
//!
//! **States.** The Create answer shows `pending`, as AWS's does, though the
//! data plane is already up when it is sent; Describe shows `available`.
//! DeleteVpcEndpoints takes the endpoint out of the data plane before it
//! answers: its ENIs, their addresses and its DNS names are gone, the plan
//! ([`Ec2::vpc_plan`]) no longer holds it, and its subnets, groups and VPC
//! no longer count it (DeleteSubnet, DeleteSecurityGroup and DeleteVpc do
//! not see it). DescribeVpcEndpoints still lists it as `deleted`, with no
//! subnets, groups, ENIs or DNS entries and the tags it had, for
//! [`DELETED_RETENTION`] (one hour) after the call; then it is purged: by
//! [`super::Call::now`], Describe stops listing it at once, and the first
//! call that changes the model after that forgets it (and its ClientToken).
//! So the id of a deleted endpoint is listed for an hour and is
//! `InvalidVpcEndpointId.NotFound` after. `deleting` is never shown: the
//! removal is complete when DeleteVpcEndpoints answers. A deleted endpoint
//! is no longer a resource: ModifyVpcEndpoint, a second DeleteVpcEndpoints
//! (in `unsuccessful`), CreateTags and DeleteTags on it are
//! `InvalidVpcEndpointId.NotFound`. DeleteVpcEndpoints answers ids it could
//! not delete in `unsuccessful` rather than failing the call.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use super::describe::{asked, passes, Page};
use super::ids::{IdKind, ACCOUNT_ID};
use super::resources::{ClientToken, DeletedEndpoint, EndpointState, NetworkInterface, Subnet, VpcEndpoint};
use super::vpc::zone_id;
use super::{Call, Ec2, Effect};
use crate::api::error::ApiError;
use crate::api::query::Params;
use crate::api::xml::Xml;
use crate::catalog::{self, ServiceInfo};

/// The Route 53 zone id AWS shows for endpoint-specific names in us-east-1
/// (the same for every endpoint there); other Regions show their own, which
/// privlink does not know, so it shows this one.
const VPCE_HOSTED_ZONE: &str = "Z7HUB22UULQXV";

/// The hosted zone id shown for the private names.
const PRIVATE_HOSTED_ZONE: &str = "ZPRIVLINKPRIVATE";

/// The most endpoints one model holds (each is a TUN device and a thread).
/// Deleted ones do not count.
pub const MAX_ENDPOINTS: usize = 64;

/// How long DescribeVpcEndpoints lists a deleted endpoint, in seconds.
pub const DELETED_RETENTION: u64 = 3600;

impl Ec2 {
    /// The deleted endpoint `id`, while it is listed at `now`.
    pub fn deleted_endpoint(&self, id: &str, now: u64) -> Option<&DeletedEndpoint> {
        self.deleted_endpoints.get(id).filter(|d| now < d.deleted_at.saturating_add(DELETED_RETENTION))
    }

    /// Forgets the deleted endpoints past their retention at `now`, and their ClientTokens.
    pub fn purge_deleted_endpoints(&mut self, now: u64) {
        let gone: Vec<String> =
            self.deleted_endpoints.keys().filter(|id| self.deleted_endpoint(id, now).is_none()).cloned().collect();
        for id in &gone {
            self.deleted_endpoints.remove(id);
        }
        self.client_tokens.retain(|_, t| !gone.contains(&t.resource));
    }
}

/// The service's facts, refusing names of other Regions as EC2 does.
fn service(ec2: &Ec2, name: &str) -> Result<ServiceInfo, ApiError> {
    let info = catalog::lookup(name).map_err(|e| ApiError::new(e.code(), e.to_string()))?;
    if info.region != ec2.region {
        return Err(ApiError::new("InvalidServiceName", format!("The Vpc Endpoint Service '{name}' does not exist")));
    }
    Ok(info)
}

/// What a repeated request must match: its parameters less the token itself.
fn fingerprint(p: &Params) -> String {
    let mut f = String::new();
    for (k, v) in p.pairs().filter(|(k, _)| !matches!(*k, "ClientToken" | "Action" | "Version")) {
        f.push_str(k);
        f.push('=');
        f.push_str(v);
        f.push('&');
    }
    f
}

/// The resource a ClientToken already made, or `IdempotentParameterMismatch`.
pub(super) fn repeated(ec2: &Ec2, p: &Params) -> Result<Option<String>, ApiError> {
    let Some(token) = p.get("ClientToken") else { return Ok(None) };
    match ec2.client_tokens.get(token) {
        None => Ok(None),
        Some(t) if t.fingerprint == fingerprint(p) => Ok(Some(t.resource.clone())),
        Some(_) => Err(ApiError::new(
            "IdempotentParameterMismatch",
            format!("The client token '{token}' was used before with other parameters"),
        )),
    }
}

/// Remembers what a ClientToken made.
pub(super) fn remember(ec2: &mut Ec2, p: &Params, resource: &str) {
    if let Some(token) = p.get("ClientToken") {
        ec2.client_tokens
            .insert(token.to_string(), ClientToken { fingerprint: fingerprint(p), resource: resource.to_string() });
    }
}

/// Subnets for an endpoint of `vpc`: each known, in the VPC, one per AZ
/// (also with the endpoint's `existing` ones).
fn endpoint_subnets<'a>(
    ec2: &'a Ec2,
    vpc: &str,
    ids: &[String],
    existing: &[String],
) -> Result<Vec<&'a Subnet>, ApiError> {
    let mut zones: Vec<&str> = existing.iter().filter_map(|s| ec2.subnets.get(s)).map(|s| s.az.as_str()).collect();
    let mut out = Vec::new();
    for id in ids {
        let s = ec2.subnet(id)?;
        if s.vpc != vpc {
            return Err(ApiError::new(
                "InvalidParameter",
                format!("The subnet ID '{id}' does not belong to VPC '{vpc}'"),
            ));
        }
        if zones.contains(&s.az.as_str()) {
            return Err(ApiError::new(
                "DuplicateSubnetsInSameZone",
                format!("Found another VPC endpoint subnet in the availability zone of {id}. VPC endpoint subnets should be in different availability zones supported by the VPC endpoint service."),
            ));
        }
        zones.push(&s.az);
        out.push(s);
    }
    Ok(out)
}

/// `ids` less repeats, in first-seen order: a group named twice is one group
/// (the filter refuses an ENI that lists one twice).
fn distinct(ids: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(ids.len());
    for id in ids {
        if !out.contains(&id) {
            out.push(id);
        }
    }
    out
}

/// The groups of an ENI within the data plane's quota (AWS's: 5), so the
/// endpoint's rules always build.
fn group_quota(groups: &[String]) -> Result<(), ApiError> {
    let limit = crate::filter::Quotas::default().groups_per_eni;
    if groups.len() > limit {
        return Err(ApiError::new(
            "SecurityGroupsPerInterfaceLimitExceeded",
            format!("An endpoint's network interfaces can have at most {limit} security groups"),
        ));
    }
    Ok(())
}

/// Groups for an endpoint of `vpc`: each known and in the VPC.
fn endpoint_groups(ec2: &Ec2, vpc: &str, ids: &[String]) -> Result<(), ApiError> {
    for id in ids {
        if ec2.security_group(id)?.vpc != vpc {
            return Err(ApiError::new(
                "InvalidParameter",
                format!("The security group '{id}' does not belong to VPC '{vpc}'"),
            ));
        }
    }
    Ok(())
}

/// Private DNS needs the VPC's DNS attributes and no other endpoint of the
/// service with private DNS in the VPC.
fn check_private_dns(ec2: &Ec2, vpc: &str, info: &ServiceInfo, except: Option<&str>) -> Result<(), ApiError> {
    info.check_private_dns(true).map_err(|e| ApiError::new(e.code(), e.to_string()))?;
    let v = ec2.vpc(vpc)?;
    if !v.dns_support || !v.dns_hostnames {
        return Err(ApiError::new(
            "InvalidParameter",
            format!("Enabling private DNS requires both enableDnsSupport and enableDnsHostnames VPC attributes set to true for {vpc}"),
        ));
    }
    let clash = ec2.endpoints.values().find(|e| {
        e.vpc == vpc && e.private_dns && e.service_name == info.service_name && Some(e.id.as_str()) != except
    });
    if let Some(other) = clash {
        let name = info.default_dns_names.first().cloned().unwrap_or_default();
        return Err(ApiError::new(
            "InvalidParameter",
            format!("private-dns-enabled cannot be set because there is already a conflicting DNS domain for {name} in the VPC {vpc} ({})", other.id),
        ));
    }
    Ok(())
}

/// The ENI address for `subnet`: `wanted` when free and assignable, else the lowest free one.
fn eni_address(ec2: &Ec2, subnet: &Subnet, wanted: Option<Ipv4Addr>) -> Result<Ipv4Addr, ApiError> {
    let taken = ec2.taken_ips(&subnet.id);
    match wanted {
        Some(ip) if !subnet.cidr.contains(ip) || subnet.cidr.is_reserved(ip) => Err(ApiError::new(
            "InvalidParameterValue",
            format!("Address {ip} does not fall within the assignable range of subnet {} ({})", subnet.id, subnet.cidr),
        )),
        Some(ip) if taken.contains(&ip) => {
            Err(ApiError::new("InvalidIPAddress.InUse", format!("Address {ip} is in use in subnet {}", subnet.id)))
        }
        Some(ip) => Ok(ip),
        None => subnet.cidr.assignable().find(|ip| !taken.contains(ip)).ok_or_else(|| {
            ApiError::new(
                "InsufficientFreeAddressesInSubnet",
                format!("Insufficient free IP addresses in subnet {} ({})", subnet.id, subnet.cidr),
            )
        }),
    }
}

/// The wanted address per subnet of `SubnetConfiguration.N`.
fn subnet_addresses(p: &Params) -> Result<Vec<(String, Ipv4Addr)>, ApiError> {
    p.structs("SubnetConfiguration")
        .into_iter()
        .filter_map(|c| {
            let ip = c.get("Ipv4")?;
            Some(match (c.required("SubnetId"), ip.parse()) {
                (Ok(s), Ok(ip)) => Ok((s.to_string(), ip)),
                (Err(e), _) => Err(e),
                (_, Err(_)) => Err(ApiError::invalid_value("SubnetConfiguration.Ipv4", ip)),
            })
        })
        .collect()
}

/// Makes the ENIs of `endpoint` in `subnets` (already checked).
fn add_enis(ec2: &mut Ec2, call: &mut Call<'_>, endpoint: &str, subnets: &[String]) -> Result<(), ApiError> {
    let wanted = subnet_addresses(call.params)?;
    let mut made = Vec::new();
    for id in subnets {
        let subnet = ec2.subnets[id].clone();
        let ip = eni_address(ec2, &subnet, wanted.iter().find(|(s, _)| s == id).map(|(_, ip)| *ip))?;
        let eni = NetworkInterface {
            id: call.new_id(IdKind::NetworkInterface),
            endpoint: endpoint.to_string(),
            subnet: id.clone(),
            ip,
        };
        made.push(eni.id.clone());
        ec2.network_interfaces.insert(eni.id.clone(), eni);
    }
    Ok(())
}

fn ipv4_only(p: &Params) -> Result<(), ApiError> {
    if let Some(t) = p.get("IpAddressType").filter(|t| *t != "ipv4") {
        return Err(ApiError::new(
            "InvalidParameterValue",
            format!("IpAddressType {t}: privlink endpoints are IPv4 only"),
        ));
    }
    match p.sub("DnsOptions").get("DnsRecordIpType") {
        None | Some("ipv4") | Some("service-defined") => Ok(()),
        Some(t) => Err(ApiError::new(
            "InvalidParameterValue",
            format!("DnsRecordIpType {t}: privlink endpoints are IPv4 only"),
        )),
    }
}

fn policy(p: &Params) -> Result<Option<String>, ApiError> {
    match p.get("PolicyDocument") {
        None => Ok(None),
        Some(doc) => crate::policy::PolicyDocument::parse(doc)
            .map(|_| Some(doc.to_string()))
            .map_err(|e| ApiError::new("InvalidPolicyDocument", format!("The policy document is not valid: {e}"))),
    }
}

pub(super) fn create_vpc_endpoint(ec2: &mut Ec2, call: &mut Call<'_>, x: &mut Xml) -> Result<Effect, ApiError> {
    let p = call.params;
    if let Some(id) = repeated(ec2, p)? {
        let found = match ec2.endpoints.get(&id) {
            Some(e) => Some((e, ec2.tags.get(&id))),
            None => ec2.deleted_endpoint(&id, call.now).map(|d| (&d.endpoint, Some(&d.tags))),
        };
        if let Some((e, tags)) = found {
            x.elem("vpcEndpoint", |x| write_endpoint(ec2, x, e, tags)).opt("clientToken", p.get("ClientToken"));
            return Ok(Effect::ReadOnly);
        }
    }
    match p.get("VpcEndpointType").unwrap_or("Gateway") {
        "Interface" => {}
        other => {
            return Err(ApiError::new(
                "InvalidParameter",
                format!("VpcEndpointType {other}: privlink serves Interface endpoints (the API's default is Gateway; pass VpcEndpointType=Interface)"),
            ))
        }
    }
    let vpc = ec2.vpc(p.required("VpcId")?)?.clone();
    let info = service(ec2, p.required("ServiceName")?)?;
    ipv4_only(p)?;
    let subnet_ids = p.list("SubnetId");
    // An endpoint answers on its ENIs: with none, its names would have no address.
    if subnet_ids.is_empty() {
        return Err(ApiError::new(
            "MissingParameter",
            "The request must contain the parameter SubnetId: an interface endpoint needs at least one subnet",
        ));
    }
    endpoint_subnets(ec2, &vpc.id, &subnet_ids, &[])?;
    let mut groups = distinct(p.list("SecurityGroupId"));
    endpoint_groups(ec2, &vpc.id, &groups)?;
    if groups.is_empty() {
        groups.push(vpc.default_security_group.clone());
    }
    group_quota(&groups)?;
    let private_dns = p.bool("PrivateDnsEnabled")?.unwrap_or(info.private_dns_supported);
    if private_dns {
        check_private_dns(ec2, &vpc.id, &info, None)?;
    }
    let policy = policy(p)?;
    let tags = p.tag_specifications("vpc-endpoint")?;
    if ec2.endpoints.len() >= MAX_ENDPOINTS {
        return Err(ApiError::new(
            "VpcEndpointLimitExceeded",
            format!("privlink holds at most {MAX_ENDPOINTS} endpoints"),
        ));
    }
    let id = call.new_id(IdKind::VpcEndpoint);
    let r = (call.random)();
    let endpoint = VpcEndpoint {
        id: id.clone(),
        vpc: vpc.id.clone(),
        service_name: info.service_name.clone(),
        state: EndpointState::Pending,
        subnets: subnet_ids.clone(),
        security_groups: groups,
        private_dns,
        policy,
        dns_suffix: catalog::random_suffix(r[..8].try_into().expect("8 bytes")),
        created: call.now,
        carriage: None,
    };
    // Addresses are checked as they are taken: undo on failure so nothing changes.
    let before = ec2.network_interfaces.clone();
    if let Err(e) = add_enis(ec2, call, &id, &subnet_ids) {
        ec2.network_interfaces = before;
        return Err(e);
    }
    ec2.endpoints.insert(id.clone(), endpoint);
    ec2.set_tags(&id, &tags);
    remember(ec2, p, &id);
    x.elem("vpcEndpoint", |x| write_endpoint(ec2, x, &ec2.endpoints[&id], ec2.tags.get(&id)));
    x.opt("clientToken", p.get("ClientToken"));
    ec2.endpoints.get_mut(&id).expect("just made").state = EndpointState::Available;
    Ok(Effect::Changed)
}

/// The ENIs of `endpoint`, in subnet order.
pub fn enis_of<'a>(ec2: &'a Ec2, endpoint: &'a VpcEndpoint) -> impl Iterator<Item = &'a NetworkInterface> + 'a {
    endpoint
        .subnets
        .iter()
        .filter_map(|s| ec2.network_interfaces.values().find(|n| n.endpoint == endpoint.id && &n.subnet == s))
}

/// The endpoint's DNS names: regional, one per AZ, and the private ones when on.
pub fn dns_entries(ec2: &Ec2, e: &VpcEndpoint) -> Vec<(String, &'static str)> {
    let Ok(info) = catalog::lookup(&e.service_name) else { return Vec::new() };
    let azs: Vec<String> = enis_of(ec2, e).filter_map(|n| ec2.subnets.get(&n.subnet)).map(|s| s.az.clone()).collect();
    let (regional, zonal) = catalog::endpoint_dns_names(&e.id, &e.dns_suffix, &info.vpce_dns_part, &info.region, &azs);
    let mut out = vec![(regional, VPCE_HOSTED_ZONE)];
    out.extend(zonal.into_iter().map(|(_, n)| (n, VPCE_HOSTED_ZONE)));
    if e.private_dns {
        out.extend(info.default_dns_names.iter().map(|n| (n.clone(), PRIVATE_HOSTED_ZONE)));
    }
    out
}

fn write_groups(ec2: &Ec2, x: &mut Xml, groups: &[String]) {
    x.set("groupSet", groups, |x, g| {
        x.text("groupId", g).opt("groupName", ec2.security_groups.get(g).map(|g| g.name.as_str()));
    });
}

/// A resource's tags, key to value.
type Tags = BTreeMap<String, String>;

/// One endpoint, with `tags` (a deleted one's are those it had).
fn write_endpoint(ec2: &Ec2, x: &mut Xml, e: &VpcEndpoint, tags: Option<&Tags>) {
    let enis: Vec<&str> = enis_of(ec2, e).map(|n| n.id.as_str()).collect();
    // A deleted endpoint's names went with it.
    let names = if e.state == EndpointState::Deleted { Vec::new() } else { dns_entries(ec2, e) };
    let created = crate::api::time::iso8601(e.created);
    x.text("vpcEndpointId", &e.id)
        .text("vpcEndpointType", "Interface")
        .text("vpcId", &e.vpc)
        .text("serviceName", &e.service_name)
        .text("state", e.state.as_str())
        .text("policyDocument", e.policy.as_deref().unwrap_or(crate::policy::PolicyDocument::full_access().text()))
        .elem("routeTableIdSet", |_| {})
        .strings("subnetIdSet", e.subnets.iter().map(String::as_str));
    write_groups(ec2, x, &e.security_groups);
    x.text("ipAddressType", "ipv4")
        .elem("dnsOptions", |x| {
            x.text("dnsRecordIpType", "ipv4");
        })
        .bool("privateDnsEnabled", e.private_dns)
        .bool("requesterManaged", false)
        .strings("networkInterfaceIdSet", enis)
        .set("dnsEntrySet", names, |x, (name, zone)| {
            x.text("dnsName", &name).text("hostedZoneId", zone);
        })
        .text("creationTimestamp", &created)
        .tag_set(tags.into_iter().flatten())
        .text("ownerId", ACCOUNT_ID);
}

pub(super) fn describe_vpc_endpoints(ec2: &mut Ec2, call: &mut Call<'_>, x: &mut Xml) -> Result<Effect, ApiError> {
    let p = call.params;
    let (filters, page) = (p.filters()?, Page::read(p, 1, 1000)?);
    let kind = IdKind::VpcEndpoint;
    // The live endpoints and the deleted ones still listed, each with its tags.
    let listed: BTreeMap<String, (&VpcEndpoint, Option<&Tags>)> = ec2
        .endpoints
        .iter()
        .map(|(id, e)| (id.clone(), (e, ec2.tags.get(id))))
        .chain(
            ec2.deleted_endpoints
                .keys()
                .filter_map(|id| ec2.deleted_endpoint(id, call.now))
                .map(|d| (d.endpoint.id.clone(), (&d.endpoint, Some(&d.tags)))),
        )
        .collect();
    let chosen = asked(&p.list("VpcEndpointId"), &listed, |i| kind.check(i), |i| kind.not_found(i))?;
    let mut kept = Vec::new();
    for (id, &(e, tags)) in chosen {
        let keep = passes(&filters, tags, |f| match f {
            "vpc-endpoint-id" => Some(vec![e.id.clone()]),
            "vpc-id" => Some(vec![e.vpc.clone()]),
            "service-name" => Some(vec![e.service_name.clone()]),
            "vpc-endpoint-state" => Some(vec![e.state.as_str().into()]),
            "vpc-endpoint-type" => Some(vec!["Interface".into()]),
            "ip-address-type" => Some(vec!["ipv4".into()]),
            _ => None,
        })?;
        if keep {
            kept.push((id, (e, tags)));
        }
    }
    let (items, next) = page.cut(kept);
    x.set("vpcEndpointSet", items, |x, (e, tags)| write_endpoint(ec2, x, e, tags)).opt("nextToken", next.as_deref());
    Ok(Effect::ReadOnly)
}

pub(super) fn modify_vpc_endpoint(ec2: &mut Ec2, call: &mut Call<'_>, x: &mut Xml) -> Result<Effect, ApiError> {
    let p = call.params;
    let id = p.required("VpcEndpointId")?.to_string();
    IdKind::VpcEndpoint.check(&id)?;
    let e = ec2.endpoints.get(&id).ok_or_else(|| IdKind::VpcEndpoint.not_found(&id))?.clone();
    ipv4_only(p)?;
    let (add, remove) = (p.list("AddSubnetId"), p.list("RemoveSubnetId"));
    let kept: Vec<String> = e.subnets.iter().filter(|s| !remove.contains(s)).cloned().collect();
    if let Some(s) = remove.iter().find(|s| !e.subnets.contains(s)) {
        ec2.subnet(s)?;
        return Err(ApiError::new("InvalidParameter", format!("The subnet '{s}' is not a subnet of endpoint {id}")));
    }
    if let Some(s) = add.iter().find(|s| kept.contains(s)) {
        return Err(ApiError::new(
            "InvalidParameter",
            format!("The subnet '{s}' is already a subnet of endpoint {id}"),
        ));
    }
    endpoint_subnets(ec2, &e.vpc, &add, &kept)?;
    if kept.is_empty() && add.is_empty() {
        return Err(ApiError::new("InvalidParameter", format!("Endpoint {id} must keep at least one subnet")));
    }
    let (add_g, remove_g) = (p.list("AddSecurityGroupId"), p.list("RemoveSecurityGroupId"));
    endpoint_groups(ec2, &e.vpc, &add_g)?;
    let mut groups: Vec<String> = e.security_groups.iter().filter(|g| !remove_g.contains(g)).cloned().collect();
    groups.extend(add_g.into_iter().filter(|g| !e.security_groups.contains(g) || remove_g.contains(g)));
    let groups = distinct(groups);
    group_quota(&groups)?;
    if groups.is_empty() {
        return Err(ApiError::new("InvalidParameter", format!("Endpoint {id} must keep at least one security group")));
    }
    let private_dns = p.bool("PrivateDnsEnabled")?;
    if private_dns == Some(true) && !e.private_dns {
        check_private_dns(ec2, &e.vpc, &service(ec2, &e.service_name)?, Some(&id))?;
    }
    let reset = p.bool("ResetPolicy")?.unwrap_or(false);
    if reset && p.get("PolicyDocument").is_some() {
        return Err(ApiError::combination("ResetPolicy and PolicyDocument cannot be given together"));
    }
    let new_policy = policy(p)?;
    let before = ec2.network_interfaces.clone();
    ec2.network_interfaces.retain(|_, n| n.endpoint != id || !remove.contains(&n.subnet));
    if let Err(err) = add_enis(ec2, call, &id, &add) {
        ec2.network_interfaces = before;
        return Err(err);
    }
    for gone in before.keys().filter(|n| !ec2.network_interfaces.contains_key(*n)) {
        ec2.tags.remove(gone);
    }
    let e = ec2.endpoints.get_mut(&id).expect("checked");
    e.subnets = kept.into_iter().chain(add).collect();
    e.security_groups = groups;
    if let Some(on) = private_dns {
        e.private_dns = on;
    }
    if reset {
        e.policy = None;
    } else if new_policy.is_some() {
        e.policy = new_policy;
    }
    x.bool("return", true);
    Ok(Effect::Changed)
}

pub(super) fn delete_vpc_endpoints(ec2: &mut Ec2, call: &mut Call<'_>, x: &mut Xml) -> Result<Effect, ApiError> {
    let ids = call.params.list("VpcEndpointId");
    if ids.is_empty() {
        return Err(ApiError::new("MissingParameter", "The request must contain the parameter VpcEndpointId"));
    }
    let mut failed = Vec::new();
    for id in &ids {
        let refused = IdKind::VpcEndpoint
            .check(id)
            .err()
            .or_else(|| (!ec2.endpoints.contains_key(id)).then(|| IdKind::VpcEndpoint.not_found(id)));
        match refused {
            Some(e) => failed.push((id.clone(), e)),
            None => {
                let mut endpoint = ec2.endpoints.remove(id).expect("checked");
                let enis: Vec<String> =
                    ec2.network_interfaces.values().filter(|n| &n.endpoint == id).map(|n| n.id.clone()).collect();
                for eni in &enis {
                    ec2.network_interfaces.remove(eni);
                    ec2.drop_tags(eni);
                }
                let tags = ec2.tags.remove(id).unwrap_or_default();
                endpoint.state = EndpointState::Deleted;
                endpoint.subnets.clear();
                endpoint.security_groups.clear();
                ec2.deleted_endpoints.insert(id.clone(), DeletedEndpoint { endpoint, tags, deleted_at: call.now });
            }
        }
    }
    let changed = failed.len() < ids.len();
    x.set("unsuccessful", &failed, |x, (id, e)| {
        x.elem("error", |x| {
            x.text("code", e.code).text("message", &e.message);
        })
        .text("resourceId", id);
    });
    Ok(if changed { Effect::Changed } else { Effect::ReadOnly })
}

pub(super) fn describe_vpc_endpoint_services(
    ec2: &mut Ec2,
    call: &mut Call<'_>,
    x: &mut Xml,
) -> Result<Effect, ApiError> {
    let p = call.params;
    let (names, filters, page) = (p.list("ServiceName"), p.filters()?, Page::read(p, 5, 1000)?);
    let zones = super::vpc::availability_zones(&ec2.region);
    let all: Vec<(String, ServiceInfo)> =
        catalog::services(&ec2.region).into_iter().map(|s| (s.service_name.clone(), s)).collect();
    for n in &names {
        if !all.iter().any(|(name, _)| name == n) {
            return Err(ApiError::new("InvalidServiceName", format!("The Vpc Endpoint Service '{n}' does not exist")));
        }
    }
    let mut kept = Vec::new();
    for (name, s) in &all {
        if !names.is_empty() && !names.contains(name) {
            continue;
        }
        let keep = passes(&filters, None, |f| match f {
            "service-name" => Some(vec![name.clone()]),
            "service-type" => Some(vec!["Interface".into()]),
            "owner" => Some(vec!["amazon".into()]),
            "service-region" => Some(vec![ec2.region.clone()]),
            _ => None,
        })?;
        if keep {
            kept.push((name, s));
        }
    }
    let (items, next) = page.cut(kept);
    x.strings("serviceNameSet", items.iter().map(|s| s.service_name.as_str()));
    x.set("serviceDetailSet", &items, |x, s| {
        let base = format!("{}.{}.vpce.amazonaws.com", s.vpce_dns_part, s.region);
        x.text("serviceName", &s.service_name)
            .text("serviceId", &format!("vpce-svc-{}", &s.short_name))
            .set("serviceType", ["Interface"], |x, t| {
                x.text("serviceType", t);
            })
            .text("serviceRegion", &s.region)
            .strings("availabilityZoneSet", zones.iter().map(|(n, _)| n.as_str()))
            .strings("availabilityZoneIdSet", zones.iter().map(|(_, i)| i.as_str()))
            .text("owner", "amazon")
            .strings("baseEndpointDnsNameSet", [base.as_str()])
            .opt("privateDnsName", s.default_dns_names.first().filter(|_| s.private_dns_supported).map(String::as_str))
            .bool("vpcEndpointPolicySupported", true)
            .bool("acceptanceRequired", false)
            .bool("managesVpcEndpoints", false)
            .set("supportedIpAddressTypeSet", ["ipv4"], |x, t| {
                x.text("item", t);
            });
    })
    .opt("nextToken", next.as_deref());
    Ok(Effect::ReadOnly)
}

/// A MAC address for an ENI, made from its id (locally administered).
fn mac_of(id: &str) -> String {
    let hex: Vec<u8> = id.bytes().rev().filter(u8::is_ascii_hexdigit).take(10).collect();
    let pairs: Vec<String> = hex.chunks(2).map(|c| String::from_utf8_lossy(c).into_owned()).collect();
    format!("02:{}", pairs.join(":"))
}

pub(super) fn describe_network_interfaces(ec2: &mut Ec2, call: &mut Call<'_>, x: &mut Xml) -> Result<Effect, ApiError> {
    let p = call.params;
    let (filters, page) = (p.filters()?, Page::read(p, 5, 1000)?);
    let kind = IdKind::NetworkInterface;
    let chosen =
        asked(&p.list("NetworkInterfaceId"), &ec2.network_interfaces, |i| kind.check(i), |i| kind.not_found(i))?;
    let mut kept = Vec::new();
    for (id, n) in chosen {
        let (Some(e), Some(s)) = (ec2.endpoints.get(&n.endpoint), ec2.subnets.get(&n.subnet)) else { continue };
        let keep = passes(&filters, ec2.tags.get(id), |f| match f {
            "network-interface-id" => Some(vec![n.id.clone()]),
            "vpc-id" => Some(vec![e.vpc.clone()]),
            "subnet-id" => Some(vec![n.subnet.clone()]),
            "availability-zone" => Some(vec![s.az.clone()]),
            "interface-type" => Some(vec!["vpc_endpoint".into()]),
            "requester-managed" => Some(vec!["true".into()]),
            "status" => Some(vec!["in-use".into()]),
            "description" => Some(vec![format!("VPC Endpoint Interface {}", e.id)]),
            "private-ip-address" | "addresses.private-ip-address" => Some(vec![n.ip.to_string()]),
            "group-id" => Some(e.security_groups.clone()),
            "owner-id" => Some(vec![ACCOUNT_ID.into()]),
            _ => None,
        })?;
        if keep {
            kept.push((id, (n, e, s)));
        }
    }
    let (items, next) = page.cut(kept);
    x.set("networkInterfaceSet", items, |x, (n, e, s)| {
        let ip = n.ip.to_string();
        x.text("networkInterfaceId", &n.id)
            .text("subnetId", &n.subnet)
            .text("vpcId", &e.vpc)
            .text("availabilityZone", &s.az)
            .opt("availabilityZoneId", zone_id(&ec2.region, &s.az).as_deref())
            .text("description", &format!("VPC Endpoint Interface {}", e.id))
            .text("ownerId", ACCOUNT_ID)
            .text("requesterId", "727180483921")
            .bool("requesterManaged", true)
            .text("status", "in-use")
            .text("macAddress", &mac_of(&n.id))
            .text("privateIpAddress", &ip)
            .bool("sourceDestCheck", true)
            .text("interfaceType", "vpc_endpoint");
        write_groups(ec2, x, &e.security_groups);
        x.set("privateIpAddressesSet", [&ip], |x, ip| {
            x.text("privateIpAddress", ip).bool("primary", true);
        })
        .tag_set(ec2.tags_of(&n.id));
    })
    .opt("nextToken", next.as_deref());
    Ok(Effect::ReadOnly)
}

pub(super) fn delete_network_interface(ec2: &mut Ec2, call: &mut Call<'_>, _x: &mut Xml) -> Result<Effect, ApiError> {
    let id = call.params.required("NetworkInterfaceId")?;
    IdKind::NetworkInterface.check(id)?;
    match ec2.network_interfaces.get(id) {
        None => Err(IdKind::NetworkInterface.not_found(id)),
        Some(n) => Err(ApiError::new(
            "OperationNotPermitted",
            format!(
                "The network interface {id} is requester-managed by endpoint {}; delete or modify the endpoint instead",
                n.endpoint
            ),
        )),
    }
}

#[cfg(test)]
mod tests;
