//! What the stand-in answers, shaped as an AWS service answers, so that the
//! aws CLI and the SDKs parse it: a client sent through the endpoint sees a
//! real AWS reply or a real AWS error, never "invalid XML".
//!
//! The request's protocol decides the shape (botocore's names):
//! - Query (a form-encoded `Action` in the body or the query string; STS, EC2,
//!   SQS, SNS, ...): STS `GetCallerIdentity` (version 2011-06-15, or none
//!   given) is answered for real, with a
//!   fixed account ([`ACCOUNT`], [`ARN`]), so `aws sts get-caller-identity`
//!   works end to end. Any other action is an error: EC2's own error document
//!   (`<Response><Errors>…`, `UnsupportedOperation`) when the request carries
//!   EC2's `Version` (2016-11-15), else the common `<ErrorResponse>`
//!   (`InvalidAction`).
//! - JSON (an `X-Amz-Target` header; KMS, Logs, DynamoDB, ...):
//!   `{"__type":"UnknownOperationException",…}`, in the request's own
//!   `application/x-amz-json-1.0` or `-1.1`.
//! - Neither, on `GET`/`HEAD` (curl, the tests): `200` and a line naming the
//!   stand-in. Neither on another method: `MissingAction`.
//!
//! Errors are `400`, which the SDKs do not retry. Pure: the caller supplies
//! the request id and does the I/O.

use super::http::{Request, Response};

/// The account the stand-in's caller identity belongs to.
pub const ACCOUNT: &str = "000000000000";

/// The caller's ARN in `GetCallerIdentity`.
pub const ARN: &str = "arn:aws:iam::000000000000:user/privlink-standin";

/// The caller's user id in `GetCallerIdentity` (an IAM user's `AIDA…`, 21 characters).
pub const USER_ID: &str = "AIDAPRIVLINKSTANDIN00";

/// The STS API version and the namespace of its documents.
const STS_VERSION: &str = "2011-06-15";
const STS_NAMESPACE: &str = "https://sts.amazonaws.com/doc/2011-06-15/";

/// The EC2 API version every EC2 Query request carries.
const EC2_VERSION: &str = "2016-11-15";

/// Who is answering: the service name it plays and the line a plain `GET` gets.
#[derive(Clone, Debug)]
pub struct StandIn {
    /// The service's DNS name, e.g. `ec2.us-east-1.amazonaws.com`.
    pub name: String,
    /// The whole body of the answer to a plain `GET`, e.g. `hello from … \n`.
    pub greeting: String,
}

/// What a request asks for, in the terms of its AWS protocol.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Call {
    /// A `GET` or `HEAD` with no `Action` and no `X-Amz-Target`.
    Greeting,
    /// A Query-protocol call.
    Query {
        /// The `Action` parameter.
        action: String,
        /// The `Version` parameter, if sent.
        version: Option<String>,
    },
    /// A JSON-protocol call.
    Json {
        /// The `X-Amz-Target` header, e.g. `Logs_20140328.DescribeLogGroups`.
        target: String,
        /// The content type to answer in.
        content_type: &'static str,
    },
    /// Neither an `Action` nor a target, on a method other than `GET`/`HEAD`.
    MissingAction,
}

/// Reads which call `request` makes.
pub fn classify(request: &Request) -> Call {
    if let Some(target) = request.header("x-amz-target") {
        let json_1_0 = request.header("content-type").is_some_and(|t| t.starts_with("application/x-amz-json-1.0"));
        let content_type = if json_1_0 { "application/x-amz-json-1.0" } else { "application/x-amz-json-1.1" };
        return Call::Json { target: target.to_string(), content_type };
    }
    let body = std::str::from_utf8(&request.body).unwrap_or_default();
    let param = |key: &str| form_value(body, key).or_else(|| request.query().and_then(|q| form_value(q, key)));
    match param("Action") {
        Some(action) => Call::Query { action, version: param("Version") },
        None if matches!(request.method.as_str(), "GET" | "HEAD") => Call::Greeting,
        None => Call::MissingAction,
    }
}

