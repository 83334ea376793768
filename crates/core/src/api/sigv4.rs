//! AWS Signature Version 4, checked: whether a request was signed with the
//! API's one key pair, and for which service.
//!
//! The steps are AWS's "Signature Version 4 signing process", done again on
//! the request as it arrived and compared with the signature it carries:
//!
//! 1. the canonical request: method, canonical URI, canonical query,
//!    canonical headers (the signed ones, lowercase, values trimmed),
//!    the signed header names, and the hex SHA-256 of the body;
//! 2. the string to sign: `AWS4-HMAC-SHA256`, the `X-Amz-Date`, the
//!    credential scope `DATE/REGION/SERVICE/aws4_request`, and the hex
//!    SHA-256 of the canonical request;
//! 3. the signing key: HMAC-SHA256 of the scope's parts, in turn, keyed
//!    first with `"AWS4" + secret`;
//! 4. the signature: HMAC-SHA256 of the string to sign under that key,
//!    compared in constant time.
//!
//! The canonical forms follow botocore (what the aws CLI and boto3 send),
//! which is AWS's reference for non-S3 services: the path has its dot
//! segments and empty segments removed and is then percent-encoded again
//! (a `%` becomes `%25`), the query is decoded and re-encoded per RFC 3986
//! (space as `%20`) and sorted.
//!
//! Both the `Authorization` header and the presigned query form
//! (`X-Amz-Algorithm`, `X-Amz-Credential`, … in the URL) are read. Nothing
//! here reads the clock: the caller passes `now`.
//!
//! Errors carry EC2's codes and the statuses AWS's Query services answer
//! with: `AuthFailure` 401 (what EC2 sends for an unknown key),
//! `SignatureDoesNotMatch` and `MissingAuthenticationToken` 403,
//! `RequestExpired` and `IncompleteSignature` 400. botocore retries none of
//! them.

use std::borrow::Cow;

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use super::error::ApiError;
use super::settings::Credentials;
use super::time;

/// How far a signed `X-Amz-Date` may be from `now`, either way: AWS's five
/// minutes, which bounds how long a captured request can be replayed.
pub const MAX_SKEW_SECS: u64 = 300;

/// The longest a presigned URL may live (`X-Amz-Expires`): AWS's seven days.
pub const MAX_EXPIRES_SECS: u64 = 604_800;

const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// A request as it arrived, before anything decoded it.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// `POST`, `GET`.
    pub method: &'a str,
    /// The path as sent (still percent-encoded), e.g. `/`.
    pub path: &'a str,
    /// The query string as sent, without the `?`; empty when there is none.
    pub query: &'a str,
    /// Every header, name and value as received, repeats included.
    pub headers: &'a [(&'a str, &'a [u8])],
    /// The body.
    pub body: &'a [u8],
}

/// What a request says about its signature, from its `Authorization` header
/// or its presigned query.
#[derive(Debug, PartialEq, Eq)]
struct Claim<'a> {
    access_key: Cow<'a, str>,
    /// `YYYYMMDD` of the scope.
    date: Cow<'a, str>,
    region: Cow<'a, str>,
    service: Cow<'a, str>,
    /// `content-type;host;x-amz-date`, as signed.
    signed_headers: Cow<'a, str>,
    signature: Cow<'a, str>,
    /// The `X-Amz-Date`, `20150830T123600Z`.
    stamp: Cow<'a, str>,
    /// `X-Amz-Expires` of a presigned URL; `None` for a signed header.
    expires: Option<u64>,
}

