//! The in-memory network the stack's upstream connections go to: services
//! listen on an address; a connect to an address nobody listens on is
//! refused at once, as a closed port on loopback is.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use privlink_core::flow::FlowKey;
use privlink_core::model::Upstream;
use tokio::sync::mpsc;

use crate::edge::pipe::{pipe, MemoryPeer, MemoryStream};
use crate::edge::upstream::{Connected, Connector};

/// Connections accepted per address, waiting for the test to take them.
#[derive(Default)]
struct Listeners(HashMap<String, VecDeque<MemoryPeer>>);

/// The services' side of the in-memory network.
#[derive(Clone, Default)]
pub struct MemoryNet(Arc<Mutex<Listeners>>);

impl MemoryNet {
    /// Listens on `addr` (`host:port`, as an endpoint's upstream says it).
    pub fn listen(&self, addr: &str) {
        self.lock().0.entry(addr.to_string()).or_default();
    }

    /// The next connection made to `addr`, if one is waiting.
    pub fn accept(&self, addr: &str) -> Option<MemoryPeer> {
        self.lock().0.get_mut(addr)?.pop_front()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Listeners> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A connector into this network, for the stack.
    pub fn connector(&self) -> MemoryConnector {
        MemoryConnector(self.clone())
    }
}

/// Connects the stack's new flows to the in-memory network's listeners.
pub struct MemoryConnector(MemoryNet);

impl Connector for MemoryConnector {
    type Stream = MemoryStream;
    fn start(
        &mut self,
        flow: FlowKey,
        upstream: &Upstream,
        _timeout: Duration,
        done: mpsc::Sender<Connected<MemoryStream>>,
    ) {
        let result = match self.0.lock().0.get_mut(&upstream.to_string()) {
            Some(backlog) => {
                let (stream, peer) = pipe();
                backlog.push_back(peer);
                Ok(stream)
            }
            None => Err(io::Error::new(io::ErrorKind::ConnectionRefused, format!("nothing listens on {upstream}"))),
        };
        // The channel holds MAX_HALF_OPEN results, as many as connects in flight.
        let _ = done.try_send(Connected { flow, result });
    }
}
