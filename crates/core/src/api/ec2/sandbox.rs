//! The VPC `privlink run` builds for one command: a VPC, one subnet, one
//! instance, and an interface endpoint per named service with private DNS
//! on where the service has it (S3 has none: its endpoint-specific names
//! work, as at AWS). It is made with the same API calls a user would make,
//! so it is checked the same way and realized by the same code.
//!
//! Service names may be short (`ec2`, `sts`, `s3`) or full
//! (`com.amazonaws.us-east-1.ec2`); a full name of another Region is refused.

use super::{Call, Ec2};
use crate::api::error::ApiError;
use crate::api::query::Params;
use crate::api::xml::first_text;

/// The VPC's block; every sandbox is its own namespace, so they may overlap.
pub const SANDBOX_CIDR: &str = "10.200.0.0/16";
/// The subnet the instance and the ENIs share.
pub const SANDBOX_SUBNET: &str = "10.200.1.0/24";

/// What was built.
#[derive(Debug, Clone)]
pub struct Sandbox {
    /// The model holding it.
    pub ec2: Ec2,
    /// The VPC's id (its namespace).
    pub vpc: String,
    /// The instance's id (its namespace, where the command runs).
    pub instance: String,
    /// `(service name, endpoint id)` per service, in the order given.
    pub endpoints: Vec<(String, String)>,
}

/// `ec2` → `com.amazonaws.REGION.ec2`; a full name is kept (its Region checked).
pub fn service_name(region: &str, name: &str) -> Result<String, ApiError> {
    let full = if name.contains('.') { name.to_string() } else { format!("com.amazonaws.{region}.{name}") };
    let info = crate::catalog::lookup(&full).map_err(|e| ApiError::new(e.code(), e.to_string()))?;
    if info.region != region {
        return Err(ApiError::new(
            "InvalidServiceName",
            format!("{name} is in {}, the sandbox in {region} (set --region)", info.region),
        ));
    }
    Ok(full)
}

fn run(
    ec2: &mut Ec2,
    random: &mut dyn FnMut() -> [u8; 9],
    pairs: &[(&str, &str)],
    field: &str,
) -> Result<String, ApiError> {
    let params = Params::from_pairs(pairs.iter().copied());
    let mut call = Call { params: &params, request_id: "privlink-run", now: 0, random, chosen_id: None };
    let action = params.required("Action")?.to_string();
    let (doc, _) = ec2.call(&action, &mut call)?;
    first_text(&doc, field).ok_or_else(|| ApiError::new("InternalError", format!("{action} answered no {field}")))
}

/// Builds the sandbox for `services` in `region`.
pub fn build(region: &str, services: &[String], random: &mut dyn FnMut() -> [u8; 9]) -> Result<Sandbox, ApiError> {
    let names = services.iter().map(|s| service_name(region, s)).collect::<Result<Vec<_>, _>>()?;
    let mut ec2 = Ec2::new(region);
    let vpc = run(&mut ec2, random, &[("Action", "CreateVpc"), ("CidrBlock", SANDBOX_CIDR)], "vpcId")?;
    run(
        &mut ec2,
        random,
        &[("Action", "ModifyVpcAttribute"), ("VpcId", &vpc), ("EnableDnsHostnames.Value", "true")],
        "return",
    )?;
    let az = format!("{region}a");
    let subnet = run(
        &mut ec2,
        random,
        &[("Action", "CreateSubnet"), ("VpcId", &vpc), ("CidrBlock", SANDBOX_SUBNET), ("AvailabilityZone", &az)],
        "subnetId",
    )?;
    let instance = run(
        &mut ec2,
        random,
        &[
            ("Action", "RunInstances"),
            ("ImageId", "ami-00000000"),
            ("MinCount", "1"),
            ("MaxCount", "1"),
            ("SubnetId", &subnet),
        ],
        "instanceId",
    )?;
    let mut endpoints = Vec::new();
    for name in names {
        if endpoints.iter().any(|(n, _)| *n == name) {
            continue;
        }
        let id = run(
            &mut ec2,
            random,
            &[
                ("Action", "CreateVpcEndpoint"),
                ("VpcId", &vpc),
                ("VpcEndpointType", "Interface"),
                ("ServiceName", &name),
                ("SubnetId.1", &subnet),
            ],
            "vpcEndpointId",
        )?;
        endpoints.push((name, id));
    }
    Ok(Sandbox { ec2, vpc, instance, endpoints })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ec2::testkit::counter;

    #[test]
    fn short_and_full_names_and_the_region() {
        assert_eq!(service_name("us-east-1", "ec2").unwrap(), "com.amazonaws.us-east-1.ec2");
        assert_eq!(service_name("eu-west-1", "com.amazonaws.eu-west-1.sts").unwrap(), "com.amazonaws.eu-west-1.sts");
        assert_eq!(service_name("us-east-1", "com.amazonaws.eu-west-1.sts").unwrap_err().code, "InvalidServiceName");
        assert_eq!(service_name("us-east-1", "nope").unwrap_err().code, "InvalidServiceName");
    }

    #[test]
    fn one_endpoint_per_service_private_dns_where_it_exists() {
        let services = ["ec2".to_string(), "s3".to_string(), "com.amazonaws.us-east-1.ec2".to_string()];
        let sb = build("us-east-1", &services, &mut counter()).unwrap();
        assert_eq!(sb.endpoints.len(), 2, "ec2 named twice is one endpoint");
        let ec2 = &sb.ec2.endpoints[&sb.endpoints[0].1];
        let s3 = &sb.ec2.endpoints[&sb.endpoints[1].1];
        assert!(ec2.private_dns && !s3.private_dns);
        let plan = sb.ec2.vpc_plan(&sb.vpc, &Default::default(), sb.ec2.rule_set_config(&sb.vpc)).unwrap();
        assert_eq!(plan.plan.endpoints.len(), 2);
        assert!(sb.ec2.instances.contains_key(&sb.instance));
        assert!(build("us-east-1", &["nope".into()], &mut counter()).is_err());
    }
}
