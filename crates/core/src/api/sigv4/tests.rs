use super::*;

/// AWS's documented example ("Signature Version 4 signing process",
/// the IAM ListUsers GET): its canonical request, its hash and its signature.
const AWS_SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
const AWS_SIGNATURE: &str = "5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7";
const AWS_NOW: u64 = 1_440_938_160; // 20150830T123600Z

/// Signed by botocore 1.43.11 (`SigV4Auth(Credentials(BOTO_KEY, BOTO_SECRET),
/// "ec2", "us-east-1")` on a POST to `http://127.0.0.1:4566/` with
/// `botocore.auth.get_current_datetime` fixed at 2026-12-02 01:30:45).
const BOTO_KEY: &str = "AKIAPRIVLINKTEST0001";
const BOTO_SECRET: &str = "privlink/test+secret/0123456789abcdefGHIJ";
const BOTO_NOW: u64 = 1_796_175_045; // 20261202T013045Z
const BOTO_BODY: &[u8] = b"Action=DescribeVpcs&Version=2016-11-15";
const BOTO_AUTH: &str = "AWS4-HMAC-SHA256 Credential=AKIAPRIVLINKTEST0001/20261202/us-east-1/ec2/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=e352ec97aa97973cf0d3c3f64702b3de597076b89a8157d5e7272212afe1932a";

fn creds(key: &str, secret: &str) -> Credentials {
    Credentials { access_key_id: key.into(), secret_access_key: secret.into() }
}

fn aws_headers(signature: &str) -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("Content-Type", b"application/x-www-form-urlencoded; charset=utf-8".to_vec()),
        ("Host", b"iam.amazonaws.com".to_vec()),
        ("X-Amz-Date", b"20150830T123600Z".to_vec()),
        (
            "Authorization",
            format!("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature={signature}").into_bytes(),
        ),
    ]
}

fn boto_headers() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("host", b"127.0.0.1:4566".to_vec()),
        ("content-type", b"application/x-www-form-urlencoded; charset=utf-8".to_vec()),
        ("user-agent", b"aws-cli/1.45 botocore/1.43.11".to_vec()),
        ("x-amz-date", b"20261202T013045Z".to_vec()),
        ("authorization", BOTO_AUTH.as_bytes().to_vec()),
        ("content-length", b"38".to_vec()),
    ]
}

/// Runs `verify` on owned parts.
#[allow(clippy::too_many_arguments)] // one per part of a request, as `verify` reads them
fn check(
    method: &str,
    path: &str,
    query: &str,
    headers: &[(&str, Vec<u8>)],
    body: &[u8],
    c: &Credentials,
    region: &str,
    now: u64,
) -> Result<String, ApiError> {
    let headers: Vec<(&str, &[u8])> = headers.iter().map(|(n, v)| (*n, v.as_slice())).collect();
    let req = Request { method, path, query, headers: &headers, body };
    verify(&req, c, region, now)
}

fn aws(query: &str, headers: &[(&str, Vec<u8>)], now: u64) -> Result<String, ApiError> {
    check("GET", "/", query, headers, b"", &creds("AKIDEXAMPLE", AWS_SECRET), "us-east-1", now)
}

fn boto(headers: &[(&str, Vec<u8>)], body: &[u8], c: &Credentials, now: u64) -> Result<String, ApiError> {
    check("POST", "/", "", headers, body, c, "us-east-1", now)
}

fn code(r: Result<String, ApiError>) -> (&'static str, u16) {
    let e = r.expect_err("refused");
    (e.code, e.status)
}

fn set(headers: &mut [(&str, Vec<u8>)], name: &str, value: &str) {
    headers.iter_mut().find(|(n, _)| n.eq_ignore_ascii_case(name)).unwrap().1 = value.as_bytes().to_vec();
}

