//! privlink's sans-IO core (map written below, in the layout commit's follow-up).

#[macro_export]
/// Gives a struct of `u64` counters an `add` that sums another's into it
/// (another queue's, at exit). The destructuring is exhaustive, so a new
/// field does not compile until it is listed here too.
macro_rules! counters_add {
    ($t:ident { $($f:ident),+ $(,)? }) => {
        impl $t {
            /// Adds `o`'s counts (another TUN queue's) to these.
            pub fn add(&mut self, o: &$t) {
                let $t { $($f),+ } = o;
                $(self.$f += *$f;)+
            }
        }
    };
}

pub mod allocation;
pub mod catalog;
pub mod cidr;
pub mod config;
pub mod dns;
pub mod filter;
pub mod flow;
pub mod flowlog;
pub mod model;
pub mod packet;
pub mod pipeline;
pub mod policy;
pub mod shaper;
