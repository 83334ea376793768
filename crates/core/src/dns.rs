//! The private-DNS responder: the Amazon-provided resolver's view of an
//! endpoint's private hosted zones (sans-IO).
//!
//! Heads up: read RFC 1035 (sections 4.1 and 7: message format, FORMERR,
//! NOTIMP, REFUSED), RFC 2308 (negative answers: NXDOMAIN vs NODATA, the SOA
//! in the authority section), RFC 4592 (wildcards: the closest encloser),
//! RFC 8020 (an empty non-terminal is NODATA, not NXDOMAIN), RFC 6891 (EDNS:
//! UDP payload size, BADVERS) and RFC 7766 (TCP) before changing this file.
//!
//! # Theory of operation
//! `control` turns endpoints into a [`ZoneSpec`] (plain data, see
//! [`ZoneSpec::add_endpoint`]); [`Zone::build`] compiles it once into a hash
//! map of lowercased wire-format names; the caller swaps the whole [`Zone`]
//! behind an `Arc` when endpoints change. [`Responder::handle_query`] takes
//! one DNS message (UDP payload, or a TCP message *without* its 2-byte length
//! prefix: framing is the caller's job in both directions) and returns an
//! [`Outcome`]:
//! - `Respond`: `out` holds the response;
//! - `Forward`: the name is outside every private zone; the caller sends the
//!   original query to an upstream resolver (privacy mode answers REFUSED
//!   instead, `[dns] forward = []`);
//! - `Drop`: stay silent (not a query, or too broken to trust).
//!
//! [`ForwardCache`] optionally keeps upstream answers for forwarded names
//! (the caller passes `now`).
//!
//! The rules, as the Amazon resolver applies them to a private hosted zone
//! ("a private hosted zone shadows the public zone of the same name"):
//! - a name with records, type A or ANY: the A records, TTL [`ANSWER_TTL`],
//!   AA set, RD copied, RA set;
//! - a name that exists, any other type (AAAA above all: the endpoint is
//!   IPv4-only): NOERROR, no answer, the zone's SOA in the authority section
//!   (NODATA, RFC 2308 section 2.2). Never NXDOMAIN for an existing name, and
//!   never forwarded, so no public AAAA leaks (podman #29772). SOA at an apex
//!   answers the SOA; AXFR/IXFR are REFUSED;
//! - a name under a zone apex with no record and no wildcard: NXDOMAIN with
//!   the SOA, even if the public zone has the name;
//! - any other name: `Forward`, or REFUSED in privacy mode. Classes other
//!   than IN (and ANY) are REFUSED: CHAOS `version.bind` is not forwarded.
//!
//! # Limits and their consequences
//! - Queries longer than [`MAX_QUERY_LEN`] are dropped, and over UDP without
//!   EDNS longer than 512 bytes (RFC 1035 section 2.3.4).
//! - UDP responses never exceed 512 bytes, or the client's EDNS size capped
//!   at [`MAX_UDP_RESPONSE`]. A larger answer is sent with TC set and no
//!   records at all (no partial RRset), so the client retries over TCP, where
//!   the whole answer is returned.
//! - Amplification: every response is the query's header and question plus
//!   at most the A records of one name (16 bytes per IP), or one SOA, plus an
//!   11-byte OPT. Error responses (FORMERR, NOTIMP) are a 12-byte header.
//!   For an endpoint (one IP per AZ, at most 6 AZs) that is under 4x the
//!   query; the fuzz test asserts the bound. [`MAX_IPS_PER_NAME`] caps
//!   hand-built zones.
//! - A compression pointer in the question of a query can only point at the
//!   header or forwards (nothing precedes the first name), so it is hostile
//!   or garbage: dropped, never followed. Names in other sections are only
//!   skipped, never followed, so pointer loops cost nothing.
//! - No per-query allocation: the query is parsed in place, names are
//!   lowercased into a stack buffer, the response is written into the
//!   caller's `out`.
//!
//! ## Not emulated
//! - DNSSEC (no signatures; the DO bit is echoed, AD is never set), TSIG and
//!   SIG(0) (ignored, answers unsigned), DNS cookies and other EDNS options
//!   (ignored, RFC 6891 section 6.1.2 allows it).
//! - AAAA and dual-stack endpoints (`DnsRecordIpType` is always `ipv4`).
//! - The NS records of the private zone, zone transfers, NOTIFY and UPDATE
//!   (NOTIMP).
//! - Route 53 Resolver rules, inbound/outbound resolver endpoints, DNS64,
//!   query logging; the real resolver's own recursion (that is `Forward`).
//! - The SOA's TTL is [`NEGATIVE_TTL`] (Route 53 uses 900 s) so a name that
//!   appears when private DNS is turned on is seen within a minute.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use thiserror::Error;

use crate::catalog::{endpoint_dns_names, ServiceInfo};

/// TTL of the A records, as AWS's endpoint records (alias, 60 s is typical).
pub const ANSWER_TTL: u32 = 60;

/// TTL of the SOA, which bounds negative caching (RFC 2308 section 5).
pub const NEGATIVE_TTL: u32 = 60;

/// Longest query accepted on either transport. A single-question query is at
/// most 12 + 255 + 4 bytes plus an OPT; even padded (RFC 8467: 128-byte
/// blocks) it stays far below this, so anything longer is not a query.
pub const MAX_QUERY_LEN: usize = 1232;

/// Largest UDP response, whatever the client's EDNS size: 1232 bytes fits an
/// IPv6 minimum MTU without fragmentation (DNS flag day 2020).
pub const MAX_UDP_RESPONSE: usize = 1232;

/// UDP response limit without EDNS (RFC 1035 section 2.3.4).
pub const PLAIN_UDP_LIMIT: usize = 512;

/// Most addresses one name may carry; keeps a TCP answer under 64 KiB with room to spare.
pub const MAX_IPS_PER_NAME: usize = 1000;

/// The S3 endpoint-specific sub-names AWS documents (`bucket.vpce-…` and so on).
pub const S3_ENDPOINT_PREFIXES: [&str; 3] = ["bucket", "accesspoint", "control"];

/// SOA MNAME and RNAME of Route 53 private hosted zones.
const SOA_MNAME: &str = "ns-0.awsdns-00.com";
const SOA_RNAME: &str = "awsdns-hostmaster.amazon.com";
/// SOA refresh, retry, expire and minimum of a Route 53 zone.
const SOA_TIMERS: [u32; 4] = [7200, 900, 1_209_600, 86_400];

const HEADER_LEN: usize = 12;
const MAX_NAME_LEN: usize = 255;
/// An A record whose owner is a compression pointer to the question: 2+2+2+4+2+4.
const A_RECORD_LEN: usize = 16;
/// An OPT record with no options: root, type, class, TTL, RDLENGTH.
const OPT_RECORD_LEN: usize = 11;

const TYPE_A: u16 = 1;
const TYPE_SOA: u16 = 6;
const TYPE_OPT: u16 = 41;
const TYPE_IXFR: u16 = 251;
const TYPE_AXFR: u16 = 252;
const TYPE_ANY: u16 = 255;
const CLASS_IN: u16 = 1;
const CLASS_ANY: u16 = 255;

const RCODE_NOERROR: u8 = 0;
const RCODE_FORMERR: u8 = 1;
const RCODE_NXDOMAIN: u8 = 3;
const RCODE_NOTIMP: u8 = 4;
const RCODE_REFUSED: u8 = 5;
/// BADVERS is 16: its upper 8 bits go in the OPT TTL, its low 4 bits (0) in the header.
const EXT_RCODE_BADVERS: u8 = 1;

const FLAG_QR: u16 = 0x8000;
const MASK_OPCODE: u16 = 0x7800;
const FLAG_AA: u16 = 0x0400;
const FLAG_TC: u16 = 0x0200;
const FLAG_RD: u16 = 0x0100;
const FLAG_RA: u16 = 0x0080;
const FLAG_CD: u16 = 0x0010;
const EDNS_DO: u32 = 0x8000;

// ---------------------------------------------------------------------------
// Zone specification (plain data) and compiled zone
// ---------------------------------------------------------------------------

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
    /// For S3 (`vpce_dns_part == "s3"`) each endpoint-specific name `N` also
    /// gets `bucket.N`, `accesspoint.N`, `control.N` and a wildcard under each
    /// (`*.bucket.N` answers `my-bucket.bucket.N`). The default names go in
    /// with their own apexes, flagged with the endpoint's private DNS setting,
    /// so with private DNS off they fall outside every zone and are forwarded,
    /// as at AWS, while the endpoint-specific names keep answering.
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
            if service.vpce_dns_part == "s3" {
                for prefix in S3_ENDPOINT_PREFIXES {
                    self.add_entry(format!("{prefix}.{name}"), ips.clone(), true);
                    self.add_entry(format!("*.{prefix}.{name}"), ips.clone(), true);
                }
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

/// Why a [`ZoneSpec`] could not be compiled.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum DnsError {
    /// A name that is not a valid DNS name.
    #[error("invalid DNS name '{name}': {reason}")]
    InvalidName {
        /// The name as given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A record that lies under no apex: nothing would ever answer it.
    #[error("'{name}' is not under any private zone apex")]
    OutsideZone {
        /// The record's name.
        name: String,
    },
    /// Two records for one name (two private-DNS endpoints for one service: AWS refuses that too).
    #[error("'{name}' is defined twice")]
    DuplicateName {
        /// The record's name.
        name: String,
    },
    /// A record without addresses.
    #[error("'{name}' has no addresses")]
    NoAddresses {
        /// The record's name.
        name: String,
    },
    /// A record with more than [`MAX_IPS_PER_NAME`] addresses.
    #[error("'{name}' has {count} addresses, more than {MAX_IPS_PER_NAME}")]
    TooManyAddresses {
        /// The record's name.
        name: String,
        /// How many it has.
        count: usize,
    },
}

/// FNV-1a: names in the map come from the configuration, not from queries,
/// so a keyed (SipHash) hasher buys nothing and costs a third of a lookup.
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut h = self.0;
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = h;
    }
}

type FnvMap<K, V> = HashMap<K, V, BuildHasherDefault<Fnv>>;

/// A range in [`Zone::ips`].
#[derive(Clone, Copy, Debug)]
struct IpRange {
    start: u32,
    len: u32,
}

/// A name that exists in a zone: an apex, a record owner, or an empty non-terminal.
#[derive(Clone, Copy, Debug)]
struct Node {
    /// Index of the nearest enclosing apex (itself for an apex).
    apex: u32,
    is_apex: bool,
    /// The A records of this name.
    records: Option<IpRange>,
    /// The A records of `*.<this name>`.
    wildcard: Option<IpRange>,
}

/// A compiled apex: its wire length (to point at it inside the question) and its SOA.
#[derive(Clone, Debug)]
struct Apex {
    wire_len: usize,
    /// The SOA record after its owner name: type, class, TTL, RDLENGTH, RDATA.
    soa_tail: Vec<u8>,
}

