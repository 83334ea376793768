//! Lab helpers: the demo, the probe a test uses from inside a namespace.

pub mod api_client;
pub mod demo;
pub mod demo_api;
pub mod memory;
pub mod probe;
pub mod standin;
