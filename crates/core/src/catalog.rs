//! The catalogue of AWS endpoint services and the DNS names an interface
//! endpoint gets.
//!
//! AWS services are named `com.amazonaws.<region>.<service>`. The table of
//! known services is data, `data/aws-services.txt`, embedded at build time:
//! adding a service is a one-line change there. An unknown AWS name fails the
//! way EC2 fails it: `InvalidServiceName`, "The Vpc Endpoint Service 'NAME'
//! does not exist".
//!
//! Every interface endpoint has endpoint-specific names, built by
//! [`endpoint_dns_names`] (AWS PrivateLink guide, "DNS hostnames"):
//! - regional: `vpce-0fe5b17a0707d6abc-29p5708s.ec2.us-east-1.vpce.amazonaws.com`;
//! - zonal: `vpce-0fe5b17a0707d6abc-29p5708s-us-east-1a.ec2.us-east-1.vpce.amazonaws.com`.
//!
//! The 8-character suffix is random per endpoint and fixed for its life; the
//! caller supplies the randomness ([`random_suffix`]) so this module stays pure.
//!
//! Under each endpoint-specific name `N`, S3 clients use further names
//! (Amazon S3 guide, "AWS PrivateLink for Amazon S3"), listed once, in
//! [`S3_ENDPOINT_LABELS`], and spelled out by [`s3_endpoint_names`]:
//! `bucket.N` (path-style requests) and `<bucket>.bucket.N` (virtual-hosted
//! style), `accesspoint.N` and `<name>-<account>.accesspoint.N` (access
//! points), `control.N` and `<account>.control.N` (S3 Control: the SDKs put
//! the account id in front). The private zone answers these names and the
//! SNI policy accepts them, both from this one list, so a name that resolves
//! is not reset by the SNI check. One difference is the protocols' own: the
//! zone's `*` (RFC 4592) also answers `a.b.bucket.N`, while the SNI pattern's
//! `*` covers one label, as a TLS certificate's does (RFC 6125); no TLS client
//! can use the deeper names (the certificate would not match them), which is
//! why SDKs fall back to path style for bucket names with dots.
//!
//! ## Not emulated
//! - Services outside the table (add them to the data file), global services
//!   (`com.amazonaws.s3-global.accesspoint`, IAM) and per-region availability:
//!   every listed service exists in every well-formed region.
//! - S3 and DynamoDB private DNS (added by AWS later, with conditions): the
//!   source documents say S3 interface endpoints have none, so
//!   `private_dns_supported` is `false` and enabling it is an error.
//! - `DescribeVpcEndpointServices` fields other than the names (owner,
//!   acceptance, AZ list, ...): `model` and `control` own those.

use thiserror::Error;

/// The embedded service table; see the header of the file for its columns.
const SERVICE_TABLE: &str = include_str!("../data/aws-services.txt");

/// Prefix of every AWS-owned service name.
const AWS_PREFIX: &str = "com.amazonaws.";

/// Prefix of endpoint services that customers and partners publish.
const CUSTOM_AWS_PREFIX: &str = "com.amazonaws.vpce.";

/// The labels S3 puts in front of an S3 interface endpoint's specific names,
/// each with a one-label wildcard under it (see the module doc).
pub const S3_ENDPOINT_LABELS: [&str; 3] = ["bucket", "accesspoint", "control"];

/// What privlink knows about one endpoint service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceInfo {
    /// The full service name, e.g. `com.amazonaws.us-east-1.ec2`.
    pub service_name: String,
    /// The region, e.g. `us-east-1`.
    pub region: String,
    /// The service part of the name, e.g. `ec2`, `ecr.api`, `execute-api`.
    pub short_name: String,
    /// The service's own (public) names, e.g. `ec2.us-east-1.amazonaws.com`;
    /// the private hosted zone carries them when private DNS is on.
    pub default_dns_names: Vec<String>,
    /// Whether the endpoint may enable private DNS (false for S3).
    pub private_dns_supported: bool,
    /// The label(s) in the endpoint-specific names, e.g. `ec2`, `api.ecr`.
    pub vpce_dns_part: String,
}

