//! The API's HTTP side: hyper serving HTTP/1.1 on the `[api] listen`
//! address. A request's body (at most
//! [`privlink_core::api::query::MAX_REQUEST_BYTES`]) and its URL query are
//! the Query protocol's parameters.
//!
//! Who is let in is [`Access`]: with `[api]` credentials every request's
//! SigV4 signature is checked ([`privlink_core::api::sigv4::verify`]) and
//! the service it was signed for is the one served, from any address;
//! without them only loopback clients are served and the service is read,
//! unchecked, from the `Authorization` header's credential scope.
//!
//! Each request goes to the one
//! task that owns the model ([`super::Control`]) and waits for its answer:
//! calls run one at a time, in arrival order.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::http::request::Parts;
use hyper::{Request, Response};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};

use privlink_core::api::error::ApiError;
use privlink_core::api::query::{Params, MAX_REQUEST_BYTES};
use privlink_core::api::settings::Credentials;
use privlink_core::api::sigv4;
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

/// Who may call the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// Unsigned, from loopback only: whoever can reach 127.0.0.1 is trusted.
    Loopback,
    /// Signed with this key pair for this Region, from anywhere.
    Signed {
        /// The one key pair.
        credentials: Credentials,
        /// The Region a credential scope must name.
        region: String,
    },
}

impl Access {
    /// The access `[api]` asks for: signed when it names credentials.
    pub fn of(settings: &privlink_core::api::settings::ApiSettings) -> Access {
        match &settings.credentials {
            Some(c) => Access::Signed { credentials: c.clone(), region: settings.region.clone() },
            None => Access::Loopback,
        }
    }
}

/// The service in `Authorization: AWS4-HMAC-SHA256 Credential=AKID/DATE/REGION/SERVICE/aws4_request, …`.
pub fn signing_service(authorization: &str) -> Option<&str> {
    let cred = authorization.split("Credential=").nth(1)?.split([',', ' ']).next()?;
    let mut parts = cred.split('/');
    let (_key, _date, _region, service) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    Some(service)
}

/// Serves `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, to_model: mpsc::Sender<ApiRequest>, access: Access) {
    let access = Arc::new(access);
    loop {
        let Ok((tcp, peer)) = listener.accept().await else { continue };
        let to_model = to_model.clone();
        let access = access.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| answer(req, peer, access.clone(), to_model.clone()));
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

/// `AuthFailure` for an unsigned API's non-loopback caller.
fn loopback_only() -> ApiError {
    ApiError::with_status(
        "AuthFailure",
        "privlink's API answers loopback clients only (set [api] access_key_id and secret_access_key to sign requests)",
        401,
    )
}

