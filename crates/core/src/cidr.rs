//! IPv4 CIDR blocks: the one type for a VPC's, a subnet's and a rule's range.
//!
//! AWS reserves five addresses in every subnet: the network address, +1 (the
//! VPC router), +2 (the Amazon-provided DNS), +3 (reserved for future use)
//! and the broadcast address. [`Cidr::is_reserved`] and [`Cidr::assignable`]
//! follow that.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use serde::Deserialize;

/// An IPv4 CIDR block with its host bits cleared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    base: u32,
    prefix: u8,
}

impl Cidr {
    /// `0.0.0.0/0`, the whole IPv4 space.
    pub const ANY: Cidr = Cidr { base: 0, prefix: 0 };

    /// A /32 block holding one address.
    pub fn host(addr: Ipv4Addr) -> Cidr {
        Cidr { base: u32::from(addr), prefix: 32 }
    }
    /// Builds a CIDR, refusing host bits set below the prefix.
    pub fn new(addr: Ipv4Addr, prefix: u8) -> Option<Cidr> {
        if prefix > 32 {
            return None;
        }
        let c = Cidr { base: u32::from(addr), prefix };
        (c.base & !c.mask() == 0).then_some(c)
    }
    /// The netmask as an integer.
    pub fn mask(&self) -> u32 {
        if self.prefix == 0 {
            0
        } else {
            u32::MAX << (32 - self.prefix)
        }
    }
    /// Prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }
    /// The network address.
    pub fn base(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.base)
    }
    /// Number of addresses in the block.
    pub fn size(&self) -> u64 {
        1u64 << (32 - self.prefix)
    }
    /// Whether `ip` is inside.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == self.base
    }
    /// Whether `other` lies wholly inside.
    pub fn contains_cidr(&self, other: &Cidr) -> bool {
        other.prefix >= self.prefix && self.contains(other.base())
    }
    /// Whether the blocks share an address.
    pub fn overlaps(&self, other: &Cidr) -> bool {
        self.contains_cidr(other) || other.contains_cidr(self)
    }
    /// The `n`th address of the block, if it has one.
    pub fn nth(&self, n: u64) -> Option<Ipv4Addr> {
        (n < self.size()).then(|| Ipv4Addr::from(self.base + n as u32))
    }
    /// One of the five addresses AWS reserves: network, +1 (router), +2 (DNS), +3, broadcast.
    pub fn is_reserved(&self, ip: Ipv4Addr) -> bool {
        let off = u64::from(u32::from(ip).wrapping_sub(self.base));
        off <= 3 || off == self.size() - 1
    }
    /// Addresses an ENI may take, lowest first.
    pub fn assignable(&self) -> impl Iterator<Item = Ipv4Addr> + '_ {
        (4..self.size().saturating_sub(1)).filter_map(|n| self.nth(n))
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.base(), self.prefix)
    }
}

impl FromStr for Cidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Cidr, String> {
        let (a, p) = s.split_once('/').ok_or_else(|| format!("{s:?} is not a CIDR like 10.0.0.0/16"))?;
        let addr: Ipv4Addr = a.parse().map_err(|_| format!("{a:?} is not an IPv4 address"))?;
        let prefix: u8 =
            p.parse().ok().filter(|&p| p <= 32).ok_or_else(|| format!("{p:?} is not a prefix length 0-32"))?;
        Cidr::new(addr, prefix).ok_or_else(|| {
            format!(
                "{s} has host bits set (did you mean {}/{prefix}?)",
                Ipv4Addr::from(u32::from(addr) & (u32::MAX.checked_shl(32 - prefix as u32).unwrap_or(0)))
            )
        })
    }
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Cidr, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl serde::Serialize for Cidr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(s: &str) -> Cidr {
        s.parse().unwrap()
    }

    #[test]
    fn cidr_parse_and_contains() {
        let c = cidr("10.0.1.0/24");
        assert!(c.contains("10.0.1.200".parse().unwrap()));
        assert!(!c.contains("10.0.2.1".parse().unwrap()));
        assert!(cidr("10.0.0.0/16").contains_cidr(&c));
        assert!(!c.contains_cidr(&cidr("10.0.0.0/16")));
        assert!(c.overlaps(&cidr("10.0.0.0/16")));
        assert!("10.0.1.1/24".parse::<Cidr>().unwrap_err().contains("did you mean 10.0.1.0/24"));
        assert!("10.0.1.0/33".parse::<Cidr>().is_err());
        assert_eq!(cidr("0.0.0.0/0").size(), 1 << 32);
    }

    #[test]
    fn text_round_trips_and_bad_blocks_are_refused() {
        for s in ["10.0.0.0/16", "0.0.0.0/0", "10.0.1.49/32", "192.0.2.0/24"] {
            assert_eq!(cidr(s).to_string(), s);
        }
        for s in ["10.0.0.1/16", "10.0.0.0/33", "10.0.0.0", "10.0.0/8", "x/8", "10.0.0.0/-1"] {
            assert!(s.parse::<Cidr>().is_err(), "{s} should be rejected");
        }
        assert_eq!(Cidr::ANY, cidr("0.0.0.0/0"));
        assert!(Cidr::ANY.contains(Ipv4Addr::BROADCAST));
        assert_eq!(Cidr::host(Ipv4Addr::new(10, 0, 1, 49)), cidr("10.0.1.49/32"));
        assert_eq!(cidr("10.0.0.0/16").mask(), 0xffff_0000);
        assert_eq!(Cidr::ANY.mask(), 0);
    }

    #[test]
    fn five_reserved_addresses() {
        let c = cidr("10.0.1.0/24");
        let reserved: Vec<_> = (0..256).filter_map(|n| c.nth(n)).filter(|ip| c.is_reserved(*ip)).collect();
        let want: Vec<Ipv4Addr> =
            ["10.0.1.0", "10.0.1.1", "10.0.1.2", "10.0.1.3", "10.0.1.255"].iter().map(|s| s.parse().unwrap()).collect();
        assert_eq!(reserved, want);
        assert_eq!(c.assignable().next(), Some("10.0.1.4".parse().unwrap()));
        assert_eq!(c.assignable().count(), 251);
        assert_eq!(cidr("10.0.1.0/28").assignable().count(), 11);
    }
}