/// Checks `req`'s signature against `credentials` for `region` at `now`
/// (Unix seconds); returns the service of its credential scope (`ec2`).
pub fn verify(req: &Request<'_>, credentials: &Credentials, region: &str, now: u64) -> Result<String, ApiError> {
    let claim = claim(req)?;
    if claim.access_key != credentials.access_key_id {
        return Err(ApiError::with_status(
            "AuthFailure",
            "AWS was not able to validate the provided access credentials",
            401,
        ));
    }
    if claim.region != region {
        return Err(ApiError::with_status(
            "AuthFailure",
            format!("Credential should be scoped to a valid region, not '{}': privlink serves {region}", claim.region),
            401,
        ));
    }
    if !claim.stamp.starts_with(&*claim.date) {
        return Err(mismatch(&format!(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '{}' != '{}'",
            claim.date,
            claim.stamp.get(..8).unwrap_or(&claim.stamp)
        )));
    }
    let signed_at = time::from_sigv4(&claim.stamp)
        .ok_or_else(|| incomplete(format!("X-Amz-Date '{}' is not a date like 20261202T013045Z", claim.stamp)))?;
    let (earliest, latest) = match claim.expires {
        None => (signed_at.saturating_sub(MAX_SKEW_SECS), signed_at.saturating_add(MAX_SKEW_SECS)),
        Some(e) => (signed_at.saturating_sub(MAX_SKEW_SECS), signed_at.saturating_add(e)),
    };
    if now < earliest || now > latest {
        return Err(ApiError::new(
            "RequestExpired",
            format!(
                "Request has expired: signed at {}, now {}{}",
                claim.stamp,
                time::iso8601(now),
                if claim.expires.is_some() { "" } else { " (5 minutes either way)" }
            ),
        ));
    }
    let body_hash = hex(&Sha256::digest(req.body));
    let payload_hash = match header(req.headers, "x-amz-content-sha256") {
        None => body_hash.as_str(),
        // Trusting the header's hash would leave the body unsigned: over
        // plain HTTP anyone in between could change the call.
        Some(given) if given.eq_ignore_ascii_case(body_hash.as_bytes()) => {
            std::str::from_utf8(given).map_err(|_| incomplete("x-amz-content-sha256 is not text"))?
        }
        Some(_) => {
            return Err(ApiError::new(
                "XAmzContentSHA256Mismatch",
                "The provided 'x-amz-content-sha256' header does not match what was computed (privlink signs every payload)",
            ))
        }
    };
    let mut hasher = Sha256::new();
    canonical_request(req, &claim, payload_hash, &mut |b| hasher.update(b))?;
    let request_hash = hex(&hasher.finalize());

    let provided = unhex(&claim.signature).ok_or_else(|| mismatch("the Signature is not 64 hex digits"))?;
    let mut key = hmac(format!("AWS4{}", credentials.secret_access_key).as_bytes(), claim.date.as_bytes());
    for part in [claim.region.as_bytes(), claim.service.as_bytes(), b"aws4_request"] {
        key = hmac(&key, part);
    }
    let mut mac = new_mac(&key);
    for part in [ALGORITHM, "\n", &claim.stamp, "\n", &claim.date, "/", &claim.region, "/", &claim.service] {
        mac.update(part.as_bytes());
    }
    mac.update(b"/aws4_request\n");
    mac.update(request_hash.as_bytes());
    mac.verify_slice(&provided).map_err(|_| {
        mismatch("Check your AWS Secret Access Key and signing method. Consult the service documentation for details.")
    })?;
    Ok(claim.service.into_owned())
}

/// `SignatureDoesNotMatch`, saying why when privlink knows.
fn mismatch(why: &str) -> ApiError {
    ApiError::with_status(
        "SignatureDoesNotMatch",
        format!("The request signature we calculated does not match the signature you provided. {why}"),
        403,
    )
}

/// `IncompleteSignature`: the signature's parts are malformed or missing.
fn incomplete(message: impl Into<String>) -> ApiError {
    ApiError::new("IncompleteSignature", message)
}

/// The first value of header `name` (any case).
fn header<'a>(headers: &[(&str, &'a [u8])], name: &str) -> Option<&'a [u8]> {
    headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| *v)
}

/// Reads the signature's claims from the header or the presigned query.
fn claim<'a>(req: &Request<'a>) -> Result<Claim<'a>, ApiError> {
    let presigned = query_value(req.query, "X-Amz-Algorithm");
    match (header(req.headers, "authorization"), presigned) {
        (None, None) => {
            Err(ApiError::with_status("MissingAuthenticationToken", "Request is missing Authentication Token", 403))
        }
        (Some(_), Some(_)) => Err(incomplete(
            "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter or the Authorization header should be specified",
        )),
        (Some(h), None) => header_claim(req, h),
        (None, Some(alg)) => query_claim(req, &alg),
    }
}

