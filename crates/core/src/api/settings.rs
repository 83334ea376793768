//! `[api]` and `[upstreams]` of a config file: where the EC2 API listens
//! and where each service's streams go.
//!
//! ```toml
//! [api]
//! listen = "127.0.0.1:4566"     # loopback unless credentials are set
//! region = "us-east-1"          # default us-east-1
//! access_key_id = "AKIA…"       # both or neither: every request's SigV4
//! secret_access_key = "…"       # signature is then checked against them
//!
//! [upstreams]                   # default: the service's public name, port 443
//! "com.amazonaws.us-east-1.ec2" = "127.0.0.1:8443"
//!
//! [dns]
//! forward = []                  # privacy mode; default: the host's resolvers
//! ```
//!
//! A file with `[api]` may also hold a VPC (`[vpc]`, `[[subnet]]`,
//! `[[security_group]]`, `[[network_acl]]`, `[[instance]]`,
//! `[[endpoint]]`): it seeds the API's model once, and from then on it is
//! an API VPC like any other (the EC2 model's seed module). Without one, every VPC
//! comes through the API.
//!
//! Without credentials the API cannot tell one caller from another, so it
//! serves loopback only; with them a caller must hold the secret, and any
//! listen address is allowed.

use std::fmt;
use std::net::SocketAddr;

use super::ec2::plan::Upstreams;
use crate::config::{parse_host_port, ConfigError};
use crate::model::Upstream;

/// The control plane's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiSettings {
    /// Where the API listens (a loopback address unless `credentials` is set).
    pub listen: SocketAddr,
    /// The one key pair every request must be signed with; `None`: unsigned
    /// requests from loopback are served.
    pub credentials: Option<Credentials>,
    /// The Region the API serves.
    pub region: String,
    /// Where services' streams go.
    pub upstreams: Upstreams,
    /// The VPC resolvers' forwarders: `None` the host's, empty privacy mode.
    pub forward: Option<Vec<SocketAddr>>,
}

/// An access key: the id names it in a request's credential scope, the
/// secret signs.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// e.g. `AKIAIOSFODNN7EXAMPLE`.
    pub access_key_id: String,
    /// The signing secret.
    pub secret_access_key: String,
}

/// Leaves the secret out, so a logged config does not give it away.
impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"(hidden)")
            .finish()
    }
}

/// The fingerprint of a file's VPC part: every table but `[api]`,
/// `[upstreams]` and `[dns]`, in canonical form (sorted keys, one
/// formatting), hashed; `None` when the file has no `[vpc]`. Comments,
/// order and spacing do not change it; any value does.
pub fn vpc_part_fingerprint(text: &str) -> Option<String> {
    use sha2::Digest;
    let mut table: toml::Table = toml::from_str(text).ok()?;
    for key in ["api", "upstreams", "dns"] {
        table.remove(key);
    }
    if !table.contains_key("vpc") {
        return None;
    }
    let canonical = toml::to_string(&canonical(toml::Value::Table(table))).ok()?;
    Some(sha2::Sha256::digest(canonical.as_bytes()).iter().map(|b| format!("{b:02x}")).collect())
}

/// `value` with every table's keys sorted.
fn canonical(value: toml::Value) -> toml::Value {
    match value {
        toml::Value::Table(t) => {
            let sorted: std::collections::BTreeMap<String, toml::Value> =
                t.into_iter().map(|(k, v)| (k, canonical(v))).collect();
            toml::Value::Table(sorted.into_iter().collect())
        }
        toml::Value::Array(a) => toml::Value::Array(a.into_iter().map(canonical).collect()),
        other => other,
    }
}

/// Whether `text` is an API config (has an `[api]` table).
pub fn is_api_config(text: &str) -> bool {
    toml::from_str::<toml::Table>(text).is_ok_and(|t| t.contains_key("api"))
}

