//! AFL entry point of the `dns_responder` target (see the crate doc): persistent
//! mode, many inputs per process, the fixture built once.

fn main() {
    afl::fuzz!(|data: &[u8]| privlink_fuzz::dns_responder(data));
}