/// `Authorization: AWS4-HMAC-SHA256 Credential=AKID/DATE/REGION/SERVICE/aws4_request, SignedHeaders=a;b, Signature=hex`.
fn header_claim<'a>(req: &Request<'a>, value: &'a [u8]) -> Result<Claim<'a>, ApiError> {
    let value = std::str::from_utf8(value).map_err(|_| incomplete("the Authorization header is not text"))?;
    let rest = value
        .strip_prefix(ALGORITHM)
        .filter(|r| r.starts_with(' '))
        .ok_or_else(|| incomplete(format!("privlink checks {ALGORITHM} signatures only (Signature Version 4)")))?;
    let (mut credential, mut signed_headers, mut signature) = (None, None, None);
    for part in rest.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) =
            part.split_once('=').ok_or_else(|| incomplete(format!("'{part}' in Authorization is not key=value")))?;
        let slot = match k {
            "Credential" => &mut credential,
            "SignedHeaders" => &mut signed_headers,
            "Signature" => &mut signature,
            _ => return Err(incomplete(format!("unknown part '{k}' in the Authorization header"))),
        };
        if slot.replace(v).is_some() {
            return Err(incomplete(format!("{k} given twice in the Authorization header")));
        }
    }
    let missing = |what: &str| incomplete(format!("Authorization header requires '{what}' parameter"));
    let credential = credential.ok_or_else(|| missing("Credential"))?;
    let stamp = header(req.headers, "x-amz-date")
        .ok_or_else(|| incomplete("Authorization header requires existence of an 'X-Amz-Date' header"))?;
    let stamp = std::str::from_utf8(stamp).map_err(|_| incomplete("X-Amz-Date is not text"))?;
    let (access_key, date, region, service) = scope(credential)?;
    Ok(Claim {
        access_key: access_key.into(),
        date: date.into(),
        region: region.into(),
        service: service.into(),
        signed_headers: signed_headers.ok_or_else(|| missing("SignedHeaders"))?.into(),
        signature: signature.ok_or_else(|| missing("Signature"))?.into(),
        stamp: stamp.trim().into(),
        expires: None,
    })
}

/// The presigned form: `?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=…&X-Amz-Date=…&X-Amz-Expires=…&X-Amz-SignedHeaders=…&X-Amz-Signature=…`.
fn query_claim<'a>(req: &Request<'a>, algorithm: &str) -> Result<Claim<'a>, ApiError> {
    if algorithm != ALGORITHM {
        return Err(incomplete(format!("X-Amz-Algorithm {algorithm}: privlink checks {ALGORITHM} only")));
    }
    let get = |name: &str| {
        query_value(req.query, name)
            .ok_or_else(|| incomplete(format!("a presigned request needs the {name} parameter")))
    };
    let credential = get("X-Amz-Credential")?;
    let (access_key, date, region, service) = scope(&credential)?;
    let (access_key, date, region, service) =
        (access_key.to_string(), date.to_string(), region.to_string(), service.to_string());
    let expires = match query_value(req.query, "X-Amz-Expires") {
        None => None,
        Some(e) => Some(
            e.parse::<u64>()
                .ok()
                .filter(|e| *e <= MAX_EXPIRES_SECS)
                .ok_or_else(|| incomplete(format!("X-Amz-Expires must be 0 to {MAX_EXPIRES_SECS} seconds")))?,
        ),
    };
    Ok(Claim {
        access_key: access_key.into(),
        date: date.into(),
        region: region.into(),
        service: service.into(),
        signed_headers: get("X-Amz-SignedHeaders")?.into(),
        signature: get("X-Amz-Signature")?.into(),
        stamp: get("X-Amz-Date")?.into(),
        expires,
    })
}

/// The decoded value of query parameter `name` (its first).
fn query_value(query: &str, name: &str) -> Option<String> {
    form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}

/// `AKID/DATE/REGION/SERVICE/aws4_request` → its four names.
fn scope(credential: &str) -> Result<(&str, &str, &str, &str), ApiError> {
    let bad =
        || incomplete(format!("Credential '{credential}' is not ACCESS_KEY/YYYYMMDD/REGION/SERVICE/aws4_request"));
    let mut parts = credential.split('/');
    let mut next = || parts.next().filter(|p| !p.is_empty()).ok_or_else(bad);
    let scope = (next()?, next()?, next()?, next()?);
    if next()? != "aws4_request" || parts.next().is_some() || scope.1.len() != 8 {
        return Err(bad());
    }
    Ok(scope)
}

