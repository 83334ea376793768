//! Just enough HTTP/1.1 for the stand-in to read what curl, the aws CLI and
//! the SDKs send: a request line, headers and a `Content-Length` body, one
//! request after another on a kept-alive connection.
//!
//! Everything is bounded by [`MAX_REQUEST_BYTES`] (head and body together):
//! a client cannot make the stand-in hold more than that per connection. A
//! request that says it is larger is refused as soon as its head is read,
//! before its body arrives (413). Chunked bodies are refused (501): the
//! Query and JSON protocols always send a `Content-Length`.

use thiserror::Error;

/// The most a request may take, head and body together.
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;

/// The most header lines a request may have.
const MAX_HEADERS: usize = 100;

/// One HTTP request, read whole.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The request target as sent: `/`, `/?Action=...`.
    pub target: String,
    /// The minor version: 1 for HTTP/1.1, 0 for HTTP/1.0.
    pub minor_version: u8,
    /// The header lines in order, names as sent.
    pub headers: Vec<(String, String)>,
    /// The body (`Content-Length` bytes).
    pub body: Vec<u8>,
}

impl Request {
    /// The first header called `name` (case-insensitive), value trimmed.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The part of the target after `?`, if any.
    pub fn query(&self) -> Option<&str> {
        self.target.split_once('?').map(|(_, q)| q)
    }

    /// Whether the connection stays open after the answer: HTTP/1.1 unless
    /// `Connection: close`, HTTP/1.0 only with `Connection: keep-alive`.
    pub fn keep_alive(&self) -> bool {
        let has = |token: &str| {
            self.headers
                .iter()
                .filter(|(n, _)| n.eq_ignore_ascii_case("connection"))
                .flat_map(|(_, v)| v.split(','))
                .any(|t| t.trim().eq_ignore_ascii_case(token))
        };
        if self.minor_version >= 1 {
            !has("close")
        } else {
            has("keep-alive")
        }
    }

    /// Whether the client waits for `100 Continue` before sending the body.
    pub fn expects_continue(&self) -> bool {
        self.header("expect").is_some_and(|v| v.eq_ignore_ascii_case("100-continue"))
    }
}

/// What the bytes read so far hold.
#[derive(Debug, PartialEq, Eq)]
pub enum Parse {
    /// Not a whole request yet: read more. `head` is the request once its
    /// head is complete (body still empty), so the reader can answer
    /// `Expect: 100-continue`.
    Partial {
        /// The head, once complete.
        head: Option<Request>,
    },
    /// A whole request, which took the first `consumed` bytes.
    Complete {
        /// The request.
        request: Request,
        /// How many bytes of the buffer it took.
        consumed: usize,
    },
}

/// Why a request was refused; the connection closes after the answer.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum RequestError {
    /// Head and body together exceed [`MAX_REQUEST_BYTES`].
    #[error("request larger than {MAX_REQUEST_BYTES} bytes")]
    TooLarge,
    /// Not HTTP/1.x as RFC 9112 shapes it.
    #[error("malformed request: {0}")]
    Malformed(&'static str),
    /// A `Transfer-Encoding` (chunked): the stand-in reads `Content-Length` bodies only.
    #[error("Transfer-Encoding is not supported; send Content-Length")]
    TransferEncoding,
}

impl RequestError {
    /// The HTTP status and reason phrase that answer it.
    pub fn status(&self) -> (u16, &'static str) {
        match self {
            RequestError::TooLarge => (413, "Content Too Large"),
            RequestError::Malformed(_) => (400, "Bad Request"),
            RequestError::TransferEncoding => (501, "Not Implemented"),
        }
    }
}

/// Reads the request at the start of `buf`, if it is all there.
pub fn parse(buf: &[u8]) -> Result<Parse, RequestError> {
    let Some(head_len) = buf.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4) else {
        if buf.len() >= MAX_REQUEST_BYTES {
            return Err(RequestError::TooLarge);
        }
        return Ok(Parse::Partial { head: None });
    };
    if head_len > MAX_REQUEST_BYTES {
        return Err(RequestError::TooLarge);
    }
    let mut request = parse_head(&buf[..head_len - 4])?;
    let body_len = content_length(&request)?;
    if head_len.saturating_add(body_len) > MAX_REQUEST_BYTES {
        return Err(RequestError::TooLarge);
    }
    let end = head_len + body_len;
    if buf.len() < end {
        return Ok(Parse::Partial { head: Some(request) });
    }
    request.body = buf[head_len..end].to_vec();
    Ok(Parse::Complete { request, consumed: end })
}

