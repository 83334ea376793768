//! privlink: a working copy of an AWS interface VPC endpoint (PrivateLink ENI) on Linux.
//!
//! Sans-IO core: [`config`], [`model`], [`catalog`], [`packet`], [`pipeline`], [`dns`], [`policy`], [`shaper`].
//! Edges: [`netns`], [`tun`], [`stack`], [`relay`], [`store`], [`daemon`], [`demo`], [`probe`].

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
