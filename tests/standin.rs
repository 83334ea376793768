//! `privlink standin` on loopback: two stand-ins at once, each with its CA
//! in its own default file, verified by one client holding both files, over
//! the endpoint-specific names, answering as AWS does. No namespace, no root.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use privlink::lab::standin::http::MAX_REQUEST_BYTES;
use privlink::lab::standin::{aws_reply, default_ca_path, TlsStandIn};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

const EC2: &str = "ec2.us-east-1.amazonaws.com";
const STS: &str = "sts.us-east-1.amazonaws.com";
const EC2_REGIONAL: &str = "vpce-0fe5b17a0707d6abc-29p5708s.ec2.us-east-1.vpce.amazonaws.com";
const EC2_ZONAL: &str = "vpce-0fe5b17a0707d6abc-29p5708s-us-east-1a.ec2.us-east-1.vpce.amazonaws.com";
const STS_REGIONAL: &str = "vpce-0a1b2c3d4e5f60718-abcd1234.sts.us-east-1.vpce.amazonaws.com";

/// A CA file, removed when the test ends however it ends.
struct CaFile(PathBuf);

impl Drop for CaFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Writes `standin`'s CA where `privlink standin` would by default, as the command does.
fn write_default_ca(standin: &TlsStandIn) -> CaFile {
    let path = default_ca_path(&standin.cert.names[0], standin.addr.port());
    std::fs::write(&path, &standin.cert.ca_pem).unwrap();
    CaFile(path)
}