#[test]
fn the_aws_documentation_example_has_its_canonical_request_and_signature() {
    let headers = aws_headers(AWS_SIGNATURE);
    let hv: Vec<(&str, &[u8])> = headers.iter().map(|(n, v)| (*n, v.as_slice())).collect();
    let req =
        Request { method: "GET", path: "/", query: "Action=ListUsers&Version=2010-05-08", headers: &hv, body: b"" };
    let c = claim(&req).unwrap();
    let mut text = Vec::new();
    canonical_request(&req, &c, &hex(&Sha256::digest(b"")), &mut |b| text.extend_from_slice(b)).unwrap();
    assert_eq!(
        String::from_utf8(text.clone()).unwrap(),
        "GET\n/\nAction=ListUsers&Version=2010-05-08\ncontent-type:application/x-www-form-urlencoded; charset=utf-8\nhost:iam.amazonaws.com\nx-amz-date:20150830T123600Z\n\ncontent-type;host;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    assert_eq!(hex(&Sha256::digest(&text)), "f536975d06c0309214f805bb90ccff089219ecd68b2577efef23edd43b7e1a59");
    assert_eq!(aws("Action=ListUsers&Version=2010-05-08", &headers, AWS_NOW).as_deref(), Ok("iam"));
    // The query's order does not matter: it is sorted.
    assert_eq!(aws("Version=2010-05-08&Action=ListUsers", &headers, AWS_NOW).as_deref(), Ok("iam"));
}

#[test]
fn any_changed_byte_of_the_aws_example_fails() {
    let q = "Action=ListUsers&Version=2010-05-08";
    let headers = aws_headers(AWS_SIGNATURE);
    let mismatch = ("SignatureDoesNotMatch", 403);
    assert_eq!(code(aws("Action=ListUsers&Version=2010-05-09", &headers, AWS_NOW)), mismatch);
    assert_eq!(code(aws("Action=ListUsers&Version=2010-05-08&x=", &headers, AWS_NOW)), mismatch);
    let mut h = headers.clone();
    set(&mut h, "Host", "iam.amazonaws.con");
    assert_eq!(code(aws(q, &h, AWS_NOW)), mismatch);
    let mut h = headers.clone();
    set(&mut h, "Content-Type", "application/x-www-form-urlencoded; charset=utf-9");
    assert_eq!(code(aws(q, &h, AWS_NOW)), mismatch);
    let mut h = headers.clone();
    set(&mut h, "X-Amz-Date", "20150830T123601Z");
    assert_eq!(code(aws(q, &h, AWS_NOW)), mismatch);
    let mut sig = AWS_SIGNATURE.to_string();
    sig.replace_range(63.., "8");
    assert_eq!(code(aws(q, &aws_headers(&sig), AWS_NOW)), mismatch);
    let c = creds("AKIDEXAMPLE", AWS_SECRET);
    assert_eq!(code(check("POST", "/", q, &headers, b"", &c, "us-east-1", AWS_NOW)), mismatch);
    assert_eq!(code(check("GET", "/x", q, &headers, b"", &c, "us-east-1", AWS_NOW)), mismatch);
    assert_eq!(code(check("GET", "/", q, &headers, b"x", &c, "us-east-1", AWS_NOW)), mismatch);
    let other = creds("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEZ");
    assert_eq!(code(check("GET", "/", q, &headers, b"", &other, "us-east-1", AWS_NOW)), mismatch);
}

#[test]
fn botocore_signs_an_ec2_post_that_passes() {
    let c = creds(BOTO_KEY, BOTO_SECRET);
    let h = boto_headers();
    assert_eq!(boto(&h, BOTO_BODY, &c, BOTO_NOW).as_deref(), Ok("ec2"));
    // Unsigned headers (user-agent, content-length) may change.
    let mut h2 = h.clone();
    set(&mut h2, "user-agent", "other");
    assert_eq!(boto(&h2, BOTO_BODY, &c, BOTO_NOW).as_deref(), Ok("ec2"));
    // An x-amz-content-sha256 that names the body is used as the payload hash.
    let mut h3 = h.clone();
    h3.push(("X-Amz-Content-SHA256", hex(&Sha256::digest(BOTO_BODY)).into_bytes()));
    assert_eq!(boto(&h3, BOTO_BODY, &c, BOTO_NOW).as_deref(), Ok("ec2"));
    // One that does not is refused, whatever was signed.
    let mut h4 = h.clone();
    h4.push(("x-amz-content-sha256", hex(&Sha256::digest(b"Action=DeleteVpc")).into_bytes()));
    assert_eq!(code(boto(&h4, BOTO_BODY, &c, BOTO_NOW)), ("XAmzContentSHA256Mismatch", 400));
    h4.last_mut().unwrap().1 = b"UNSIGNED-PAYLOAD".to_vec();
    assert_eq!(code(boto(&h4, BOTO_BODY, &c, BOTO_NOW)), ("XAmzContentSHA256Mismatch", 400));
    // The body is signed.
    assert_eq!(code(boto(&h, b"Action=DescribeVpcs&Version=2016-11-16", &c, BOTO_NOW)), ("SignatureDoesNotMatch", 403));
}

#[test]
fn the_key_the_region_and_the_clock_are_checked_before_the_signature() {
    let c = creds(BOTO_KEY, BOTO_SECRET);
    let h = boto_headers();
    let e = boto(&h, BOTO_BODY, &creds("AKIAOTHER", BOTO_SECRET), BOTO_NOW).unwrap_err();
    assert_eq!((e.code, e.status), ("AuthFailure", 401));
    assert_eq!(e.message, "AWS was not able to validate the provided access credentials");
    let e = check("POST", "/", "", &h, BOTO_BODY, &c, "eu-west-1", BOTO_NOW).unwrap_err();
    assert_eq!((e.code, e.status), ("AuthFailure", 401));
    assert!(e.message.contains("'us-east-1'") && e.message.contains("eu-west-1"), "{}", e.message);
    assert_eq!(boto(&h, BOTO_BODY, &c, BOTO_NOW + 300).as_deref(), Ok("ec2"));
    assert_eq!(boto(&h, BOTO_BODY, &c, BOTO_NOW - 300).as_deref(), Ok("ec2"));
    for now in [BOTO_NOW + 301, BOTO_NOW - 301, 0, u64::MAX] {
        let e = boto(&h, BOTO_BODY, &c, now).unwrap_err();
        assert_eq!((e.code, e.status), ("RequestExpired", 400), "{now}");
        assert!(e.message.starts_with("Request has expired"), "{}", e.message);
    }
    // A scope date that is not the X-Amz-Date's day.
    let mut h2 = h.clone();
    set(&mut h2, "authorization", &BOTO_AUTH.replace("/20261202/", "/20261201/"));
    assert_eq!(code(boto(&h2, BOTO_BODY, &c, BOTO_NOW)), ("SignatureDoesNotMatch", 403));
}

#[test]
fn botocore_paths_and_header_values_are_canonicalized_as_botocore_does() {
    // POST http://127.0.0.1:4566/a%20b/./c//d/ with X-Custom: "  two   spaces  ".
    let auth = "AWS4-HMAC-SHA256 Credential=AKIAPRIVLINKTEST0001/20261202/us-east-1/ec2/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-custom, Signature=62fb581e6657887ac0811ef6a47241dddcb1d7d96f79920759f03794148424a6";
    let mut h = boto_headers();
    set(&mut h, "authorization", auth);
    h.push(("x-custom", b"  two   spaces  ".to_vec()));
    let c = creds(BOTO_KEY, BOTO_SECRET);
    let go = |path: &str, h: &[(&str, Vec<u8>)]| check("POST", path, "", h, BOTO_BODY, &c, "us-east-1", BOTO_NOW);
    assert_eq!(go("/a%20b/./c//d/", &h).as_deref(), Ok("ec2"));
    assert_eq!(go("/a%20b/c/d/", &h).as_deref(), Ok("ec2"), "the same path once normalized");
    assert_eq!(code(go("/a%20b/c/d", &h)), ("SignatureDoesNotMatch", 403), "the trailing slash counts");
    set(&mut h, "x-custom", "two spaces");
    assert_eq!(go("/a%20b/./c//d/", &h).as_deref(), Ok("ec2"), "trimmed, runs of spaces as one");
    set(&mut h, "x-custom", "two  space");
    assert_eq!(code(go("/a%20b/./c//d/", &h)), ("SignatureDoesNotMatch", 403));
}

#[test]
fn a_botocore_presigned_url_passes_until_it_expires() {
    // SigV4QueryAuth(..., expires=300) on GET with Action, Version and a
    // Filter whose value has a space and a slash.
    let query = "Action=DescribeVpcs&Version=2016-11-15&Filter.1.Name=tag%3AName&Filter.1.Value.1=a%20b%2Fc&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAPRIVLINKTEST0001%2F20261202%2Fus-east-1%2Fec2%2Faws4_request&X-Amz-Date=20261202T013045Z&X-Amz-Expires=300&X-Amz-SignedHeaders=host&X-Amz-Signature=0822d72933e42d2a9e6388f4cb47e9614446a6607acbad706b260a86f4621bc5";
    let h = vec![("Host", b"127.0.0.1:4566".to_vec())];
    let c = creds(BOTO_KEY, BOTO_SECRET);
    let go = |q: &str, now| check("GET", "/", q, &h, b"", &c, "us-east-1", now);
    assert_eq!(go(query, BOTO_NOW + 300).as_deref(), Ok("ec2"));
    assert_eq!(code(go(query, BOTO_NOW + 301)), ("RequestExpired", 400));
    assert_eq!(code(go(&query.replace("a%20b", "a%20c"), BOTO_NOW)), ("SignatureDoesNotMatch", 403));
    assert_eq!(code(go(&query.replace("Expires=300", "Expires=3000"), BOTO_NOW)), ("SignatureDoesNotMatch", 403));
    assert_eq!(code(go(&query.replace("Expires=300", "Expires=999999"), BOTO_NOW)), ("IncompleteSignature", 400));
    let mut both = h.clone();
    both.push(("Authorization", BOTO_AUTH.as_bytes().to_vec()));
    assert_eq!(code(check("GET", "/", query, &both, b"", &c, "us-east-1", BOTO_NOW)), ("IncompleteSignature", 400));
}

#[test]
fn malformed_or_missing_signatures_are_error_documents() {
    let c = creds(BOTO_KEY, BOTO_SECRET);
    let h = vec![("host", b"127.0.0.1:4566".to_vec())];
    let e = check("POST", "/", "", &h, BOTO_BODY, &c, "us-east-1", BOTO_NOW).unwrap_err();
    assert_eq!(
        (e.code, e.status, e.message.as_str()),
        ("MissingAuthenticationToken", 403, "Request is missing Authentication Token")
    );
    let good = BOTO_AUTH;
    for (auth, want) in [
        ("Basic dXNlcjpwYXNz", "IncompleteSignature"),
        ("AWS4-HMAC-SHA256", "IncompleteSignature"),
        ("AWS4-HMAC-SHA256X Credential=a", "IncompleteSignature"),
        ("AWS4-HMAC-SHA256 ", "IncompleteSignature"),
        ("AWS4-HMAC-SHA256 Credential=AKIAPRIVLINKTEST0001/20261202", "IncompleteSignature"),
        ("AWS4-HMAC-SHA256 Credential=AKIAPRIVLINKTEST0001/20261202/us-east-1/ec2/aws4_request/x, SignedHeaders=host, Signature=00", "IncompleteSignature"),
        ("AWS4-HMAC-SHA256 Credential=AKIAPRIVLINKTEST0001//us-east-1/ec2/aws4_request, SignedHeaders=host, Signature=00", "IncompleteSignature"),
        ("AWS4-HMAC-SHA256 Credential=AKIAPRIVLINKTEST0001/20261202/us-east-1/ec2/aws4_request, Signature=00", "IncompleteSignature"),
        ("AWS4-HMAC-SHA256 Credential=AKIAPRIVLINKTEST0001/20261202/us-east-1/ec2/aws4_request, SignedHeaders=host", "IncompleteSignature"),
        (&good.replace("SignedHeaders=", "SignedHeaders=host,SignedHeaders="), "IncompleteSignature"),
        (&good.replace("content-type;host;", "content-type;"), "IncompleteSignature"),
        (&good.replace("content-type;", "content-type;;"), "IncompleteSignature"),
        (&good.replace("content-type;", "x-missing;"), "SignatureDoesNotMatch"),
        (&good.replace("Signature=e3", "Signature=zz"), "SignatureDoesNotMatch"),
        (&format!("{good}0"), "SignatureDoesNotMatch"),
        (&good.replace(", Signature", ", Signaturex"), "IncompleteSignature"),
    ] {
        let mut h = boto_headers();
        set(&mut h, "authorization", auth);
        assert_eq!(boto(&h, BOTO_BODY, &c, BOTO_NOW).map_err(|e| e.code), Err(want), "{auth}");
    }
    let mut h = boto_headers();
    h.retain(|(n, _)| *n != "x-amz-date");
    assert_eq!(code(boto(&h, BOTO_BODY, &c, BOTO_NOW)), ("IncompleteSignature", 400));
    let mut h = boto_headers();
    set(&mut h, "x-amz-date", "2026-12-02T01:30:45Z");
    assert_eq!(boto(&h, BOTO_BODY, &c, BOTO_NOW).map_err(|e| e.code), Err("SignatureDoesNotMatch"));
    set(&mut h, "x-amz-date", "20261202T253045Z");
    assert_eq!(code(boto(&h, BOTO_BODY, &c, BOTO_NOW)), ("IncompleteSignature", 400));
    let mut h = boto_headers();
    h.iter_mut().find(|(n, _)| *n == "authorization").unwrap().1 = b"AWS4-HMAC-SHA256 Credential=\xff".to_vec();
    assert_eq!(code(boto(&h, BOTO_BODY, &c, BOTO_NOW)), ("IncompleteSignature", 400));
}

#[test]
fn the_canonical_query_encodes_as_rfc_3986() {
    let mut out = Vec::new();
    canonical_query("b=2&a=x+y&a=%7e%2F&c&~=*", false, &mut |b| out.extend_from_slice(b));
    assert_eq!(String::from_utf8(out).unwrap(), "a=x%20y&a=~%2F&b=2&c=&~=%2A");
    let mut out = Vec::new();
    canonical_uri("", &mut |b| out.extend_from_slice(b));
    canonical_uri("/../a/%2F/b c/..", &mut |b| out.extend_from_slice(b));
    assert_eq!(String::from_utf8(out).unwrap(), "//a/%252F");
}

proptest::proptest! {
    #[test]
    fn any_authorization_header_is_an_answer_not_a_panic(auth in "AWS4-HMAC-SHA256 [ -~]{0,200}", query in "[ -~]{0,80}") {
        let mut h = boto_headers();
        set(&mut h, "authorization", &auth);
        let _ = check("POST", "/", &query, &h, BOTO_BODY, &creds(BOTO_KEY, BOTO_SECRET), "us-east-1", BOTO_NOW);
    }
}