/// Whether a request may be served, and for which service: under
/// [`Access::Signed`] its signature must hold at `now` (Unix seconds); under
/// [`Access::Loopback`] its peer must be loopback.
pub fn admit(
    access: &Access,
    peer: SocketAddr,
    parts: &Parts,
    body: &[u8],
    now: u64,
) -> Result<Option<String>, ApiError> {
    match access {
        Access::Loopback => {
            if !peer.ip().is_loopback() {
                return Err(loopback_only());
            }
            Ok(parts
                .headers
                .get(hyper::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(signing_service)
                .map(str::to_string))
        }
        Access::Signed { credentials, region } => {
            // hyper bounds the number of headers (100), so this list is bounded too.
            let headers: Vec<(&str, &[u8])> = parts.headers.iter().map(|(n, v)| (n.as_str(), v.as_bytes())).collect();
            let req = sigv4::Request {
                method: parts.method.as_str(),
                path: parts.uri.path(),
                query: parts.uri.query().unwrap_or_default(),
                headers: &headers,
                body,
            };
            sigv4::verify(&req, credentials, region, now).map(Some)
        }
    }
}

async fn answer(
    req: Request<Incoming>,
    peer: SocketAddr,
    access: Arc<Access>,
    to_model: mpsc::Sender<ApiRequest>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let request_id = super::request_id();
    let refuse = |e: ApiError| Ok(xml(e.status, error_document(&e, &request_id)));
    if *access == Access::Loopback && !peer.ip().is_loopback() {
        return refuse(loopback_only()); // before its body is read
    }
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, MAX_REQUEST_BYTES).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            return refuse(ApiError::new(
                "RequestEntityTooLarge",
                format!("A request is at most {MAX_REQUEST_BYTES} bytes"),
            ))
        }
    };
    let service = match admit(&access, peer, &parts, &body, super::unix_now()) {
        Ok(s) => s,
        Err(e) => {
            tracing::debug!("refused a request from {peer}: {e}");
            return refuse(e);
        }
    };
    let query = parts.uri.query().unwrap_or_default().as_bytes();
    let mut params = Params::parse(&body);
    params.extend(query);
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

    /// botocore's signature of an EC2 DescribeVpcs POST (the core's
    /// `sigv4` tests hold how it was made).
    fn signed_post(secret_ok: bool) -> (Access, Parts, &'static [u8]) {
        let access = Access::Signed {
            credentials: Credentials {
                access_key_id: "AKIAPRIVLINKTEST0001".into(),
                secret_access_key: if secret_ok { "privlink/test+secret/0123456789abcdefGHIJ" } else { "wrong" }.into(),
            },
            region: "us-east-1".into(),
        };
        let (parts, ()) = Request::post("/")
            .header("host", "127.0.0.1:4566")
            .header("content-type", "application/x-www-form-urlencoded; charset=utf-8")
            .header("x-amz-date", "20261202T013045Z")
            .header("authorization", "AWS4-HMAC-SHA256 Credential=AKIAPRIVLINKTEST0001/20261202/us-east-1/ec2/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=e352ec97aa97973cf0d3c3f64702b3de597076b89a8157d5e7272212afe1932a")
            .body(())
            .unwrap()
            .into_parts();
        (access, parts, b"Action=DescribeVpcs&Version=2016-11-15")
    }

    const NOW: u64 = 1_796_175_045; // 20261202T013045Z
    const FAR: &str = "192.0.2.7:50000";
    const NEAR: &str = "127.0.0.1:50000";

    #[test]
    fn with_credentials_a_signed_request_is_served_from_anywhere_and_a_bad_one_from_nowhere() {
        let (access, parts, body) = signed_post(true);
        assert_eq!(admit(&access, FAR.parse().unwrap(), &parts, body, NOW), Ok(Some("ec2".into())));
        let e = admit(&access, NEAR.parse().unwrap(), &parts, b"Action=DeleteVpc&VpcId=vpc-1", NOW).unwrap_err();
        assert_eq!((e.code, e.status), ("SignatureDoesNotMatch", 403));
        let e = admit(&access, NEAR.parse().unwrap(), &parts, body, NOW + 3600).unwrap_err();
        assert_eq!(e.code, "RequestExpired");
        let (wrong, parts, body) = signed_post(false);
        let e = admit(&wrong, NEAR.parse().unwrap(), &parts, body, NOW).unwrap_err();
        assert_eq!((e.code, e.status), ("SignatureDoesNotMatch", 403));
        let (unsigned, ()) = Request::post("/").header("host", "127.0.0.1:4566").body(()).unwrap().into_parts();
        let e = admit(&access, NEAR.parse().unwrap(), &unsigned, body, NOW).unwrap_err();
        assert_eq!((e.code, e.status), ("MissingAuthenticationToken", 403));
    }

    #[test]
    fn without_credentials_loopback_is_served_unchecked_and_nothing_else() {
        let (_, parts, body) = signed_post(false);
        assert_eq!(admit(&Access::Loopback, NEAR.parse().unwrap(), &parts, body, 0), Ok(Some("ec2".into())));
        let e = admit(&Access::Loopback, FAR.parse().unwrap(), &parts, body, NOW).unwrap_err();
        assert_eq!((e.code, e.status), ("AuthFailure", 401));
    }
}
