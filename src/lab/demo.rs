//! `privlink demo`: the whole story in one command, offline.
//!
//! It starts a loopback TLS stand-in for the public service (a certificate for
//! the service's name, signed by a CA made at start), runs the endpoint from
//! the embedded config in a fresh namespace, makes an HTTPS request from
//! inside the VPC through the ENI, shows that ICMP gets no answer, and tears
//! everything down; then builds the same through the EC2 API
//! ([`super::demo_api`]).

use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

use tokio::sync::oneshot;

use crate::edge::{daemon, netns, privileges};
use crate::lab::probe;
use crate::lab::standin::{PublicDns, TlsStandIn};
use privlink_core::config::{Config, DEMO_CONFIG};
use privlink_core::model::Plan;

/// The demo's pretend public address of the service (the stand-in DNS says so; nothing is sent there).
const PUBLIC_EC2: Ipv4Addr = Ipv4Addr::new(52, 46, 154, 170);
/// A service the demo has no endpoint for: its name stays public inside the VPC too.
const PUBLIC_STS: (&str, Ipv4Addr) = ("sts.us-east-1.amazonaws.com", Ipv4Addr::new(52, 46, 136, 4));

/// Runs the demo; prints the story to stdout.
pub async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut config = Config::from_toml("demo.toml (embedded)", DEMO_CONFIG)?;
    let ns = config.vpc.netns.clone();
    if netns::exists(&ns) {
        return Err(format!(
            "a network namespace named {ns} already exists (another demo running?); remove it with `ip netns del {ns}`"
        )
        .into());
    }
    let service_name = config.endpoints[0].service_info.default_dns_names[0].clone();
    let standin = TlsStandIn::start(&service_name, 0).await?;
    config.endpoints[0].upstream = Some(standin.addr.to_string());
    let public_dns = PublicDns::start(&[(&service_name, PUBLIC_EC2), PUBLIC_STS]).await?;
    config.dns.forward = Some(vec![public_dns.addr]);

    println!("privlink demo: an AWS interface VPC endpoint, for real, in a network namespace\n");
    println!("1. The public service {service_name} is played by a TLS server on {} (host namespace),", standin.addr);
    println!("   with a certificate for {service_name} signed by a CA made just now;");
    println!("   the public DNS is played by a resolver on {} that knows its public address.\n", public_dns.addr);

    let state_dir = std::env::temp_dir().join(format!("privlink-demo-{}", std::process::id()));
    let (ready_tx, ready_rx) = oneshot::channel::<Plan>();
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let cfg = config.clone();
    let sd = state_dir.clone();
    let daemon = tokio::spawn(async move {
        daemon::up(
            &cfg,
            &sd,
            privileges::Privileges::Keep,
            move |plan| {
                let _ = ready_tx.send(plan.clone());
            },
            async {
                let _ = stop_rx.await;
            },
            None,
        )
        .await
    });
    let plan = match ready_rx.await {
        Ok(p) => p,
        Err(_) => {
            let err = daemon.await?.err().map(|e| e.to_string()).unwrap_or_default();
            let _ = std::fs::remove_dir_all(&state_dir);
            return Err(format!("the endpoint did not start: {err}").into());
        }
    };
    let ep = &plan.endpoints[0];
    println!(
        "2. The VPC {} ({}) is namespace {ns}. Endpoint {} for {} has one ENI per AZ:",
        plan.vpc.id, plan.vpc.cidr, ep.id, ep.service
    );
    for eni in &ep.enis {
        println!("     {} {} in {} ({})", eni.id, eni.ip, eni.subnet, eni.az);
    }
    println!("   The ENI is a TUN device in {ns}; privlink itself stays in the host namespace.\n");

    let resolver = plan.vpc.resolvers()[0];
    let outcome = dns_story(&ns, resolver, &service_name, &public_dns).await;
    let outcome = match outcome {
        Ok(eni_ip) => story(&ns, eni_ip, &service_name, &standin).await,
        Err(e) => Err(e),
    };
    let _ = stop_tx.send(());
    let report = daemon.await??;
    let _ = std::fs::remove_dir_all(&state_dir);
    outcome?;
    println!("6. privlink's counters: {}", report.counters);
    println!(
        "   DNS: {} queries, {} answered from the private zone, {} forwarded",
        report.dns.queries, report.dns.answered, report.dns.forwarded
    );
    println!(
        "   connections: {} carried, {} refused, {} closed\n",
        report.conns.accepted, report.conns.refused, report.conns.closed
    );
    println!("   Torn down: namespace {ns}, the ENI and its routes are gone.\n");
    super::demo_api::run(&service_name, &standin, public_dns.addr).await?;
    println!("Nothing was left behind.");
    Ok(())
}

