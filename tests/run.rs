//! `privlink run`: the command reaches the named services by their usual
//! names and nothing else, gets its exit status back, and leaves nothing
//! (namespace tests, root).

mod common;

use std::io::BufRead;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use privlink::lab::{probe, standin};

fn privlink() -> Command {
    Command::new(env!("CARGO_BIN_EXE_privlink"))
}

/// The namespaces whose names start with `vpc-` or `i-`.
fn sandboxes() -> Vec<String> {
    let out = Command::new("ip").args(["netns", "list"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with("vpc-") || n.starts_with("i-"))
        .map(str::to_string)
        .collect()
}

#[test]
fn a_command_reaches_its_service_by_name_and_gets_its_status_back() {
    if !common::netns_available("a_command_reaches_its_service_by_name_and_gets_its_status_back") {
        return;
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let name = "ec2.us-east-1.amazonaws.com";
    let service = rt.block_on(standin::TlsStandIn::start(name, 0)).unwrap();
    let dir = common::TempDir::new(&common::unique("run"));
    let ca = dir.0.join("ca.pem");
    std::fs::write(&ca, &service.cert.ca_pem).unwrap();
    let upstream = format!("ec2={}", service.addr);

    // By its usual name, with the service's own certificate (curl verifies it against the CA).
    let out = privlink()
        .args(["run", "--service", "ec2", "--upstream", &upstream, "--"])
        .args(["curl", "-sS", "--cacert", ca.to_str().unwrap(), &format!("https://{name}/")])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout} {}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.starts_with("hello from ec2.us-east-1.amazonaws.com"), "only CMD's output: {stdout:?}");
    assert!(out.stderr.is_empty(), "privlink printed: {}", String::from_utf8_lossy(&out.stderr));

    // The exit status comes back; 128 + N for a signal.
    let status = privlink().args(["run", "--service", "ec2", "--", "sh", "-c", "exit 7"]).status().unwrap();
    assert_eq!(status.code(), Some(7));
    let status = privlink().args(["run", "--service", "ec2", "--", "sh", "-c", "kill -9 $$"]).status().unwrap();
    assert_eq!(status.code(), Some(128 + 9), "a killed CMD");

    // As another user.
    let out = privlink().args(["run", "--service", "ec2", "--user", "65534:65534", "--", "id", "-u"]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "65534");

    // Nothing else: the host's loopback (the stand-in itself) and a public address are unreachable.
    let direct = format!("https://{}/", service.addr);
    let out =
        privlink().args(["run", "--service", "ec2", "--", "curl", "-sS", "-m", "3", "-k", &direct]).output().unwrap();
    assert!(!out.status.success(), "the host's loopback was reachable: {}", String::from_utf8_lossy(&out.stdout));
    let out = privlink()
        .args(["run", "--service", "ec2", "--", "curl", "-sS", "-m", "3", "http://93.184.216.34/"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "a public address was reachable");
}

#[test]
fn other_names_are_refused_udp_and_icmp_go_nowhere_and_a_killed_run_is_cleaned_up() {
    if !common::netns_available("other_names_are_refused_udp_and_icmp_go_nowhere_and_a_killed_run_is_cleaned_up") {
        return;
    }
    // The command says which namespace it runs in, then waits.
    let mut child = privlink()
        .args(["run", "--service", "ec2", "--service", "s3", "--", "sh", "-c", "ip netns identify $$; sleep 60"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let instance = line.trim().to_string();
    assert!(instance.starts_with("i-"), "{line:?}");
    let resolver = SocketAddrV4::new(Ipv4Addr::new(10, 200, 0, 2), 53);
    let ec2 = probe::dns_udp(Some(&instance), resolver, "ec2.us-east-1.amazonaws.com", "A").unwrap();
    assert_eq!(ec2.ips.len(), 1, "{ec2:?}");
    let sts = probe::dns_udp(Some(&instance), resolver, "sts.us-east-1.amazonaws.com", "A").unwrap();
    assert_eq!(sts.rcode, "Refused", "no endpoint, no answer: {sts:?}");
    let s3 = probe::dns_udp(Some(&instance), resolver, "s3.us-east-1.amazonaws.com", "A").unwrap();
    assert_eq!(s3.rcode, "Refused", "S3 has no private DNS, as at AWS: {s3:?}");
    let udp = probe::udp_exchange(
        &instance,
        SocketAddrV4::new(Ipv4Addr::new(1, 1, 1, 1), 53),
        b"x",
        Duration::from_millis(500),
    );
    assert!(!matches!(udp, Ok(Some(_))), "UDP went somewhere: {udp:?}");
    let icmp = probe::icmp_echo(&instance, ec2.ips[0], Duration::from_millis(500)).unwrap_or(false);
    assert!(!icmp, "the ENI answered a ping");

    // kill -9 privlink: its namespaces stay until the next run removes them.
    // What the run recorded it made: its VPC and its instance.
    let records = format!("{}/{}/fabric", privlink::edge::run::RUN_DIR, child.id());
    let ours: Vec<String> =
        std::fs::read_dir(&records).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert!(ours.contains(&instance) && ours.iter().any(|n| n.starts_with("vpc-")), "{ours:?}");
    child.kill().unwrap();
    child.wait().unwrap();
    let _ = Command::new("pkill").args(["-f", "ip netns identify"]).status();
    assert!(sandboxes().contains(&instance), "kill -9 leaves the sandbox (nothing could remove it)");
    let status = privlink().args(["run", "--service", "ec2", "--", "true"]).status().unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(5);
    while ours.iter().any(|n| sandboxes().contains(n)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let left: Vec<&String> = ours.iter().filter(|n| sandboxes().contains(n)).collect();
    assert!(left.is_empty(), "the next run removed the killed run's namespaces: {left:?} left");
    assert!(!std::path::Path::new(&records).exists(), "and its records");
    assert!(!std::path::Path::new(&format!("/etc/netns/{instance}")).exists());
}

#[test]
fn the_real_aws_cli_runs_unchanged_inside() {
    let test = "the_real_aws_cli_runs_unchanged_inside";
    if !common::netns_available(test) {
        return;
    }
    let Some(venv) = common::aws_venv(test) else { return };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let name = "sts.us-east-1.amazonaws.com";
    let service = rt.block_on(standin::TlsStandIn::start(name, 0)).unwrap();
    let dir = common::TempDir::new(&common::unique("runaws"));
    let ca = dir.0.join("ca.pem");
    std::fs::write(&ca, &service.cert.ca_pem).unwrap();
    let out = privlink()
        .args(["run", "--service", "sts", "--upstream", &format!("sts={}", service.addr), "--"])
        .arg(venv.join("bin/aws"))
        .args(["--ca-bundle", ca.to_str().unwrap(), "--output", "json", "sts", "get-caller-identity"])
        // STS's regional name is the one an interface endpoint serves, at AWS too.
        .env("AWS_STS_REGIONAL_ENDPOINTS", "regional")
        .env("AWS_ACCESS_KEY_ID", "x")
        .env("AWS_SECRET_ACCESS_KEY", "x")
        .env_remove("AWS_REGION")
        .env_remove("AWS_DEFAULT_REGION")
        .env_remove("AWS_PROFILE")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout} {}", String::from_utf8_lossy(&out.stderr));
    let doc: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(doc["Account"], "000000000000", "{stdout}");
}

/// The number after `label ` in `line`.
fn number_after(line: &str, label: &str) -> u64 {
    let at = line.find(label).unwrap_or_else(|| panic!("{label:?} in {line:?}")) + label.len();
    line[at..].trim_start().split(|c: char| !c.is_ascii_digit()).next().unwrap().parse().unwrap()
}

#[test]
fn the_summary_says_what_the_command_reached_and_what_it_was_refused() {
    let test = "the_summary_says_what_the_command_reached_and_what_it_was_refused";
    if !common::netns_available(test) {
        return;
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let name = "ec2.us-east-1.amazonaws.com";
    let service = rt.block_on(standin::TlsStandIn::start(name, 0)).unwrap();
    let dir = common::TempDir::new(&common::unique("runsum"));
    let ca = dir.0.join("ca.pem");
    std::fs::write(&ca, &service.cert.ca_pem).unwrap();
    // curl says, after the body's line, where it connected and what it sent and
    // received (HTTP, before TLS);
    // the second name has no endpoint, and port 80 is not the endpoint's (their
    // curls' own complaints are silenced, so privlink's stderr is the summary alone).
    let script = format!(
        "curl -sS --cacert {} -w '%{{remote_ip}} %{{size_request}} %{{size_header}} %{{size_download}}\\n' https://{name}/ \
         && curl -sS -m 5 https://sts.us-east-1.amazonaws.com/ 2>/dev/null; \
         curl -sS -m 1 http://{name}/ 2>/dev/null; exit 0",
        ca.display()
    );
    let out = privlink()
        .args(["run", "--service", "ec2", "--upstream", &format!("ec2={}", service.addr), "--summary"])
        .args(["--", "sh", "-c", &script])
        .output()
        .unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{stdout} {stderr}");

    // stdout is CMD's alone: the body, then curl's numbers; the summary is all of stderr.
    let mut lines = stdout.lines();
    let body = lines.next().unwrap_or_default();
    assert!(body.starts_with("hello from ec2.us-east-1.amazonaws.com"), "{stdout:?}");
    let numbers: Vec<&str> = lines.next().unwrap_or_default().split_whitespace().collect();
    assert_eq!((numbers.len(), lines.next()), (4, None), "only CMD's output on stdout: {stdout:?}");
    let eni_ip = numbers[0];
    let [request, header, download] = [1, 2, 3].map(|i| numbers[i].parse::<u64>().unwrap());
    assert_eq!(download, body.len() as u64 + 1, "the body and its newline: {stdout:?}");
    assert!(stderr.starts_with("privlink run: summary\n"), "{stderr}");
    assert!(!stderr.contains("hello from"), "CMD's output in the summary: {stderr}");

    // Both names, with their answers: the ENI's address, and REFUSED (no endpoint).
    let line_of = |prefix: &str| {
        stderr.lines().find(|l| l.starts_with(prefix)).unwrap_or_else(|| panic!("no {prefix:?} in:\n{stderr}"))
    };
    let ec2 = line_of(&format!("    {name}: asked "));
    assert!(ec2.contains(&format!("; A {eni_ip} (")), "curl connected to {eni_ip}: {ec2}");
    let sts = line_of("    sts.us-east-1.amazonaws.com: asked ");
    assert!(sts.contains("; A REFUSED (") && !sts.contains("10."), "{sts}");

    // One connection, its payload bytes as curl counted them plus what TLS adds
    // (a handshake with the stand-in's one certificate, and 22 bytes a record).
    let ep = line_of("  endpoint com.amazonaws.us-east-1.ec2 (vpce-");
    assert_eq!((number_after(ep, "connections carried"), number_after(ep, "refused")), (1, 0), "{ep}");
    let (up, down) = (number_after(ep, "client->service"), number_after(ep, "service->client"));
    assert!(up >= request && up > 0, "client->service {up}, curl sent {request}: {ep}");
    assert!(down >= header + download && down >= download && down > 0, "service->client {down}: {ep}");
    const TLS: u64 = 16 * 1024;
    assert!(up <= request + TLS && down <= header + download + TLS, "more than TLS adds: {ep}");
    // Port 80's SYNs (the first and any retransmission within curl's second).
    let port = line_of("    dropped: a port the endpoint does not carry: ");
    assert!(number_after(port, "carry:") >= 1, "{port}");
}
