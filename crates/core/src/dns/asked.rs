//! [`AskedNames`]: which names a resolver was asked, how often, and what it
//! answered, for `privlink run --summary`.
//!
//! Bounded whatever the clients ask: the first [`MAX_NAMES`] distinct names
//! are kept (a name as the responder lowercased it, in wire format), each
//! with at most [`MAX_ANSWERS_PER_NAME`] distinct (type, answer) pairs and at
//! most [`MAX_IPS_KEPT`] addresses of an answer; queries for names past them
//! are counted, not kept. Noting a query scans the kept names (no
//! allocation unless the name or its answer is new and there is room).
//!
//! Names are written in presentation format with RFC 1035 escapes (`\.`
//! inside a label, `\DDD` for a byte that is not printable ASCII): a name is
//! whatever a client put on the wire, and it is printed to a terminal.

use std::fmt;
use std::net::Ipv4Addr;

use crate::first_seen::FirstSeen;

/// Distinct names kept.
pub const MAX_NAMES: usize = 64;
/// Distinct (type, answer) pairs kept per name.
pub const MAX_ANSWERS_PER_NAME: usize = 4;
/// Addresses kept of one answer (an endpoint's name has one per AZ, at most 6).
pub const MAX_IPS_KEPT: usize = 8;

/// What the responder did with a query, as it decided it (borrowed from the zone).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answered<'z> {
    /// NOERROR with these A records.
    Addresses(&'z [[u8; 4]]),
    /// NOERROR with the apex SOA.
    Soa,
    /// NOERROR without records.
    NoData,
    /// NXDOMAIN.
    NxDomain,
    /// REFUSED (no endpoint in privacy mode, a class other than IN, a zone transfer).
    Refused,
    /// BADVERS (EDNS version other than 0).
    BadVers,
    /// Handed on to an upstream resolver.
    Forwarded,
}

/// An answer as kept: [`Answered`] owned, its addresses cut at [`MAX_IPS_KEPT`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameAnswer {
    /// NOERROR with A records: the first ones, and how many there were.
    Addresses {
        /// The first [`MAX_IPS_KEPT`].
        ips: Vec<Ipv4Addr>,
        /// How many the answer had.
        total: usize,
    },
    /// NOERROR with the apex SOA.
    Soa,
    /// NOERROR without records.
    NoData,
    /// NXDOMAIN.
    NxDomain,
    /// REFUSED.
    Refused,
    /// BADVERS.
    BadVers,
    /// Handed on to an upstream resolver (its answer is not kept).
    Forwarded,
}

impl NameAnswer {
    fn is(&self, a: &Answered<'_>) -> bool {
        match (self, a) {
            (NameAnswer::Addresses { ips, total }, Answered::Addresses(theirs)) => {
                *total == theirs.len() && ips.iter().zip(theirs.iter()).all(|(ip, t)| ip.octets() == *t)
            }
            (NameAnswer::Soa, Answered::Soa)
            | (NameAnswer::NoData, Answered::NoData)
            | (NameAnswer::NxDomain, Answered::NxDomain)
            | (NameAnswer::Refused, Answered::Refused)
            | (NameAnswer::BadVers, Answered::BadVers)
            | (NameAnswer::Forwarded, Answered::Forwarded) => true,
            _ => false,
        }
    }

    fn of(a: &Answered<'_>) -> NameAnswer {
        match a {
            Answered::Addresses(ips) => NameAnswer::Addresses {
                ips: ips.iter().take(MAX_IPS_KEPT).map(|&o| Ipv4Addr::from(o)).collect(),
                total: ips.len(),
            },
            Answered::Soa => NameAnswer::Soa,
            Answered::NoData => NameAnswer::NoData,
            Answered::NxDomain => NameAnswer::NxDomain,
            Answered::Refused => NameAnswer::Refused,
            Answered::BadVers => NameAnswer::BadVers,
            Answered::Forwarded => NameAnswer::Forwarded,
        }
    }
}

impl fmt::Display for NameAnswer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NameAnswer::Addresses { ips, total } => {
                for (i, ip) in ips.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{ip}")?;
                }
                if *total > ips.len() {
                    write!(f, ",+{} more", total - ips.len())?;
                }
                Ok(())
            }
            NameAnswer::Soa => f.write_str("SOA"),
            NameAnswer::NoData => f.write_str("NODATA"),
            NameAnswer::NxDomain => f.write_str("NXDOMAIN"),
            NameAnswer::Refused => f.write_str("REFUSED"),
            NameAnswer::BadVers => f.write_str("BADVERS"),
            NameAnswer::Forwarded => f.write_str("forwarded"),
        }
    }
}

