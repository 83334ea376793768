//! The DNS message format's numbers (RFC 1035 section 4.1, RFC 6891): sizes,
//! types, classes, rcodes and header flags, and reading a 16-bit field.

/// The fixed header: id, flags, four section counts.
pub(super) const HEADER_LEN: usize = 12;
/// Longest name in wire format, root label included.
pub(super) const MAX_NAME_LEN: usize = 255;
/// An A record whose owner is a compression pointer to the question: 2+2+2+4+2+4.
pub(super) const A_RECORD_LEN: usize = 16;
/// An OPT record with no options: root, type, class, TTL, RDLENGTH.
pub(super) const OPT_RECORD_LEN: usize = 11;

pub(super) const TYPE_A: u16 = 1;
pub(super) const TYPE_SOA: u16 = 6;
pub(super) const TYPE_OPT: u16 = 41;
pub(super) const TYPE_IXFR: u16 = 251;
pub(super) const TYPE_AXFR: u16 = 252;
pub(super) const TYPE_ANY: u16 = 255;
pub(super) const CLASS_IN: u16 = 1;
pub(super) const CLASS_ANY: u16 = 255;

pub(super) const RCODE_NOERROR: u8 = 0;
pub(super) const RCODE_FORMERR: u8 = 1;
pub(super) const RCODE_SERVFAIL: u8 = 2;
pub(super) const RCODE_NXDOMAIN: u8 = 3;
pub(super) const RCODE_NOTIMP: u8 = 4;
pub(super) const RCODE_REFUSED: u8 = 5;
/// BADVERS is 16: its upper 8 bits go in the OPT TTL, its low 4 bits (0) in the header.
pub(super) const EXT_RCODE_BADVERS: u8 = 1;

pub(super) const FLAG_QR: u16 = 0x8000;
pub(super) const MASK_OPCODE: u16 = 0x7800;
pub(super) const FLAG_AA: u16 = 0x0400;
pub(super) const FLAG_TC: u16 = 0x0200;
pub(super) const FLAG_RD: u16 = 0x0100;
pub(super) const FLAG_RA: u16 = 0x0080;
pub(super) const FLAG_CD: u16 = 0x0010;
/// The DO bit of the OPT record's TTL field.
pub(super) const EDNS_DO: u32 = 0x8000;

/// The big-endian 16-bit field at `at`; the caller has checked the length.
pub(super) fn read_u16(msg: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([msg[at], msg[at + 1]])
}

/// Appends a header: id, flags, and the question, answer, authority and additional counts.
pub(super) fn emit_header(out: &mut Vec<u8>, id: u16, flags: u16, counts: [u16; 4]) {
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&flags.to_be_bytes());
    for count in counts {
        out.extend_from_slice(&count.to_be_bytes());
    }
}
