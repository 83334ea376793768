//! What the private zones hold, as plain data: apexes and A records, built
//! from endpoints by [`ZoneSpec::add_endpoint`] and compiled by
//! [`super::Zone::build`].
//!
//! Every endpoint puts its endpoint-specific names (regional: every ENI IP;
//! zonal: that AZ's IP) under the service's `vpce` apex, always answered, and
//! the names a client may use under them ([`ServiceInfo::endpoint_sub_names`]:
//! S3's `bucket.`, `accesspoint.` and `control.` forms, the same list the SNI
//! policy accepts). The service's default names go in with their own apexes,
//! flagged with the endpoint's private DNS setting, so with private DNS off
//! they fall outside every zone and are forwarded, as at AWS, while the
//! endpoint-specific names keep answering.

use std::net::Ipv4Addr;

use crate::catalog::{endpoint_dns_names, ServiceInfo};

/// What the private zones hold: apexes and A records, plain data from `model`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ZoneSpec {
    /// The private hosted zones' apexes; a name under one is answered here, never forwarded.
    pub apexes: Vec<ZoneApex>,
    /// The A records; each must lie at or under an apex.
    pub entries: Vec<ZoneEntry>,
}

/// The apex of one private hosted zone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZoneApex {
    /// E.g. `ec2.us-east-1.amazonaws.com` or `ec2.us-east-1.vpce.amazonaws.com`.
    pub name: String,
    /// `false` leaves the zone out: the endpoint's private DNS setting for a default-name zone, `true` otherwise.
    pub private_dns: bool,
}

/// One name and its addresses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZoneEntry {
    /// The owner name; a leading `*.` makes it a wildcard (RFC 4592).
    pub name: String,
    /// The ENI addresses, in answer order.
    pub ips: Vec<Ipv4Addr>,
    /// `false` leaves the entry out: the endpoint's private DNS setting for a default name, `true` for endpoint-specific names.
    pub private_dns: bool,
}

/// One endpoint's DNS facts, for [`ZoneSpec::add_endpoint`].
#[derive(Clone, Copy, Debug)]
pub struct EndpointDns<'a> {
    /// The service, from [`crate::catalog::lookup`] or [`ServiceInfo::custom`].
    pub service: &'a ServiceInfo,
    /// E.g. `vpce-0fe5b17a0707d6abc`.
    pub endpoint_id: &'a str,
    /// The endpoint's 8-character random suffix, e.g. `29p5708s`.
    pub suffix: &'a str,
    /// One `(availability zone, ENI IP)` per subnet.
    pub enis: &'a [(String, Ipv4Addr)],
    /// The endpoint's `PrivateDnsEnabled` (ignored when the service has no private DNS).
    pub private_dns: bool,
}

impl ZoneSpec {
    /// Adds an endpoint's names: regional (all IPs), zonal (that AZ's IP), default names when private DNS is on.
    ///
    /// Under each endpoint-specific name `N` go the service's sub-names too
    /// ([`ServiceInfo::endpoint_sub_names`]): for S3, `bucket.N`,
    /// `accesspoint.N`, `control.N` and a wildcard under each (`*.bucket.N`
    /// answers `my-bucket.bucket.N`).
    pub fn add_endpoint(&mut self, ep: &EndpointDns<'_>) {
        let service = ep.service;
        let mut azs: Vec<String> = Vec::new();
        for (az, _) in ep.enis {
            if !azs.contains(az) {
                azs.push(az.clone());
            }
        }
        let all_ips: Vec<Ipv4Addr> = ep.enis.iter().map(|(_, ip)| *ip).collect();
        let (regional, zonal) =
            endpoint_dns_names(ep.endpoint_id, ep.suffix, &service.vpce_dns_part, &service.region, &azs);

        self.add_apex(service.vpce_zone_apex(), true);
        let mut specific = vec![(regional, all_ips.clone())];
        for (az, name) in zonal {
            let ips = ep.enis.iter().filter(|(a, _)| *a == az).map(|(_, ip)| *ip).collect();
            specific.push((name, ips));
        }
        for (name, ips) in specific {
            for sub_name in service.endpoint_sub_names(&name) {
                self.add_entry(sub_name, ips.clone(), true);
            }
            self.add_entry(name, ips, true);
        }

        let private_dns = ep.private_dns && service.private_dns_supported;
        for apex in service.private_zone_apexes() {
            self.add_apex(apex, private_dns);
        }
        for name in &service.default_dns_names {
            self.add_entry(name.clone(), all_ips.clone(), private_dns);
        }
    }

    /// Adds an apex unless the same one is already present.
    fn add_apex(&mut self, name: String, private_dns: bool) {
        if let Some(existing) = self.apexes.iter_mut().find(|a| a.name == name) {
            existing.private_dns |= private_dns;
        } else {
            self.apexes.push(ZoneApex { name, private_dns });
        }
    }