/// A record type by its mnemonic, else `TYPEn` (RFC 3597).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QType(pub u16);

impl fmt::Display for QType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self.0 {
            1 => "A",
            2 => "NS",
            5 => "CNAME",
            6 => "SOA",
            12 => "PTR",
            15 => "MX",
            16 => "TXT",
            28 => "AAAA",
            33 => "SRV",
            64 => "SVCB",
            65 => "HTTPS",
            251 => "IXFR",
            252 => "AXFR",
            255 => "ANY",
            n => return write!(f, "TYPE{n}"),
        };
        f.write_str(name)
    }
}

/// One name's queries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NameStats {
    /// Queries for it, whatever their type and answer.
    pub asked: u64,
    /// Its answers by type, with how many queries each.
    pub answers: FirstSeen<(QType, NameAnswer), u64, MAX_ANSWERS_PER_NAME>,
}

impl NameStats {
    fn add(&mut self, o: &NameStats) {
        self.asked += o.asked;
        self.answers.add(&o.answers, |mine, theirs| *mine += theirs, |n| *n);
    }
}

/// A name in wire format, written in presentation format (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WireName<'a>(pub &'a [u8]);

impl fmt::Display for WireName<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.0;
        let mut first = true;
        while let Some((&len, tail)) = rest.split_first() {
            let len = usize::from(len);
            if len == 0 || len > tail.len() {
                break;
            }
            if !first {
                f.write_str(".")?;
            }
            first = false;
            for &b in &tail[..len] {
                match b {
                    b'.' | b'\\' => write!(f, "\\{}", b as char)?,
                    0x21..=0x7e => write!(f, "{}", b as char)?,
                    _ => write!(f, "\\{b:03}")?,
                }
            }
            rest = &tail[len..];
        }
        if first {
            f.write_str(".")?;
        }
        Ok(())
    }
}

/// The names a resolver was asked (see the module doc).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AskedNames(FirstSeen<Box<[u8]>, NameStats, MAX_NAMES>);

impl AskedNames {
    /// Notes one query for `name` (lowercase wire format, as the responder
    /// lowercased it), of type `qtype`, answered `answer`.
    pub fn note(&mut self, name: &[u8], qtype: u16, answer: Answered<'_>) {
        let Some(stats) = self.0.entry(|k| **k == *name, || (name.into(), NameStats::default())) else { return };
        stats.asked += 1;
        let qtype = QType(qtype);
        let kept = stats.answers.entry(|(t, a)| *t == qtype && a.is(&answer), || ((qtype, NameAnswer::of(&answer)), 0));
        if let Some(n) = kept {
            *n += 1;
        }
    }

    /// The names kept, in the order first asked.
    pub fn iter(&self) -> impl Iterator<Item = (WireName<'_>, &NameStats)> {
        self.0.iter().map(|(k, v)| (WireName(k), v))
    }

