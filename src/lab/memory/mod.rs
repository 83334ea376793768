//! The data path in memory: a link of packet queues in place of the TUN, an
//! in-memory network in place of the host's sockets (services, and upstream
//! DNS resolvers), and a lab that drives a client TCP stack through the
//! whole of it with its own clock. Tests use it to exercise the pipeline,
//! the guards, the VPC resolver (UDP and TCP) and the relay as a normal
//! user, with no root and no namespace.

pub mod dns;
pub mod https;
pub mod lab;
pub mod link;
pub mod net;