/// The compiled private zones: immutable, swapped whole behind an `Arc`.
#[derive(Clone, Debug, Default)]
pub struct Zone {
    /// Lowercased wire-format names (with the terminating root label).
    nodes: FnvMap<Box<[u8]>, Node>,
    apexes: Vec<Apex>,
    ips: Vec<[u8; 4]>,
}

impl Zone {
    /// Compiles a spec, leaving out apexes and entries whose `private_dns` is false.
    pub fn build(spec: &ZoneSpec) -> Result<Zone, DnsError> {
        let mut zone = Zone::default();
        for apex in spec.apexes.iter().filter(|a| a.private_dns) {
            let wire = name_to_wire(&apex.name)?;
            if wire.starts_with(b"\x01*") {
                return Err(invalid(&apex.name, "an apex cannot be a wildcard"));
            }
            if wire.len() == 1 {
                return Err(invalid(&apex.name, "the root cannot be an apex"));
            }
            if zone.nodes.get(wire.as_slice()).is_some_and(|n| n.is_apex) {
                continue;
            }
            let index = zone.apexes.len() as u32;
            zone.apexes.push(Apex { wire_len: wire.len(), soa_tail: soa_tail() });
            zone.nodes
                .insert(wire.into_boxed_slice(), Node { apex: index, is_apex: true, records: None, wildcard: None });
        }

        for entry in spec.entries.iter().filter(|e| e.private_dns) {
            let wire = name_to_wire(&entry.name)?;
            let (owner, is_wildcard) = match wire.strip_prefix(b"\x01*") {
                Some(rest) => (rest, true),
                None => (wire.as_slice(), false),
            };
            if entry.ips.is_empty() {
                return Err(DnsError::NoAddresses { name: entry.name.clone() });
            }
            if entry.ips.len() > MAX_IPS_PER_NAME {
                return Err(DnsError::TooManyAddresses { name: entry.name.clone(), count: entry.ips.len() });
            }
            let apex = zone.nearest_apex(owner).ok_or_else(|| DnsError::OutsideZone { name: entry.name.clone() })?;
            let range = IpRange { start: zone.ips.len() as u32, len: entry.ips.len() as u32 };
            zone.ips.extend(entry.ips.iter().map(|ip| ip.octets()));

            // The owner and every name between it and its apex exist (empty
            // non-terminals answer NODATA, RFC 8020), and their apex is `apex`.
            let mut off = 0;
            while off < owner.len() - 1 {
                let node = zone.nodes.entry(owner[off..].into()).or_insert(Node {
                    apex,
                    is_apex: false,
                    records: None,
                    wildcard: None,
                });
                if off == 0 {
                    let slot = if is_wildcard { &mut node.wildcard } else { &mut node.records };
                    if slot.is_some() {
                        return Err(DnsError::DuplicateName { name: entry.name.clone() });
                    }
                    *slot = Some(range);
                }
                if node.is_apex {
                    break;
                }
                off += 1 + usize::from(owner[off]);
            }
        }
        Ok(zone)
    }

    /// The nearest apex at or above a wire name, by its index.
    fn nearest_apex(&self, wire: &[u8]) -> Option<u32> {
        let mut off = 0;
        while off < wire.len() - 1 {
            if let Some(node) = self.nodes.get(&wire[off..]) {
                if node.is_apex {
                    return Some(node.apex);
                }
            }
            off += 1 + usize::from(wire[off]);
        }
        None
    }

    /// Whether the zone has no apex at all (every name is forwarded).
    pub fn is_empty(&self) -> bool {
        self.apexes.is_empty()
    }

    /// Finds a lowercased wire name: the RFC 4592 closest-encloser walk.
    fn lookup(&self, name: &[u8]) -> Lookup {
        let mut off = 0;
        // The root (a lone zero byte) is never in a private zone.
        while off < name.len() - 1 {
            if let Some(node) = self.nodes.get(&name[off..]) {
                let apex = node.apex as usize;
                let apex_offset = name.len() - self.apexes[apex].wire_len;
                return if off == 0 {
                    Lookup::Exists { records: node.records, is_apex: node.is_apex, apex, apex_offset }
                } else if let Some(records) = node.wildcard {
                    Lookup::Exists { records: Some(records), is_apex: false, apex, apex_offset }
                } else {
                    Lookup::NxDomain { apex, apex_offset }
                };
            }
            off += 1 + usize::from(name[off]);
        }
        Lookup::Outside
    }

    fn ips(&self, range: IpRange) -> &[[u8; 4]] {
        &self.ips[range.start as usize..(range.start + range.len) as usize]
    }
}

/// Where a name stands in the zone. `apex_offset` is where the apex's name
/// starts inside the queried name, for a compression pointer.
#[derive(Clone, Copy, Debug)]
enum Lookup {
    Exists { records: Option<IpRange>, is_apex: bool, apex: usize, apex_offset: usize },
    NxDomain { apex: usize, apex_offset: usize },
    Outside,
}

fn invalid(name: &str, reason: &'static str) -> DnsError {
    DnsError::InvalidName { name: name.to_string(), reason }
}

/// Converts a configured name to lowercase wire format; `*` only as a whole first label.
fn name_to_wire(name: &str) -> Result<Vec<u8>, DnsError> {
    let trimmed = name.strip_suffix('.').unwrap_or(name);
    if trimmed.is_empty() {
        return Err(invalid(name, "empty name"));
    }
    let mut wire = Vec::with_capacity(trimmed.len() + 2);
    for (i, label) in trimmed.split('.').enumerate() {
        if label.is_empty() {
            return Err(invalid(name, "empty label"));
        }
        if label.len() > 63 {
            return Err(invalid(name, "label longer than 63 bytes"));
        }
        let ok = label == "*" && i == 0 || label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !ok {
            return Err(invalid(name, "labels are letters, digits, '-' and '_'; '*' only as the first label"));
        }
        wire.push(label.len() as u8);
        wire.extend(label.bytes().map(|b| b.to_ascii_lowercase()));
    }
    wire.push(0);
    if wire.len() > MAX_NAME_LEN {
        return Err(invalid(name, "longer than 255 bytes"));
    }
    Ok(wire)
}

/// The SOA record of a Route 53 private zone, after the owner name.
fn soa_tail() -> Vec<u8> {
    let mut rdata = Vec::new();
    for name in [SOA_MNAME, SOA_RNAME] {
        // These are constants known to be valid.
        rdata.extend(name_to_wire(name).unwrap_or_default());
    }
    rdata.extend(1u32.to_be_bytes()); // serial
    for timer in SOA_TIMERS {
        rdata.extend(timer.to_be_bytes());
    }
    let mut tail = Vec::with_capacity(10 + rdata.len());
    tail.extend(TYPE_SOA.to_be_bytes());
    tail.extend(CLASS_IN.to_be_bytes());
    tail.extend(NEGATIVE_TTL.to_be_bytes());
    tail.extend((rdata.len() as u16).to_be_bytes());
    tail.extend(rdata);
    tail
}

// ---------------------------------------------------------------------------
// Responder
// ---------------------------------------------------------------------------

/// The transport a query arrived on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// UDP: responses are size-limited and may be truncated (TC).
    Udp,
    /// TCP: the caller strips and adds the 2-byte length prefix; no truncation.
    Tcp,
}

/// What to do with names outside every private zone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ForwardMode {
    /// Return [`Outcome::Forward`]: the caller asks an upstream resolver.
    Forward,
    /// Privacy mode (`forward = []`): answer REFUSED.
    Refuse,
}

/// What the caller must do after [`Responder::handle_query`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Send `out` back to the client.
    Respond,
    /// Send the original query to an upstream resolver; `out` is empty.
    Forward,
    /// Send nothing; `out` is empty.
    Drop(DropReason),
}

/// Why a message got no answer at all.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// Shorter than a DNS header.
    TooShort,
    /// The QR bit is set: a response, never answered (no reflection loops).
    NotQuery,
    /// Longer than [`MAX_QUERY_LEN`], or than 512 bytes over UDP without EDNS.
    Oversized,
    /// A compression pointer in the question name (see the module doc).
    Malformed,
}

/// Counters by outcome, read with [`Responder::counters`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DnsCounters {
    /// Messages handled, whatever the outcome.
    pub queries: u64,
    /// NOERROR with A records (or the apex SOA).
    pub answered: u64,
    /// NOERROR without records (NODATA), e.g. AAAA for an endpoint name.
    pub nodata: u64,
    /// NXDOMAIN under a private zone apex.
    pub nxdomain: u64,
    /// REFUSED: privacy mode, non-IN class, zone transfer.
    pub refused: u64,
    /// FORMERR.
    pub formerr: u64,
    /// NOTIMP (an opcode other than QUERY).
    pub notimp: u64,
    /// BADVERS (EDNS version other than 0).
    pub badvers: u64,
    /// UDP responses sent with TC set (also counted under their rcode).
    pub truncated: u64,
    /// Handed to the caller for an upstream resolver.
    pub forwarded: u64,
    /// Dropped: shorter than a header.
    pub dropped_too_short: u64,
    /// Dropped: QR set.
    pub dropped_not_query: u64,
    /// Dropped: too long.
    pub dropped_oversized: u64,
    /// Dropped: compression pointer in the question.
    pub dropped_malformed: u64,
}

counters_add!(DnsCounters {
    queries,
    answered,
    nodata,
    nxdomain,
    refused,
    formerr,
    notimp,
    badvers,
    truncated,
    forwarded,
    dropped_too_short,
    dropped_not_query,
    dropped_oversized,
    dropped_malformed,
});

/// Indexes into [`Responder`]'s counter array, in [`DnsCounters`] order.
#[derive(Clone, Copy)]
enum Counter {
    Queries,
    Answered,
    NoData,
    NxDomain,
    Refused,
    FormErr,
    NotImp,
    BadVers,
    Truncated,
    Forwarded,
    DroppedTooShort,
    DroppedNotQuery,
    DroppedOversized,
    DroppedMalformed,
}
const COUNTERS: usize = Counter::DroppedMalformed as usize + 1;

/// Answers queries from a [`Zone`]; cheap to share (`&self`, relaxed atomic counters).
#[derive(Debug)]
pub struct Responder {
    zone: Arc<Zone>,
    forward: ForwardMode,
    counters: [AtomicU64; COUNTERS],
}

/// The parts of a query the answer needs, all by offset into the query.
#[derive(Clone, Copy, Debug)]
struct Query {
    id: u16,
    flags: u16,
    /// Offset just past the question's terminating root label.
    name_end: usize,
    /// Offset just past QCLASS.
    question_end: usize,
    qtype: u16,
    qclass: u16,
    edns: Option<Edns>,
}

#[derive(Clone, Copy, Debug)]
struct Edns {
    udp_size: u16,
    version: u8,
    dnssec_ok: bool,
}

/// Why a query could not be parsed past its header.
enum ParseError {
    Drop(DropReason),
    FormErr,
}

/// The answer to emit, before size limits are applied.
struct Answer<'z> {
    rcode: u8,
    ext_rcode: u8,
    authoritative: bool,
    recursion_available: bool,
    ips: &'z [[u8; 4]],
    /// `(where the apex starts in the question name, its SOA tail)`.
    soa: Option<(usize, &'z [u8])>,
    soa_in_answer: bool,
    counter: Counter,
}

