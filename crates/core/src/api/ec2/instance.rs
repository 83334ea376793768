//! Instances: RunInstances, DescribeInstances, TerminateInstances.
//!
//! An instance here is a network namespace with one interface in its
//! subnet; `ImageId` and `InstanceType` are accepted and echoed, nothing
//! boots. Its address is `PrivateIpAddress` (one instance only) or the
//! lowest free one of the subnet. Its groups make it a member for rules
//! that name a group. Terminated instances are forgotten at once (AWS shows
//! them for an hour).

use super::describe::{passes, Page};
use super::endpoint::{remember, repeated};
use super::ids::{IdKind, ACCOUNT_ID};
use super::resources::Instance;
use super::{Call, Ec2, Effect};
use crate::api::error::ApiError;
use crate::api::xml::Xml;

/// The most instances one call may start, and one model may hold (each is a namespace).
pub const MAX_INSTANCES: usize = 64;

pub(super) fn run_instances(ec2: &mut Ec2, call: &mut Call<'_>, x: &mut Xml) -> Result<Effect, ApiError> {
    let p = call.params;
    if let Some(reservation) = repeated(ec2, p)? {
        let made: Vec<&Instance> = ec2.instances.values().filter(|i| i.reservation == reservation).collect();
        if !made.is_empty() {
            write_reservation(ec2, x, &reservation, &made, "running");
            return Ok(Effect::ReadOnly);
        }
    }
    let image = p.required("ImageId")?.to_string();
    let (min, max) = (p.required("MinCount")?, p.required("MaxCount")?);
    let count = |name: &str, v: &str| {
        v.parse::<usize>().ok().filter(|n| *n >= 1).ok_or_else(|| ApiError::invalid_value(name, v))
    };
    let (min, max) = (count("MinCount", min)?, count("MaxCount", max)?);
    if min > max {
        return Err(ApiError::new("InvalidParameterValue", "MinCount must not exceed MaxCount"));
    }
    let subnet_id = p
        .get("SubnetId")
        .ok_or_else(|| ApiError::new("VPCIdNotSpecified", "No default VPC for this user: name a SubnetId"))?;
    let subnet = ec2.subnet(subnet_id)?.clone();
    let vpc = ec2.vpc(&subnet.vpc)?.clone();
    let mut groups = p.list("SecurityGroupId");
    for g in &groups {
        if ec2.security_group(g)?.vpc != vpc.id {
            return Err(ApiError::new(
                "InvalidParameter",
                format!("Security group {g} and subnet {subnet_id} belong to different networks."),
            ));
        }
    }
    if groups.is_empty() {
        groups.push(vpc.default_security_group.clone());
    }
    let tags = p.tag_specifications("instance")?;
    let fixed = match p.get("PrivateIpAddress") {
        None => None,
        Some(_) if max > 1 => {
            return Err(ApiError::combination("PrivateIpAddress can only be given when launching one instance"))
        }
        Some(v) => {
            let ip: std::net::Ipv4Addr = v.parse().map_err(|_| ApiError::invalid_value("PrivateIpAddress", v))?;
            if !subnet.cidr.contains(ip) || subnet.cidr.is_reserved(ip) {
                return Err(ApiError::new(
                    "InvalidParameterValue",
                    format!("Address {ip} does not fall within the subnet's address range"),
                ));
            }
            if ec2.taken_ips(&subnet.id).contains(&ip) {
                return Err(ApiError::new("InvalidIPAddress.InUse", format!("Address {ip} is in use.")));
            }
            Some(ip)
        }
    };
    let room = MAX_INSTANCES.saturating_sub(ec2.instances.len());
    if room < min {
        return Err(ApiError::new(
            "InstanceLimitExceeded",
            format!(
                "You have requested more instances ({min}) than your current instance limit of {MAX_INSTANCES} allows"
            ),
        ));
    }
    let taken = ec2.taken_ips(&subnet.id);
    let ips: Vec<std::net::Ipv4Addr> = match fixed {
        Some(ip) => vec![ip],
        None => subnet.cidr.assignable().filter(|ip| !taken.contains(ip)).take(max.min(room)).collect(),
    };
    if ips.len() < min {
        return Err(ApiError::new(
            "InsufficientFreeAddressesInSubnet",
            format!("Insufficient free IP addresses in subnet {} for {min} instances", subnet.id),
        ));
    }
    let reservation = call.new_id(IdKind::Reservation);
    let instance_type = p.get("InstanceType").unwrap_or("m1.small").to_string();
    let mut made = Vec::new();
    for ip in ips {
        let i = Instance {
            id: call.new_id(IdKind::Instance),
            reservation: reservation.clone(),
            vpc: vpc.id.clone(),
            subnet: subnet.id.clone(),
            ip,
            security_groups: groups.clone(),
            image_id: image.clone(),
            instance_type: instance_type.clone(),
            launch_time: call.now,
        };
        made.push(i.id.clone());
        ec2.set_tags(&i.id, &tags);
        ec2.instances.insert(i.id.clone(), i);
    }
    remember(ec2, p, &reservation);
    let shown: Vec<&Instance> = made.iter().map(|id| &ec2.instances[id]).collect();
    write_reservation(ec2, x, &reservation, &shown, "pending");
    Ok(Effect::Changed)
}