/// The answer to `request`, with `request_id` as the AWS request id.
pub fn answer(request: &Request, standin: &StandIn, request_id: &str) -> Response {
    let name = xml_escape(&standin.name);
    match classify(request) {
        Call::Greeting => Response {
            status: 200,
            reason: "OK",
            headers: vec![("Content-Type", "text/plain".into()), ("x-amzn-RequestId", request_id.into())],
            body: standin.greeting.clone().into_bytes(),
        },
        Call::Query { action, version }
            if action == "GetCallerIdentity" && version.as_deref().is_none_or(|v| v == STS_VERSION) =>
        {
            xml(200, get_caller_identity(request_id), request_id)
        }
        Call::Query { action, version } if version.as_deref() == Some(EC2_VERSION) => {
            let message = format!("The privlink stand-in for {name} does not implement {}.", xml_escape(&action));
            xml(400, ec2_error("UnsupportedOperation", &message, request_id), request_id)
        }
        Call::Query { action, version } => {
            let version = version.as_deref().unwrap_or("(none)");
            let message = format!(
                "The privlink stand-in for {name} does not implement {} (version {}); it answers sts GetCallerIdentity.",
                xml_escape(&action),
                xml_escape(version)
            );
            xml(400, query_error("InvalidAction", &message, request_id), request_id)
        }
        Call::MissingAction => {
            let message = format!(
                "The request has no Action parameter; the privlink stand-in for {name} answers Query and JSON calls."
            );
            xml(400, query_error("MissingAction", &message, request_id), request_id)
        }
        Call::Json { target, content_type } => {
            let body = serde_json::json!({
                "__type": "UnknownOperationException",
                "message": format!("The privlink stand-in for {} does not implement {target}.", standin.name),
            });
            Response {
                status: 400,
                reason: "Bad Request",
                headers: vec![("Content-Type", content_type.into()), ("x-amzn-RequestId", request_id.into())],
                body: body.to_string().into_bytes(),
            }
        }
    }
}

/// A plain-text answer to a request that could not be read (413, 400, 501).
pub fn refusal(status: u16, reason: &'static str, why: &str, request_id: &str) -> Response {
    Response {
        status,
        reason,
        headers: vec![("Content-Type", "text/plain".into()), ("x-amzn-RequestId", request_id.into())],
        body: format!("{why}\n").into_bytes(),
    }
}

/// A request id in AWS's form, a version-4 UUID (`5c8e8e52-0d5e-4c4b-9a51-2f8d2b0b7a10`), from 16 bytes.
pub fn request_id(mut bytes: [u8; 16]) -> String {
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..])
}

/// An XML answer with the Query protocol's content type.
fn xml(status: u16, body: String, request_id: &str) -> Response {
    let reason = if status == 200 { "OK" } else { "Bad Request" };
    Response {
        status,
        reason,
        headers: vec![("Content-Type", "text/xml".into()), ("x-amzn-RequestId", request_id.into())],
        body: body.into_bytes(),
    }
}

/// STS `GetCallerIdentityResponse`, as STS sends it.
fn get_caller_identity(request_id: &str) -> String {
    let request_id = xml_escape(request_id);
    format!(
        "<GetCallerIdentityResponse xmlns=\"{STS_NAMESPACE}\">\n  <GetCallerIdentityResult>\n    <Arn>{ARN}</Arn>\n    \
         <UserId>{USER_ID}</UserId>\n    <Account>{ACCOUNT}</Account>\n  </GetCallerIdentityResult>\n  <ResponseMetadata>\n    \
         <RequestId>{request_id}</RequestId>\n  </ResponseMetadata>\n</GetCallerIdentityResponse>\n"
    )
}

/// EC2's error document (`message` already escaped).
fn ec2_error(code: &str, message: &str, request_id: &str) -> String {
    let request_id = xml_escape(request_id);
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>{code}</Code><Message>{message}</Message>\
         </Error></Errors><RequestID>{request_id}</RequestID></Response>\n"
    )
}

/// The Query protocol's common error document (`message` already escaped).
fn query_error(code: &str, message: &str, request_id: &str) -> String {
    let request_id = xml_escape(request_id);
    format!(
        "<ErrorResponse xmlns=\"{STS_NAMESPACE}\">\n  <Error>\n    <Type>Sender</Type>\n    <Code>{code}</Code>\n    \
         <Message>{message}</Message>\n  </Error>\n  <RequestId>{request_id}</RequestId>\n</ErrorResponse>\n"
    )
}

/// The value of `key` in a form-encoded string (`a=1&b=2`), decoded.
fn form_value(form: &str, key: &str) -> Option<String> {
    form.split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| form_decode(k) == key)
        .map(|(_, v)| form_decode(v))
}

