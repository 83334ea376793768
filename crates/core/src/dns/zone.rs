//! The compiled private zones: [`Zone::build`] turns a [`ZoneSpec`] into one
//! hash map of lowercased wire-format names, and [`Zone::lookup`] walks a
//! queried name from the left, one label at a time, to its closest encloser
//! (RFC 4592): the name itself, a wildcard under an enclosing name, or an
//! NXDOMAIN under the nearest apex.
//!
//! Every name between a record and its apex is a node too (an empty
//! non-terminal, NODATA per RFC 8020), so the walk stops at the first node
//! it meets. The zone is immutable: the caller swaps a new one in whole.

use thiserror::Error;

use super::hash::FnvMap;
use super::name::name_to_wire;
use super::spec::ZoneSpec;
use super::wire::{CLASS_IN, TYPE_SOA};
use super::{MAX_IPS_PER_NAME, NEGATIVE_TTL};

/// SOA MNAME and RNAME of Route 53 private hosted zones.
const SOA_MNAME: &str = "ns-0.awsdns-00.com";
const SOA_RNAME: &str = "awsdns-hostmaster.amazon.com";
/// SOA refresh, retry, expire and minimum of a Route 53 zone.
const SOA_TIMERS: [u32; 4] = [7200, 900, 1_209_600, 86_400];

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

/// A range in [`Zone::ips`].
#[derive(Clone, Copy, Debug)]
pub(super) struct IpRange {
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

/// Where a name stands in the zone. `apex_offset` is where the apex's name
/// starts inside the queried name, for a compression pointer.
#[derive(Clone, Copy, Debug)]
pub(super) enum Lookup {
    Exists { records: Option<IpRange>, is_apex: bool, apex: usize, apex_offset: usize },
    NxDomain { apex: usize, apex_offset: usize },
    Outside,
}

impl Zone {
    /// Compiles a spec, leaving out apexes and entries whose `private_dns` is false.
    pub fn build(spec: &ZoneSpec) -> Result<Zone, DnsError> {
        let mut zone = Zone::default();
        for apex in spec.apexes.iter().filter(|a| a.private_dns) {
            let wire = name_to_wire(&apex.name).map_err(|reason| invalid(&apex.name, reason))?;
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
            let wire = name_to_wire(&entry.name).map_err(|reason| invalid(&entry.name, reason))?;
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
    pub(super) fn lookup(&self, name: &[u8]) -> Lookup {
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

    /// The addresses of a record, in answer order.
    pub(super) fn ips(&self, range: IpRange) -> &[[u8; 4]] {
        &self.ips[range.start as usize..(range.start + range.len) as usize]
    }

    /// The SOA record of an apex, after its owner name.
    pub(super) fn apex_soa(&self, apex: usize) -> &[u8] {
        &self.apexes[apex].soa_tail
    }
}

#[cfg(test)]
impl Zone {
    /// Every owner name with records, dotted and lowercased, wildcards as
    /// `*.<name>`: what the zone answers, for tests that compare it with
    /// another list.
    pub(super) fn owner_names(&self) -> Vec<String> {
        let dotted = |wire: &[u8]| {
            let mut labels = Vec::new();
            let mut off = 0;
            while wire[off] != 0 {
                let len = usize::from(wire[off]);
                labels.push(String::from_utf8_lossy(&wire[off + 1..off + 1 + len]).into_owned());
                off += 1 + len;
            }
            labels.join(".")
        };
        let mut names = Vec::new();
        for (wire, node) in &self.nodes {
            if node.records.is_some() {
                names.push(dotted(wire));
            }
            if node.wildcard.is_some() {
                names.push(format!("*.{}", dotted(wire)));
            }
        }
        names.sort();
        names
    }
}

/// A [`DnsError::InvalidName`] for `name`.
fn invalid(name: &str, reason: &'static str) -> DnsError {
    DnsError::InvalidName { name: name.to_string(), reason }
}

/// The SOA record of a Route 53 private zone, after the owner name.
pub(super) fn soa_tail() -> Vec<u8> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::testkit::*;
    use crate::dns::*;

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
    fn empty_non_terminal_is_nodata() {
        let r = responder(&big_spec(), ForwardMode::Forward);
        let msg = ask_udp(&r, "ent.big.test", RecordType::A);
        assert_eq!(msg.metadata.response_code, ResponseCode::NoError);
        assert_soa_authority(&msg, "big.test");
        let msg = ask_udp(&r, "other.ent.big.test", RecordType::A);
        assert_eq!(msg.metadata.response_code, ResponseCode::NXDomain);
    }
}