/// `(code, name)` of a state, as EC2 numbers them.
fn state_code(name: &str) -> u8 {
    match name {
        "pending" => 0,
        "running" => 16,
        "shutting-down" => 32,
        _ => 48,
    }
}

fn write_state(x: &mut Xml, element: &str, name: &str) {
    x.elem(element, |x| {
        x.num("code", state_code(name)).text("name", name);
    });
}

fn write_instance(ec2: &Ec2, x: &mut Xml, i: &Instance, state: &str) {
    let az = ec2.subnets.get(&i.subnet).map(|s| s.az.as_str()).unwrap_or_default();
    x.text("instanceId", &i.id).text("imageId", &i.image_id);
    write_state(x, "instanceState", state);
    x.text("privateDnsName", &format!("ip-{}.ec2.internal", i.ip.to_string().replace('.', "-")))
        .text("instanceType", &i.instance_type)
        .text("launchTime", &crate::api::time::iso8601(i.launch_time))
        .elem("placement", |x| {
            x.text("availabilityZone", az).text("tenancy", "default");
        })
        .text("subnetId", &i.subnet)
        .text("vpcId", &i.vpc)
        .text("privateIpAddress", &i.ip.to_string())
        .bool("sourceDestCheck", true)
        .set("groupSet", &i.security_groups, |x, g| {
            x.text("groupId", g).opt("groupName", ec2.security_groups.get(g).map(|g| g.name.as_str()));
        })
        .text("architecture", "x86_64")
        .text("rootDeviceType", "ebs")
        .text("hypervisor", "xen")
        .text("virtualizationType", "hvm")
        .tag_set(ec2.tags_of(&i.id));
}

fn write_reservation(ec2: &Ec2, x: &mut Xml, reservation: &str, instances: &[&Instance], state: &str) {
    x.text("reservationId", reservation).text("ownerId", ACCOUNT_ID).elem("groupSet", |_| {});
    x.set("instancesSet", instances, |x, i| write_instance(ec2, x, i, state));
}

pub(super) fn describe_instances(ec2: &mut Ec2, call: &mut Call<'_>, x: &mut Xml) -> Result<Effect, ApiError> {
    let p = call.params;
    let (filters, page) = (p.filters()?, Page::read(p, 5, 1000)?);
    let kind = IdKind::Instance;
    let chosen =
        super::describe::asked(&p.list("InstanceId"), &ec2.instances, |i| kind.check(i), |i| kind.not_found(i))?;
    let mut kept = Vec::new();
    for (id, i) in chosen {
        let az = ec2.subnets.get(&i.subnet).map(|s| s.az.clone()).unwrap_or_default();
        let keep = passes(&filters, ec2.tags.get(id), |f| match f {
            "instance-id" => Some(vec![i.id.clone()]),
            "vpc-id" => Some(vec![i.vpc.clone()]),
            "subnet-id" => Some(vec![i.subnet.clone()]),
            "private-ip-address" | "network-interface.addresses.private-ip-address" => Some(vec![i.ip.to_string()]),
            "instance-state-name" => Some(vec!["running".into()]),
            "instance-state-code" => Some(vec!["16".into()]),
            "instance.group-id" | "group-id" => Some(i.security_groups.clone()),
            "availability-zone" => Some(vec![az.clone()]),
            "image-id" => Some(vec![i.image_id.clone()]),
            "instance-type" => Some(vec![i.instance_type.clone()]),
            "reservation-id" => Some(vec![i.reservation.clone()]),
            "owner-id" => Some(vec![ACCOUNT_ID.into()]),
            _ => None,
        })?;
        if keep {
            kept.push((id, i));
        }
    }
    let (items, next) = page.cut(kept);
    // A page of instances, grouped by the call that started them.
    let mut reservations: Vec<(&str, Vec<&Instance>)> = Vec::new();
    for i in items {
        match reservations.iter_mut().find(|(r, _)| *r == i.reservation) {
            Some((_, list)) => list.push(i),
            None => reservations.push((&i.reservation, vec![i])),
        }
    }
    x.set("reservationSet", &reservations, |x, (r, list)| write_reservation(ec2, x, r, list, "running"))
        .opt("nextToken", next.as_deref());
    Ok(Effect::ReadOnly)
}

