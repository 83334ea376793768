//! A model and a counter for randomness, for the API's unit tests.

use super::{Call, Ec2, Effect};
use crate::api::error::ApiError;
use crate::api::query::Params;

/// An empty us-east-1 and deterministic ids.
pub(crate) struct Lab {
    pub(crate) ec2: Ec2,
    counter: u64,
    /// The calls' [`Call::now`]; tests move it on.
    pub(crate) now: u64,
}

impl Lab {
    pub(crate) fn new() -> Lab {
        Lab { ec2: Ec2::new("us-east-1"), counter: 0, now: START }
    }

    fn run(&mut self, action: &str, params: &[(&str, &str)]) -> Result<(String, Effect), ApiError> {
        call_at(&mut self.ec2, &mut self.counter, self.now, action, &Params::from_pairs(params.iter().copied()))
    }

    /// Runs a call that must succeed; returns its XML.
    pub(crate) fn ok(&mut self, action: &str, params: &[(&str, &str)]) -> String {
        match self.run(action, params) {
            Ok((doc, _)) => doc,
            Err(e) => panic!("{action} {params:?}: {e}"),
        }
    }

    /// Runs a call that must fail, and checks it changed nothing.
    pub(crate) fn err(&mut self, action: &str, params: &[(&str, &str)]) -> ApiError {
        let before = self.ec2.clone();
        match self.run(action, params) {
            Ok((doc, _)) => panic!("{action} {params:?} succeeded: {doc}"),
            Err(e) => {
                assert_eq!(self.ec2, before, "{action} failed with {e} but changed the model");
                e
            }
        }
    }

    /// The text at `path` of a call's answer.
    pub(crate) fn field(&mut self, action: &str, params: &[(&str, &str)], path: &str) -> String {
        let doc = self.ok(action, params);
        crate::api::xml::tests::at(&doc, path).unwrap_or_else(|| panic!("no {path} in {doc}"))
    }

    pub(crate) fn vpc(&mut self, cidr: &str) -> String {
        self.field("CreateVpc", &[("CidrBlock", cidr)], "CreateVpcResponse/vpc/vpcId")
    }

    pub(crate) fn subnet(&mut self, vpc: &str, cidr: &str, az: &str) -> String {
        let params = [("VpcId", vpc), ("CidrBlock", cidr), ("AvailabilityZone", az)];
        self.field("CreateSubnet", &params, "CreateSubnetResponse/subnet/subnetId")
    }
}

/// Id bytes that are `n` in the first eight: deterministic "randomness".
fn numbered(n: u64) -> [u8; 9] {
    let mut b = [0u8; 9];
    b[..8].copy_from_slice(&n.to_be_bytes());
    b
}

/// Randomness for tests: [`numbered`] 1, 2, 3, …
pub(crate) fn counter() -> impl FnMut() -> [u8; 9] {
    let mut n = 0u64;
    move || {
        n += 1;
        numbered(n)
    }
}

/// The time the tests' calls start at (Unix seconds).
pub(crate) const START: u64 = 1_700_000_000;

/// Runs `action` on `ec2` at `now`, with ids from `counter` (advanced) and a fixed request id.
pub(crate) fn call_at(
    ec2: &mut Ec2,
    counter: &mut u64,
    now: u64,
    action: &str,
    params: &Params,
) -> Result<(String, Effect), ApiError> {
    let mut n = *counter;
    let mut random = || {
        n += 1;
        numbered(n)
    };
    let mut call = Call { params, request_id: "req-1", now, random: &mut random, chosen_id: None };
    let out = ec2.call(action, &mut call);
    *counter = n;
    out
}