impl Responder {
    /// A responder over `zone`; swap zones with [`Responder::set_zone`].
    pub fn new(zone: Arc<Zone>, forward: ForwardMode) -> Responder {
        Responder { zone, forward, counters: Default::default() }
    }

    /// Replaces the zone (endpoints changed); counters are kept.
    pub fn set_zone(&mut self, zone: Arc<Zone>) {
        self.zone = zone;
    }

    /// The current zone.
    pub fn zone(&self) -> &Arc<Zone> {
        &self.zone
    }

    /// The forwarding mode.
    pub fn forward_mode(&self) -> ForwardMode {
        self.forward
    }

    /// A snapshot of the counters.
    pub fn counters(&self) -> DnsCounters {
        let c = |i: Counter| self.counters[i as usize].load(Ordering::Relaxed);
        DnsCounters {
            queries: c(Counter::Queries),
            answered: c(Counter::Answered),
            nodata: c(Counter::NoData),
            nxdomain: c(Counter::NxDomain),
            refused: c(Counter::Refused),
            formerr: c(Counter::FormErr),
            notimp: c(Counter::NotImp),
            badvers: c(Counter::BadVers),
            truncated: c(Counter::Truncated),
            forwarded: c(Counter::Forwarded),
            dropped_too_short: c(Counter::DroppedTooShort),
            dropped_not_query: c(Counter::DroppedNotQuery),
            dropped_oversized: c(Counter::DroppedOversized),
            dropped_malformed: c(Counter::DroppedMalformed),
        }
    }

    fn bump(&self, counter: Counter) {
        self.counters[counter as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Handles one DNS message (without TCP's length prefix); the response, if any, goes in `out`.
    ///
    /// `out` is cleared first and reused: keep one per worker so the hot
    /// path does not allocate. Never panics, whatever `query` holds.
    pub fn handle_query(&self, query: &[u8], transport: Transport, out: &mut Vec<u8>) -> Outcome {
        out.clear();
        self.bump(Counter::Queries);
        let outcome = self.respond(query, transport, out);
        if let Outcome::Drop(reason) = outcome {
            self.bump(match reason {
                DropReason::TooShort => Counter::DroppedTooShort,
                DropReason::NotQuery => Counter::DroppedNotQuery,
                DropReason::Oversized => Counter::DroppedOversized,
                DropReason::Malformed => Counter::DroppedMalformed,
            });
        } else if outcome == Outcome::Forward {
            self.bump(Counter::Forwarded);
        }
        outcome
    }

    fn respond(&self, msg: &[u8], transport: Transport, out: &mut Vec<u8>) -> Outcome {
        if msg.len() < HEADER_LEN {
            return Outcome::Drop(DropReason::TooShort);
        }
        let id = u16::from_be_bytes([msg[0], msg[1]]);
        let flags = u16::from_be_bytes([msg[2], msg[3]]);
        if flags & FLAG_QR != 0 {
            return Outcome::Drop(DropReason::NotQuery);
        }
        if msg.len() > MAX_QUERY_LEN {
            return Outcome::Drop(DropReason::Oversized);
        }
        if flags & MASK_OPCODE != 0 {
            self.bump(Counter::NotImp);
            emit_error(out, id, flags, RCODE_NOTIMP);
            return Outcome::Respond;
        }
        let query = match parse_query(msg, id, flags) {
            Ok(q) => q,
            Err(ParseError::Drop(reason)) => return Outcome::Drop(reason),
            Err(ParseError::FormErr) => {
                self.bump(Counter::FormErr);
                emit_error(out, id, flags, RCODE_FORMERR);
                return Outcome::Respond;
            }
        };
        if transport == Transport::Udp && query.edns.is_none() && msg.len() > PLAIN_UDP_LIMIT {
            return Outcome::Drop(DropReason::Oversized);
        }

        let answer = match self.decide(msg, &query) {
            Some(answer) => answer,
            None => return Outcome::Forward,
        };
        self.bump(answer.counter);
        let limit = match (transport, query.edns) {
            (Transport::Tcp, _) => usize::from(u16::MAX),
            (Transport::Udp, None) => PLAIN_UDP_LIMIT,
            (Transport::Udp, Some(e)) => usize::from(e.udp_size).clamp(PLAIN_UDP_LIMIT, MAX_UDP_RESPONSE),
        };
        if emit_answer(out, msg, &query, &answer, limit) {
            self.bump(Counter::Truncated);
        }
        Outcome::Respond
    }

    /// Applies the zone rules; `None` means forward.
    fn decide<'z>(&'z self, msg: &[u8], query: &Query) -> Option<Answer<'z>> {
        let mut answer = Answer {
            rcode: RCODE_NOERROR,
            ext_rcode: 0,
            authoritative: false,
            recursion_available: true,
            ips: &[],
            soa: None,
            soa_in_answer: false,
            counter: Counter::Answered,
        };
        let refused = |mut a: Answer<'z>| {
            a.rcode = RCODE_REFUSED;
            a.counter = Counter::Refused;
            a
        };
        if query.edns.is_some_and(|e| e.version != 0) {
            answer.ext_rcode = EXT_RCODE_BADVERS;
            answer.counter = Counter::BadVers;
            return Some(answer);
        }
        if query.qclass != CLASS_IN && query.qclass != CLASS_ANY {
            return Some(refused(answer));
        }

        let wire = &msg[HEADER_LEN..query.name_end];
        let mut lower = [0u8; MAX_NAME_LEN];
        let lower = &mut lower[..wire.len()];
        lower.copy_from_slice(wire);
        // Label lengths are below 64, so they are untouched by ASCII lowercasing.
        lower.make_ascii_lowercase();

        let zone = &*self.zone;
        match zone.lookup(lower) {
            Lookup::Outside => match self.forward {
                ForwardMode::Forward => None,
                ForwardMode::Refuse => {
                    answer.recursion_available = false;
                    Some(refused(answer))
                }
            },
            Lookup::NxDomain { apex, apex_offset } => {
                answer.authoritative = true;
                answer.rcode = RCODE_NXDOMAIN;
                answer.soa = Some((apex_offset, &zone.apexes[apex].soa_tail));
                answer.counter = Counter::NxDomain;
                Some(answer)
            }
            Lookup::Exists { records, is_apex, apex, apex_offset } => {
                answer.authoritative = true;
                let soa = Some((apex_offset, zone.apexes[apex].soa_tail.as_slice()));
                match (query.qtype, records) {
                    (TYPE_AXFR | TYPE_IXFR, _) => return Some(refused(answer)),
                    (TYPE_A | TYPE_ANY, Some(range)) => answer.ips = zone.ips(range),
                    (TYPE_SOA, _) if is_apex => {
                        answer.soa = soa;
                        answer.soa_in_answer = true;
                    }
                    _ => {
                        answer.soa = soa;
                        answer.counter = Counter::NoData;
                    }
                }
                Some(answer)
            }
        }
    }
}

/// Parses the question and the EDNS OPT of a query whose header is already checked.
fn parse_query(msg: &[u8], id: u16, flags: u16) -> Result<Query, ParseError> {
    let count = |i: usize| usize::from(u16::from_be_bytes([msg[i], msg[i + 1]]));
    if count(4) != 1 {
        return Err(ParseError::FormErr);
    }
    let mut pos = HEADER_LEN;
    loop {
        let len = *msg.get(pos).ok_or(ParseError::FormErr)?;
        match len & 0xC0 {
            0x00 if len == 0 => {
                pos += 1;
                break;
            }
            0x00 => {
                pos += 1 + usize::from(len);
                // The name must also leave room for its root label.
                if pos - HEADER_LEN >= MAX_NAME_LEN {
                    return Err(ParseError::FormErr);
                }
            }
            0xC0 => return Err(ParseError::Drop(DropReason::Malformed)),
            // 0x40 and 0x80: extended and binary labels (RFC 6891 section 5), unsupported.
            _ => return Err(ParseError::FormErr),
        }
    }
    let name_end = pos;
    let fixed = msg.get(pos..pos + 4).ok_or(ParseError::FormErr)?;
    let qtype = u16::from_be_bytes([fixed[0], fixed[1]]);
    let qclass = u16::from_be_bytes([fixed[2], fixed[3]]);
    pos += 4;
    let question_end = pos;

    // Walk the other sections only to find the OPT record; names there are
    // skipped, never followed (a pointer ends a name), so loops cannot bite.
    let (an, ns, ar) = (count(6), count(8), count(10));
    let mut edns = None;
    for index in 0..an + ns + ar {
        let owner_start = pos;
        pos = skip_owner_name(msg, pos).ok_or(ParseError::FormErr)?;
        let fixed = msg.get(pos..pos + 10).ok_or(ParseError::FormErr)?;
        let rtype = u16::from_be_bytes([fixed[0], fixed[1]]);
        let class = u16::from_be_bytes([fixed[2], fixed[3]]);
        let ttl = u32::from_be_bytes([fixed[4], fixed[5], fixed[6], fixed[7]]);
        let rdlen = usize::from(u16::from_be_bytes([fixed[8], fixed[9]]));
        pos += 10 + rdlen;
        if pos > msg.len() {
            return Err(ParseError::FormErr);
        }
        if rtype == TYPE_OPT {
            // RFC 6891 section 6.1.1: one OPT, in the additional section,
            // owned by the root; anything else is FORMERR.
            let in_additional = index >= an + ns;
            let root_owner = pos - 10 - rdlen - owner_start == 1;
            if !in_additional || !root_owner || edns.is_some() {
                return Err(ParseError::FormErr);
            }
            edns = Some(Edns { udp_size: class, version: (ttl >> 16) as u8, dnssec_ok: ttl & EDNS_DO != 0 });
        }
    }
    Ok(Query { id, flags, name_end, question_end, qtype, qclass, edns })
}

/// Response flags: QR, the query's opcode, RD and CD, plus what the answer sets.
fn response_flags(query_flags: u16, aa: bool, tc: bool, ra: bool, rcode: u8) -> u16 {
    let mut flags = FLAG_QR | (query_flags & (MASK_OPCODE | FLAG_RD | FLAG_CD));
    if aa {
        flags |= FLAG_AA;
    }
    if tc {
        flags |= FLAG_TC;
    }
    if ra {
        flags |= FLAG_RA;
    }
    flags | u16::from(rcode & 0x0F)
}

fn emit_header(out: &mut Vec<u8>, id: u16, flags: u16, counts: [u16; 4]) {
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&flags.to_be_bytes());
    for count in counts {
        out.extend_from_slice(&count.to_be_bytes());
    }
}

/// A header-only error response (FORMERR, NOTIMP): never larger than the query.
fn emit_error(out: &mut Vec<u8>, id: u16, query_flags: u16, rcode: u8) {
    let flags = response_flags(query_flags, false, false, true, rcode);
    emit_header(out, id, flags, [0; 4]);
}

