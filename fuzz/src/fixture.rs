//! The plan every target but `config` runs against: the embedded demo config
//! plus a third subnet behind a custom network ACL and a second, custom
//! endpoint with an SNI list and a policy, so one fuzz input can reach the
//! NACL, the policy and the SNI code as well as the demo's security group.
//!
//! Built once per process (`OnceLock`): AFL's persistent mode runs many
//! inputs in one process, and a plan costs far more than one input.

use std::sync::OnceLock;
use std::time::Instant;

use privlink_core::config::{Config, DEMO_CONFIG};
use privlink_core::model::{Plan, State};

/// What the demo config gains here (appended: TOML arrays of tables may grow anywhere).
const EXTRA: &str = r#"
[[subnet]]
id = "subnet-0lab000000000000c"
cidr = "10.0.3.0/24"
az = "us-east-1c"
network_acl = "acl-0lab0000000strict"

[[network_acl]]
id = "acl-0lab0000000strict"
ingress = [
  { rule = 100, protocol = "tcp", ports = "443", cidr = "10.0.0.0/16", action = "allow" },
  { rule = 110, protocol = "tcp", ports = "8443", cidr = "10.0.1.0/24", action = "deny" },
  { rule = 120, protocol = "tcp", ports = "8443", cidr = "10.0.0.0/16", action = "allow" },
]
egress = [{ rule = 100, protocol = "tcp", ports = "1024-65535", cidr = "10.0.0.0/16", action = "allow" }]

[[security_group]]
id = "sg-0lab00000000000api"
ingress = [
  { protocol = "tcp", ports = "443", cidr = "10.0.0.0/16" },
  { protocol = "tcp", ports = "8443", group = "sg-0lab0000000clients" },
]
egress = [{ protocol = "tcp", ports = "1024-65535", cidr = "10.0.0.0/16" }]

[[security_group]]
id = "sg-0lab0000000clients"
ingress = []
egress = [{ protocol = "all", cidr = "0.0.0.0/0" }]

[[instance]]
id = "i-0client"
ip = "10.0.2.10"
security_groups = ["sg-0lab0000000clients"]

[[endpoint]]
id = "vpce-0lab00000000000b2"
service = "com.example.api"
dns_names = ["api.example.com"]
subnets = ["subnet-0lab000000000000c", "subnet-0lab000000000000a"]
security_groups = ["sg-0lab00000000000api"]
upstream = "127.0.0.1:9443"
ports = [443, 8443]
allowed_sni = ["*.example.com"]
policy = '''{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"*","Resource":"*",
  "Condition":{"IpAddress":{"aws:VpcSourceIp":"10.0.2.0/24"}}}]}'''
"#;

/// The config text of the fixture (also a seed of the `config` target).
pub fn config_text() -> String {
    format!("{DEMO_CONFIG}\n{EXTRA}")
}

/// The fixture's plan, made once.
pub fn plan() -> &'static Plan {
    static PLAN: OnceLock<Plan> = OnceLock::new();
    PLAN.get_or_init(|| {
        let config = Config::from_toml("fixture.toml", &config_text()).expect("the fixture config is valid");
        let mut n = 0u8;
        Plan::make(&config, &mut State::default(), || {
            n = n.wrapping_add(1);
            [n; 9]
        })
        .expect("the fixture plans")
    })
}

/// Time zero of every input: the core reads no clock, it is given `Instant`s,
/// and an input's times are this plus amounts the input chooses.
pub fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}