impl ApiSettings {
    /// Parses an API config; errors name the file and the key.
    pub fn from_toml(file: &str, text: &str) -> Result<ApiSettings, ConfigError> {
        let bad = |key: &str, msg: &str| ConfigError::Invalid {
            file: file.into(),
            line: 0,
            key: key.into(),
            msg: msg.into(),
        };
        let table: toml::Table = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            file: file.into(),
            line: 0,
            msg: e.message().trim().to_string(),
        })?;
        // With a [vpc], the rest is the config file's VPC, which seeds the
        // model (the EC2 model's seed module) and is checked by the config's parser.
        if !table.contains_key("vpc") {
            for key in table.keys() {
                if !matches!(key.as_str(), "api" | "upstreams" | "dns") {
                    return Err(bad(
                        key,
                        "belongs to a [vpc]: add one (it seeds the API's model), or make this through the API",
                    ));
                }
            }
        }
        let api = table.get("api").and_then(|v| v.as_table()).ok_or_else(|| bad("api", "a table"))?;
        for key in api.keys() {
            match key.as_str() {
                "listen" | "region" | "access_key_id" | "secret_access_key" => {}
                _ => {
                    return Err(bad(
                        &format!("api.{key}"),
                        "unknown key (listen, region, access_key_id, secret_access_key)",
                    ))
                }
            }
        }
        let text_key = |key: &str| -> Result<Option<String>, ConfigError> {
            match api.get(key) {
                None => Ok(None),
                Some(v) => match v.as_str() {
                    Some(s) if !s.is_empty() && s.is_ascii() && !s.chars().any(|c| c.is_ascii_control()) => {
                        Ok(Some(s.to_string()))
                    }
                    _ => Err(bad(&format!("api.{key}"), "a non-empty string of printable ASCII")),
                },
            }
        };
        let credentials = match (text_key("access_key_id")?, text_key("secret_access_key")?) {
            (Some(access_key_id), Some(secret_access_key)) => Some(Credentials { access_key_id, secret_access_key }),
            (None, None) => None,
            (Some(_), None) => {
                return Err(bad("api.secret_access_key", "missing: access_key_id needs its secret_access_key"))
            }
            (None, Some(_)) => {
                return Err(bad("api.access_key_id", "missing: secret_access_key needs its access_key_id"))
            }
        };
        let listen = api.get("listen").and_then(|v| v.as_str()).unwrap_or("127.0.0.1:4566");
        let listen: SocketAddr =
            listen.parse().map_err(|_| bad("api.listen", "an address:port like 127.0.0.1:4566"))?;
        if !listen.ip().is_loopback() && credentials.is_none() {
            return Err(bad(
                "api.listen",
                "a loopback address unless access_key_id and secret_access_key are set: unsigned, anyone who reaches the API could change the VPCs",
            ));
        }
        let region = api.get("region").and_then(|v| v.as_str()).unwrap_or("us-east-1").to_string();
        if crate::catalog::lookup(&format!("com.amazonaws.{region}.ec2")).is_err() {
            return Err(bad("api.region", "a Region like us-east-1"));
        }
        let mut upstreams = Upstreams::new();
        if let Some(u) = table.get("upstreams") {
            let u = u.as_table().ok_or_else(|| bad("upstreams", "a table of service name = \"host:port\""))?;
            for (service, to) in u {
                let key = format!("upstreams.\"{service}\"");
                crate::catalog::lookup(service).map_err(|e| bad(&key, &e.to_string()))?;
                let (host, port) = to
                    .as_str()
                    .and_then(parse_host_port)
                    .ok_or_else(|| bad(&key, "\"host:port\", e.g. \"127.0.0.1:8443\""))?;
                upstreams.insert(service.clone(), Upstream { host: host.to_string(), port });
            }
        }
        let forward = match table.get("dns").and_then(|d| d.get("forward")) {
            None => None,
            Some(f) => {
                let list = f.as_array().ok_or_else(|| bad("dns.forward", "a list of \"address:port\""))?;
                Some(
                    list.iter()
                        .map(|a| {
                            a.as_str()
                                .and_then(|s| s.parse().ok())
                                .ok_or_else(|| bad("dns.forward", "a list of \"address:port\""))
                        })
                        .collect::<Result<_, _>>()?,
                )
            }
        };
        Ok(ApiSettings { listen, credentials, region, upstreams, forward })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_api_config_and_its_refusals() {
        let text = "[api]\nlisten = \"127.0.0.1:4566\"\n[upstreams]\n\"com.amazonaws.us-east-1.ec2\" = \"127.0.0.1:8443\"\n[dns]\nforward = []\n";
        assert!(is_api_config(text));
        let s = ApiSettings::from_toml("a.toml", text).unwrap();
        assert_eq!(s.upstreams["com.amazonaws.us-east-1.ec2"].to_string(), "127.0.0.1:8443");
        assert_eq!(s.forward, Some(vec![]));
        assert_eq!(s.credentials, None);
        for (bad, key) in [
            ("[api]\nlisten = \"0.0.0.0:4566\"\n", "api.listen"),
            ("[api]\n[[subnet]]\nid = \"subnet-a\"\n", "subnet"),
            ("[api]\nregion = \"mars-1\"\n", "api.region"),
            (
                "[api]\n[upstreams]\n\"com.amazonaws.us-east-1.nope\" = \"127.0.0.1:1\"\n",
                "upstreams.\"com.amazonaws.us-east-1.nope\"",
            ),
            (
                "[api]\n[upstreams]\n\"com.amazonaws.us-east-1.ec2\" = \"nowhere\"\n",
                "upstreams.\"com.amazonaws.us-east-1.ec2\"",
            ),
            ("[api]\nsecret_access_key = \"x\"\n", "api.access_key_id"),
            ("[api]\naccess_key_id = \"AKID\"\n", "api.secret_access_key"),
            ("[api]\naccess_key_id = \"\"\nsecret_access_key = \"x\"\n", "api.access_key_id"),
            ("[api]\naccess_key_id = \"AKID\"\nsecret_access_key = 7\n", "api.secret_access_key"),
            ("[api]\nsecret = \"x\"\n", "api.secret"),
        ] {
            match ApiSettings::from_toml("a.toml", bad) {
                Err(ConfigError::Invalid { key: k, .. }) => assert_eq!(k, key, "{bad}"),
                other => panic!("{bad}: {other:?}"),
            }
        }
        assert!(!is_api_config(crate::config::DEMO_CONFIG));
    }

    #[test]
    fn the_vpc_part_is_fingerprinted_without_the_api_and_the_dns() {
        let vpc = "[vpc]\ncidr = \"10.0.0.0/16\"\nregion = \"us-east-1\"\n[[subnet]]\nid = \"subnet-a\"\ncidr = \"10.0.1.0/24\"\naz = \"us-east-1a\"\n";
        let text = format!("[api]\n{vpc}");
        assert!(ApiSettings::from_toml("a.toml", &text).is_ok(), "[api] with a VPC is one file");
        let fp = vpc_part_fingerprint(&text).unwrap();
        assert_eq!(fp.len(), 64);
        // What the API settings and the resolver say, comments and key order are not the VPC.
        let other_api = format!("[api]\nlisten = \"127.0.0.1:4577\"\n[dns]\nforward = []\n# a comment\n{vpc}");
        assert_eq!(vpc_part_fingerprint(&other_api).unwrap(), fp);
        let reordered = text.replace(
            "cidr = \"10.0.0.0/16\"\nregion = \"us-east-1\"",
            "region = \"us-east-1\"\ncidr = \"10.0.0.0/16\"",
        );
        assert_ne!(reordered, text);
        assert_eq!(vpc_part_fingerprint(&reordered).unwrap(), fp);
        // Any value of the VPC part is.
        assert_ne!(vpc_part_fingerprint(&text.replace("10.0.1.0/24", "10.0.2.0/24")).unwrap(), fp);
        assert_eq!(vpc_part_fingerprint("[api]\n"), None);
    }

    #[test]
    fn credentials_come_in_pairs_and_open_other_addresses() {
        let text = "[api]\nlisten = \"0.0.0.0:4566\"\naccess_key_id = \"AKID\"\nsecret_access_key = \"s/e+cret\"\n";
        let s = ApiSettings::from_toml("a.toml", text).unwrap();
        assert_eq!(s.listen.to_string(), "0.0.0.0:4566");
        let c = s.credentials.unwrap();
        assert_eq!((c.access_key_id.as_str(), c.secret_access_key.as_str()), ("AKID", "s/e+cret"));
        assert!(!format!("{c:?}").contains("s/e+cret"), "Debug hides the secret: {c:?}");
        let unsigned = ApiSettings::from_toml("a.toml", "[api]\nlisten = \"0.0.0.0:4566\"\n");
        match unsigned {
            Err(ConfigError::Invalid { key, msg, .. }) => {
                assert_eq!(key, "api.listen");
                assert!(msg.contains("access_key_id"), "{msg}");
            }
            other => panic!("{other:?}"),
        }
    }
}