/// Why a service name or option was refused, worded as EC2 words it.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum CatalogError {
    /// The name is not a service privlink knows (EC2 `InvalidServiceName`).
    #[error("The Vpc Endpoint Service '{name}' does not exist")]
    InvalidServiceName {
        /// The name as given.
        name: String,
    },
    /// `PrivateDnsEnabled=true` on a service without a private name (EC2 `InvalidParameter`).
    #[error("Private DNS can't be enabled because the service {name} does not provide a private DNS name.")]
    PrivateDnsNotSupported {
        /// The service name.
        name: String,
    },
    /// A region that is not shaped like `us-east-1` (EC2 `InvalidParameterValue`).
    #[error("Invalid region '{region}'")]
    InvalidRegion {
        /// The region as given.
        region: String,
    },
    /// A custom service's DNS name that is not a host name (EC2 `InvalidParameterValue`).
    #[error("Invalid DNS name '{name}'")]
    InvalidDnsName {
        /// The name as given.
        name: String,
    },
}

impl CatalogError {
    /// The EC2 API error code for this error.
    pub fn code(&self) -> &'static str {
        match self {
            CatalogError::InvalidServiceName { .. } => "InvalidServiceName",
            CatalogError::PrivateDnsNotSupported { .. } => "InvalidParameter",
            CatalogError::InvalidRegion { .. } | CatalogError::InvalidDnsName { .. } => "InvalidParameterValue",
        }
    }
}

/// One parsed line of the service table.
struct TableRow<'a> {
    short_name: &'a str,
    private_dns: bool,
    vpce_part: &'a str,
    names: std::str::SplitWhitespace<'a>,
}

/// Iterates over the rows of the embedded table, skipping comments and blank lines.
fn table_rows() -> impl Iterator<Item = TableRow<'static>> {
    SERVICE_TABLE.lines().filter_map(|line| {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            return None;
        }
        let mut cols = line.split_whitespace();
        // The table is checked by a unit test, so a malformed row is a
        // programming error caught in CI, not a runtime condition.
        let short_name = cols.next()?;
        let private_dns = cols.next()? == "yes";
        let vpce_part = cols.next()?;
        Some(TableRow { short_name, private_dns, vpce_part, names: cols })
    })
}

/// Looks up an AWS service name such as `com.amazonaws.us-east-1.ec2`.
pub fn lookup(service_name: &str) -> Result<ServiceInfo, CatalogError> {
    let invalid = || CatalogError::InvalidServiceName { name: service_name.to_string() };
    let rest = service_name.strip_prefix(AWS_PREFIX).ok_or_else(invalid)?;
    let (region, short_name) = rest.split_once('.').ok_or_else(invalid)?;
    if !is_region(region) {
        return Err(invalid());
    }
    let row = table_rows().find(|row| row.short_name == short_name).ok_or_else(invalid)?;
    let suffix = dns_suffix(region);
    let default_dns_names = row
        .names
        .map(|template| template.replace("{region}", region).replace(".amazonaws.com", &format!(".{suffix}")))
        .collect();
    Ok(ServiceInfo {
        service_name: service_name.to_string(),
        region: region.to_string(),
        short_name: short_name.to_string(),
        default_dns_names,
        private_dns_supported: row.private_dns,
        vpce_dns_part: row.vpce_part.to_string(),
    })
}

/// Every AWS service of the table, in `region` (DescribeVpcEndpointServices).
pub fn services(region: &str) -> Vec<ServiceInfo> {
    table_rows().filter_map(|row| lookup(&format!("{AWS_PREFIX}{region}.{}", row.short_name)).ok()).collect()
}