/// `application/x-www-form-urlencoded` decoding: `+` is a space, `%XX` a
/// byte; a `%` not followed by two hex digits stays as it is.
fn form_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => match (bytes.get(i + 1).copied().and_then(hex), bytes.get(i + 2).copied().and_then(hex)) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Escapes text for an XML element.
fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if c.is_control() && !matches!(c, '\t' | '\n' | '\r') => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "5c8e8e52-0d5e-4c4b-9a51-2f8d2b0b7a10";

    fn standin() -> StandIn {
        StandIn {
            name: "ec2.us-east-1.amazonaws.com".into(),
            greeting: "hello from ec2.us-east-1.amazonaws.com\n".into(),
        }
    }

    fn request(method: &str, target: &str, headers: &[(&str, &str)], body: &str) -> Request {
        Request {
            method: method.into(),
            target: target.into(),
            minor_version: 1,
            headers: headers.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect(),
            body: body.as_bytes().to_vec(),
        }
    }

    const FORM: (&str, &str) = ("Content-Type", "application/x-www-form-urlencoded; charset=utf-8");

    fn header<'a>(r: &'a Response, name: &str) -> Option<&'a str> {
        r.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The text of the element at `path` (local names, namespaces ignored) under the root.
    fn text_at(doc: &roxmltree::Document, path: &[&str]) -> Option<String> {
        let mut node = doc.root_element();
        for step in path {
            node = node.children().find(|c| c.is_element() && c.tag_name().name() == *step)?;
        }
        node.text().map(str::to_string)
    }

    fn body(r: &Response) -> &str {
        std::str::from_utf8(&r.body).unwrap()
    }

    #[test]
    fn classify_reads_the_protocol() {
        let form = request("POST", "/", &[FORM], "Action=DescribeVpcs&Version=2016-11-15");
        assert_eq!(classify(&form), Call::Query { action: "DescribeVpcs".into(), version: Some("2016-11-15".into()) });
        let query = request("GET", "/?Version=2011-06-15&Action=Get%43allerIdentity", &[], "");
        assert_eq!(
            classify(&query),
            Call::Query { action: "GetCallerIdentity".into(), version: Some("2011-06-15".into()) }
        );
        let json = request(
            "POST",
            "/",
            &[("X-Amz-Target", "TrentService.ListKeys"), ("Content-Type", "application/x-amz-json-1.1")],
            "{}",
        );
        assert_eq!(
            classify(&json),
            Call::Json { target: "TrentService.ListKeys".into(), content_type: "application/x-amz-json-1.1" }
        );
        let dynamo = request(
            "POST",
            "/",
            &[("x-amz-target", "DynamoDB_20120810.ListTables"), ("content-type", "application/x-amz-json-1.0")],
            "{}",
        );
        assert!(matches!(classify(&dynamo), Call::Json { content_type: "application/x-amz-json-1.0", .. }));
        assert_eq!(classify(&request("GET", "/", &[], "")), Call::Greeting);
        assert_eq!(classify(&request("HEAD", "/index.html", &[], "")), Call::Greeting);
        assert_eq!(classify(&request("POST", "/", &[FORM], "Version=2016-11-15")), Call::MissingAction);
        // A body that is not UTF-8 has no Action in it; the query string still counts.
        let mut binary = request("POST", "/?Action=X", &[], "");
        binary.body = vec![0xff, 0xfe];
        assert_eq!(classify(&binary), Call::Query { action: "X".into(), version: None });
    }

    #[test]
    fn form_decoding() {
        assert_eq!(form_decode("a+b%20c%zz%4"), "a b c%zz%4");
        assert_eq!(form_decode("%e2%9c%93%"), "\u{2713}%");
        assert_eq!(form_decode("%ff"), "\u{fffd}");
        assert_eq!(form_value("A=1&&B&C=x%3Dy&A=2", "C").as_deref(), Some("x=y"));
        assert_eq!(form_value("A=1&A=2", "A").as_deref(), Some("1"));
        assert_eq!(form_value("", "A"), None);
    }

    #[test]
    fn get_caller_identity_is_stss_document() {
        let r = answer(&request("POST", "/", &[FORM], "Action=GetCallerIdentity&Version=2011-06-15"), &standin(), ID);
        assert_eq!((r.status, header(&r, "content-type")), (200, Some("text/xml")));
        assert_eq!(header(&r, "x-amzn-requestid"), Some(ID));
        let doc = roxmltree::Document::parse(body(&r)).unwrap();
        let root = doc.root_element();
        assert_eq!(root.tag_name().name(), "GetCallerIdentityResponse");
        assert_eq!(root.tag_name().namespace(), Some("https://sts.amazonaws.com/doc/2011-06-15/"));
        assert_eq!(text_at(&doc, &["GetCallerIdentityResult", "Arn"]).as_deref(), Some(ARN));
        assert_eq!(text_at(&doc, &["GetCallerIdentityResult", "UserId"]).as_deref(), Some(USER_ID));
        assert_eq!(text_at(&doc, &["GetCallerIdentityResult", "Account"]).as_deref(), Some("000000000000"));
        assert_eq!(text_at(&doc, &["ResponseMetadata", "RequestId"]).as_deref(), Some(ID));
        assert_eq!(USER_ID.len(), 21);
        // Another API version of the action is not this document.
        let other =
            answer(&request("POST", "/", &[FORM], "Action=GetCallerIdentity&Version=2099-01-01"), &standin(), ID);
        assert_eq!(other.status, 400);
        assert_eq!(STS_VERSION, STS_NAMESPACE.trim_end_matches('/').rsplit('/').next().unwrap());
    }

    #[test]
    fn ec2_actions_get_ec2s_error_document() {
        let r = answer(&request("POST", "/", &[FORM], "Action=DescribeVpcs&Version=2016-11-15"), &standin(), ID);
        assert_eq!((r.status, header(&r, "content-type")), (400, Some("text/xml")));
        let doc = roxmltree::Document::parse(body(&r)).unwrap();
        assert_eq!(doc.root_element().tag_name().name(), "Response");
        assert_eq!(text_at(&doc, &["Errors", "Error", "Code"]).as_deref(), Some("UnsupportedOperation"));
        let message = text_at(&doc, &["Errors", "Error", "Message"]).unwrap();
        assert!(message.contains("ec2.us-east-1.amazonaws.com") && message.contains("DescribeVpcs"), "{message}");
        assert_eq!(text_at(&doc, &["RequestID"]).as_deref(), Some(ID));
    }

    #[test]
    fn other_query_actions_get_the_common_error_document() {
        let r = answer(&request("POST", "/", &[FORM], "Action=ListQueues&Version=2012-11-05"), &standin(), ID);
        assert_eq!(r.status, 400);
        let doc = roxmltree::Document::parse(body(&r)).unwrap();
        assert_eq!(doc.root_element().tag_name().name(), "ErrorResponse");
        assert_eq!(text_at(&doc, &["Error", "Type"]).as_deref(), Some("Sender"));
        assert_eq!(text_at(&doc, &["Error", "Code"]).as_deref(), Some("InvalidAction"));
        assert!(text_at(&doc, &["Error", "Message"]).unwrap().contains("ListQueues"));
        assert_eq!(text_at(&doc, &["RequestId"]).as_deref(), Some(ID));
        let missing = answer(&request("POST", "/", &[FORM], ""), &standin(), ID);
        let doc = roxmltree::Document::parse(body(&missing)).unwrap();
        assert_eq!((missing.status, text_at(&doc, &["Error", "Code"]).as_deref()), (400, Some("MissingAction")));
    }

    #[test]
    fn what_the_client_sent_cannot_break_the_xml() {
        for version in ["2016-11-15", "1"] {
            let form = format!("Action=%3C%2FMessage%3E%26x%00&Version={version}");
            let r = answer(&request("POST", "/", &[FORM], &form), &standin(), "<id>");
            let doc = roxmltree::Document::parse(body(&r)).unwrap();
            let all: String = doc.descendants().filter_map(|n| n.text()).collect();
            assert!(all.contains("</Message>&x\u{fffd}") && all.contains("<id>"), "{all}");
        }
    }

    #[test]
    fn json_calls_get_unknown_operation() {
        let req = request("POST", "/", &[("X-Amz-Target", "Logs_20140328.DescribeLogGroups\"")], "{}");
        let r = answer(&req, &standin(), ID);
        assert_eq!((r.status, header(&r, "content-type")), (400, Some("application/x-amz-json-1.1")));
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["__type"], "UnknownOperationException");
        let message = v["message"].as_str().unwrap();
        assert!(
            message.contains("Logs_20140328.DescribeLogGroups\"") && message.contains("ec2.us-east-1"),
            "{message}"
        );
    }

    #[test]
    fn request_ids_are_uuids() {
        assert_eq!(request_id([0; 16]), "00000000-0000-4000-8000-000000000000");
        assert_eq!(request_id([0xff; 16]), "ffffffff-ffff-4fff-bfff-ffffffffffff");
    }

    #[test]
    fn a_plain_get_is_greeted() {
        let r = answer(&request("GET", "/", &[], ""), &standin(), ID);
        assert_eq!((r.status, header(&r, "content-type")), (200, Some("text/plain")));
        assert_eq!(body(&r), "hello from ec2.us-east-1.amazonaws.com\n");
        let refused = refusal(413, "Content Too Large", "too large", ID);
        assert_eq!((refused.status, body(&refused)), (413, "too large\n"));
    }
}
