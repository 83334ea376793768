//! `privlink up` with an `[api]` config: the EC2 API (on loopback, or signed
//! with `[api]`'s key pair from anywhere), and every VPC, subnet, instance
//! and endpoint it makes running at once.
//!
//! # Theory of operation
//!
//! One task owns the model ([`privlink_core::api::ec2::Ec2`]); the HTTP
//! side ([`http`]) hands it each request and waits. A call runs on the pure
//! core ([`privlink_core::api::handle`]); a call that changed the model is
//! made real ([`region::Region::apply`]) and stored ([`model_file`]) before
//! it is answered, so what a client was told exists runs, and survives a
//! kill -9. A call whose realization fails (the kernel refused a step) is
//! undone: the model before it is applied again and the client gets
//! `InternalError` naming the step.
//!
//! At start the stored model is made real from nothing, after anything a
//! killed run left (its namespaces are recorded in the state dir) is removed:
//! a restart rebuilds every namespace, ENI, instance and name.
//!
//! Calls run one at a time; the longest are the ones that start devices
//! (a few milliseconds each). The request queue holds [`QUEUE`] requests;
//! a client past that waits in its TCP connection.

pub mod http;
pub mod model_file;
pub mod region;

use std::future::Future;
use std::path::Path;

use tokio::sync::mpsc;

use crate::edge::config_file::SeedVpc;
use crate::edge::fabric::{FabricError, Records};
use crate::edge::lock::{Holder, Lock, LockError};
use crate::edge::privileges::{self, PrivilegeError};
use privlink_core::api::ec2::{Call, Ec2, Effect};
use privlink_core::api::error::ApiError;
use privlink_core::api::settings::ApiSettings;
use privlink_core::api::xml::error_document;

use self::model_file::{ModelFile, ModelFileError};
use self::region::{RealizeError, Region};

/// Requests waiting for the model's task.
pub const QUEUE: usize = 64;

/// Why the API could not start.
#[derive(Debug, thiserror::Error)]
pub enum ApiRunError {
    /// Not root enough.
    #[error(transparent)]
    Privileges(#[from] PrivilegeError),
    /// Another privlink has the state dir.
    #[error(transparent)]
    Lock(#[from] LockError),
    /// The model file.
    #[error(transparent)]
    Model(#[from] ModelFileError),
    /// Cleaning up after a killed run.
    #[error(transparent)]
    Fabric(#[from] FabricError),
    /// Rebuilding the stored model.
    #[error("rebuilding the stored VPCs: {0}")]
    Realize(#[from] RealizeError),
    /// The file's VPC could not seed the model.
    #[error("{file}: {source}")]
    Seed {
        /// The config file.
        file: String,
        /// The key and why.
        source: privlink_core::api::ec2::seed::SeedError,
    },
    /// The listen address.
    #[error("api.listen {addr}: {source}")]
    Listen {
        /// The address.
        addr: std::net::SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// A request id as AWS shapes them (a UUID).
pub fn request_id() -> String {
    let b = crate::edge::daemon::random_id_bytes();
    let c = crate::edge::daemon::random_id_bytes();
    let h: String = b.iter().chain(c.iter()).take(16).map(|x| format!("{x:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Serves the API until `shutdown`; `on_ready` gets the address once it listens.
pub async fn run(
    settings: &ApiSettings,
    vpc: Option<&SeedVpc>,
    state_dir: &Path,
    on_ready: impl FnOnce(std::net::SocketAddr),
    shutdown: impl Future<Output = ()>,
) -> Result<(), ApiRunError> {
    privileges::require()?;
    let holder = Holder {
        pid: std::process::id(),
        state_dir: std::path::absolute(state_dir).unwrap_or_else(|_| state_dir.to_path_buf()).display().to_string(),
        netns: "(the API's VPCs)".into(),
        tun: String::new(),
    };
    let _lock =
        Lock::acquire(&state_dir.join("lock"), &format!("state dir {}", holder.state_dir), "--state-dir", &holder)?;
    let file = ModelFile::in_dir(state_dir);
    let mut model = file.load(&settings.region)?;
    if let Some(v) = vpc {
        let mut random = crate::edge::daemon::random_id_bytes;
        match privlink_core::api::ec2::seed::seed(&mut model, &v.config, &v.fingerprint, unix_now(), &mut random) {
            Ok(true) => {
                file.save(&model)?;
                tracing::info!("{}: its VPC {} seeded the model", v.file, v.config.vpc.id);
            }
            Ok(false) => {}
            Err(source) => return Err(ApiRunError::Seed { file: v.file.clone(), source }),
        }
    }
    let records = Records::in_state_dir(state_dir);
    for left in records.remove_left_behind()? {
        tracing::info!("removed namespace {left}, left by an earlier run");
    }
    let forward = settings.forward.clone().unwrap_or_else(crate::edge::resolver::host_resolvers);
    let mut region = Region::new(records, settings.upstreams.clone(), forward);
    if let Err(e) = region.apply(&model).await {
        let _ = region.stop();
        return Err(e.into());
    }
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .map_err(|source| ApiRunError::Listen { addr: settings.listen, source })?;
    let addr = listener.local_addr().map_err(|source| ApiRunError::Listen { addr: settings.listen, source })?;
    let (tx, mut rx) = mpsc::channel(QUEUE);
    let server = tokio::spawn(http::serve(listener, tx, http::Access::of(settings)));
    on_ready(addr);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            Some(req) = rx.recv() => {
                let answer = call(&mut model, &mut region, &file, &req.params, req.service.as_deref()).await;
                let _ = req.reply.send(answer);
            }
        }
    }
    server.abort();
    region.stop()?;
    Ok(())
}

/// Runs one call: pure, then made real and stored when it changed the model.
async fn call(
    model: &mut Ec2,
    region: &mut Region,
    file: &ModelFile,
    params: &privlink_core::api::query::Params,
    service: Option<&str>,
) -> (u16, String) {
    let request_id = request_id();
    let before = model.clone();
    let mut random = crate::edge::daemon::random_id_bytes;
    let mut c = Call { params, request_id: &request_id, now: unix_now(), random: &mut random, chosen_id: None };
    let answer = privlink_core::api::handle(model, service, &mut c);
    if answer.effect == Effect::ReadOnly {
        return (answer.status, answer.body);
    }
    let failed = match region.apply(model).await {
        Ok(()) => file.save(model).err().map(|e| e.to_string()),
        Err(e) => Some(e.to_string()),
    };
    match failed {
        None => (answer.status, answer.body),
        Some(why) => {
            tracing::warn!("{} undone: {why}", params.get("Action").unwrap_or("a call"));
            *model = before;
            if let Err(e) = region.apply(model).await {
                tracing::warn!("restoring the state before the call: {e}");
            }
            let e = ApiError {
                code: "InternalError",
                message: format!("the call could not be carried out: {why}"),
                status: 500,
            };
            (e.status, error_document(&e, &request_id))
        }
    }
}