impl ServiceInfo {
    /// Describes a custom (non-AWS) endpoint service with its own private DNS names.
    ///
    /// `service_name` is e.g. `com.amazonaws.vpce.us-east-1.vpce-svc-0123456789abcdef0`
    /// or a partner name such as `com.example.api`. The endpoint-specific names
    /// use the `vpce-svc-…` id when the name has one (as at AWS), else the
    /// name's last label. Private DNS is supported when `dns_names` is not empty.
    pub fn custom(service_name: &str, region: &str, dns_names: &[String]) -> Result<ServiceInfo, CatalogError> {
        if !is_region(region) {
            return Err(CatalogError::InvalidRegion { region: region.to_string() });
        }
        let last_label = service_name.rsplit('.').next().unwrap_or_default();
        if service_name.is_empty() || last_label.is_empty() {
            return Err(CatalogError::InvalidServiceName { name: service_name.to_string() });
        }
        // An AWS-named service that is not a customer `vpce.` one must come
        // from the catalogue, or a typo would silently become a custom service.
        if service_name.starts_with(AWS_PREFIX) && !service_name.starts_with(CUSTOM_AWS_PREFIX) {
            return Err(CatalogError::InvalidServiceName { name: service_name.to_string() });
        }
        for name in dns_names {
            if !is_dns_name(name) {
                return Err(CatalogError::InvalidDnsName { name: name.clone() });
            }
        }
        Ok(ServiceInfo {
            service_name: service_name.to_string(),
            region: region.to_string(),
            short_name: last_label.to_string(),
            default_dns_names: dns_names.iter().map(|n| n.to_ascii_lowercase()).collect(),
            private_dns_supported: !dns_names.is_empty(),
            vpce_dns_part: last_label.to_ascii_lowercase(),
        })
    }

    /// Checks a `PrivateDnsEnabled` request against the service, as `CreateVpcEndpoint` does.
    pub fn check_private_dns(&self, enabled: bool) -> Result<(), CatalogError> {
        if enabled && !self.private_dns_supported {
            return Err(CatalogError::PrivateDnsNotSupported { name: self.service_name.clone() });
        }
        Ok(())
    }

    /// The apexes of the private hosted zones for the default names (`*.` stripped, deduplicated).
    pub fn private_zone_apexes(&self) -> Vec<String> {
        let mut apexes: Vec<String> = Vec::new();
        for name in &self.default_dns_names {
            let apex = name.strip_prefix("*.").unwrap_or(name);
            if !apexes.iter().any(|a| a == apex) {
                apexes.push(apex.to_string());
            }
        }
        apexes
    }

    /// The names clients use under the endpoint-specific name `name`, besides
    /// `name` itself: for S3, `bucket.N`, `*.bucket.N`, `accesspoint.N`,
    /// `*.accesspoint.N`, `control.N` and `*.control.N` ([`S3_ENDPOINT_LABELS`]);
    /// none for any other service. The private zone answers them and the SNI
    /// policy accepts them.
    pub fn endpoint_sub_names(&self, name: &str) -> Vec<String> {
        if self.is_s3() {
            s3_endpoint_names(name)
        } else {
            Vec::new()
        }
    }

    /// Whether this is the AWS S3 service (`com.amazonaws.<region>.s3`), not a
    /// custom service whose name happens to end in `s3`.
    fn is_s3(&self) -> bool {
        self.service_name.strip_prefix(AWS_PREFIX).and_then(|rest| rest.strip_prefix(self.region.as_str()))
            == Some(".s3")
    }

    /// The apex under which this service's endpoint-specific names live,
    /// e.g. `ec2.us-east-1.vpce.amazonaws.com`.
    pub fn vpce_zone_apex(&self) -> String {
        format!("{}.{}.vpce.{}", self.vpce_dns_part, self.region, dns_suffix(&self.region))
    }
}

/// Builds an endpoint's regional name and one zonal name per AZ, as AWS does.
///
/// `endpoint_id` is `vpce-0fe5b17a0707d6abc` (the `vpce-` prefix is added if
/// missing); `suffix` is the endpoint's 8-character random suffix.
pub fn endpoint_dns_names(
    endpoint_id: &str,
    suffix: &str,
    vpce_dns_part: &str,
    region: &str,
    azs: &[String],
) -> (String, Vec<(String, String)>) {
    let id = endpoint_id.strip_prefix("vpce-").unwrap_or(endpoint_id);
    let tail = format!("{vpce_dns_part}.{region}.vpce.{}", dns_suffix(region));
    let regional = format!("vpce-{id}-{suffix}.{tail}");
    let zonal = azs.iter().map(|az| (az.clone(), format!("vpce-{id}-{suffix}-{az}.{tail}"))).collect();
    (regional, zonal)
}

