//! The API's HTTP side: hyper serving HTTP/1.1 on the `[api] listen`
//! address. A request's body (at most
//! [`privlink_core::api::query::MAX_REQUEST_BYTES`]) and its URL query are
//! the Query protocol's parameters; the signing service comes from the
//! `Authorization` header's credential scope. Each request goes to the one
//! task that owns the model ([`super::Control`]) and waits for its answer:
//! calls run one at a time, in arrival order.

use std::convert::Infallible;
use std::net::SocketAddr;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};

use privlink_core::api::error::ApiError;
use privlink_core::api::query::{Params, MAX_REQUEST_BYTES};
use privlink_core::api::xml::error_document;

/// One request for the model's task.
pub struct ApiRequest {
    /// Its parameters.
    pub params: Params,
    /// The service of the credential scope, if signed.
    pub service: Option<String>,
    /// Where the answer goes: status and XML.
    pub reply: oneshot::Sender<(u16, String)>,
}

/// The service in `Authorization: AWS4-HMAC-SHA256 Credential=AKID/DATE/REGION/SERVICE/aws4_request, …`.
pub fn signing_service(authorization: &str) -> Option<&str> {
    let cred = authorization.split("Credential=").nth(1)?.split([',', ' ']).next()?;
    let mut parts = cred.split('/');
    let (_key, _date, _region, service) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    Some(service)
}

/// Serves `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, to_model: mpsc::Sender<ApiRequest>) {
    loop {
        let Ok((tcp, peer)) = listener.accept().await else { continue };
        let to_model = to_model.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| answer(req, peer, to_model.clone()));
            let io = hyper_util::rt::TokioIo::new(tcp);
            let _ = hyper::server::conn::http1::Builder::new().serve_connection(io, service).await;
        });
    }
}

fn xml(status: u16, body: String) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "text/xml;charset=UTF-8")
        .body(Full::new(Bytes::from(body)))
        .expect("a valid response")
}

async fn answer(
    req: Request<Incoming>,
    peer: SocketAddr,
    to_model: mpsc::Sender<ApiRequest>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let request_id = super::request_id();
    let refuse = |e: ApiError| Ok(xml(e.status, error_document(&e, &request_id)));
    if !peer.ip().is_loopback() {
        return refuse(ApiError::new("AuthFailure", "privlink's API answers loopback clients only"));
    }
    let service = req
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(signing_service)
        .map(str::to_string);
    let query = req.uri().query().unwrap_or_default().as_bytes().to_vec();
    let body = match Limited::new(req.into_body(), MAX_REQUEST_BYTES).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            return refuse(ApiError::new(
                "RequestEntityTooLarge",
                format!("A request is at most {MAX_REQUEST_BYTES} bytes"),
            ))
        }
    };
    let mut params = Params::parse(&body);
    params.extend(&query);
    let (reply, answer) = oneshot::channel();
    if to_model.send(ApiRequest { params, service, reply }).await.is_err() {
        return refuse(ApiError { code: "ServiceUnavailable", message: "privlink is stopping".into(), status: 503 });
    }
    match answer.await {
        Ok((status, body)) => Ok(xml(status, body)),
        Err(_) => refuse(ApiError {
            code: "InternalError",
            message: "the call was cut short; see privlink's log".into(),
            status: 500,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_service_comes_from_the_credential_scope() {
        let h = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261202/us-east-1/ec2/aws4_request, SignedHeaders=host;x-amz-date, Signature=abc";
        assert_eq!(signing_service(h), Some("ec2"));
        assert_eq!(signing_service("Basic xyz"), None);
        assert_eq!(signing_service("AWS4-HMAC-SHA256 Credential=AKID/20261202"), None);
    }
}