/// Writes the response; returns whether it had to be truncated (TC).
fn emit_answer(out: &mut Vec<u8>, msg: &[u8], query: &Query, answer: &Answer<'_>, limit: usize) -> bool {
    let question = &msg[HEADER_LEN..query.question_end];
    let soa_len = answer.soa.map_or(0, |(_, tail)| 2 + tail.len());
    let opt_len = if query.edns.is_some() { OPT_RECORD_LEN } else { 0 };
    let full_len = HEADER_LEN + question.len() + answer.ips.len() * A_RECORD_LEN + soa_len + opt_len;
    // No partial RRset: if it does not fit, send none of it (RFC 2181 section 9).
    let truncated = full_len > limit;

    let (mut an, mut ns) = (answer.ips.len() as u16, u16::from(answer.soa.is_some()));
    if answer.soa_in_answer {
        (an, ns) = (1, 0);
    }
    if truncated {
        (an, ns) = (0, 0);
    }
    let flags = response_flags(query.flags, answer.authoritative, truncated, answer.recursion_available, answer.rcode);
    out.reserve(full_len.min(limit));
    emit_header(out, query.id, flags, [1, an, ns, u16::from(query.edns.is_some())]);
    // The question is echoed byte for byte, so its case is the client's (RFC 4343).
    out.extend_from_slice(question);
    if !truncated {
        for ip in answer.ips {
            // Owner: a pointer to the question name at offset 12.
            out.extend_from_slice(&[0xC0, 0x0C]);
            out.extend_from_slice(&TYPE_A.to_be_bytes());
            out.extend_from_slice(&CLASS_IN.to_be_bytes());
            out.extend_from_slice(&ANSWER_TTL.to_be_bytes());
            out.extend_from_slice(&4u16.to_be_bytes());
            out.extend_from_slice(ip);
        }
        if let Some((apex_offset, tail)) = answer.soa {
            // The apex is a suffix of the question name: point into it.
            let pointer = 0xC000 | (HEADER_LEN + apex_offset) as u16;
            out.extend_from_slice(&pointer.to_be_bytes());
            out.extend_from_slice(tail);
        }
    }
    if let Some(edns) = query.edns {
        out.push(0); // root owner
        out.extend_from_slice(&TYPE_OPT.to_be_bytes());
        out.extend_from_slice(&(MAX_UDP_RESPONSE as u16).to_be_bytes());
        let mut ttl = u32::from(answer.ext_rcode) << 24;
        if edns.dnssec_ok {
            ttl |= EDNS_DO;
        }
        out.extend_from_slice(&ttl.to_be_bytes());
        out.extend_from_slice(&0u16.to_be_bytes());
    }
    truncated
}

// ---------------------------------------------------------------------------
// Forward cache
// ---------------------------------------------------------------------------

/// Longest time an upstream answer is kept, whatever its TTL.
pub const MAX_CACHE_TTL: u32 = 3600;

/// A bounded cache of upstream answers keyed by (name, type, class, EDNS or
/// not); the caller passes `now` (monotonic) and owns the I/O.
///
/// Call order: on `Outcome::Forward`, try [`ForwardCache::get`]; on a miss,
/// ask upstream and hand the reply to [`ForwardCache::insert`]. Only NOERROR
/// and NXDOMAIN answers with at least one record, without TC, whose question
/// matches are kept, for the smallest TTL among their records (for a negative
/// answer that is the SOA's TTL; RFC 2308 section 5 would also take the SOA
/// MINIMUM into account: not done). TTLs are decremented on the way out.
#[derive(Debug)]
pub struct ForwardCache {
    entries: FnvMap<Box<[u8]>, CachedAnswer>,
    capacity: usize,
}

#[derive(Debug)]
struct CachedAnswer {
    response: Box<[u8]>,
    /// Offsets of the TTL fields of every record but OPT.
    ttl_offsets: Box<[u16]>,
    stored: Instant,
    ttl: u32,
}

impl ForwardCache {
    /// An empty cache holding at most `capacity` answers.
    pub fn new(capacity: usize) -> ForwardCache {
        ForwardCache { entries: FnvMap::default(), capacity }
    }

    /// How many answers are held (expired ones included until evicted).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Writes the cached answer to `query` into `out`, with the query's id,
    /// case and RD bit and decremented TTLs; `false` (and `out` empty) on a miss.
    pub fn get(&self, now: Instant, query: &[u8], transport: Transport, out: &mut Vec<u8>) -> bool {
        out.clear();
        let Some((parsed, key_buf, key_len)) = cache_key(query) else {
            return false;
        };
        let Some(entry) = self.entries.get(&key_buf[..key_len]) else {
            return false;
        };
        let elapsed = now.saturating_duration_since(entry.stored).as_secs();
        if elapsed >= u64::from(entry.ttl) {
            return false;
        }
        let limit = match (transport, parsed.edns) {
            (Transport::Tcp, _) => usize::from(u16::MAX),
            (Transport::Udp, None) => PLAIN_UDP_LIMIT,
            (Transport::Udp, Some(e)) => usize::from(e.udp_size).max(PLAIN_UDP_LIMIT),
        };
        if entry.response.len() > limit {
            return false;
        }
        out.extend_from_slice(&entry.response);
        out[..2].copy_from_slice(&query[..2]);
        out[2] = (out[2] & !0x01) | (query[2] & 0x01); // RD
        out[HEADER_LEN..parsed.question_end].copy_from_slice(&query[HEADER_LEN..parsed.question_end]);
        for &offset in entry.ttl_offsets.iter() {
            let at = usize::from(offset);
            let ttl = u32::from_be_bytes([out[at], out[at + 1], out[at + 2], out[at + 3]]);
            let left = ttl.saturating_sub(elapsed as u32);
            out[at..at + 4].copy_from_slice(&left.to_be_bytes());
        }
        true
    }

    /// Stores `response` (from upstream) as the answer to `query`, if it is cacheable.
    pub fn insert(&mut self, now: Instant, query: &[u8], response: &[u8]) {
        let Some((parsed, key_buf, key_len)) = cache_key(query) else {
            return;
        };
        let Some((ttl_offsets, ttl)) = cacheable(query, &parsed, response) else {
            return;
        };
        if self.capacity == 0 {
            return;
        }
        let key: Box<[u8]> = key_buf[..key_len].into();
        if self.entries.len() >= self.capacity && !self.entries.contains_key(&key) {
            self.entries.retain(|_, e| now.saturating_duration_since(e.stored).as_secs() < u64::from(e.ttl));
            if self.entries.len() >= self.capacity {
                // Still full of live answers: make room by dropping any one.
                if let Some(victim) = self.entries.keys().next().cloned() {
                    self.entries.remove(&victim);
                }
            }
        }
        self.entries.insert(
            key,
            CachedAnswer {
                response: response.into(),
                ttl_offsets: ttl_offsets.into(),
                stored: now,
                ttl: ttl.min(MAX_CACHE_TTL),
            },
        );
    }
}

/// Parses a plain query and builds its cache key in a stack buffer:
/// lowercased name, type, class, and whether it carried EDNS.
fn cache_key(query: &[u8]) -> Option<(Query, [u8; MAX_NAME_LEN + 5], usize)> {
    if query.len() < HEADER_LEN || query.len() > MAX_QUERY_LEN {
        return None;
    }
    let id = u16::from_be_bytes([query[0], query[1]]);
    let flags = u16::from_be_bytes([query[2], query[3]]);
    if flags & (FLAG_QR | MASK_OPCODE) != 0 {
        return None;
    }
    let parsed = parse_query(query, id, flags).ok()?;
    let mut key = [0u8; MAX_NAME_LEN + 5];
    let question = &query[HEADER_LEN..parsed.question_end];
    key[..question.len()].copy_from_slice(question);
    let name_len = parsed.name_end - HEADER_LEN;
    key[..name_len].make_ascii_lowercase();
    key[question.len()] = u8::from(parsed.edns.is_some());
    Some((parsed, key, question.len() + 1))
}

/// Checks an upstream response against its query; returns its TTL offsets and smallest TTL.
fn cacheable(query: &[u8], parsed: &Query, response: &[u8]) -> Option<(Vec<u16>, u32)> {
    if response.len() < parsed.question_end || response.len() > usize::from(u16::MAX) {
        return None;
    }
    let flags = u16::from_be_bytes([response[2], response[3]]);
    let rcode = (flags & 0x000F) as u8;
    let same_question =
        response[HEADER_LEN..parsed.question_end].eq_ignore_ascii_case(&query[HEADER_LEN..parsed.question_end]);
    if response[..2] != query[..2]
        || flags & FLAG_QR == 0
        || flags & FLAG_TC != 0
        || !(rcode == RCODE_NOERROR || rcode == RCODE_NXDOMAIN)
        || response[4..6] != [0, 1]
        || !same_question
    {
        return None;
    }
    let count = |i: usize| usize::from(u16::from_be_bytes([response[i], response[i + 1]]));
    let mut pos = parsed.question_end;
    let mut offsets = Vec::new();
    let mut min_ttl = u32::MAX;
    for _ in 0..count(6) + count(8) + count(10) {
        pos = skip_owner_name(response, pos)?;
        let fixed = response.get(pos..pos + 10)?;
        let rtype = u16::from_be_bytes([fixed[0], fixed[1]]);
        let ttl = u32::from_be_bytes([fixed[4], fixed[5], fixed[6], fixed[7]]);
        let rdlen = usize::from(u16::from_be_bytes([fixed[8], fixed[9]]));
        if rtype != TYPE_OPT {
            offsets.push(u16::try_from(pos + 4).ok()?);
            min_ttl = min_ttl.min(ttl);
        }
        pos += 10 + rdlen;
        if pos > response.len() {
            return None;
        }
    }
    (!offsets.is_empty() && min_ttl > 0).then_some((offsets, min_ttl))
}