/// A client config trusting every certificate in the PEM files `files`.
fn trusting(files: &[&CaFile]) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for file in files {
        let pem = std::fs::read(&file.0).unwrap();
        for ca in CertificateDer::pem_slice_iter(&pem) {
            roots.add(ca.unwrap()).unwrap();
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(cfg)
}

/// A TLS connection to `addr` verifying the server as `name`.
async fn connect(
    cfg: &Arc<rustls::ClientConfig>,
    addr: SocketAddr,
    name: &str,
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let server_name = ServerName::try_from(name.to_string()).unwrap();
    tokio_rustls::TlsConnector::from(cfg.clone()).connect(server_name, tcp).await
}

/// One HTTP response: status, headers (lowercased names) and body.
#[derive(Debug)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// Reads one `Content-Length` response off `tls`, leaving the connection for the next.
async fn read_reply(tls: &mut TlsStream<TcpStream>) -> Reply {
    let mut buf = Vec::new();
    let head_end = loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
        let mut b = [0u8; 4096];
        let n = tls.read(&mut b).await.unwrap();
        assert!(n > 0, "connection closed before a whole head: {:?}", String::from_utf8_lossy(&buf));
        buf.extend_from_slice(&b[..n]);
    };
    let head = String::from_utf8(buf[..head_end - 4].to_vec()).unwrap();
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    let headers: Vec<(String, String)> = lines
        .map(|l| l.split_once(':').unwrap())
        .map(|(n, v)| (n.to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let len: usize = headers.iter().find(|(n, _)| n == "content-length").unwrap().1.parse().unwrap();
    let mut body = buf[head_end..].to_vec();
    while body.len() < len {
        let mut b = [0u8; 4096];
        let n = tls.read(&mut b).await.unwrap();
        assert!(n > 0, "connection closed inside the body");
        body.extend_from_slice(&b[..n]);
    }
    assert_eq!(body.len(), len, "more than the body came: the server answered twice?");
    Reply { status, headers, body: String::from_utf8(body).unwrap() }
}

/// A Query-protocol POST as botocore sends it.
fn query_post(host: &str, form: &str, connection: &str) -> String {
    format!(
        "POST / HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/x-www-form-urlencoded; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: {connection}\r\n\r\n{form}",
        form.len()
    )
}

/// The text at `path` under the root element (local names).
fn text_at(xml: &str, path: &[&str]) -> Option<String> {
    let doc = roxmltree::Document::parse(xml).unwrap();
    let mut node = doc.root_element();
    for step in path {
        node = node.children().find(|c| c.is_element() && c.tag_name().name() == *step)?;
    }
    node.text().map(str::to_string)
}

#[tokio::test]
async fn two_standins_at_once_each_with_its_own_ca_file() {
    let ec2 = TlsStandIn::start(EC2, 0).await.unwrap();
    let sts = TlsStandIn::start_for(&[STS], 0).await.unwrap();
    let (ec2_ca, sts_ca) = (write_default_ca(&ec2), write_default_ca(&sts));
    assert_ne!(ec2_ca.0, sts_ca.0, "two stand-ins write two CA files");
    assert_ne!(ec2.cert.ca_name, sts.cert.ca_name, "two CAs never share a name");
    for cert in [&ec2.cert, &sts.cert] {
        let der: &[u8] = cert.ca.as_ref();
        let name = cert.ca_name.as_bytes();
        assert!(der.windows(name.len()).any(|w| w == name), "{:?} is the CA's subject", cert.ca_name);
    }

    // One client trusting both files reaches both stand-ins, by their
    // regional and zonal endpoint names, at the same time.
    let both = trusting(&[&ec2_ca, &sts_ca]);
    let (a, b, c) = tokio::join!(
        connect(&both, ec2.addr, EC2_REGIONAL),
        connect(&both, ec2.addr, EC2_ZONAL),
        connect(&both, sts.addr, STS_REGIONAL),
    );
    for (conn, name) in [(a, EC2_REGIONAL), (b, EC2_ZONAL), (c, STS_REGIONAL)] {
        let mut tls = conn.unwrap_or_else(|e| panic!("{name}: {e}"));
        tls.write_all(format!("GET / HTTP/1.1\r\nHost: {name}\r\n\r\n").as_bytes()).await.unwrap();
        let reply = read_reply(&mut tls).await;
        assert_eq!(reply.status, 200, "{reply:?}");
        assert!(reply.body.starts_with("hello from "), "{reply:?}");
    }

    // Each file holds its own stand-in's CA and no other's.
    let only_ec2 = trusting(&[&ec2_ca]);
    connect(&only_ec2, ec2.addr, EC2).await.unwrap();
    assert!(connect(&only_ec2, sts.addr, STS).await.is_err(), "the ec2 CA must not vouch for the sts stand-in");
    assert!(connect(&trusting(&[&sts_ca]), ec2.addr, EC2).await.is_err());
    // The certificate covers its own service only.
    assert!(connect(&both, sts.addr, EC2_REGIONAL).await.is_err());
}

#[tokio::test]
async fn answers_as_aws_on_one_kept_alive_connection() {
    let ec2 = TlsStandIn::start_for(&[EC2, STS], 0).await.unwrap();
    let ca = write_default_ca(&ec2);
    let mut tls = connect(&trusting(&[&ca]), ec2.addr, STS_REGIONAL).await.unwrap();

    // STS GetCallerIdentity, as `aws sts get-caller-identity` asks it.
    tls.write_all(query_post(STS_REGIONAL, "Action=GetCallerIdentity&Version=2011-06-15", "keep-alive").as_bytes())
        .await
        .unwrap();
    let reply = read_reply(&mut tls).await;
    assert_eq!((reply.status, reply.header("content-type")), (200, Some("text/xml")), "{reply:?}");
    assert_eq!(reply.header("connection"), Some("keep-alive"));
    let id = reply.header("x-amzn-requestid").unwrap().to_string();
    assert_eq!(text_at(&reply.body, &["GetCallerIdentityResult", "Account"]).as_deref(), Some(aws_reply::ACCOUNT));
    assert_eq!(text_at(&reply.body, &["GetCallerIdentityResult", "Arn"]).as_deref(), Some(aws_reply::ARN));
    assert_eq!(text_at(&reply.body, &["ResponseMetadata", "RequestId"]).as_deref(), Some(id.as_str()));

    // An EC2 call on the same connection: EC2's error document, then the server closes as asked.
    tls.write_all(query_post(EC2_REGIONAL, "Action=DescribeVpcs&Version=2016-11-15", "close").as_bytes())
        .await
        .unwrap();
    let reply = read_reply(&mut tls).await;
    assert_eq!(reply.status, 400, "{reply:?}");
    assert_eq!(reply.header("connection"), Some("close"));
    assert_eq!(text_at(&reply.body, &["Errors", "Error", "Code"]).as_deref(), Some("UnsupportedOperation"));
    let request_id = text_at(&reply.body, &["RequestID"]).unwrap();
    assert_ne!(request_id, id, "each request has its own id");
    let mut rest = Vec::new();
    tls.read_to_end(&mut rest).await.unwrap();
    assert!(rest.is_empty(), "nothing after the last answer: {rest:?}");
}

#[tokio::test]
async fn a_request_over_the_bound_is_refused_with_413() {
    let ec2 = TlsStandIn::start(EC2, 0).await.unwrap();
    let ca = write_default_ca(&ec2);
    let mut tls = connect(&trusting(&[&ca]), ec2.addr, EC2).await.unwrap();
    // Announced too large: refused on the head, before any of the body is sent.
    let head = format!("POST / HTTP/1.1\r\nHost: {EC2}\r\nContent-Length: {MAX_REQUEST_BYTES}\r\n\r\n");
    tls.write_all(head.as_bytes()).await.unwrap();
    let reply = read_reply(&mut tls).await;
    assert_eq!((reply.status, reply.header("connection")), (413, Some("close")), "{reply:?}");
}
