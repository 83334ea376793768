//! AFL entry point of the `config` target (see the crate doc): persistent
//! mode, many inputs per process, the fixtures built before the fork server
//! starts.

fn main() {
    privlink_fuzz::warm_up();
    afl::fuzz!(|data: &[u8]| privlink_fuzz::config(data));
}