/// The names S3 clients use under one endpoint-specific name `name` of an S3
/// interface endpoint: for each of [`S3_ENDPOINT_LABELS`], `label.name` and
/// `*.label.name`.
pub fn s3_endpoint_names(name: &str) -> Vec<String> {
    S3_ENDPOINT_LABELS.iter().flat_map(|label| [format!("{label}.{name}"), format!("*.{label}.{name}")]).collect()
}

/// The one-label wildcard that covers every endpoint-specific name of the
/// service whose public name is `dns_name`: `ec2.us-east-1.amazonaws.com` ->
/// `*.ec2.us-east-1.vpce.amazonaws.com`, which matches the regional
/// `vpce-…-xyz.ec2…` and the zonal `vpce-…-xyz-us-east-1a.ec2…` names alike
/// (a certificate's `*` stands for exactly one label, RFC 6125).
///
/// The label(s) come from the service table, not from the name, because they
/// differ for some services (`kinesis.<region>` belongs to `kinesis-streams`,
/// `*.dkr.ecr.<region>` has `dkr.ecr`). `None` for a name the table does not
/// list (a partner's, a global one such as `iam.amazonaws.com`) and for a name
/// that is already endpoint-specific. For S3 the wildcard covers the
/// endpoint-specific names but not the `bucket.vpce-…`, `accesspoint.vpce-…`
/// and `control.vpce-…` forms under them: those are one label deeper, so no
/// single wildcard can (see [`s3_endpoint_names`]).
pub fn vpce_wildcard(dns_name: &str) -> Option<String> {
    let name = dns_name.strip_suffix('.').unwrap_or(dns_name).to_ascii_lowercase();
    let host = name.strip_prefix("*.").unwrap_or(&name);
    let rest = host.strip_suffix(".amazonaws.com.cn").or_else(|| host.strip_suffix(".amazonaws.com"))?;
    let (_, region) = rest.rsplit_once('.')?;
    if !is_region(region) {
        return None;
    }
    let suffix = dns_suffix(region);
    let row = table_rows().find(|row| {
        row.names.clone().any(|template| {
            let template = template.strip_prefix("*.").unwrap_or(template);
            template.replace("{region}", region).replace(".amazonaws.com", &format!(".{suffix}")) == host
        })
    })?;
    Some(format!("*.{}.{region}.vpce.{suffix}", row.vpce_part))
}

/// Makes the 8-character lowercase alphanumeric suffix from caller-supplied random bytes.
///
/// `byte % 36` is slightly biased towards the first 4 symbols; harmless for a
/// name that only has to be unlikely to collide within one lab.
pub fn random_suffix(rng_bytes: [u8; 8]) -> String {
    const ALPHABET: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    rng_bytes.iter().map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char).collect()
}

/// The DNS suffix of a region's partition: China regions use `amazonaws.com.cn`.
fn dns_suffix(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "amazonaws.com.cn"
    } else {
        "amazonaws.com"
    }
}

/// Whether `region` is shaped like an AWS region: `us-east-1`, `us-gov-west-1`.
fn is_region(region: &str) -> bool {
    let parts: Vec<&str> = region.split('-').collect();
    let Some((number, words)) = parts.split_last() else {
        return false;
    };
    parts.len() >= 3
        && parts[0].len() == 2
        && words.iter().all(|w| !w.is_empty() && w.bytes().all(|b| b.is_ascii_lowercase()))
        && !number.is_empty()
        && number.bytes().all(|b| b.is_ascii_digit())
}