/// The request line and the headers (without the blank line).
fn parse_head(head: &[u8]) -> Result<Request, RequestError> {
    let head = std::str::from_utf8(head).map_err(|_| RequestError::Malformed("head is not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let line = lines.next().unwrap_or_default();
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(RequestError::Malformed("request line is not METHOD TARGET VERSION"));
    };
    if method.is_empty() || !method.bytes().all(is_token_byte) {
        return Err(RequestError::Malformed("bad method"));
    }
    if target.is_empty() || target.bytes().any(|b| b.is_ascii_control()) {
        return Err(RequestError::Malformed("bad request target"));
    }
    let minor_version = match version {
        "HTTP/1.1" => 1,
        "HTTP/1.0" => 0,
        _ => return Err(RequestError::Malformed("not HTTP/1.0 or HTTP/1.1")),
    };
    let mut headers = Vec::new();
    for line in lines {
        if headers.len() == MAX_HEADERS {
            return Err(RequestError::Malformed("too many headers"));
        }
        // Obsolete line folding (a line starting with blanks) is refused, as RFC 9112 allows.
        let (name, value) = line.split_once(':').ok_or(RequestError::Malformed("header line without ':'"))?;
        if name.is_empty() || !name.bytes().all(is_token_byte) {
            return Err(RequestError::Malformed("bad header name"));
        }
        headers.push((name.to_string(), value.trim_matches([' ', '\t']).to_string()));
    }
    Ok(Request { method: method.to_string(), target: target.to_string(), minor_version, headers, body: Vec::new() })
}

/// The body length the headers announce: 0 without `Content-Length`; several
/// that disagree, or any `Transfer-Encoding`, are refused (request smuggling).
fn content_length(request: &Request) -> Result<usize, RequestError> {
    if request.header("transfer-encoding").is_some() {
        return Err(RequestError::TransferEncoding);
    }
    let mut length = None;
    for (_, value) in request.headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case("content-length")) {
        if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
            return Err(RequestError::Malformed("bad Content-Length"));
        }
        // Anything past the bound is too large, whatever its exact value.
        let n = value.parse::<usize>().unwrap_or(usize::MAX);
        if length.is_some_and(|l| l != n) {
            return Err(RequestError::Malformed("conflicting Content-Length"));
        }
        length = Some(n);
    }
    Ok(length.unwrap_or(0))
}

