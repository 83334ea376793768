//! The OPT record privlink writes (RFC 6891): in every response to a query
//! that carried one, errors included (section 6.1.1: "If an OPT record is
//! present in a received request, compliant responders MUST include an OPT
//! record in their respective responses"), and in every query it forwards
//! for such a client.
//!
//! Always ours, never a copy of the client's or the upstream's: an OPT
//! belongs to one hop ("OPT RRs MUST NOT be cached, forwarded, or stored"),
//! so its options stay with the hop that sent them. A client's DNS cookie
//! (RFC 7873 section 5.3), padding or client subnet never reach the upstream
//! nor another client. Ours has no options, version 0, the UDP payload size
//! given, and the DO bit of the query it answers or forwards (RFC 3225
//! section 3: the DO bit is copied).

use super::wire::{EDNS_DO, TYPE_OPT};

/// Appends an OPT record: `udp_size`, the upper 8 bits of the rcode (`ext_rcode`), DO.
pub(super) fn emit_opt(out: &mut Vec<u8>, udp_size: u16, ext_rcode: u8, dnssec_ok: bool) {
    out.push(0); // root owner
    out.extend_from_slice(&TYPE_OPT.to_be_bytes());
    out.extend_from_slice(&udp_size.to_be_bytes());
    let mut ttl = u32::from(ext_rcode) << 24;
    if dnssec_ok {
        ttl |= EDNS_DO;
    }
    out.extend_from_slice(&ttl.to_be_bytes());
    out.extend_from_slice(&0u16.to_be_bytes());
}