pub(super) fn terminate_instances(ec2: &mut Ec2, call: &mut Call<'_>, x: &mut Xml) -> Result<Effect, ApiError> {
    let ids = call.params.list("InstanceId");
    if ids.is_empty() {
        return Err(ApiError::new("MissingParameter", "The request must contain the parameter InstanceId"));
    }
    for id in &ids {
        IdKind::Instance.check(id)?;
        if !ec2.instances.contains_key(id) {
            return Err(IdKind::Instance.not_found(id));
        }
    }
    for id in &ids {
        ec2.instances.remove(id);
        ec2.drop_tags(id);
    }
    x.set("instancesSet", &ids, |x, id| {
        x.text("instanceId", id);
        write_state(x, "currentState", "terminated");
        write_state(x, "previousState", "running");
    });
    Ok(Effect::Changed)
}

#[cfg(test)]
mod tests {
    use crate::api::ec2::testkit::Lab;
    use crate::api::xml::tests::{all, at};

    #[test]
    fn instances_take_free_addresses_and_free_them_on_terminate() {
        let mut lab = Lab::new();
        let vpc = lab.vpc("10.0.0.0/16");
        let subnet = lab.subnet(&vpc, "10.0.1.0/28", "us-east-1a");
        let run = [("ImageId", "ami-12345678"), ("MinCount", "2"), ("MaxCount", "3"), ("SubnetId", subnet.as_str())];
        let doc = lab.ok("RunInstances", &run);
        let ips = all(&doc, "RunInstancesResponse/instancesSet/item/privateIpAddress");
        assert_eq!(ips, ["10.0.1.4", "10.0.1.5", "10.0.1.6"], "off the first four");
        let fixed = [
            ("ImageId", "ami-1"),
            ("MinCount", "1"),
            ("MaxCount", "1"),
            ("SubnetId", &subnet),
            ("PrivateIpAddress", "10.0.1.5"),
        ];
        assert_eq!(lab.err("RunInstances", &fixed).code, "InvalidIPAddress.InUse");
        let reserved = [
            ("ImageId", "ami-1"),
            ("MinCount", "1"),
            ("MaxCount", "1"),
            ("SubnetId", &subnet),
            ("PrivateIpAddress", "10.0.1.15"),
        ];
        assert_eq!(lab.err("RunInstances", &reserved).code, "InvalidParameterValue", "the broadcast address");
        let many = [("ImageId", "ami-1"), ("MinCount", "9"), ("MaxCount", "9"), ("SubnetId", subnet.as_str())];
        assert_eq!(lab.err("RunInstances", &many).code, "InsufficientFreeAddressesInSubnet");
        let ids = all(&doc, "RunInstancesResponse/instancesSet/item/instanceId");
        let described =
            lab.ok("DescribeInstances", &[("Filter.1.Name", "private-ip-address"), ("Filter.1.Value.1", "10.0.1.5")]);
        assert_eq!(
            all(&described, "DescribeInstancesResponse/reservationSet/item/instancesSet/item/instanceId"),
            [ids[1].clone()]
        );
        assert_eq!(lab.err("DeleteSubnet", &[("SubnetId", &subnet)]).code, "DependencyViolation");
        let gone = lab.ok(
            "TerminateInstances",
            &[("InstanceId.1", &ids[0]), ("InstanceId.2", &ids[1]), ("InstanceId.3", &ids[2])],
        );
        assert_eq!(at(&gone, "TerminateInstancesResponse/instancesSet/item/currentState/name").unwrap(), "terminated");
        assert!(lab.ec2.instances.is_empty());
        lab.ok("DeleteSubnet", &[("SubnetId", &subnet)]);
        assert_eq!(lab.err("TerminateInstances", &[("InstanceId.1", &ids[0])]).code, "InvalidInstanceID.NotFound");
    }

    #[test]
    fn a_client_token_starts_instances_once() {
        let mut lab = Lab::new();
        let vpc = lab.vpc("10.0.0.0/16");
        let subnet = lab.subnet(&vpc, "10.0.1.0/24", "us-east-1a");
        let run = [
            ("ImageId", "ami-1"),
            ("MinCount", "1"),
            ("MaxCount", "1"),
            ("SubnetId", subnet.as_str()),
            ("ClientToken", "t-1"),
        ];
        let a = lab.ok("RunInstances", &run);
        let b = lab.ok("RunInstances", &run);
        let id = |d: &str| at(d, "RunInstancesResponse/instancesSet/item/instanceId").unwrap();
        assert_eq!(id(&a), id(&b));
        assert_eq!(lab.ec2.instances.len(), 1);
        let other = [
            ("ImageId", "ami-2"),
            ("MinCount", "1"),
            ("MaxCount", "1"),
            ("SubnetId", subnet.as_str()),
            ("ClientToken", "t-1"),
        ];
        assert_eq!(lab.err("RunInstances", &other).code, "IdempotentParameterMismatch");
    }
}