/// A `tchar` of RFC 9110: what method and header names are made of.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// One HTTP response, ready to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Its reason phrase.
    pub reason: &'static str,
    /// Headers besides `Content-Length` and `Connection`, which [`Response::encode`] adds.
    pub headers: Vec<(&'static str, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Response {
    /// The bytes on the wire; `keep_alive` says which `Connection` header to
    /// send, `head_only` leaves the body out (a `HEAD` request) but keeps its length.
    pub fn encode(&self, keep_alive: bool, head_only: bool) -> Vec<u8> {
        let mut out = format!("HTTP/1.1 {} {}\r\n", self.status, self.reason);
        for (name, value) in &self.headers {
            out.push_str(&format!("{name}: {value}\r\n"));
        }
        let connection = if keep_alive { "keep-alive" } else { "close" };
        out.push_str(&format!("Content-Length: {}\r\nConnection: {connection}\r\n\r\n", self.body.len()));
        let mut out = out.into_bytes();
        if !head_only {
            out.extend_from_slice(&self.body);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn complete(buf: &[u8]) -> (Request, usize) {
        match parse(buf) {
            Ok(Parse::Complete { request, consumed }) => (request, consumed),
            other => panic!("not complete: {other:?}"),
        }
    }

    #[test]
    fn a_curl_get() {
        let buf =
            b"GET /?x=1 HTTP/1.1\r\nHost: ec2.us-east-1.amazonaws.com\r\nUser-Agent: curl/8\r\nAccept: */*\r\n\r\n";
        let (r, consumed) = complete(buf);
        assert_eq!(consumed, buf.len());
        assert_eq!((r.method.as_str(), r.target.as_str(), r.minor_version), ("GET", "/?x=1", 1));
        assert_eq!(r.header("HOST"), Some("ec2.us-east-1.amazonaws.com"));
        assert_eq!(r.query(), Some("x=1"));
        assert!(r.body.is_empty());
        assert!(r.keep_alive());
    }

    #[test]
    fn a_botocore_post_with_its_body() {
        let body = "Action=GetCallerIdentity&Version=2011-06-15";
        let head = format!(
            "POST / HTTP/1.1\r\nHost: sts.us-east-1.amazonaws.com\r\nContent-Type: application/x-www-form-urlencoded; charset=utf-8\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        let whole = format!("{head}{body}");
        // Every prefix is partial; the head is handed back once it is whole.
        for cut in 0..whole.len() {
            match parse(&whole.as_bytes()[..cut]) {
                Ok(Parse::Partial { head: h }) => assert_eq!(h.is_some(), cut >= head.len(), "cut at {cut}"),
                other => panic!("cut at {cut}: {other:?}"),
            }
        }
        let (r, consumed) = complete(whole.as_bytes());
        assert_eq!(consumed, whole.len());
        assert_eq!(r.body, body.as_bytes());
    }

    #[test]
    fn two_pipelined_requests_are_read_one_at_a_time() {
        let buf = b"POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcGET / HTTP/1.1\r\nConnection: close\r\n\r\n";
        let (first, n) = complete(buf);
        assert_eq!(first.body, b"abc");
        let (second, m) = complete(&buf[n..]);
        assert_eq!((second.method.as_str(), n + m), ("GET", buf.len()));
        assert!(!second.keep_alive());
    }

    #[test]
    fn keep_alive_follows_the_version_and_connection_header() {
        let r = |v: &str, c: &str| complete(format!("GET / HTTP/1.{v}\r\n{c}\r\n").as_bytes()).0.keep_alive();
        assert!(r("1", ""));
        assert!(!r("1", "Connection: Keep-Alive, Close\r\n"));
        assert!(!r("0", ""));
        assert!(r("0", "connection: keep-alive\r\n"));
    }

    #[test]
    fn expect_continue_is_seen_on_the_head() {
        let buf = b"POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 10\r\n\r\n";
        match parse(buf) {
            Ok(Parse::Partial { head: Some(h) }) => assert!(h.expects_continue()),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn oversized_requests_are_refused_before_their_body() {
        // A head that never ends.
        let endless = vec![b'a'; MAX_REQUEST_BYTES];
        assert_eq!(parse(&endless), Err(RequestError::TooLarge));
        assert_eq!(parse(&endless[..MAX_REQUEST_BYTES - 1]), Ok(Parse::Partial { head: None }));
        // A body announced too large: refused with no body byte read.
        let big = format!("POST / HTTP/1.1\r\nContent-Length: {MAX_REQUEST_BYTES}\r\n\r\n");
        assert_eq!(parse(big.as_bytes()), Err(RequestError::TooLarge));
        let huge = "POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999999\r\n\r\n";
        assert_eq!(parse(huge.as_bytes()), Err(RequestError::TooLarge));
        // Exactly at the bound is fine.
        let head = "POST / HTTP/1.1\r\nContent-Length: 00000\r\n\r\n";
        let fits = format!("POST / HTTP/1.1\r\nContent-Length: {:05}\r\n\r\n", MAX_REQUEST_BYTES - head.len());
        let mut whole = fits.into_bytes();
        whole.resize(MAX_REQUEST_BYTES, b'x');
        assert_eq!(complete(&whole).1, MAX_REQUEST_BYTES);
        assert_eq!(RequestError::TooLarge.status().0, 413);
    }

    #[test]
    fn malformed_requests_are_refused() {
        for bad in [
            "GET /\r\n\r\n",
            "GET / HTTP/2\r\n\r\n",
            "GET  / HTTP/1.1\r\n\r\n",
            "G@T / HTTP/1.1\r\n\r\n",
            "GET / HTTP/1.1\r\nNoColon\r\n\r\n",
            "GET / HTTP/1.1\r\n folded: x\r\n\r\n",
            "GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
            "GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            "GET /\x7f HTTP/1.1\r\n\r\n",
        ] {
            assert!(matches!(parse(bad.as_bytes()), Err(RequestError::Malformed(_))), "{bad:?}");
        }
        assert_eq!(parse(b"GET / HTTP/1.1\r\nHost: \xff\r\n\r\n"), Err(RequestError::Malformed("head is not UTF-8")));
        let chunked = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(parse(chunked.as_bytes()), Err(RequestError::TransferEncoding));
        let many: String = (0..=MAX_HEADERS).map(|i| format!("X-{i}: v\r\n")).collect();
        let many = format!("GET / HTTP/1.1\r\n{many}\r\n");
        assert_eq!(parse(many.as_bytes()), Err(RequestError::Malformed("too many headers")));
    }

    #[test]
    fn responses_carry_length_and_connection() {
        let r = Response {
            status: 400,
            reason: "Bad Request",
            headers: vec![("Content-Type", "text/xml".into())],
            body: b"<x/>".to_vec(),
        };
        let wire = String::from_utf8(r.encode(false, false)).unwrap();
        assert_eq!(
            wire,
            "HTTP/1.1 400 Bad Request\r\nContent-Type: text/xml\r\nContent-Length: 4\r\nConnection: close\r\n\r\n<x/>"
        );
        let head = String::from_utf8(r.encode(true, true)).unwrap();
        assert!(head.ends_with("Content-Length: 4\r\nConnection: keep-alive\r\n\r\n"), "{head}");
    }
}
