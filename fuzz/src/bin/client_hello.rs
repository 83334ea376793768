//! AFL entry point of the `client_hello` target (see the crate doc): persistent
//! mode, many inputs per process, the fixture built once.

fn main() {
    afl::fuzz!(|data: &[u8]| privlink_fuzz::client_hello(data));
}
