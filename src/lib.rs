//! privlink: a working copy of an AWS interface VPC endpoint (PrivateLink ENI) on Linux.
//!
//! Sans-IO core: [`config`], [`model`], [`catalog`], [`packet`], [`pipeline`], [`dns`], [`policy`], [`shaper`].
//! Edges: [`netns`], [`tun`], [`stack`], [`relay`], [`store`], [`daemon`], [`demo`], [`probe`].

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

pub mod catalog;
pub mod config;
pub mod daemon;
pub mod demo;
pub mod dns;
pub mod filter;
pub mod flowlog;
pub mod guard;
pub mod model;
pub mod netns;
pub mod packet;
pub mod pipeline;
pub mod policy;
pub mod probe;
pub mod relay;
pub mod resolver;
pub mod shaper;
pub mod stack;
pub mod store;
pub mod tun;