    /// How many distinct names are kept.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether no name was asked.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty() && self.0.past_cap() == 0
    }

    /// Queries for names past the first [`MAX_NAMES`], not kept.
    pub fn queries_past_cap(&self) -> u64 {
        self.0.past_cap()
    }

    /// Adds another resolver's (another TUN queue's).
    pub fn add(&mut self, o: &AskedNames) {
        self.0.add(&o.0, NameStats::add, |s| s.asked);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(name: &str) -> Vec<u8> {
        super::super::name::name_to_wire(name).unwrap()
    }

    const IPS: [[u8; 4]; 2] = [[10, 0, 1, 37], [10, 0, 2, 37]];

    fn line(names: &AskedNames, i: usize) -> String {
        let (name, s) = names.iter().nth(i).unwrap();
        let answers: Vec<String> = s.answers.iter().map(|((t, a), n)| format!("{t} {a} ({n})")).collect();
        format!("{name}: {} {}", s.asked, answers.join("; "))
    }

    #[test]
    fn each_name_keeps_its_count_and_its_answers_by_type() {
        let mut names = AskedNames::default();
        let ec2 = wire("ec2.us-east-1.amazonaws.com");
        let sts = wire("sts.us-east-1.amazonaws.com");
        names.note(&ec2, 1, Answered::Addresses(&IPS));
        names.note(&ec2, 28, Answered::NoData);
        names.note(&sts, 1, Answered::Refused);
        names.note(&ec2, 1, Answered::Addresses(&IPS));
        // The zone changed: another answer to the same question is another pair.
        names.note(&ec2, 1, Answered::Addresses(&IPS[..1]));
        assert_eq!(names.len(), 2);
        assert_eq!(
            line(&names, 0),
            "ec2.us-east-1.amazonaws.com: 4 A 10.0.1.37,10.0.2.37 (2); AAAA NODATA (1); A 10.0.1.37 (1)"
        );
        assert_eq!(line(&names, 1), "sts.us-east-1.amazonaws.com: 1 A REFUSED (1)");
        assert_eq!(names.queries_past_cap(), 0);
    }

    #[test]
    fn a_million_distinct_names_keep_the_first_64_and_count_the_rest() {
        let mut names = AskedNames::default();
        let mut buf = Vec::new();
        for i in 0..1_000_000u32 {
            buf.clear();
            let label = format!("n{i}");
            buf.push(label.len() as u8);
            buf.extend_from_slice(label.as_bytes());
            buf.extend_from_slice(&wire("example.com"));
            names.note(&buf, 1, Answered::Refused);
        }
        assert_eq!(names.len(), MAX_NAMES);
        assert_eq!(names.queries_past_cap(), 1_000_000 - MAX_NAMES as u64);
        let listed: Vec<String> = names.iter().map(|(n, _)| n.to_string()).collect();
        assert_eq!(listed.first().map(String::as_str), Some("n0.example.com"));
        assert_eq!(listed.last().map(String::as_str), Some("n63.example.com"));
        // Asked again, a kept name still counts.
        names.note(&wire("n5.example.com"), 1, Answered::Refused);
        assert_eq!(names.iter().nth(5).unwrap().1.asked, 2);
    }

    #[test]
    fn answers_per_name_and_addresses_per_answer_are_bounded() {
        let mut names = AskedNames::default();
        let n = wire("big.example");
        for t in 1..=10u16 {
            names.note(&n, t, Answered::NoData);
        }
        let many: Vec<[u8; 4]> = (0..20u8).map(|i| [10, 0, 0, i]).collect();
        let other = wire("wide.example");
        names.note(&other, 1, Answered::Addresses(&many));
        names.note(&other, 1, Answered::Addresses(&many));
        let (_, big) = names.iter().next().unwrap();
        assert_eq!((big.asked, big.answers.len(), big.answers.past_cap()), (10, MAX_ANSWERS_PER_NAME, 6));
        assert_eq!(
            line(&names, 1),
            "wide.example: 2 A 10.0.0.0,10.0.0.1,10.0.0.2,10.0.0.3,10.0.0.4,10.0.0.5,10.0.0.6,10.0.0.7,+12 more (2)"
        );
    }

    #[test]
    fn a_hostile_name_is_escaped_for_the_terminal() {
        let name = [4, b'a', b'.', 0x1b, b'\\', 2, 0xff, b' ', 0];
        assert_eq!(WireName(&name).to_string(), "a\\.\\027\\\\.\\255\\032");
        assert_eq!(WireName(&[0]).to_string(), ".");
        assert_eq!(QType(65).to_string(), "HTTPS");
        assert_eq!(QType(999).to_string(), "TYPE999");
    }

    #[test]
    fn two_queues_add_up() {
        let (x, y, z) = (wire("x.example"), wire("y.example"), wire("z.example"));
        let mut a = AskedNames::default();
        a.note(&x, 1, Answered::Refused);
        let mut b = AskedNames::default();
        b.note(&x, 1, Answered::Refused);
        b.note(&x, 28, Answered::Refused);
        b.note(&y, 1, Answered::NxDomain);
        for i in 0..MAX_NAMES {
            let mut n = vec![1, b'a' + (i % 26) as u8, 1, b'0' + (i / 26) as u8];
            n.extend_from_slice(&z);
            a.note(&n, 1, Answered::Forwarded);
        }
        a.add(&b);
        assert_eq!(a.len(), MAX_NAMES);
        assert_eq!(line(&a, 0), "x.example: 3 A REFUSED (2); AAAA REFUSED (1)");
        assert_eq!(a.queries_past_cap(), 1 + 1, "one past a's own cap, and y's query");
    }
}
