//! The demo's second act: the same endpoint built through the EC2 API, as
//! the aws CLI would build it, each call shown as the command a user types
//! and each result checked on the data plane.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

use crate::edge::netns;
use crate::lab::api_client::{call, field, texts, LocalApi};
use crate::lab::probe;
use crate::lab::standin::TlsStandIn;
use privlink_core::api::settings::ApiSettings;

type Failure = Box<dyn std::error::Error>;

/// Builds a VPC, a subnet, an instance and an endpoint through the API, shows
/// the private name and an HTTPS request from the instance, deletes it all.
pub async fn run(service_name: &str, standin: &TlsStandIn, public_dns: SocketAddr) -> Result<(), Failure> {
    let state_dir = std::env::temp_dir().join(format!("privlink-demo-api-{}", std::process::id()));
    let text = format!(
        "[api]\nlisten = \"127.0.0.1:0\"\n[upstreams]\n\"com.amazonaws.us-east-1.ec2\" = \"{}\"\n[dns]\nforward = [\"{public_dns}\"]\n",
        standin.addr
    );
    let settings = ApiSettings::from_toml("the demo's API config", &text)?;
    let api = tokio::task::spawn_blocking(move || LocalApi::start(settings, state_dir.clone()).map(|a| (a, state_dir)))
        .await??;
    let (api, state_dir) = api;
    let outcome = story(api.addr, service_name, standin).await;
    let stopped = tokio::task::spawn_blocking(move || api.stop()).await?;
    let _ = std::fs::remove_dir_all(&state_dir);
    outcome?;
    stopped.map_err(Into::into)
}

async fn story(api: SocketAddr, name: &str, standin: &TlsStandIn) -> Result<(), Failure> {
    let name = name.to_string();
    let ca = standin.cert.ca.clone();
    tokio::task::spawn_blocking(move || -> Result<(), String> {
        let e = |e: std::io::Error| e.to_string();
        let step = |cmd: &str, id: &str| println!("     $ aws ec2 {cmd}\n       -> {id}");
        println!("7. The same, through privlink's EC2 API on http://{api} (aws --endpoint-url http://{api} ec2 …):");
        let vpc = field(api, &[("Action", "CreateVpc"), ("CidrBlock", "10.1.0.0/16")], "vpcId").map_err(e)?;
        step("create-vpc --cidr-block 10.1.0.0/16", &format!("{vpc} (namespace {vpc}: {})", netns::exists(&vpc)));
        field(api, &[("Action", "ModifyVpcAttribute"), ("VpcId", &vpc), ("EnableDnsHostnames.Value", "true")], "return")
            .map_err(e)?;
        step(&format!("modify-vpc-attribute --vpc-id {vpc} --enable-dns-hostnames"), "ok (private DNS needs it)");
        let subnet = field(
            api,
            &[("Action", "CreateSubnet"), ("VpcId", &vpc), ("CidrBlock", "10.1.1.0/24"), ("AvailabilityZone", "us-east-1a")],
            "subnetId",
        )
        .map_err(e)?;
        step(&format!("create-subnet --vpc-id {vpc} --cidr-block 10.1.1.0/24 --availability-zone us-east-1a"), &subnet);
        let run = [("Action", "RunInstances"), ("ImageId", "ami-12345678"), ("MinCount", "1"), ("MaxCount", "1"), ("SubnetId", &subnet)];
        let instance = field(api, &run, "instanceId").map_err(e)?;
        step(&format!("run-instances --image-id ami-12345678 --subnet-id {subnet}"), &format!("{instance} (a namespace: ip netns exec {instance} …)"));
        let resolver = SocketAddrV4::new(Ipv4Addr::new(10, 1, 0, 2), 53);
        let before = probe::dns_udp(Some(&instance), resolver, &name, "A").map_err(e)?;
        let create = [
            ("Action", "CreateVpcEndpoint"),
            ("VpcId", vpc.as_str()),
            ("VpcEndpointType", "Interface"),
            ("ServiceName", "com.amazonaws.us-east-1.ec2"),
            ("SubnetId.1", subnet.as_str()),
        ];
        let endpoint = field(api, &create, "vpcEndpointId").map_err(e)?;
        step(&format!("create-vpc-endpoint --vpc-id {vpc} --vpc-endpoint-type Interface --service-name com.amazonaws.us-east-1.ec2 --subnet-ids {subnet}"), &endpoint);
        let (_, enis) = call(api, &[("Action", "DescribeNetworkInterfaces")]).map_err(e)?;
        let eni_ip = texts(&enis, "privateIpAddress").into_iter().next().unwrap_or_default();
        let after = probe::dns_udp(Some(&instance), resolver, &name, "A").map_err(e)?;
        let list = |ips: &[Ipv4Addr]| ips.iter().map(Ipv4Addr::to_string).collect::<Vec<_>>().join(", ");
        println!("   On the instance, before the endpoint and right after create-vpc-endpoint returned:");
        println!("     {name} -> {} (public)    then -> {} (the ENI {eni_ip})", list(&before.ips), list(&after.ips));
        let ip = *after.ips.first().ok_or("the VPC resolver gave no address")?;
        let reply = probe::https_get(&instance, SocketAddrV4::new(ip, 443), &name, &ca, "/").map_err(e)?;
        let status = reply.response.lines().next().unwrap_or("").to_string();
        println!("   HTTPS from the instance through the ENI: {status}");
        for (action, params) in [
            ("delete-vpc-endpoints", vec![("Action", "DeleteVpcEndpoints"), ("VpcEndpointId.1", endpoint.as_str())]),
            ("terminate-instances", vec![("Action", "TerminateInstances"), ("InstanceId.1", instance.as_str())]),
            ("delete-subnet", vec![("Action", "DeleteSubnet"), ("SubnetId", subnet.as_str())]),
            ("delete-vpc", vec![("Action", "DeleteVpc"), ("VpcId", vpc.as_str())]),
        ] {
            let (status, body) = call(api, &params).map_err(e)?;
            if status != 200 {
                return Err(format!("{action}: HTTP {status}: {body}"));
            }
        }
        println!("   delete-vpc-endpoints, terminate-instances, delete-subnet, delete-vpc: namespaces left: {}\n",
            [&vpc, &instance].iter().filter(|n| netns::exists(n)).count());
        if !status.contains("200") || after.ips.is_empty() {
            return Err("the endpoint built through the API did not carry the request".into());
        }
        Ok(())
    })
    .await?
    .map_err(Into::into)
}