    fn add_entry(&mut self, name: String, ips: Vec<Ipv4Addr>, private_dns: bool) {
        self.entries.push(ZoneEntry { name, ips, private_dns });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::lookup;
    use crate::dns::testkit::*;
    use crate::dns::*;

    // ---------------------------------------------------------------
    // Wildcards and S3 sub-names
    // ---------------------------------------------------------------

    #[test]
    fn s3_bucket_accesspoint_control_names_answer() {
        let r = lab();
        let zonal = "vpce-0a1b2c3d4e5f60718-s3s3s3s3-us-east-1c.s3.us-east-1.vpce.amazonaws.com";
        for (name, ips) in [
            (S3_REGIONAL.to_string(), &IPS[..]),
            (format!("bucket.{S3_REGIONAL}"), &IPS[..]),
            (format!("my-bucket.bucket.{S3_REGIONAL}"), &IPS[..]),
            (format!("accesspoint.{S3_REGIONAL}"), &IPS[..]),
            (format!("ap-123456789012.accesspoint.{S3_REGIONAL}"), &IPS[..]),
            (format!("control.{S3_REGIONAL}"), &IPS[..]),
            (format!("x.control.{S3_REGIONAL}"), &IPS[..]),
            (format!("my-bucket.bucket.{zonal}"), &IPS[2..]),
        ] {
            assert_eq!(a_records(&ask_udp(&r, &name, RecordType::A)), ips, "{name}");
        }
        let msg = ask_udp(&r, &format!("website.{S3_REGIONAL}"), RecordType::A);
        assert_eq!(msg.metadata.response_code, ResponseCode::NXDomain);
    }

    /// The demo's endpoint in two AZs made an S3 one, planned as the daemon plans it.
    fn s3_plan() -> crate::model::Plan {
        let text = crate::config::DEMO_CONFIG
            .replace("com.amazonaws.us-east-1.ec2", "com.amazonaws.us-east-1.s3")
            .replace("private_dns = true", "private_dns = false");
        let config = crate::config::Config::from_toml("demo.toml", &text).unwrap();
        crate::model::Plan::make(&config, &mut crate::model::State::default(), || [7; 9]).unwrap()
    }

    #[test]
    fn every_s3_name_the_zone_answers_passes_the_sni_policy() {
        let plan = s3_plan();
        let endpoint = &plan.endpoints[0];
        let sni = endpoint.sni_policy().unwrap();
        let zone = Arc::new(plan.zone().unwrap());
        let r = Responder::new(zone.clone(), ForwardMode::Refuse);
        // S3 has no private DNS: the endpoint-specific names are all there is.
        let specific = endpoint.dns_names();
        assert_eq!(specific.len(), 3, "{specific:?}");

        // Everything the zone holds, a wildcard filled with one label, as an SDK fills it.
        let answered: Vec<String> = zone.owner_names().iter().map(|n| n.replacen('*', "x", 1)).collect();
        for name in &answered {
            assert!(specific.iter().any(|s| name.ends_with(s.as_str())), "{name} is not under the endpoint's names");
            assert!(!a_records(&ask_udp(&r, name, RecordType::A)).is_empty(), "{name} is not answered");
            assert!(sni.allows_name(name), "the zone answers {name} but the SNI policy resets it");
        }
        // The documented forms are among them, under the regional and every zonal name.
        for n in &specific {
            for form in ["", "bucket.", "x.bucket.", "accesspoint.", "x.accesspoint.", "control.", "x.control."] {
                assert!(answered.contains(&format!("{form}{n}")), "{form}{n} missing");
            }
        }
        assert_eq!(answered.len(), specific.len() * 7);
        // And the names an SDK really sends pass both.
        let regional = &specific[0];
        for name in [
            format!("my-bucket.bucket.{regional}"),
            format!("my-ap-123456789012.accesspoint.{regional}"),
            format!("123456789012.control.{regional}"),
        ] {
            assert!(!a_records(&ask_udp(&r, &name, RecordType::A)).is_empty(), "{name}");
            assert!(sni.allows_name(&name), "{name}");
        }
    }

    #[test]
    fn s3_default_name_is_never_private() {
        let r = lab();
        let mut out = Vec::new();
        let q = query("s3.us-east-1.amazonaws.com", RecordType::A);
        assert_eq!(r.handle_query(&q, Transport::Udp, &mut out), Outcome::Forward);
        let q = query("my-bucket.s3.us-east-1.amazonaws.com", RecordType::A);
        assert_eq!(r.handle_query(&q, Transport::Udp, &mut out), Outcome::Forward);
    }

    #[test]
    fn two_endpoints_share_the_vpce_apex() {
        let service = lookup("com.amazonaws.us-east-1.ec2").unwrap();
        let enis = enis();
        let mut s = ZoneSpec::default();
        for (id, private_dns) in [("vpce-01", true), ("vpce-02", false)] {
            s.add_endpoint(&EndpointDns {
                service: &service,
                endpoint_id: id,
                suffix: "abcdefgh",
                enis: &enis,
                private_dns,
            });
        }
        let apexes: Vec<_> = s.apexes.iter().map(|a| (a.name.as_str(), a.private_dns)).collect();
        assert_eq!(apexes, [("ec2.us-east-1.vpce.amazonaws.com", true), ("ec2.us-east-1.amazonaws.com", true)]);
        let r = responder(&s, ForwardMode::Forward);
        for id in ["01", "02"] {
            let name = format!("vpce-{id}-abcdefgh.ec2.us-east-1.vpce.amazonaws.com");
            assert_eq!(a_records(&ask_udp(&r, &name, RecordType::A)), IPS);
        }
    }

    #[test]
    fn add_endpoint_builds_the_documented_names() {
        let s = lab_spec();
        let names: Vec<&str> =
            s.entries.iter().filter(|e| e.private_dns && e.name.contains("ec2")).map(|e| e.name.as_str()).collect();
        assert_eq!(
            names,
            [
                EC2_REGIONAL,
                "vpce-0fe5b17a0707d6abc-29p5708s-us-east-1a.ec2.us-east-1.vpce.amazonaws.com",
                EC2_ZONAL_B,
                "vpce-0fe5b17a0707d6abc-29p5708s-us-east-1c.ec2.us-east-1.vpce.amazonaws.com",
                "ec2.us-east-1.amazonaws.com",
            ]
        );
        // ssm's default name is there, switched off.
        assert!(s.entries.iter().any(|e| e.name == "ssm.us-east-1.amazonaws.com" && !e.private_dns));
    }
}
