//! The control plane's API, as pure code: the AWS Query protocol's
//! parameters in, an XML answer and what changed out.
//!
//! The edge (`privlink`'s `edge::api`) reads the HTTP request and calls
//! [`handle`] with the service named in the request's SigV4 credential
//! scope (`…/us-east-1/ec2/aws4_request`) and the form's `Action`. With
//! `[api]` credentials the edge first checks the signature
//! ([`sigv4::verify`]) and passes the service it vouches for; without
//! them it serves loopback only and reads the scope unchecked. Only `ec2` is served; a later service
//! (elasticloadbalancing, sns) is one more arm of [`handle`].
//!
//! Every answer to bad input is an error document with HTTP 400: the code
//! the SDKs match on (`InvalidVpcID.NotFound`), a message naming the
//! parameter or id, and the request id.

pub mod ec2;
pub mod error;
pub mod query;
pub mod settings;
pub mod sigv4;
pub mod time;
pub mod xml;

use self::ec2::{Call, Ec2, Effect};
use self::error::ApiError;

/// The EC2 API version privlink speaks.
pub const EC2_VERSION: &str = "2016-11-15";

/// An answer: the HTTP status and the XML body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// 200, or the error's status.
    pub status: u16,
    /// The XML document.
    pub body: String,
    /// Whether the model changed (the edge stores and realizes it before sending the answer).
    pub effect: Effect,
}

/// Runs one request against `ec2`. `service` is the signing name from the
/// credential scope (`None` when unsigned: EC2).
pub fn handle(ec2: &mut Ec2, service: Option<&str>, call: &mut Call<'_>) -> Answer {
    let result = match service.unwrap_or("ec2") {
        "ec2" => ec2_action(ec2, call),
        other => Err(ApiError::new(
            "UnknownService",
            format!("The service '{other}' is not served here; privlink answers ec2"),
        )),
    };
    match result {
        Ok((body, effect)) => Answer { status: 200, body, effect },
        Err(e) => Answer { status: e.status, body: xml::error_document(&e, call.request_id), effect: Effect::ReadOnly },
    }
}

fn ec2_action(ec2: &mut Ec2, call: &mut Call<'_>) -> Result<(String, Effect), ApiError> {
    let action = call.params.required("Action")?.to_string();
    if let Some(v) = call.params.get("Version").filter(|v| *v != EC2_VERSION) {
        return Err(ApiError::new(
            "InvalidParameterValue",
            format!("Version {v} is not supported; privlink answers EC2 Version {EC2_VERSION}"),
        ));
    }
    if call.params.bool("DryRun")? == Some(true) {
        // EC2 checks permissions and stops: every caller here is allowed.
        return Err(ApiError::new("DryRunOperation", "Request would have succeeded, but DryRun flag is set."));
    }
    ec2.call(&action, call)
}

#[cfg(test)]
mod tests {
    use super::query::Params;
    use super::*;

    fn run(ec2: &mut Ec2, service: Option<&str>, form: &[u8]) -> Answer {
        let params = Params::parse(form);
        let mut random = || [1u8; 9];
        let mut call = Call { params: &params, request_id: "r-1", now: 0, random: &mut random, chosen_id: None };
        handle(ec2, service, &mut call)
    }

    #[test]
    fn bad_input_is_a_400_with_the_aws_error_document() {
        let mut ec2 = Ec2::new("us-east-1");
        for (service, form, code) in [
            (None, &b"Version=2016-11-15"[..], "MissingParameter"),
            (None, b"Action=Frobnicate", "InvalidAction"),
            (None, b"Action=DescribeVpcs&Version=2010-01-01", "InvalidParameterValue"),
            (Some("sns"), b"Action=DescribeVpcs", "UnknownService"),
            (None, b"Action=CreateVpc&CidrBlock=10.0.0.0/8", "InvalidVpc.Range"),
            (None, b"Action=CreateVpc&CidrBlock=10.0.0.0/16&DryRun=true", "DryRunOperation"),
        ] {
            let a = run(&mut ec2, service, form);
            assert_eq!(a.status, 400, "{form:?}");
            assert_eq!(xml::tests::at(&a.body, "Response/Errors/Error/Code").as_deref(), Some(code), "{}", a.body);
            assert_eq!(a.effect, Effect::ReadOnly);
        }
        assert!(ec2.vpcs.is_empty());
        let a = run(&mut ec2, Some("ec2"), b"Action=CreateVpc&CidrBlock=10.0.0.0/16&Version=2016-11-15");
        assert_eq!((a.status, a.effect), (200, Effect::Changed));
    }
}
