//! A small client of privlink's own EC2 API, for the demo and the tests:
//! the API run in this process on a thread of its own ([`LocalApi`]), and
//! form POSTs to it as botocore sends them ([`call`]). Real SDKs are the
//! API's real clients; this one keeps the demo and the tests free of Python.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::Duration;

use crate::edge::config_file::ApiFile;
use privlink_core::api::settings::ApiSettings;

/// A form POST of `params` (and `Version=2016-11-15`) to the API at `api`,
/// signed-looking as botocore's are (the credential scope names `ec2`).
/// Returns the HTTP status and the XML body.
pub fn call(api: SocketAddr, params: &[(&str, &str)]) -> io::Result<(u16, String)> {
    let mut form = form_urlencoded::Serializer::new(String::new());
    form.append_pair("Version", "2016-11-15");
    for (k, v) in params {
        form.append_pair(k, v);
    }
    let body = form.finish();
    let mut s = TcpStream::connect_timeout(&api, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(60)))?;
    write!(
        s,
        "POST / HTTP/1.1\r\nHost: {api}\r\nContent-Type: application/x-www-form-urlencoded; charset=utf-8\r\n\
         Authorization: AWS4-HMAC-SHA256 Credential=AKID/20261202/us-east-1/ec2/aws4_request, SignedHeaders=host, Signature=0\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    let status = out.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = out.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    Ok((status, body))
}

/// The texts of every `<name>` element of an answer, in document order.
pub fn texts(doc: &str, name: &str) -> Vec<String> {
    let (open, close) = (format!("<{name}>"), format!("</{name}>"));
    doc.split(&open).skip(1).filter_map(|s| s.split(&close).next()).map(str::to_string).collect()
}

/// The first `<field>` of a successful call's answer; an error names the call and the answer.
pub fn field(api: SocketAddr, params: &[(&str, &str)], field: &str) -> io::Result<String> {
    let (status, body) = call(api, params)?;
    if status != 200 {
        return Err(io::Error::other(format!("{params:?}: HTTP {status}: {body}")));
    }
    texts(&body, field).into_iter().next().ok_or_else(|| io::Error::other(format!("no <{field}> in {body}")))
}

/// The API running in this process; stopped (and everything it made removed) on drop.
pub struct LocalApi {
    /// Where it listens.
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<Result<(), String>>>,
}

impl LocalApi {
    /// Starts the API with `settings` and `state_dir`; returns once it listens.
    pub fn start(settings: ApiSettings, state_dir: PathBuf) -> io::Result<LocalApi> {
        LocalApi::start_file(ApiFile { settings, vpc: None }, state_dir)
    }

    /// Starts the API of an `[api]` file (its VPC seeds the model); returns once it listens.
    pub fn start_file(api: ApiFile, state_dir: PathBuf) -> io::Result<LocalApi> {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new().name("privlink-api".into()).spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
            rt.block_on(crate::edge::api::run(
                &api.settings,
                api.vpc.as_ref(),
                &state_dir,
                |addr| {
                    let _ = ready_tx.send(addr);
                },
                async {
                    let _ = stopped.await;
                },
            ))
            .map_err(|e| e.to_string())
        })?;
        match ready_rx.recv_timeout(Duration::from_secs(60)) {
            Ok(addr) => Ok(LocalApi { addr, stop: Some(stop), thread: Some(thread) }),
            Err(_) => {
                let why = match thread.join() {
                    Ok(Err(e)) => e,
                    Ok(Ok(())) => "it stopped before listening".into(),
                    Err(_) => "its thread panicked".into(),
                };
                Err(io::Error::other(format!("the API did not start: {why}")))
            }
        }
    }

    /// Stops it; `Err` says why it failed while stopping.
    pub fn stop(mut self) -> Result<(), String> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<(), String> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.thread.take() {
            Some(t) => t.join().map_err(|_| "the API's thread panicked".to_string())?,
            None => Ok(()),
        }
    }
}

impl Drop for LocalApi {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown() {
            tracing::warn!("stopping the API: {e}");
        }
    }
}