/// Whether `name` is a host name, optionally with a leading `*.` wildcard.
fn is_dns_name(name: &str) -> bool {
    let host = name.strip_prefix("*.").unwrap_or(name);
    let host = host.strip_suffix('.').unwrap_or(host);
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    // ---------------------------------------------------------------
    // The table
    // ---------------------------------------------------------------

    #[test]
    fn table_rows_are_well_formed_and_unique() {
        let mut seen = std::collections::HashSet::new();
        let mut count = 0;
        for line in SERVICE_TABLE.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let cols: Vec<&str> = line.split_whitespace().collect();
            assert!(cols.len() >= 4, "short row: {line}");
            assert!(cols[1] == "yes" || cols[1] == "no", "bad flag: {line}");
            assert!(seen.insert(cols[0]), "duplicate service: {}", cols[0]);
            for name in &cols[3..] {
                assert!(name.contains("{region}"), "name without region: {line}");
                assert!(is_dns_name(&name.replace("{region}", "us-east-1")), "{line}");
            }
            count += 1;
        }
        assert_eq!(count, table_rows().count());
        assert!(count >= 40);
    }

    #[test]
    fn every_listed_service_resolves() {
        for row in table_rows() {
            let name = format!("com.amazonaws.eu-west-2.{}", row.short_name);
            let info = lookup(&name).unwrap();
            assert!(info.default_dns_names.iter().all(|n| n.ends_with(".eu-west-2.amazonaws.com")));
        }
    }

    // ---------------------------------------------------------------
    // lookup
    // ---------------------------------------------------------------

    #[test]
    fn ec2() {
        let info = lookup("com.amazonaws.us-east-1.ec2").unwrap();
        assert_eq!(
            info,
            ServiceInfo {
                service_name: "com.amazonaws.us-east-1.ec2".into(),
                region: "us-east-1".into(),
                short_name: "ec2".into(),
                default_dns_names: vec!["ec2.us-east-1.amazonaws.com".into()],
                private_dns_supported: true,
                vpce_dns_part: "ec2".into(),
            }
        );
        assert_eq!(info.private_zone_apexes(), ["ec2.us-east-1.amazonaws.com"]);
        assert_eq!(info.vpce_zone_apex(), "ec2.us-east-1.vpce.amazonaws.com");
    }

    #[test]
    fn ecr_api_and_dkr() {
        let api = lookup("com.amazonaws.us-west-2.ecr.api").unwrap();
        assert_eq!(api.short_name, "ecr.api");
        assert_eq!(api.default_dns_names, ["api.ecr.us-west-2.amazonaws.com"]);
        assert_eq!(api.vpce_dns_part, "api.ecr");
        let dkr = lookup("com.amazonaws.us-west-2.ecr.dkr").unwrap();
        assert_eq!(dkr.default_dns_names, ["*.dkr.ecr.us-west-2.amazonaws.com"]);
        assert_eq!(dkr.private_zone_apexes(), ["dkr.ecr.us-west-2.amazonaws.com"]);
    }

    #[test]
    fn execute_api_is_a_wildcard() {
        let info = lookup("com.amazonaws.us-east-1.execute-api").unwrap();
        assert_eq!(info.default_dns_names, ["*.execute-api.us-east-1.amazonaws.com"]);
        assert_eq!(info.vpce_dns_part, "execute-api");
        assert_eq!(info.private_zone_apexes(), ["execute-api.us-east-1.amazonaws.com"]);
    }

    #[test]
    fn s3_has_no_private_dns() {
        let info = lookup("com.amazonaws.us-east-1.s3").unwrap();
        assert!(!info.private_dns_supported);
        assert_eq!(info.vpce_dns_part, "s3");
        assert_eq!(info.check_private_dns(false), Ok(()));
        let err = info.check_private_dns(true).unwrap_err();
        assert_eq!(err.code(), "InvalidParameter");
        assert_eq!(
            err.to_string(),
            "Private DNS can't be enabled because the service com.amazonaws.us-east-1.s3 \
             does not provide a private DNS name."
        );
    }

    #[test]
    fn kinesis_streams_uses_kinesis_names() {
        let info = lookup("com.amazonaws.eu-central-1.kinesis-streams").unwrap();
        assert_eq!(info.default_dns_names, ["kinesis.eu-central-1.amazonaws.com"]);
        assert_eq!(info.vpce_dns_part, "kinesis");
    }

    #[test]
    fn china_regions_use_their_suffix() {
        let info = lookup("com.amazonaws.cn-north-1.ec2").unwrap();
        assert_eq!(info.default_dns_names, ["ec2.cn-north-1.amazonaws.com.cn"]);
        assert_eq!(info.vpce_zone_apex(), "ec2.cn-north-1.vpce.amazonaws.com.cn");
    }

    #[test]
    fn unknown_service_uses_aws_wording() {
        for name in [
            "com.amazonaws.us-east-1.nosuchservice",
            "com.amazonaws.us-east-1",
            "com.amazonaws.useast1.ec2",
            "com.amazonaws.vpce.us-east-1.vpce-svc-0123456789abcdef0",
            "org.example.ec2",
            "",
        ] {
            let err = lookup(name).unwrap_err();
            assert_eq!(err.code(), "InvalidServiceName");
            assert_eq!(err.to_string(), format!("The Vpc Endpoint Service '{name}' does not exist"));
        }
    }

    #[test]
    fn regions_are_checked_by_shape() {
        for ok in ["us-east-1", "us-gov-west-1", "ap-southeast-4", "il-central-1"] {
            assert!(is_region(ok), "{ok}");
        }
        for bad in ["us-east", "useast-1", "US-EAST-1", "us--1", "u-east-1", "us-east-1a"] {
            assert!(!is_region(bad), "{bad}");
        }
    }

    // ---------------------------------------------------------------
    // Custom services
    // ---------------------------------------------------------------

    #[test]
    fn custom_vpce_svc_service() {
        let info = ServiceInfo::custom(
            "com.amazonaws.vpce.us-east-1.vpce-svc-0123456789abcdef0",
            "us-east-1",
            &["api.example.com".to_string()],
        )
        .unwrap();
        assert_eq!(info.vpce_dns_part, "vpce-svc-0123456789abcdef0");
        assert_eq!(info.default_dns_names, ["api.example.com"]);
        assert!(info.private_dns_supported);
        assert_eq!(info.vpce_zone_apex(), "vpce-svc-0123456789abcdef0.us-east-1.vpce.amazonaws.com");
    }

    #[test]
    fn custom_partner_service_without_names_refuses_private_dns() {
        let info = ServiceInfo::custom("com.example.api", "us-east-1", &[]).unwrap();
        assert_eq!(info.vpce_dns_part, "api");
        assert!(!info.private_dns_supported);
        assert_eq!(
            info.check_private_dns(true).unwrap_err().to_string(),
            "Private DNS can't be enabled because the service com.example.api \
             does not provide a private DNS name."
        );
    }

    #[test]
    fn custom_rejects_bad_input() {
        let names = ["api.example.com".to_string()];
        assert!(matches!(
            ServiceInfo::custom("com.example.api", "mars-1", &names),
            Err(CatalogError::InvalidRegion { .. })
        ));
        assert!(matches!(
            ServiceInfo::custom("com.amazonaws.us-east-1.ec3", "us-east-1", &names),
            Err(CatalogError::InvalidServiceName { .. })
        ));
        assert!(matches!(
            ServiceInfo::custom("com.example.api", "us-east-1", &["bad name".to_string()]),
            Err(CatalogError::InvalidDnsName { .. })
        ));
        assert!(matches!(
            ServiceInfo::custom("com.example.", "us-east-1", &names),
            Err(CatalogError::InvalidServiceName { .. })
        ));
    }

    // ---------------------------------------------------------------
    // Endpoint-specific names
    // ---------------------------------------------------------------

    #[test]
    fn endpoint_names_match_aws_reference() {
        let azs = ["us-east-1a".to_string(), "us-east-1b".to_string()];
        let (regional, zonal) = endpoint_dns_names("vpce-0fe5b17a0707d6abc", "29p5708s", "ec2", "us-east-1", &azs);
        assert_eq!(regional, "vpce-0fe5b17a0707d6abc-29p5708s.ec2.us-east-1.vpce.amazonaws.com");
        assert_eq!(
            zonal,
            [
                (
                    "us-east-1a".to_string(),
                    "vpce-0fe5b17a0707d6abc-29p5708s-us-east-1a.ec2.us-east-1.vpce.amazonaws.com".to_string()
                ),
                (
                    "us-east-1b".to_string(),
                    "vpce-0fe5b17a0707d6abc-29p5708s-us-east-1b.ec2.us-east-1.vpce.amazonaws.com".to_string()
                ),
            ]
        );
        // The prefix is optional on input; the output is the same.
        let (bare, _) = endpoint_dns_names("0fe5b17a0707d6abc", "29p5708s", "ec2", "us-east-1", &[]);
        assert_eq!(bare, regional);
    }

    #[test]
    fn endpoint_names_for_ecr_api() {
        let (regional, _) = endpoint_dns_names("vpce-0a1b2c3d4e5f60718", "abcd1234", "api.ecr", "us-west-2", &[]);
        assert_eq!(regional, "vpce-0a1b2c3d4e5f60718-abcd1234.api.ecr.us-west-2.vpce.amazonaws.com");
    }

    #[test]
    fn only_the_aws_s3_service_gets_s3_sub_names() {
        let s3 = lookup("com.amazonaws.eu-west-1.s3").unwrap();
        assert_eq!(
            s3.endpoint_sub_names("n"),
            ["bucket.n", "*.bucket.n", "accesspoint.n", "*.accesspoint.n", "control.n", "*.control.n"]
        );
        let custom = ServiceInfo::custom("com.example.s3", "eu-west-1", &[]).unwrap();
        assert_eq!(custom.vpce_dns_part, "s3");
        assert!(custom.endpoint_sub_names("n").is_empty());
        assert!(lookup("com.amazonaws.eu-west-1.ec2").unwrap().endpoint_sub_names("n").is_empty());
    }

    #[test]
    fn vpce_wildcard_comes_from_the_table() {
        let cases = [
            ("ec2.us-east-1.amazonaws.com", "*.ec2.us-east-1.vpce.amazonaws.com"),
            ("STS.eu-west-2.amazonaws.com.", "*.sts.eu-west-2.vpce.amazonaws.com"),
            ("api.ecr.us-west-2.amazonaws.com", "*.api.ecr.us-west-2.vpce.amazonaws.com"),
            ("*.dkr.ecr.us-west-2.amazonaws.com", "*.dkr.ecr.us-west-2.vpce.amazonaws.com"),
            ("kinesis.eu-central-1.amazonaws.com", "*.kinesis.eu-central-1.vpce.amazonaws.com"),
            ("s3.us-east-1.amazonaws.com", "*.s3.us-east-1.vpce.amazonaws.com"),
            ("*.s3.us-east-1.amazonaws.com", "*.s3.us-east-1.vpce.amazonaws.com"),
            ("ec2.cn-north-1.amazonaws.com.cn", "*.ec2.cn-north-1.vpce.amazonaws.com.cn"),
        ];
        for (name, wildcard) in cases {
            assert_eq!(vpce_wildcard(name).as_deref(), Some(wildcard), "{name}");
        }
        // It covers the names endpoint_dns_names builds: one label in front of the apex.
        let (regional, zonal) = endpoint_dns_names("0abc", "xyz12345", "ec2", "us-east-1", &["us-east-1a".into()]);
        let apex = vpce_wildcard("ec2.us-east-1.amazonaws.com").unwrap();
        let apex = apex.strip_prefix("*").unwrap();
        for n in [regional, zonal[0].1.clone()] {
            let (first, tail) = n.split_once('.').unwrap();
            assert!(!first.is_empty() && format!(".{tail}") == apex, "{n}");
        }
    }

    #[test]
    fn no_vpce_wildcard_for_unknown_or_endpoint_names() {
        for name in [
            "api.partner.example",
            "iam.amazonaws.com",
            "nosuchservice.us-east-1.amazonaws.com",
            "ec2.us-east-1.vpce.amazonaws.com",
            "vpce-0abc-xyz.ec2.us-east-1.vpce.amazonaws.com",
            "ec2.useast1.amazonaws.com",
            "",
            "amazonaws.com",
        ] {
            assert_eq!(vpce_wildcard(name), None, "{name}");
        }
    }

    #[test]
    fn random_suffix_is_8_lowercase_alnum() {
        let s = random_suffix([0, 35, 36, 255, 10, 100, 200, 7]);
        assert_eq!(s, "0z03ask7");
        for seed in 0u8..=255 {
            let s = random_suffix([seed; 8]);
            assert_eq!(s.len(), 8);
            assert!(s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()));
        }
    }
}