/// The position just past the owner name at `pos` (labels, ending in a root
/// label or a compression pointer, which is not followed); `None` if the name
/// is cut short, uses a reserved label type or runs past 255 bytes.
fn skip_owner_name(msg: &[u8], mut pos: usize) -> Option<usize> {
    let start = pos;
    loop {
        let len = *msg.get(pos)?;
        match len & 0xC0 {
            0x00 if len == 0 => return Some(pos + 1),
            0x00 => pos += 1 + usize::from(len),
            0xC0 => return Some(pos + 2),
            _ => return None,
        }
        if pos - start > MAX_NAME_LEN {
            return None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::lookup;
    use hickory_proto::op::{Edns as HEdns, Message, MessageType, OpCode, Query as HQuery, ResponseCode};
    use hickory_proto::rr::{DNSClass, Name, RData, RecordType};
    use std::time::Duration;

    const EC2_REGIONAL: &str = "vpce-0fe5b17a0707d6abc-29p5708s.ec2.us-east-1.vpce.amazonaws.com";
    const EC2_ZONAL_B: &str = "vpce-0fe5b17a0707d6abc-29p5708s-us-east-1b.ec2.us-east-1.vpce.amazonaws.com";
    const S3_REGIONAL: &str = "vpce-0a1b2c3d4e5f60718-s3s3s3s3.s3.us-east-1.vpce.amazonaws.com";
    const SSM_REGIONAL: &str = "vpce-0123456789abcdef0-ssmssmss.ssm.us-east-1.vpce.amazonaws.com";
    const IPS: [Ipv4Addr; 3] = [Ipv4Addr::new(10, 0, 1, 49), Ipv4Addr::new(10, 0, 2, 49), Ipv4Addr::new(10, 0, 3, 49)];

    fn enis() -> Vec<(String, Ipv4Addr)> {
        ["us-east-1a", "us-east-1b", "us-east-1c"].iter().zip(IPS).map(|(az, ip)| (az.to_string(), ip)).collect()
    }

    /// ec2 and execute-api with private DNS, s3 (no private DNS), ssm with private DNS off.
    fn lab_spec() -> ZoneSpec {
        let enis = enis();
        let mut spec = ZoneSpec::default();
        let endpoints = [
            ("ec2", "vpce-0fe5b17a0707d6abc", "29p5708s", true),
            ("execute-api", "vpce-0aaaaaaaaaaaaaaaa", "apiapiap", true),
            ("s3", "vpce-0a1b2c3d4e5f60718", "s3s3s3s3", false),
            ("ssm", "vpce-0123456789abcdef0", "ssmssmss", false),
        ];
        for (svc, id, suffix, private_dns) in endpoints {
            let service = lookup(&format!("com.amazonaws.us-east-1.{svc}")).unwrap();
            spec.add_endpoint(&EndpointDns { service: &service, endpoint_id: id, suffix, enis: &enis, private_dns });
        }
        spec
    }

    /// A hand-made zone with names too big for plain UDP.
    fn big_spec() -> ZoneSpec {
        let ips = |n: u32| (0..n).map(|i| Ipv4Addr::from(0x0a00_0000 + i)).collect();
        ZoneSpec {
            apexes: vec![ZoneApex { name: "big.test".into(), private_dns: true }],
            entries: vec![
                ZoneEntry { name: "sixty.big.test".into(), ips: ips(60), private_dns: true },
                ZoneEntry { name: "hundred.big.test".into(), ips: ips(100), private_dns: true },
                ZoneEntry { name: "deep.ent.big.test".into(), ips: ips(1), private_dns: true },
            ],
        }
    }

    fn responder(spec: &ZoneSpec, mode: ForwardMode) -> Responder {
        Responder::new(Arc::new(Zone::build(spec).unwrap()), mode)
    }

    fn lab() -> Responder {
        responder(&lab_spec(), ForwardMode::Forward)
    }

    fn build_query(name: &str, rtype: RecordType, edit: impl FnOnce(&mut Message)) -> Vec<u8> {
        let mut msg = Message::new(0x1234, MessageType::Query, OpCode::Query);
        msg.metadata.recursion_desired = true;
        msg.add_query(HQuery::query(Name::from_ascii(name).unwrap(), rtype));
        edit(&mut msg);
        msg.to_vec().unwrap()
    }

    fn query(name: &str, rtype: RecordType) -> Vec<u8> {
        build_query(name, rtype, |_| {})
    }

    fn edns(size: u16) -> impl FnOnce(&mut Message) {
        move |msg: &mut Message| {
            let mut e = HEdns::new();
            e.set_max_payload(size);
            msg.edns = Some(e);
        }
    }

    #[track_caller]
    fn ask(r: &Responder, q: &[u8], transport: Transport) -> Message {
        let mut out = Vec::new();
        assert_eq!(r.handle_query(q, transport, &mut out), Outcome::Respond);
        Message::from_vec(&out).expect("response parses")
    }

    #[track_caller]
    fn ask_udp(r: &Responder, name: &str, rtype: RecordType) -> Message {
        ask(r, &query(name, rtype), Transport::Udp)
    }

    fn a_records(msg: &Message) -> Vec<Ipv4Addr> {
        msg.answers
            .iter()
            .map(|r| match &r.data {
                RData::A(a) => a.0,
                other => panic!("not an A record: {other:?}"),
            })
            .collect()
    }

    #[track_caller]
    fn assert_soa_authority(msg: &Message, apex: &str) {
        assert!(msg.answers.is_empty());
        assert_eq!(msg.authorities.len(), 1);
        let soa = &msg.authorities[0];
        assert_eq!(soa.name.to_ascii().to_ascii_lowercase(), format!("{apex}."));
        assert_eq!(soa.ttl, NEGATIVE_TTL);
        match &soa.data {
            RData::SOA(soa) => {
                assert_eq!(soa.mname.to_ascii(), "ns-0.awsdns-00.com.");
                assert_eq!(soa.rname.to_ascii(), "awsdns-hostmaster.amazon.com.");
            }
            other => panic!("not an SOA: {other:?}"),
        }
    }

    // ---------------------------------------------------------------
    // A answers: regional, zonal, default names
    // ---------------------------------------------------------------

    #[test]
    fn regional_name_answers_every_eni_ip() {
        let msg = ask_udp(&lab(), EC2_REGIONAL, RecordType::A);
        assert_eq!(msg.metadata.id, 0x1234);
        assert_eq!(msg.metadata.message_type, MessageType::Response);
        assert_eq!(msg.metadata.response_code, ResponseCode::NoError);
        assert!(msg.metadata.authoritative);
        assert!(msg.metadata.recursion_desired);
        assert!(msg.metadata.recursion_available);
        assert!(!msg.metadata.truncation);
        assert_eq!(msg.queries.len(), 1);
        assert_eq!(a_records(&msg), IPS);
        assert!(msg.answers.iter().all(|r| r.ttl == ANSWER_TTL));
        assert!(msg.answers.iter().all(|r| r.dns_class == DNSClass::IN));
        assert!(msg.authorities.is_empty() && msg.edns.is_none());
    }

    #[test]
    fn zonal_name_answers_its_az_ip_only() {
        let msg = ask_udp(&lab(), EC2_ZONAL_B, RecordType::A);
        assert_eq!(a_records(&msg), [IPS[1]]);
        assert_eq!(msg.answers[0].name.to_ascii(), format!("{EC2_ZONAL_B}."));
    }

    #[test]
    fn default_name_answers_with_private_dns_on() {
        let msg = ask_udp(&lab(), "ec2.us-east-1.amazonaws.com", RecordType::A);
        assert_eq!(a_records(&msg), IPS);
        assert!(msg.metadata.authoritative);
    }

    #[test]
    fn any_query_returns_the_a_records() {
        let msg = ask_udp(&lab(), "ec2.us-east-1.amazonaws.com.", RecordType::ANY);
        assert_eq!(a_records(&msg), IPS);
    }

    #[test]
    fn rd_clear_is_copied() {
        let q = build_query(EC2_REGIONAL, RecordType::A, |m| {
            m.metadata.recursion_desired = false;
            m.metadata.checking_disabled = true;
        });
        let msg = ask(&lab(), &q, Transport::Udp);
        assert!(!msg.metadata.recursion_desired);
        assert!(msg.metadata.checking_disabled);
        assert!(msg.metadata.recursion_available);
    }

    #[test]
    fn response_echoes_the_question_case() {
        let name = "Ec2.US-east-1.AmazonAWS.Com";
        let q = query(name, RecordType::A);
        let mut out = Vec::new();
        lab().handle_query(&q, Transport::Udp, &mut out);
        let qlen = q.len() - HEADER_LEN;
        assert_eq!(out[HEADER_LEN..HEADER_LEN + qlen], q[HEADER_LEN..]);
        let msg = Message::from_vec(&out).unwrap();
        assert_eq!(msg.queries[0].name().to_ascii(), format!("{name}."));
        assert_eq!(a_records(&msg), IPS);
    }

    #[test]
    fn out_buffer_is_reused_and_cleared() {
        let r = lab();
        let mut out = vec![0xAA; 4096];
        r.handle_query(&query(EC2_REGIONAL, RecordType::A), Transport::Udp, &mut out);
        let first = out.clone();
        let capacity = out.capacity();
        r.handle_query(&query(EC2_REGIONAL, RecordType::A), Transport::Udp, &mut out);
        assert_eq!(out, first);
        assert_eq!(out.capacity(), capacity);
        let q = query("example.com", RecordType::A);
        assert_eq!(r.handle_query(&q, Transport::Udp, &mut out), Outcome::Forward);
        assert!(out.is_empty());
    }

    // ---------------------------------------------------------------
    // Wildcards and S3 sub-names
    // ---------------------------------------------------------------

    #[test]
    fn execute_api_wildcard_matches_any_api_id() {
        let r = lab();
        for name in [
            "abc123.execute-api.us-east-1.amazonaws.com",
            "ABC123.Execute-API.us-east-1.amazonaws.com",
            "a.b.execute-api.us-east-1.amazonaws.com",
            "*.execute-api.us-east-1.amazonaws.com",
        ] {
            let msg = ask_udp(&r, name, RecordType::A);
            assert_eq!(a_records(&msg), IPS, "{name}");
            // The synthesised owner is the query name (RFC 4592 section 2.1.1).
            assert_eq!(msg.answers[0].name.to_ascii(), format!("{name}."));
        }
        // The apex itself has no A record: NODATA, not a wildcard match.
        let msg = ask_udp(&r, "execute-api.us-east-1.amazonaws.com", RecordType::A);
        assert_eq!(msg.metadata.response_code, ResponseCode::NoError);
        assert_soa_authority(&msg, "execute-api.us-east-1.amazonaws.com");
    }

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

    #[test]
    fn s3_default_name_is_never_private() {
        let r = lab();
        let mut out = Vec::new();
        let q = query("s3.us-east-1.amazonaws.com", RecordType::A);
        assert_eq!(r.handle_query(&q, Transport::Udp, &mut out), Outcome::Forward);
        let q = query("my-bucket.s3.us-east-1.amazonaws.com", RecordType::A);
        assert_eq!(r.handle_query(&q, Transport::Udp, &mut out), Outcome::Forward);
    }

    // ---------------------------------------------------------------
    // Negative answers: NODATA, NXDOMAIN, SOA
    // ---------------------------------------------------------------

    #[test]
    fn aaaa_for_an_endpoint_name_is_nodata_with_soa() {
        let r = lab();
        for (name, apex) in [
            ("ec2.us-east-1.amazonaws.com", "ec2.us-east-1.amazonaws.com"),
            (EC2_REGIONAL, "ec2.us-east-1.vpce.amazonaws.com"),
            ("x.execute-api.us-east-1.amazonaws.com", "execute-api.us-east-1.amazonaws.com"),
        ] {
            let msg = ask_udp(&r, name, RecordType::AAAA);
            assert_eq!(msg.metadata.response_code, ResponseCode::NoError, "{name}");
            assert!(msg.metadata.authoritative);
            assert_soa_authority(&msg, apex);
        }
        assert_eq!(r.counters().nodata, 3);
    }

    #[test]
    fn dual_stack_client_gets_nodata_then_a_at_once() {
        // What getaddrinfo(AF_UNSPEC) does: AAAA and A; the empty AAAA must
        // not be an error, so the client uses the A answer without delay.
        let r = lab();
        let aaaa = ask_udp(&r, "ec2.us-east-1.amazonaws.com", RecordType::AAAA);
        let a = ask_udp(&r, "ec2.us-east-1.amazonaws.com", RecordType::A);
        assert_eq!(aaaa.metadata.response_code, ResponseCode::NoError);
        assert!(aaaa.answers.is_empty());
        assert_eq!(a_records(&a), IPS);
        assert_eq!(r.counters().forwarded, 0);
    }

    #[test]
    fn other_types_are_nodata() {
        let r = lab();
        for rtype in [RecordType::TXT, RecordType::MX, RecordType::CNAME, RecordType::NS] {
            let msg = ask_udp(&r, EC2_REGIONAL, rtype);
            assert_eq!(msg.metadata.response_code, ResponseCode::NoError);
            assert_soa_authority(&msg, "ec2.us-east-1.vpce.amazonaws.com");
        }
    }

    #[test]
    fn missing_name_under_an_apex_is_nxdomain() {
        let r = lab();
        for (name, apex) in [
            ("foo.ec2.us-east-1.amazonaws.com", "ec2.us-east-1.amazonaws.com"),
            ("vpce-0000000000000000-nope.ec2.us-east-1.vpce.amazonaws.com", "ec2.us-east-1.vpce.amazonaws.com"),
        ] {
            for rtype in [RecordType::A, RecordType::AAAA] {
                let msg = ask_udp(&r, name, rtype);
                assert_eq!(msg.metadata.response_code, ResponseCode::NXDomain, "{name}");
                assert!(msg.metadata.authoritative);
                assert_soa_authority(&msg, apex);
            }
        }
        assert_eq!(r.counters().nxdomain, 4);
    }

    #[test]
    fn soa_pointer_keeps_the_question_case() {
        let msg = ask_udp(&lab(), "Foo.EC2.us-east-1.amazonaws.com", RecordType::A);
        assert_eq!(msg.authorities[0].name.to_ascii(), "EC2.us-east-1.amazonaws.com.");
    }

    #[test]
    fn empty_non_terminal_is_nodata() {
        let r = responder(&big_spec(), ForwardMode::Forward);
        let msg = ask_udp(&r, "ent.big.test", RecordType::A);
        assert_eq!(msg.metadata.response_code, ResponseCode::NoError);
        assert_soa_authority(&msg, "big.test");
        let msg = ask_udp(&r, "other.ent.big.test", RecordType::A);
        assert_eq!(msg.metadata.response_code, ResponseCode::NXDomain);
    }

    #[test]
    fn soa_at_the_apex_is_answered() {
        let msg = ask_udp(&lab(), "ec2.us-east-1.vpce.amazonaws.com", RecordType::SOA);
        assert_eq!(msg.metadata.response_code, ResponseCode::NoError);
        assert_eq!(msg.answers.len(), 1);
        assert!(matches!(msg.answers[0].data, RData::SOA(_)));
        assert!(msg.authorities.is_empty());
        // Below the apex SOA is NODATA.
        let msg = ask_udp(&lab(), EC2_REGIONAL, RecordType::SOA);
        assert_soa_authority(&msg, "ec2.us-east-1.vpce.amazonaws.com");
    }

    #[test]
    fn zone_transfer_is_refused() {
        let q = query("ec2.us-east-1.amazonaws.com", RecordType::AXFR);
        let msg = ask(&lab(), &q, Transport::Tcp);
        assert_eq!(msg.metadata.response_code, ResponseCode::Refused);
    }

    // ---------------------------------------------------------------
    // Forwarding, privacy mode, private DNS off
    // ---------------------------------------------------------------

    #[test]
    fn outside_names_are_forwarded() {
        let r = lab();
        let mut out = Vec::new();
        for name in ["example.com", "amazonaws.com", "us-east-1.amazonaws.com", "sts.us-east-1.amazonaws.com", "."] {
            let q = query(name, RecordType::A);
            assert_eq!(r.handle_query(&q, Transport::Udp, &mut out), Outcome::Forward, "{name}");
            assert!(out.is_empty());
        }
        assert_eq!(r.counters().forwarded, 5);
    }

    #[test]
    fn privacy_mode_refuses_outside_names() {
        let r = responder(&lab_spec(), ForwardMode::Refuse);
        let msg = ask_udp(&r, "example.com", RecordType::A);
        assert_eq!(msg.metadata.response_code, ResponseCode::Refused);
        assert!(!msg.metadata.authoritative);
        assert!(!msg.metadata.recursion_available);
        assert!(msg.answers.is_empty());
        // Zone names still answer.
        assert_eq!(a_records(&ask_udp(&r, EC2_REGIONAL, RecordType::A)), IPS);
        assert_eq!(r.counters().refused, 1);
    }

    #[test]
    fn private_dns_off_forwards_the_default_name_only() {
        let r = lab();
        let mut out = Vec::new();
        let q = query("ssm.us-east-1.amazonaws.com", RecordType::A);
        assert_eq!(r.handle_query(&q, Transport::Udp, &mut out), Outcome::Forward);
        let q = query("ssm.us-east-1.amazonaws.com", RecordType::AAAA);
        assert_eq!(r.handle_query(&q, Transport::Udp, &mut out), Outcome::Forward);
        assert_eq!(a_records(&ask_udp(&r, SSM_REGIONAL, RecordType::A)), IPS);
    }

    #[test]
    fn non_in_class_is_refused() {
        let q = build_query("version.bind", RecordType::TXT, |m| {
            m.queries[0].set_query_class(DNSClass::CH);
        });
        let msg = ask(&lab(), &q, Transport::Udp);
        assert_eq!(msg.metadata.response_code, ResponseCode::Refused);
    }

    #[test]
    fn zone_swap_takes_effect() {
        let mut r = lab();
        let mut out = Vec::new();
        r.set_zone(Arc::new(Zone::default()));
        assert!(r.zone().is_empty());
        let q = query(EC2_REGIONAL, RecordType::A);
        assert_eq!(r.handle_query(&q, Transport::Udp, &mut out), Outcome::Forward);
    }

    // ---------------------------------------------------------------
    // Size limits: TC over UDP, whole answers over TCP, EDNS
    // ---------------------------------------------------------------

    #[test]
    fn big_answer_over_plain_udp_is_truncated_without_records() {
        let r = responder(&big_spec(), ForwardMode::Forward);
        let q = query("sixty.big.test", RecordType::A);
        let mut out = Vec::new();
        r.handle_query(&q, Transport::Udp, &mut out);
        assert!(out.len() <= PLAIN_UDP_LIMIT);
        let msg = Message::from_vec(&out).unwrap();
        assert!(msg.metadata.truncation);
        assert!(msg.answers.is_empty() && msg.authorities.is_empty());
        assert_eq!(msg.queries.len(), 1);
        assert_eq!(r.counters().truncated, 1);
    }

    #[test]
    fn big_answer_over_tcp_is_whole() {
        let r = responder(&big_spec(), ForwardMode::Forward);
        for (name, n) in [("sixty.big.test", 60), ("hundred.big.test", 100)] {
            let msg = ask(&r, &query(name, RecordType::A), Transport::Tcp);
            assert!(!msg.metadata.truncation);
            assert_eq!(a_records(&msg).len(), n);
        }
        assert_eq!(r.counters().truncated, 0);
    }

    #[test]
    fn edns_size_is_honoured_and_capped() {
        let r = responder(&big_spec(), ForwardMode::Forward);
        let mut out = Vec::new();
        // 60 IPs (~1 KB) fit in 1232 bytes but not in 900.
        let q = build_query("sixty.big.test", RecordType::A, edns(1232));
        r.handle_query(&q, Transport::Udp, &mut out);
        let msg = Message::from_vec(&out).unwrap();
        assert!(!msg.metadata.truncation);
        assert_eq!(a_records(&msg).len(), 60);
        assert_eq!(msg.max_payload(), MAX_UDP_RESPONSE as u16);

        let q = build_query("sixty.big.test", RecordType::A, edns(900));
        r.handle_query(&q, Transport::Udp, &mut out);
        assert!(out.len() <= 900);
        assert!(Message::from_vec(&out).unwrap().metadata.truncation);

        // 100 IPs (~1.7 KB) exceed the 1232-byte cap whatever the client says.
        let q = build_query("hundred.big.test", RecordType::A, edns(4096));
        r.handle_query(&q, Transport::Udp, &mut out);
        assert!(out.len() <= MAX_UDP_RESPONSE);
        let msg = Message::from_vec(&out).unwrap();
        assert!(msg.metadata.truncation);
        assert!(msg.edns.is_some());

        // A size below 512 means 512 (RFC 6891 section 6.2.5).
        let q = build_query("ec2.us-east-1.amazonaws.com", RecordType::A, edns(100));
        assert_eq!(a_records(&ask(&lab(), &q, Transport::Udp)), IPS);
    }

    #[test]
    fn edns_is_echoed_with_do_bit() {
        let q = build_query(EC2_REGIONAL, RecordType::A, |m| {
            let mut e = HEdns::new();
            e.set_dnssec_ok(true);
            m.edns = Some(e);
        });
        let msg = ask(&lab(), &q, Transport::Udp);
        let e = msg.edns.as_ref().expect("OPT in the response");
        assert!(e.flags().dnssec_ok);
        assert_eq!(e.version(), 0);
        assert_eq!(a_records(&msg), IPS);
        assert!(!msg.metadata.authentic_data);
    }

    #[test]
    fn unknown_edns_version_is_badvers() {
        let q = build_query(EC2_REGIONAL, RecordType::A, |m| {
            let mut e = HEdns::new();
            e.set_version(1);
            m.edns = Some(e);
        });
        let r = lab();
        let msg = ask(&r, &q, Transport::Udp);
        assert_eq!(r.counters().badvers, 1);
        // 16 is both BADVERS and BADSIG; hickory names it BADSIG.
        assert_eq!(u16::from(msg.metadata.response_code), 16);
        assert!(msg.answers.is_empty());
        assert_eq!(msg.edns.as_ref().map(|e| e.version()), Some(0));
    }

    // ---------------------------------------------------------------
    // Bad queries: drop, FORMERR, NOTIMP
    // ---------------------------------------------------------------

    #[track_caller]
    fn outcome(r: &Responder, q: &[u8], t: Transport) -> (Outcome, Vec<u8>) {
        let mut out = Vec::new();
        let o = r.handle_query(q, t, &mut out);
        (o, out)
    }

    #[track_caller]
    fn rcode_of(r: &Responder, q: &[u8]) -> ResponseCode {
        let (o, out) = outcome(r, q, Transport::Udp);
        assert_eq!(o, Outcome::Respond);
        assert!(out.len() <= q.len().max(HEADER_LEN) || out.len() <= PLAIN_UDP_LIMIT);
        Message::from_vec(&out).unwrap().metadata.response_code
    }

    #[test]
    fn short_messages_are_dropped() {
        let r = lab();
        for len in 0..HEADER_LEN {
            let q = vec![0u8; len];
            assert_eq!(outcome(&r, &q, Transport::Udp).0, Outcome::Drop(DropReason::TooShort));
        }
        assert_eq!(r.counters().dropped_too_short, HEADER_LEN as u64);
    }

    #[test]
    fn responses_are_never_answered() {
        let r = lab();
        let mut q = query(EC2_REGIONAL, RecordType::A);
        q[2] |= 0x80;
        let (o, out) = outcome(&r, &q, Transport::Udp);
        assert_eq!(o, Outcome::Drop(DropReason::NotQuery));
        assert!(out.is_empty());
        // Our own response fed back in is dropped too: no reflection loops.
        let mut resp = Vec::new();
        r.handle_query(&query(EC2_REGIONAL, RecordType::A), Transport::Udp, &mut resp);
        assert_eq!(outcome(&r, &resp, Transport::Udp).0, Outcome::Drop(DropReason::NotQuery));
        assert_eq!(r.counters().dropped_not_query, 2);
    }

    /// A query padded with an additional TXT record of `pad` bytes.
    fn padded_query(pad: usize, with_edns: bool) -> Vec<u8> {
        let mut q = if with_edns {
            build_query(EC2_REGIONAL, RecordType::A, edns(1232))
        } else {
            query(EC2_REGIONAL, RecordType::A)
        };
        let arcount = u16::from_be_bytes([q[10], q[11]]) + 1;
        q[10..12].copy_from_slice(&arcount.to_be_bytes());
        q.extend_from_slice(&[0, 0, 16, 0, 1, 0, 0, 0, 0]);
        q.extend_from_slice(&(pad as u16).to_be_bytes());
        q.resize(q.len() + pad, b'x');
        q
    }

    #[test]
    fn oversized_queries_are_dropped() {
        let r = lab();
        let q = padded_query(MAX_QUERY_LEN, true);
        assert_eq!(outcome(&r, &q, Transport::Tcp).0, Outcome::Drop(DropReason::Oversized));
        // Over 512 without EDNS: dropped over UDP, fine over TCP.
        let q = padded_query(600, false);
        assert_eq!(outcome(&r, &q, Transport::Udp).0, Outcome::Drop(DropReason::Oversized));
        assert_eq!(a_records(&ask(&r, &q, Transport::Tcp)), IPS);
        // With EDNS the same size is a query.
        let q = padded_query(600, true);
        assert_eq!(a_records(&ask(&r, &q, Transport::Udp)), IPS);
        assert_eq!(r.counters().dropped_oversized, 2);
    }

    #[test]
    fn other_opcodes_are_notimp() {
        let r = lab();
        for opcode in [OpCode::Status, OpCode::Notify, OpCode::Update] {
            let q = build_query(EC2_REGIONAL, RecordType::A, |m| m.metadata.op_code = opcode);
            let (o, out) = outcome(&r, &q, Transport::Udp);
            assert_eq!(o, Outcome::Respond);
            assert_eq!(out.len(), HEADER_LEN);
            let msg = Message::from_vec(&out).unwrap();
            assert_eq!(msg.metadata.response_code, ResponseCode::NotImp);
            assert_eq!(msg.metadata.op_code, opcode);
        }
        assert_eq!(r.counters().notimp, 3);
    }

    #[test]
    fn question_count_other_than_one_is_formerr() {
        let r = lab();
        let mut none = query(EC2_REGIONAL, RecordType::A);
        none[4..6].copy_from_slice(&0u16.to_be_bytes());
        none.truncate(HEADER_LEN);
        assert_eq!(rcode_of(&r, &none), ResponseCode::FormErr);
        let two = build_query(EC2_REGIONAL, RecordType::A, |m| {
            m.add_query(HQuery::query(Name::from_ascii("example.com").unwrap(), RecordType::A));
        });
        assert_eq!(rcode_of(&r, &two), ResponseCode::FormErr);
        assert_eq!(r.counters().formerr, 2);
    }

    #[test]
    fn truncated_question_is_formerr() {
        let r = lab();
        let q = query(EC2_REGIONAL, RecordType::A);
        for len in HEADER_LEN..q.len() {
            assert_eq!(rcode_of(&r, &q[..len]), ResponseCode::FormErr, "len {len}");
        }
    }

    #[test]
    fn compression_pointer_in_the_question_is_dropped() {
        let r = lab();
        // Points at itself: a loop.
        let mut q = query(EC2_REGIONAL, RecordType::A);
        q.truncate(HEADER_LEN);
        q.extend_from_slice(&[0xC0, 0x0C, 0, 1, 0, 1]);
        assert_eq!(outcome(&r, &q, Transport::Udp).0, Outcome::Drop(DropReason::Malformed));
        // A label, then a pointer back to it.
        let mut q2 = q[..HEADER_LEN].to_vec();
        q2.extend_from_slice(&[3, b'e', b'c', b'2', 0xC0, 0x0C, 0, 1, 0, 1]);
        assert_eq!(outcome(&r, &q2, Transport::Udp).0, Outcome::Drop(DropReason::Malformed));
        assert_eq!(r.counters().dropped_malformed, 2);
    }

    #[test]
    fn pointer_loops_elsewhere_are_skipped_not_followed() {
        let r = lab();
        let mut q = query(EC2_REGIONAL, RecordType::A);
        let loop_at = q.len() as u16;
        q[10..12].copy_from_slice(&1u16.to_be_bytes());
        q.extend_from_slice(&(0xC000 | loop_at).to_be_bytes());
        q.extend_from_slice(&[0, 16, 0, 1, 0, 0, 0, 0, 0, 0]);
        assert_eq!(a_records(&ask(&r, &q, Transport::Udp)), IPS);
    }

    #[test]
    fn bad_labels_and_opt_misuse_are_formerr() {
        let r = lab();
        let header = &query(EC2_REGIONAL, RecordType::A)[..HEADER_LEN];
        // Extended label type 0x40.
        let mut q = header.to_vec();
        q.extend_from_slice(&[0x41, b'x', 0, 0, 1, 0, 1]);
        assert_eq!(rcode_of(&r, &q), ResponseCode::FormErr);
        // A name longer than 255 bytes.
        let mut q = header.to_vec();
        for _ in 0..5 {
            q.push(63);
            q.extend_from_slice(&[b'a'; 63]);
        }
        q.extend_from_slice(&[0, 0, 1, 0, 1]);
        assert_eq!(rcode_of(&r, &q), ResponseCode::FormErr);
        // Two OPT records.
        let mut q = build_query(EC2_REGIONAL, RecordType::A, edns(1232));
        q[10..12].copy_from_slice(&2u16.to_be_bytes());
        q.extend_from_slice(&[0, 0, 41, 4, 208, 0, 0, 0, 0, 0, 0]);
        assert_eq!(rcode_of(&r, &q), ResponseCode::FormErr);
        // An OPT with a non-root owner.
        let mut q = query(EC2_REGIONAL, RecordType::A);
        q[10..12].copy_from_slice(&1u16.to_be_bytes());
        q.extend_from_slice(&[1, b'x', 0, 0, 41, 4, 208, 0, 0, 0, 0, 0, 0]);
        assert_eq!(rcode_of(&r, &q), ResponseCode::FormErr);
        // An additional record whose RDLENGTH lies.
        let mut q = padded_query(10, false);
        q.truncate(q.len() - 1);
        assert_eq!(rcode_of(&r, &q), ResponseCode::FormErr);
    }

    #[test]
    fn a_255_byte_name_is_accepted() {
        // 3 x 63-byte labels + one 61-byte label = 4 * 64 - 2 + 1 = 255 bytes.
        let name = ["a".repeat(63), "b".repeat(63), "c".repeat(63), "d".repeat(61)].join(".");
        let q = query(&name, RecordType::A);
        assert_eq!(q.len(), HEADER_LEN + 255 + 4);
        assert_eq!(outcome(&lab(), &q, Transport::Udp).0, Outcome::Forward);
    }

    // ---------------------------------------------------------------
    // Zone::build
    // ---------------------------------------------------------------

    fn entry(name: &str) -> ZoneEntry {
        ZoneEntry { name: name.into(), ips: vec![IPS[0]], private_dns: true }
    }

    fn spec(apexes: &[&str], entries: Vec<ZoneEntry>) -> ZoneSpec {
        ZoneSpec {
            apexes: apexes.iter().map(|a| ZoneApex { name: a.to_string(), private_dns: true }).collect(),
            entries,
        }
    }

    #[test]
    fn build_rejects_bad_specs() {
        let cases = [
            (spec(&["a.test"], vec![entry("b.test")]), "OutsideZone"),
            (spec(&["a.test"], vec![entry("x.a.test"), entry("X.a.test.")]), "DuplicateName"),
            (spec(&["a.test"], vec![entry("*.a.test"), entry("*.a.test")]), "DuplicateName"),
            (spec(&["a.test"], vec![entry("x..a.test")]), "InvalidName"),
            (spec(&["a.test"], vec![entry("x.*.a.test")]), "InvalidName"),
            (spec(&["a.test"], vec![entry("sp ace.a.test")]), "InvalidName"),
            (spec(&["*.a.test"], vec![]), "InvalidName"),
            (spec(&["."], vec![]), "InvalidName"),
            (spec(&["a.test"], vec![entry(&format!("{}.a.test", "x".repeat(64)))]), "InvalidName"),
        ];
        for (s, want) in cases {
            let err = Zone::build(&s).unwrap_err();
            assert!(format!("{err:?}").starts_with(want), "{err:?} for {s:?}");
        }
        let mut s = spec(&["a.test"], vec![entry("x.a.test")]);
        s.entries[0].ips.clear();
        assert_eq!(Zone::build(&s).unwrap_err(), DnsError::NoAddresses { name: "x.a.test".into() });
        s.entries[0].ips = vec![IPS[0]; MAX_IPS_PER_NAME + 1];
        assert!(matches!(Zone::build(&s), Err(DnsError::TooManyAddresses { .. })));
    }

    #[test]
    fn build_skips_entries_and_apexes_without_private_dns() {
        let mut s = spec(&["a.test"], vec![entry("x.a.test")]);
        s.apexes[0].private_dns = false;
        // The entry would now be outside every zone, but it is off too.
        s.entries[0].private_dns = false;
        assert!(Zone::build(&s).unwrap().is_empty());
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

    // ---------------------------------------------------------------
    // Fuzz: 100,000 random and mutated queries
    // ---------------------------------------------------------------

    /// xorshift64*: deterministic, good enough to pick mutations.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    fn corpus() -> Vec<Vec<u8>> {
        let names = [
            EC2_REGIONAL,
            EC2_ZONAL_B,
            "ec2.us-east-1.amazonaws.com",
            "EC2.us-east-1.amazonaws.com",
            "abc.execute-api.us-east-1.amazonaws.com",
            "execute-api.us-east-1.amazonaws.com",
            "my-bucket.bucket.vpce-0a1b2c3d4e5f60718-s3s3s3s3.s3.us-east-1.vpce.amazonaws.com",
            "nope.ec2.us-east-1.amazonaws.com",
            "ssm.us-east-1.amazonaws.com",
            "example.com",
            "sixty.big.test",
            "hundred.big.test",
            "ent.big.test",
        ];
        let types = [RecordType::A, RecordType::AAAA, RecordType::ANY, RecordType::SOA, RecordType::TXT];
        let mut corpus = Vec::new();
        for name in names {
            for rtype in types {
                corpus.push(query(name, rtype));
                corpus.push(build_query(name, rtype, edns(1232)));
                corpus.push(build_query(name, rtype, edns(4096)));
            }
        }
        corpus
    }

    /// Applies one of the mutation strategies to a copy of `base`.
    fn mutate(rng: &mut Rng, base: &[u8]) -> Vec<u8> {
        let mut q = base.to_vec();
        match rng.below(8) {
            // Random bytes.
            0 => {
                let len = rng.below(600);
                q = (0..len).map(|_| rng.next() as u8).collect();
                if rng.below(2) == 0 && q.len() > 2 {
                    q[2] &= 0x07; // a query with opcode 0 most of the time
                }
            }
            // Bit flips, mostly past the QR bit so parsing goes deep.
            1 => {
                for _ in 0..=rng.below(8) {
                    let i = rng.below(q.len());
                    q[i] ^= 1 << rng.below(8);
                }
                q[2] &= 0x7F;
            }
            // Truncation.
            2 => q.truncate(rng.below(q.len() + 1)),
            // Length fields that lie: section counts, label lengths, RDLENGTH.
            3 => {
                let i = [4, 5, 6, 7, 8, 9, 10, 11, HEADER_LEN, q.len() - 2, q.len() - 1][rng.below(11)];
                q[i] = rng.next() as u8;
            }
            // Compression pointers into the question or the OPT owner, loops included.
            4 => {
                let at = HEADER_LEN + rng.below(q.len() - HEADER_LEN);
                let target = rng.below(q.len()) as u16;
                let ptr = (0xC000 | target).to_be_bytes();
                q[at] = ptr[0];
                if at + 1 < q.len() {
                    q[at + 1] = ptr[1];
                }
            }
            // Garbage appended, sometimes counted as an extra record.
            5 => {
                for _ in 0..rng.below(64) {
                    q.push(rng.next() as u8);
                }
                if rng.below(2) == 0 {
                    q[11] = q[11].wrapping_add(1);
                }
            }
            // Random opcode, flags and type.
            6 => {
                q[2] = (rng.next() as u8) & 0x7F;
                q[3] = rng.next() as u8;
                let n = q.len();
                if n >= 4 && rng.below(2) == 0 {
                    q[n - 4] = rng.next() as u8;
                    q[n - 3] = rng.next() as u8;
                }
            }
            // Unchanged.
            _ => {}
        }
        q
    }

    #[test]
    fn fuzz_100k_queries_never_panic_and_stay_bounded() {
        let lab = responder(&lab_spec(), ForwardMode::Forward);
        let big = responder(&big_spec(), ForwardMode::Refuse);
        let corpus = corpus();
        let soa_len = 2 + soa_tail().len();
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let mut out = Vec::new();
        let mut responded = 0;
        for i in 0..100_000 {
            let base = &corpus[rng.below(corpus.len())];
            let q = mutate(&mut rng, base);
            let transport = if rng.below(4) == 0 { Transport::Tcp } else { Transport::Udp };
            let (r, max_ips) = if i % 2 == 0 { (&lab, IPS.len()) } else { (&big, 100) };
            match r.handle_query(&q, transport, &mut out) {
                Outcome::Respond => {
                    responded += 1;
                    let msg =
                        Message::from_vec(&out).unwrap_or_else(|e| panic!("unparseable response {e}: query {q:02x?}"));
                    assert_eq!(msg.metadata.message_type, MessageType::Response);
                    assert_eq!(out[..2], q[..2], "id echoed");
                    assert!(msg.queries.len() <= 1);
                    // Additive bound: the question (at most the query) plus one RRset or one SOA, plus OPT.
                    let extra = (max_ips * A_RECORD_LEN).max(soa_len) + OPT_RECORD_LEN;
                    assert!(out.len() <= q.len() + extra, "{} > {} + {extra}", out.len(), q.len());
                    if transport == Transport::Udp {
                        assert!(out.len() <= MAX_UDP_RESPONSE);
                        if msg.edns.is_none() {
                            assert!(out.len() <= PLAIN_UDP_LIMIT);
                        }
                        // The realistic zone (3 AZs) never amplifies more than 4x.
                        if i % 2 == 0 {
                            assert!(out.len() <= 4 * q.len(), "{} > 4 x {}", out.len(), q.len());
                        }
                    }
                }
                Outcome::Forward | Outcome::Drop(_) => assert!(out.is_empty()),
            }
        }
        let c = lab.counters();
        let b = big.counters();
        assert_eq!(c.queries + b.queries, 100_000);
        // The mutations reach every path, not just the header checks.
        for (what, n) in [
            ("answered", c.answered),
            ("nodata", c.nodata),
            ("nxdomain", c.nxdomain),
            ("formerr", c.formerr),
            ("notimp", c.notimp),
            ("forwarded", c.forwarded),
            ("truncated", b.truncated),
            ("refused", b.refused),
            ("too short", c.dropped_too_short),
            ("not query", c.dropped_not_query),
            ("malformed", c.dropped_malformed),
        ] {
            assert!(n > 50, "{what}: {n}");
        }
        assert!(responded > 50_000, "{responded}");
    }

    // ---------------------------------------------------------------
    // Forward cache
    // ---------------------------------------------------------------

    fn upstream_answer(q: &[u8], ttl: u32, edit: impl FnOnce(&mut Message)) -> Vec<u8> {
        use hickory_proto::rr::{rdata::A, Record};
        let query_msg = Message::from_vec(q).unwrap();
        let mut msg = Message::response(query_msg.metadata.id, OpCode::Query);
        msg.metadata.recursion_desired = query_msg.metadata.recursion_desired;
        msg.metadata.recursion_available = true;
        msg.add_query(query_msg.queries[0].clone());
        let name = query_msg.queries[0].name().clone();
        msg.add_answer(Record::from_rdata(name.clone(), ttl, RData::A(A::new(93, 184, 215, 14))));
        msg.add_answer(Record::from_rdata(name, ttl + 100, RData::A(A::new(93, 184, 215, 15))));
        msg.edns = query_msg.edns.clone();
        edit(&mut msg);
        msg.to_vec().unwrap()
    }

    #[test]
    fn cache_hit_rewrites_id_case_rd_and_ttl() {
        let t0 = Instant::now();
        let mut cache = ForwardCache::new(16);
        let q = query("www.example.com", RecordType::A);
        cache.insert(t0, &q, &upstream_answer(&q, 300, |_| {}));
        assert_eq!(cache.len(), 1);

        let q2 = build_query("WWW.Example.COM", RecordType::A, |m| {
            m.metadata.id = 0x7777;
            m.metadata.recursion_desired = false;
        });
        let mut out = Vec::new();
        assert!(cache.get(t0 + Duration::from_secs(100), &q2, Transport::Udp, &mut out));
        let msg = Message::from_vec(&out).unwrap();
        assert_eq!(msg.metadata.id, 0x7777);
        assert!(!msg.metadata.recursion_desired);
        assert_eq!(msg.queries[0].name().to_ascii(), "WWW.Example.COM.");
        let ttls: Vec<u32> = msg.answers.iter().map(|r| r.ttl).collect();
        assert_eq!(ttls, [200, 300]);
        // Expired after the smallest TTL.
        assert!(!cache.get(t0 + Duration::from_secs(300), &q2, Transport::Udp, &mut out));
        assert!(out.is_empty());
        // Another type is another key.
        let aaaa = query("www.example.com", RecordType::AAAA);
        assert!(!cache.get(t0, &aaaa, Transport::Udp, &mut out));
    }

    #[test]
    fn cache_keeps_only_clean_answers() {
        let t0 = Instant::now();
        let mut cache = ForwardCache::new(16);
        let q = query("www.example.com", RecordType::A);
        let bad = [
            upstream_answer(&q, 300, |m| m.metadata.truncation = true),
            upstream_answer(&q, 300, |m| m.metadata.response_code = ResponseCode::ServFail),
            upstream_answer(&q, 300, |m| m.metadata.id ^= 1),
            upstream_answer(&q, 300, |m| m.answers.clear()),
            upstream_answer(&q, 0, |_| {}),
            upstream_answer(&q, 300, |m| {
                m.queries[0].set_name(Name::from_ascii("www.example.org").unwrap());
            }),
            q.clone(),
            vec![0; 5],
        ];
        for response in &bad {
            cache.insert(t0, &q, response);
        }
        assert!(cache.is_empty());
        // TTLs are capped.
        cache.insert(t0, &q, &upstream_answer(&q, 86_400, |_| {}));
        let mut out = Vec::new();
        let later = t0 + Duration::from_secs(u64::from(MAX_CACHE_TTL));
        assert!(!cache.get(later, &q, Transport::Udp, &mut out));
    }

    #[test]
    fn cache_separates_edns_and_respects_udp_size() {
        let t0 = Instant::now();
        let mut cache = ForwardCache::new(16);
        let with_edns = build_query("www.example.com", RecordType::A, edns(1232));
        cache.insert(t0, &with_edns, &upstream_answer(&with_edns, 300, |_| {}));
        let plain = query("www.example.com", RecordType::A);
        let mut out = Vec::new();
        assert!(!cache.get(t0, &plain, Transport::Udp, &mut out));
        assert!(cache.get(t0, &with_edns, Transport::Udp, &mut out));
        assert!(Message::from_vec(&out).unwrap().edns.is_some());
    }

    #[test]
    fn cache_is_bounded() {
        let t0 = Instant::now();
        let mut cache = ForwardCache::new(8);
        for i in 0..100 {
            let q = query(&format!("host{i}.example.com"), RecordType::A);
            cache.insert(t0, &q, &upstream_answer(&q, 300, |_| {}));
            assert!(cache.len() <= 8);
        }
        let mut out = Vec::new();
        let last = query("host99.example.com", RecordType::A);
        assert!(cache.get(t0, &last, Transport::Tcp, &mut out));
        assert!(ForwardCache::new(0).is_empty());
    }

    #[test]
    fn cache_survives_garbage() {
        let t0 = Instant::now();
        let mut cache = ForwardCache::new(64);
        let corpus = corpus();
        let mut rng = Rng(42);
        let mut out = Vec::new();
        for _ in 0..20_000 {
            let base = &corpus[rng.below(corpus.len())];
            let q = if rng.below(2) == 0 { base.clone() } else { mutate(&mut rng, base) };
            let good = match Message::from_vec(base) {
                Ok(m) if !m.queries.is_empty() => upstream_answer(base, 300, |_| {}),
                _ => base.clone(),
            };
            let response = mutate(&mut rng, &good);
            cache.insert(t0, &q, &response);
            if cache.get(t0, &q, Transport::Udp, &mut out) {
                assert!(out.len() >= HEADER_LEN);
                assert_eq!(out[..2], q[..2]);
            }
            assert!(cache.len() <= 64);
        }
    }
}