/// Asks the same names outside and inside the VPC; returns the ENI IP the VPC resolver gave.
async fn dns_story(
    ns: &str,
    resolver: Ipv4Addr,
    service_name: &str,
    public: &PublicDns,
) -> Result<Ipv4Addr, Box<dyn std::error::Error>> {
    let (ns, name, public_addr) = (ns.to_string(), service_name.to_string(), public.addr);
    let SocketAddr::V4(public_v4) = public_addr else { return Err("the public DNS stand-in is IPv4".into()) };
    let inside = SocketAddrV4::new(resolver, 53);
    let (outside_ec2, inside_ec2, inside_sts) = tokio::task::spawn_blocking(move || {
        Ok::<_, io::Error>((
            probe::dns_udp(None, public_v4, &name, "A")?,
            probe::dns_udp(Some(&ns), inside, &name, "A")?,
            probe::dns_udp(Some(&ns), inside, PUBLIC_STS.0, "A")?,
        ))
    })
    .await??;
    let list = |ips: &[Ipv4Addr]| ips.iter().map(Ipv4Addr::to_string).collect::<Vec<_>>().join(", ");
    println!("3. The same name, asked outside and inside the VPC:");
    println!("     outside (public DNS)        {service_name} -> {}", list(&outside_ec2.ips));
    println!("     inside  (VPC resolver {resolver}) {service_name} -> {}", list(&inside_ec2.ips));
    println!("   Private DNS puts a private hosted zone for {service_name} in the VPC, so the");
    println!("   resolver answers with the endpoint's ENI IPs. A name without an endpoint stays public:");
    println!("     inside  (VPC resolver {resolver}) {} -> {} (forwarded)\n", PUBLIC_STS.0, list(&inside_sts.ips));
    inside_ec2.ips.first().copied().ok_or_else(|| "the VPC resolver gave no address".into())
}

async fn story(
    ns: &str,
    eni_ip: Ipv4Addr,
    service_name: &str,
    standin: &TlsStandIn,
) -> Result<(), Box<dyn std::error::Error>> {
    let addr = SocketAddrV4::new(eni_ip, 443);
    println!("4. From inside the VPC: HTTPS to https://{service_name}/ ({addr}, the address the VPC resolver gave)");
    let (ns2, name, ca) = (ns.to_string(), service_name.to_string(), standin.cert.ca.clone());
    let reply = tokio::task::spawn_blocking(move || probe::https_get(&ns2, addr, &name, &ca, "/")).await??;
    let same_cert = reply.peer_certs.first() == Some(&standin.cert.leaf);
    println!(
        "   TLS handshake ({}) verified the certificate for {service_name}: {}",
        reply.tls_version,
        if same_cert { "the service's own certificate, byte for byte" } else { "a different certificate!" }
    );
    let status = reply.response.lines().next().unwrap_or("");
    let body = reply.response.split("\r\n\r\n").nth(1).unwrap_or("").trim();
    println!("   {status} in {:.1} ms: {body}", reply.elapsed.as_secs_f64() * 1000.0);
    println!(
        "   The bytes went: instance -> ENI {eni_ip} (TUN) -> privlink's TCP stack -> a host socket -> {}\n",
        standin.addr
    );
    if !same_cert || !status.contains("200") {
        return Err("the request through the ENI did not reach the service".into());
    }

    let ns3 = ns.to_string();
    let answered =
        tokio::task::spawn_blocking(move || probe::icmp_echo(&ns3, eni_ip, Duration::from_millis(500))).await??;
    println!(
        "5. ping {eni_ip} from inside the VPC: {}",
        if answered { "answered (unexpected!)" } else { "no answer. An interface endpoint carries TCP only." }
    );
    Ok(())
}