/// Writes the canonical request to `out`, piece by piece (so it is hashed
/// without being held).
fn canonical_request(
    req: &Request<'_>,
    claim: &Claim<'_>,
    payload_hash: &str,
    out: &mut dyn FnMut(&[u8]),
) -> Result<(), ApiError> {
    let names: Vec<&str> = claim.signed_headers.split(';').collect();
    if names.iter().any(|n| n.is_empty()) {
        return Err(incomplete(format!("SignedHeaders '{}' has an empty name", claim.signed_headers)));
    }
    if !names.iter().any(|n| n.eq_ignore_ascii_case("host")) {
        return Err(incomplete("'Host' must be a 'SignedHeader' in the AWS Authorization."));
    }
    if let Some(n) = names.iter().find(|n| header(req.headers, n).is_none()) {
        return Err(mismatch(&format!("The signed header '{n}' is not in the request.")));
    }
    out(req.method.as_bytes());
    out(b"\n");
    canonical_uri(req.path, out);
    out(b"\n");
    canonical_query(req.query, claim.expires.is_some(), out);
    out(b"\n");
    for name in &names {
        out(name.as_bytes());
        out(b":");
        let values = req.headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case(name));
        for (i, (_, value)) in values.enumerate() {
            if i > 0 {
                out(b",");
            }
            // Trimall: no space at either end, a run of spaces as one.
            for (j, word) in value.split(u8::is_ascii_whitespace).filter(|w| !w.is_empty()).enumerate() {
                if j > 0 {
                    out(b" ");
                }
                out(word);
            }
        }
        out(b"\n");
    }
    out(b"\n");
    out(claim.signed_headers.as_bytes());
    out(b"\n");
    out(payload_hash.as_bytes());
    Ok(())
}

/// The path with `.`, `..` and empty segments resolved (as botocore does
/// before signing), each byte but unreserved ones and `/` percent-encoded.
fn canonical_uri(path: &str, out: &mut dyn FnMut(&[u8])) {
    let mut segments: Vec<&str> = Vec::new();
    for s in path.split('/') {
        match s {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    if path.is_empty() || path.starts_with('/') {
        out(b"/");
    }
    for (i, s) in segments.iter().enumerate() {
        if i > 0 {
            out(b"/");
        }
        encode(s.as_bytes(), out);
    }
    if path.ends_with('/') && !segments.is_empty() {
        out(b"/");
    }
}

/// The query's pairs, decoded, re-encoded and sorted by key then value;
/// a presigned request's own `X-Amz-Signature` left out.
fn canonical_query(query: &str, presigned: bool, out: &mut dyn FnMut(&[u8])) {
    let mut pairs: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
        .filter(|(k, _)| !(presigned && k == "X-Amz-Signature"))
        .map(|(k, v)| (encoded(k.as_bytes()), encoded(v.as_bytes())))
        .collect();
    pairs.sort();
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out(b"&");
        }
        out(k.as_bytes());
        out(b"=");
        out(v.as_bytes());
    }
}

/// RFC 3986 percent-encoding of everything but the unreserved characters.
fn encode(bytes: &[u8], out: &mut dyn FnMut(&[u8])) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in bytes {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out(&[b]);
        } else {
            out(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
        }
    }
}

fn encoded(bytes: &[u8]) -> String {
    let mut s = Vec::with_capacity(bytes.len());
    encode(bytes, &mut |b| s.extend_from_slice(b));
    // Only ASCII was written.
    String::from_utf8_lossy(&s).into_owned()
}

fn new_mac(key: &[u8]) -> Hmac<Sha256> {
    // HMAC takes a key of any length: this cannot fail.
    <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC accepts any key length")
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac = new_mac(key);
    mac.update(data);
    mac.finalize().into_bytes().into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<[u8; 32]> {
    let b = s.as_bytes();
    if b.len() != 64 {
        return None;
    }
    let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = [0u8; 32];
    for (i, pair) in b.chunks(2).enumerate() {
        out[i] = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(out)
}

#[cfg(test)]
mod tests;
